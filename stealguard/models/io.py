"""Safe persistence of classifiers: ``model.safetensors`` + ``card.json``, never pickle.

A model directory holds the weights (every entry of ``state_dict``, buffers included,
written with ``safetensors.torch.save_file``) and a JSON :class:`ModelCard` that says how
to rebuild the architecture. :func:`load_model` rebuilds the net with
:func:`stealguard.models.create` (the GroupNorm variant when the card's ``dp`` record says
``norm: "group"``) and reads the tensors with :func:`stealguard.models.weights.read_weights`;
nothing is ever unpickled, so a model directory from an untrusted source cannot run code.

A model folder is treated as hostile input: ``card.json`` is read only up to
:data:`MAX_CARD_BYTES` and :data:`MAX_CARD_DEPTH` levels of nesting, every card field is
checked (``num_classes`` at most :data:`MAX_CLASSES`, ``input_shape`` within
:data:`MAX_CHANNELS`, :data:`MAX_SIDE` and :data:`MAX_INPUT_ELEMENTS`, strings at most
:data:`MAX_STRING` characters) before anything is allocated, the architecture's size is
computed on the ``meta`` device and refused over ``max_bytes`` before it is built, and the
weights file is checked tensor by tensor (names, dtypes, shapes, finite values) against the
rebuilt model.
An int8 model (card field ``quantization``) stores its int8 values and quantization
parameters as plain tensors (:mod:`stealguard.models.quantized_state`) and is loaded into
the graph :func:`stealguard.models.quantization.build_quantized` rebuilds from the card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from stealguard._checks import check_choice, check_int, check_number
from stealguard._version import __version__
from stealguard.device import DeviceLike, resolve_device
from stealguard.models import registry
from stealguard.models.base import Classifier
from stealguard.models.quantization import QuantizedClassifier, build_quantized, check_quantization_record
from stealguard.models.quantized_state import from_plain_tensors, to_plain_tensors
from stealguard.models.registry import NORMS, check_input_shape, create
from stealguard.models.weights import check_specs, read_weights, specs

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
MAX_CARD_BYTES = 4 << 20
"""Largest ``card.json`` read (4 MiB)."""
MAX_CARD_DEPTH = 32
"""Deepest nesting of JSON arrays and objects accepted in ``card.json``."""
MAX_CLASSES = 100_000
"""Largest ``num_classes`` a card may declare."""
MAX_CHANNELS = 64
MAX_SIDE = 1024
MAX_INPUT_ELEMENTS = 1 << 20
"""Card ``input_shape`` bounds: C <= 64, H and W <= 1024, C * H * W <= 2**20."""
MAX_STRING = 256
"""Longest string field (arch, dataset, class name, version, timestamp) of a card."""
DEFAULT_MAX_MODEL_BYTES = 512 << 20
"""Largest model (all ``state_dict`` tensors) :func:`load_model` builds by default (512 MiB)."""
_EXCERPT = 60


def _brief(value: Any) -> str:
    """A short picture of a card value for messages (never a huge repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, (list, tuple, dict)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _card_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"card field {name!r} must be an integer, got {_brief(value)} ({type(value).__name__})")
    if not low <= value <= high:
        raise ValueError(f"card field {name!r} must be an integer in [{low}, {high}], got {_brief(value)}")
    return value


def _card_input_shape(value: Any) -> tuple[int, int, int]:
    """``input_shape`` as ``(C, H, W)`` within the card bounds, checked before anything is built."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"card field 'input_shape': input_shape must be a (C, H, W) list of integers, got {_brief(value)}")
    if len(value) != 3:
        raise ValueError(f"card field 'input_shape': input_shape must have 3 entries (C, H, W), got {_brief(value)}")
    channels = _card_int("input_shape C", value[0], 1, MAX_CHANNELS)
    height = _card_int("input_shape H", value[1], 1, MAX_SIDE)
    width = _card_int("input_shape W", value[2], 1, MAX_SIDE)
    if channels * height * width > MAX_INPUT_ELEMENTS:
        raise ValueError(f"card field 'input_shape' {[channels, height, width]} has more than {MAX_INPUT_ELEMENTS} elements per input")
    return check_input_shape((channels, height, width))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


DP_REQUIRED = ("noise_multiplier", "max_grad_norm", "delta", "epsilon", "accountant", "norm")
DP_OPTIONAL = ("sample_rate", "steps")


def _check_dp(record: Any) -> dict[str, Any]:
    """Validate the card's ``dp`` record; return it as a plain dict with float numbers."""
    if not isinstance(record, Mapping):
        raise TypeError(f"card field 'dp' must be a dict or null, got {type(record).__name__}")
    missing = [key for key in DP_REQUIRED if key not in record]
    unknown = sorted(set(record) - set(DP_REQUIRED) - set(DP_OPTIONAL))
    if missing or unknown:
        raise ValueError(
            f"card field 'dp' must hold {', '.join(DP_REQUIRED)} (optionally {', '.join(DP_OPTIONAL)}); "
            f"missing {missing}, unknown {unknown}"
        )
    out = {
        "noise_multiplier": check_number("card field 'dp.noise_multiplier'", record["noise_multiplier"], low=0.0),
        "max_grad_norm": check_number("card field 'dp.max_grad_norm'", record["max_grad_norm"], low=0.0, low_inclusive=False),
        "delta": check_number("card field 'dp.delta'", record["delta"], low=0.0, high=1.0, low_inclusive=False, high_inclusive=False),
        "epsilon": None if record["epsilon"] is None else check_number("card field 'dp.epsilon'", record["epsilon"], low=0.0),
        "accountant": record["accountant"],
        "norm": check_choice("card field 'dp.norm'", record["norm"], NORMS),
    }
    if not isinstance(out["accountant"], str) or not out["accountant"]:
        raise TypeError(f"card field 'dp.accountant' must be a non-empty string, got {record['accountant']!r}")
    if "sample_rate" in record:
        out["sample_rate"] = check_number("card field 'dp.sample_rate'", record["sample_rate"], low=0.0, high=1.0, low_inclusive=False)
    if "steps" in record:
        out["steps"] = check_int("card field 'dp.steps'", record["steps"], low=0)
    return out


def _floats(name: str, value: Any, length: int) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"card field {name!r} must be a list of {length} numbers, got {_brief(value)}")
    if len(value) != length:
        raise ValueError(f"card field {name!r} must have {length} entries (one per channel), got {len(value)}")
    return tuple(check_number(f"card field {name!r} entry", v) for v in value)


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a saved model is and how it was made; stored as ``card.json``.

    Args:
        arch: architecture name from :func:`stealguard.models.names`.
        dataset: name of the training data set (free text, e.g. ``"mnist"``).
        input_shape: ``(C, H, W)`` of one input; C <= 64, H, W <= 1024, C * H * W <= 2**20.
        num_classes: K in [2, 100000].
        classes: K class names of 1 to 256 characters; default ``"0"`` ... ``"K-1"``.
        mean, std: per-channel normalisation (length C) held by the model; defaults 0 and 1.
        test_accuracy: top-1 test accuracy in [0, 1], or None if not measured.
        train: training parameters (JSON-serialisable dict), e.g. the arguments of ``fit``.
        seed: seed of the run (>= 0), or None.
        dp: None (default) for ordinary training, or the DP-SGD record of
            :func:`stealguard.models.dp.fit_dp`: ``noise_multiplier`` (>= 0),
            ``max_grad_norm`` (> 0), ``delta`` in (0, 1), ``epsilon`` reached (>= 0, or
            None when the noise multiplier is 0 and there is no guarantee), ``accountant``
            (``"rdp"`` / ``"prv"``), ``norm`` (``"group"``: BatchNorm was replaced by
            GroupNorm, so the architecture is rebuilt with ``create(..., norm="group")``;
            ``"batch"``: as registered) and optionally ``sample_rate``, ``steps``. Cards
            without the field (all cards before DP-SGD) load as before.
        quantization: None (default) for a float model, or the int8 record of
            :func:`stealguard.models.quantization.quantize_victim` (validated by
            :func:`stealguard.models.quantization.check_quantization_record`): ``engine``
            (``"x86"``), ``scheme`` (``"ptq_static_fx"``), ``calibration_size`` (>= 1),
            ``calibration_seed`` (>= 0), ``float_test_accuracy`` and
            ``int8_test_accuracy`` (in [0, 1] or None), ``torch_version``. An int8 card's
            ``test_accuracy`` is the int8 one.
        stealguard_version: version that wrote the card (default: the running one).
        created: ISO-8601 timestamp (default: now, UTC).

    Raises:
        TypeError / ValueError: a field of the wrong type or out of range (the message
            names the field).
    """

    arch: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    classes: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    test_accuracy: float | None = None
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    dp: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    stealguard_version: str = __version__
    created: str = dataclasses.field(default_factory=_now)

    def __post_init__(self) -> None:
        for name in ("arch", "dataset", "stealguard_version", "created"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"card field {name!r} must be a non-empty string, got {_brief(getattr(self, name))}")
            if len(getattr(self, name)) > MAX_STRING:
                raise ValueError(f"card field {name!r} must have at most {MAX_STRING} characters, got {len(getattr(self, name))}")
        shape = _card_input_shape(self.input_shape)
        num_classes = _card_int("num_classes", self.num_classes, 2, MAX_CLASSES)
        classes = self.classes if self.classes is not None else [str(k) for k in range(num_classes)]
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"card field 'classes' must be a list of strings, got {_brief(classes)}")
        if len(classes) != num_classes:
            raise ValueError(f"card field 'classes' must have num_classes = {num_classes} names, got {len(classes)}")
        if not all(0 < len(c) <= MAX_STRING for c in classes):
            raise ValueError(f"card field 'classes' names must have 1 to {MAX_STRING} characters")
        channels = shape[0]
        mean = _floats("mean", self.mean if self.mean is not None else [0.0] * channels, channels)
        std = _floats("std", self.std if self.std is not None else [1.0] * channels, channels)
        if min(std) <= 0:
            raise ValueError(f"card field 'std' entries must be > 0, got {list(std)}")
        if self.test_accuracy is not None:
            object.__setattr__(self, "test_accuracy", check_number("card field 'test_accuracy'", self.test_accuracy, low=0.0, high=1.0))
        if not isinstance(self.train, Mapping):
            raise TypeError(f"card field 'train' must be a dict, got {type(self.train).__name__}")
        try:
            train = json.loads(json.dumps(dict(self.train), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise TypeError(f"card field 'train' must be JSON-serialisable with finite numbers: {err}") from None
        if self.seed is not None:
            _card_int("seed", self.seed, 0, 2**64 - 1)
        if self.dp is not None:
            object.__setattr__(self, "dp", _check_dp(self.dp))
        if self.quantization is not None:
            object.__setattr__(self, "quantization", check_quantization_record(self.quantization))
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "classes", tuple(classes))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "train", train)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON types (tuples become lists; ``dp`` and ``quantization`` left out when None)."""
        out = dataclasses.asdict(self)
        for name in ("dp", "quantization"):
            if out[name] is None:
                del out[name]
        for name in ("input_shape", "classes", "mean", "std"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Build a card from :meth:`to_dict` output (e.g. parsed ``card.json``).

        Raises:
            TypeError: ``data`` is not a mapping, or a field has the wrong type.
            ValueError: a required field is missing, an unknown field is present, or a
                field is out of range.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a model card must be a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"model card has unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        required = [name for name, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"model card is missing required field(s) {', '.join(missing)}")
        return cls(**dict(data))


def card_norm(card: ModelCard) -> str:
    """Normalisation variant of the card's architecture: ``"group"`` for DP-SGD models that had BatchNorm replaced, else ``"batch"``."""
    return card.dp["norm"] if card.dp is not None else "batch"


def _rebuild(card: ModelCard) -> Classifier:
    """The card's architecture with fresh weights; for an int8 card, its quantized graph."""
    shape = {"input_shape": card.input_shape, "num_classes": card.num_classes, "mean": card.mean, "std": card.std}
    if card.quantization is not None:
        return build_quantized(card.arch, **shape, norm=card_norm(card), engine=card.quantization["engine"])
    return create(card.arch, **shape, norm=card_norm(card))


def _arch_label(card: ModelCard) -> str:
    return f"{card.arch} (int8)" if card.quantization is not None else card.arch


def _tensors(model: Classifier) -> dict[str, Tensor]:
    """Every ``state_dict`` entry as a contiguous CPU tensor; an int8 model's flattened by ``to_plain_tensors``."""
    if isinstance(model, QuantizedClassifier):
        return to_plain_tensors(model.state_dict())
    return {key: value.detach().to("cpu").contiguous().clone() for key, value in model.state_dict().items()}


def save_model(model: Classifier, card: ModelCard, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` and ``card`` to ``directory`` (created if needed) and return its path.

    Files: ``model.safetensors`` (every ``state_dict`` entry, buffers included, as
    contiguous CPU tensors; for a :class:`~stealguard.models.quantization.QuantizedClassifier`
    the int8 values, scales and zero points as plain tensors) and ``card.json``. Existing
    files of those names are replaced atomically.

    Raises:
        TypeError: ``model`` is not a :class:`Classifier` or ``card`` not a :class:`ModelCard`.
        ValueError: the card disagrees with the model (input shape, classes, mean/std, a
            ``card.arch`` whose weights do not match the model's, or an int8 model without
            the card's ``quantization`` record or the other way round).
    """
    if not isinstance(model, Classifier):
        raise TypeError(f"model must be a stealguard Classifier, got {type(model).__name__}")
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard, got {type(card).__name__}")
    if tuple(model.input_shape) != card.input_shape or model.num_classes != card.num_classes:
        raise ValueError(
            f"card says input_shape {card.input_shape} and num_classes {card.num_classes}, "
            f"the model has {tuple(model.input_shape)} and {model.num_classes}"
        )
    for name in ("mean", "std"):
        held = getattr(model, name).detach().cpu().flatten().tolist()
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(held, getattr(card, name))):
            raise ValueError(f"card {name} {list(getattr(card, name))} differs from the model's {held}")
    quantized = isinstance(model, QuantizedClassifier)
    if quantized and card.quantization is None:
        raise ValueError("the model is int8-quantized but the card has no 'quantization' record (see quantize_victim)")
    if not quantized and card.quantization is not None:
        raise ValueError("the card has a 'quantization' record but the model is a float model, not int8-quantized")
    if quantized and model.engine != card.quantization["engine"]:
        raise ValueError(f"the model was quantized for engine {model.engine!r}, the card says {card.quantization['engine']!r}")
    state = _tensors(model)
    check_specs(specs(state), specs(_tensors(_rebuild(card))), arch=_arch_label(card), source="the model")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    weights_tmp = path / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(weights_tmp), metadata={"arch": card.arch, "stealguard_version": __version__})
    os.replace(weights_tmp, path / WEIGHTS_FILE)
    card_tmp = path / f".{CARD_FILE}.tmp"
    card_tmp.write_text(json.dumps(card.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(card_tmp, path / CARD_FILE)
    return path


def _expect_file(path: Path, what: str) -> None:
    if path.is_file():
        return
    hint = ""
    if path.parent.is_dir():
        others = sorted(p.name for p in path.parent.iterdir() if p.is_file() and not p.name.startswith("."))
        if others:
            hint = f" (the directory holds {', '.join(others[:10])}; stealguard loads only safetensors weights, never pickles)"
    raise FileNotFoundError(f"{what} not found: expected {path}{hint}")


_JSON_SPECIAL = re.compile(r'[\[\]{}"\\]')


def _nesting_over(text: str, limit: int) -> bool:
    """Whether JSON arrays and objects in ``text`` nest deeper than ``limit`` (brackets inside strings ignored).

    One pass over the structural characters, without parsing, so a deep document is refused
    before ``json.loads`` would recurse into it.
    """
    depth = 0
    in_string = False
    escaped_at = -1
    for match in _JSON_SPECIAL.finditer(text):
        char, position = match.group(), match.start()
        if position == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_card_json(path: Path) -> Any:
    """Parse ``path`` as UTF-8 JSON after checking its size and nesting.

    Raises:
        ValueError: unreadable, over :data:`MAX_CARD_BYTES` or :data:`MAX_CARD_DEPTH`, not UTF-8, not
            JSON, or holding ``NaN`` / ``Infinity`` or an integer of more than 4300 digits
            (the message names ``path``).
    """
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise ValueError(f"model card {path} has {size} bytes, over the limit of {MAX_CARD_BYTES}")
        with path.open("rb") as file:
            raw = file.read(MAX_CARD_BYTES + 1)
    except OSError as err:
        raise ValueError(f"model card {path} cannot be read: {err.strerror or err}") from None
    if len(raw) > MAX_CARD_BYTES:
        raise ValueError(f"model card {path} is over the limit of {MAX_CARD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"model card {path} is not valid JSON: not UTF-8 ({err.reason} at byte {err.start})") from None
    if _nesting_over(text, MAX_CARD_DEPTH):
        raise ValueError(f"model card {path} is not valid JSON for a card: nested deeper than {MAX_CARD_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as err:
        raise ValueError(f"model card {path} is not valid JSON: {' '.join(str(err).split())[:200]}") from None


def load_card(directory: str | os.PathLike[str]) -> ModelCard:
    """Read and validate the ``card.json`` of a model directory (the weights are not touched).

    Raises:
        FileNotFoundError: ``card.json`` missing (the message names the expected path).
        ValueError: the card is over :data:`MAX_CARD_BYTES` or nested deeper than
            :data:`MAX_CARD_DEPTH`, is not valid UTF-8 JSON, or fails validation (the
            message names the file and the field).
    """
    card_path = Path(directory) / CARD_FILE
    _expect_file(card_path, "model card")
    data = read_card_json(card_path)
    try:
        return ModelCard.from_dict(data)
    except (TypeError, ValueError) as err:
        message = " ".join(str(err).split())
        raise ValueError(f"invalid model card {card_path}: {message[:400]}{'...' if len(message) > 400 else ''}") from None


def model_bytes(card: ModelCard) -> int:
    """Bytes of every ``state_dict`` tensor of the card's float architecture, computed on the ``meta`` device.

    Nothing is allocated, so a card declaring a huge model is refused before it is built. An
    int8 model is no larger than its float architecture.

    Raises:
        ValueError: unknown architecture, or one that cannot take the card's input shape.
    """
    builder = registry._REGISTRY.get(card.arch)  # the builder alone: Classifier checks mean/std values, which meta tensors lack
    if builder is None:
        raise ValueError(f"unknown architecture {card.arch!r}; available: {', '.join(registry.names())}")
    with torch.device("meta"):
        net = builder(card.input_shape, card.num_classes)
    channels = card.input_shape[0]
    return sum(value.numel() * value.element_size() for value in net.state_dict().values()) + 8 * channels


def load_model(
    directory: str | os.PathLike[str], *, device: DeviceLike = "cpu", max_bytes: int = DEFAULT_MAX_MODEL_BYTES
) -> tuple[Classifier, ModelCard]:
    """Rebuild a classifier saved by :func:`save_model`; return it in eval mode with its card.

    The card is read and checked first (:func:`load_card`); the architecture's size is
    computed without allocating (:func:`model_bytes`) and refused over ``max_bytes``; the
    architecture is built from the card and the weights are read with
    :func:`stealguard.models.weights.read_weights`, which checks every tensor's name, dtype
    and shape against the built model before loading it and refuses NaN or infinite values;
    no pickle is ever loaded. An int8 card (field ``quantization``) gives a
    :class:`~stealguard.models.quantization.QuantizedClassifier`, which runs on the CPU
    whatever ``device`` says (it warns when ``device`` is not the CPU).

    Args:
        directory: folder holding ``model.safetensors`` and ``card.json``.
        device: where the model goes (default ``"cpu"``).
        max_bytes: largest model accepted, in bytes of ``state_dict`` tensors, >= 1
            (default 512 MiB).

    Raises:
        FileNotFoundError: ``card.json`` or ``model.safetensors`` missing (the message
            names the expected path).
        ValueError: the card is not valid JSON or fails validation; the model would be
            larger than ``max_bytes``; the weights file is not a safetensors file; or the
            weights do not match the architecture (the message names missing/unexpected
            keys, mismatched shapes or dtypes, a tensor with NaN or infinite values; for an
            int8 model also quantization parameters).
    """
    check_int("max_bytes", max_bytes, low=1)
    path = Path(directory)
    target_device = resolve_device(device)
    weights_path = path / WEIGHTS_FILE
    _expect_file(path / CARD_FILE, "model card")
    _expect_file(weights_path, "model weights")
    card = load_card(path)
    try:
        size = model_bytes(card)
    except ValueError as err:
        raise ValueError(f"model card {path / CARD_FILE}: {err}") from None
    if size > max_bytes:
        raise ValueError(
            f"model card {path / CARD_FILE} describes a {card.arch} of {size} bytes for input {card.input_shape} and "
            f"{card.num_classes} classes, over the limit of {max_bytes} bytes"
        )
    model = _rebuild(card)
    quantized = isinstance(model, QuantizedClassifier)
    reference = _tensors(model) if quantized else model.state_dict()
    state = read_weights(weights_path, specs(reference), arch=_arch_label(card), max_data_bytes=max_bytes)
    for name in ("mean", "std"):
        stored = state[name].flatten().tolist()
        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(stored, getattr(card, name))):
            raise ValueError(f"{weights_path} holds {name} {stored} but the card says {list(getattr(card, name))}")
    if quantized:
        state = from_plain_tensors(state, model.state_dict(), source=str(weights_path))
    model.load_state_dict(state, strict=True)
    model.to(target_device)
    model.eval()
    return model, card
