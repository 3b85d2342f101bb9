"""int8 victims: post-training static quantization with PyTorch's FX graph mode.

:func:`quantize` turns a trained float :class:`Classifier` into a :class:`QuantizedClassifier`:
the network (not the normalisation, which stays float) is traced with
``torch.ao.quantization.quantize_fx.prepare_fx`` under the default x86 mapping
(``get_default_qconfig_mapping("x86")``: weights qint8 per-channel symmetric, activations
quint8 per-tensor affine from histogram observers, BatchNorm folded into the convolutions),
calibrated on a few hundred training images and converted with ``convert_fx``. Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018 (arXiv:1712.05877), Section 2: ``r = S (q - Z)``.

Quantized kernels (FBGEMM / oneDNN) run on the CPU only: a :class:`QuantizedClassifier`
stays on the CPU when asked to move (``.to("cuda")`` warns once and does nothing), takes
inputs on any device and returns its logits on the input's device.

Saving (:func:`stealguard.models.save_model`) writes the int8 values and quantization
parameters as plain tensors (:mod:`stealguard.models.quantized_state`) plus a card whose
``quantization`` record (:func:`check_quantization_record`) says how the model was made;
loading rebuilds the quantized graph with :func:`build_quantized` and sets the stored
tensors, so nothing is unpickled.

torch 2.13 marks ``torch.ao.quantization`` deprecated in favour of torchao's PT2E flow; the
notices are silenced here (:func:`_quiet_deprecations`) and the move is open work (README,
"int8 victims").
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from torch.fx.proxy import TraceError

from stealguard._checks import check_choice, check_int, check_number
from stealguard._version import __version__
from stealguard.models.base import Classifier
from stealguard.models.registry import create
from stealguard.models.training import accuracy_on

if TYPE_CHECKING:
    from stealguard.models.io import ModelCard

ENGINES = ("x86",)
"""Quantized engines a model can be made for: ``x86`` (FBGEMM + oneDNN, x86-64 CPUs)."""

SCHEMES = ("ptq_static_fx",)
"""``ptq_static_fx``: post-training static quantization by ``prepare_fx`` / ``convert_fx`` with
``get_default_qconfig_mapping(engine)`` (weights qint8 per-channel symmetric, activations
quint8 per-tensor affine, histogram-calibrated)."""

DEFAULT_CALIBRATION = 512
CALIBRATION_BATCH = 128
QUANTIZATION_FIELDS = (
    "engine",
    "scheme",
    "calibration_size",
    "calibration_seed",
    "float_test_accuracy",
    "int8_test_accuracy",
    "torch_version",
)
_REBUILD_SEED = 0
_REBUILD_IMAGES = 2


def check_quantization_record(record: Any) -> dict[str, Any]:
    """Validate a card's ``quantization`` record; return it as a plain dict.

    Fields: ``engine`` (one of :data:`ENGINES`), ``scheme`` (one of :data:`SCHEMES`),
    ``calibration_size`` (calibration images, >= 1), ``calibration_seed`` (>= 0),
    ``float_test_accuracy`` and ``int8_test_accuracy`` (in [0, 1], or None when not
    measured), ``torch_version`` (the PyTorch that quantized the model; the graph is
    rebuilt by the running one).

    Raises:
        TypeError / ValueError: not a dict, a field missing or unknown, or a field of the
            wrong type or out of range (the message names ``quantization.<field>``).
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"card field 'quantization' must be a dict or null, got {type(record).__name__}")
    missing = [key for key in QUANTIZATION_FIELDS if key not in record]
    unknown = sorted(set(record) - set(QUANTIZATION_FIELDS))
    if missing or unknown:
        raise ValueError(
            f"card field 'quantization' must hold {', '.join(QUANTIZATION_FIELDS)}; missing {missing}, unknown {unknown}"
        )

    def accuracy(name: str) -> float | None:
        value = record[name]
        return None if value is None else check_number(f"card field 'quantization.{name}'", value, low=0.0, high=1.0)

    out = {
        "engine": check_choice("card field 'quantization.engine'", record["engine"], ENGINES),
        "scheme": check_choice("card field 'quantization.scheme'", record["scheme"], SCHEMES),
        "calibration_size": check_int("card field 'quantization.calibration_size'", record["calibration_size"], low=1),
        "calibration_seed": check_int("card field 'quantization.calibration_seed'", record["calibration_seed"], low=0),
        "float_test_accuracy": accuracy("float_test_accuracy"),
        "int8_test_accuracy": accuracy("int8_test_accuracy"),
        "torch_version": record["torch_version"],
    }
    if not isinstance(out["torch_version"], str) or not out["torch_version"]:
        raise TypeError(f"card field 'quantization.torch_version' must be a non-empty string, got {record['torch_version']!r}")
    return out


@contextlib.contextmanager
def _engine(name: str) -> Iterator[None]:
    """Run the block with ``torch.backends.quantized.engine = name``, then restore it."""
    if name not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"int8 models need PyTorch's quantized engine {name!r} (x86-64 CPUs); "
            f"this PyTorch build supports {', '.join(torch.backends.quantized.supported_engines)}"
        )
    previous = torch.backends.quantized.engine
    if previous != name:
        torch.backends.quantized.engine = name
    try:
        yield
    finally:
        if previous != name:
            torch.backends.quantized.engine = previous


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Silence PyTorch's notices that ``torch.ao.quantization`` and quantized dtypes are deprecated (for torchao)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Please use quant_min and quant_max", category=UserWarning)
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning)
        yield


class QuantizedClassifier(Classifier):
    """A :class:`Classifier` whose network is an int8 ``torch.fx.GraphModule``; CPU only.

    Built by :func:`quantize` (calibrated) or :func:`build_quantized` (structure for
    loading). Normalisation by ``mean`` / ``std`` stays in float32; the network quantizes
    its input, runs int8 kernels and dequantizes the logits.

    Args:
        net: the converted network (``convert_fx`` output).
        input_shape, num_classes, mean, std: as for :class:`Classifier`.
        engine: the quantized engine the network was made for (one of :data:`ENGINES`).

    Shape:
        input ``(N, C, H, W)`` float in [0, 1] on any device; output float32 logits
        ``(N, K)`` on the input's device (computed on the CPU).

    Note:
        ``.to(device)``, ``.cuda()``, ``.half()`` and the like leave the model as it is
        (int8 kernels run on the CPU only); a move to another device warns once.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        engine: str = "x86",
    ) -> None:
        super().__init__(net, input_shape=input_shape, num_classes=num_classes, mean=mean, std=std)
        self.engine = check_choice("engine", engine, ENGINES)
        self._warned_device = False

    def forward(self, x: Tensor) -> Tensor:
        with _engine(self.engine):
            logits = self.net((x.to("cpu", torch.float32) - self.mean) / self.std)
        return logits.to(x.device)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> QuantizedClassifier:
        target = fn(torch.zeros(0)).device
        if target.type != "cpu" and not self._warned_device:
            self._warned_device = True
            warnings.warn(
                f"the int8 model stays on the CPU (quantized kernels are CPU-only) although {target} was asked for; "
                "it takes inputs on any device and returns logits on the input's device",
                UserWarning,
                stacklevel=3,
            )
        return self


def _check_images(images: Any, input_shape: tuple[int, ...]) -> Tensor:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"calibration images must be a floating-point tensor in [0, 1], got {kind}")
    if images.dim() != len(input_shape) + 1 or tuple(images.shape[1:]) != tuple(input_shape) or images.shape[0] < 1:
        raise ValueError(
            f"calibration images must have shape (N >= 1, {', '.join(map(str, input_shape))}), got {tuple(images.shape)}"
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError("calibration images must be finite; they contain NaN or Inf")
    return images


def quantize(
    model: Classifier, images: Tensor, *, engine: str = "x86", batch_size: int = CALIBRATION_BATCH
) -> QuantizedClassifier:
    """Post-training static int8 quantization of ``model``, calibrated on ``images``.

    ``model`` itself is left unchanged (its network is copied to the CPU in eval mode), and
    so is the global torch RNG (``convert_fx`` draws from it to initialise modules it then
    overwrites; the result does not depend on it).

    Args:
        model: a trained float :class:`Classifier`.
        images: calibration images, float in [0, 1], shape ``(N, *model.input_shape)``,
            N >= 1 (a few hundred training images suffice).
        engine: quantized engine, one of :data:`ENGINES` (default ``"x86"``).
        batch_size: images per calibration forward pass, >= 1 (default 128).

    Returns:
        A :class:`QuantizedClassifier` in eval mode, on the CPU.

    Raises:
        TypeError: ``model`` not a Classifier, ``images`` not a float tensor.
        ValueError: ``model`` is already quantized; ``images`` of the wrong shape or not
            finite; ``engine`` unknown or not in this PyTorch build; the network cannot be
            traced or quantized by ``torch.fx`` (the message says why).

    Example:
        >>> import torch
        >>> from stealguard.models import create
        >>> model = create("mlp", input_shape=(1, 8, 8), num_classes=3).eval()
        >>> int8 = quantize(model, torch.rand(16, 1, 8, 8))
        >>> int8(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 3])
    """
    if isinstance(model, QuantizedClassifier):
        raise ValueError("model is already int8-quantized; quantize its float original")
    if not isinstance(model, Classifier):
        raise TypeError(f"model must be a stealguard Classifier, got {type(model).__name__}")
    images = _check_images(images, model.input_shape)
    check_choice("engine", engine, ENGINES)
    check_int("batch_size", batch_size, low=1)
    mean, std = model.mean.detach().to("cpu"), model.std.detach().to("cpu")
    net = copy.deepcopy(model.net).to("cpu").eval()

    def normalised(x: Tensor) -> Tensor:
        return (x.to("cpu", torch.float32) - mean) / std

    with _engine(engine), _quiet_deprecations(), torch.no_grad(), torch.random.fork_rng(devices=[]):
        try:
            prepared = prepare_fx(net, get_default_qconfig_mapping(engine), example_inputs=(normalised(images[:1]),))
            for chunk in images.split(batch_size):
                prepared(normalised(chunk))
            converted = convert_fx(prepared)
        except (TraceError, TypeError, RuntimeError, NotImplementedError, AttributeError) as err:
            raise ValueError(f"the network ({type(model.net).__name__}) cannot be int8-quantized by torch.fx: {err}") from err
    quantized = QuantizedClassifier(
        converted,
        input_shape=model.input_shape,
        num_classes=model.num_classes,
        mean=mean.flatten().tolist(),
        std=std.flatten().tolist(),
        engine=engine,
    )
    return quantized.eval()


def build_quantized(
    arch: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    norm: str = "batch",
    engine: str = "x86",
) -> QuantizedClassifier:
    """The int8 graph of ``arch`` with placeholder weights: the structure a saved int8 model is loaded into.

    Deterministic and independent of the global RNG: the float net is initialised with seed
    0 inside a forked RNG and calibrated on two seeded random images; loading then replaces
    every weight and quantization parameter.

    Args:
        arch, input_shape, num_classes, mean, std, norm: as for :func:`stealguard.models.create`.
        engine: as for :func:`quantize`.

    Raises:
        ValueError: as for :func:`stealguard.models.create` and :func:`quantize`.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_REBUILD_SEED)
        model = create(arch, input_shape=input_shape, num_classes=num_classes, mean=mean, std=std, norm=norm).eval()
    generator = torch.Generator().manual_seed(_REBUILD_SEED)
    images = torch.rand(_REBUILD_IMAGES, *model.input_shape, generator=generator)
    try:
        return quantize(model, images, engine=engine)
    except ValueError as err:
        raise ValueError(f"architecture {arch!r}: {err}") from err


def calibration_subset(images: Tensor, size: int, *, seed: int) -> Tensor:
    """``min(size, N)`` of ``images`` ``(N, ...)`` drawn without replacement with ``seed``, in drawn order.

    Raises:
        ValueError / TypeError: ``size`` < 1, ``seed`` < 0, ``images`` empty.
    """
    check_int("calibration", size, low=1)
    check_int("seed", seed, low=0)
    if not isinstance(images, Tensor) or images.dim() < 1 or images.shape[0] == 0:
        raise ValueError("calibration needs at least one training image")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(images.shape[0], generator=generator)[:size]
    return images[index]


def quantize_victim(
    model: Classifier,
    card: ModelCard,
    *,
    train_images: Tensor,
    test_images: Tensor | None = None,
    test_labels: Tensor | None = None,
    calibration: int = DEFAULT_CALIBRATION,
    seed: int = 0,
    engine: str = "x86",
) -> tuple[QuantizedClassifier, ModelCard]:
    """Quantize a saved victim and write the int8 card: calibrate, measure, record.

    Calibrates on ``calibration`` training images chosen with ``seed``
    (:func:`calibration_subset`), measures the float and int8 top-1 accuracy on the test
    set (on the CPU) and returns the int8 model with a copy of ``card`` whose
    ``test_accuracy`` is the int8 accuracy and whose ``quantization`` record holds both.

    Args:
        model, card: the float victim and its card (e.g. from :func:`stealguard.models.load_model`).
        train_images: the victim's training images ``(N, *input_shape)`` in [0, 1].
        test_images, test_labels: test set ``(M, *input_shape)`` and int64 ``(M,)``, or
            both None (the accuracies are then None).
        calibration: calibration images, >= 1 (default 512; all of them if fewer).
        seed: seed of the calibration draw, >= 0.
        engine: as for :func:`quantize`.

    Raises:
        ValueError: the victim is already int8; bad ``calibration`` / ``seed``; only one
            of ``test_images`` / ``test_labels``; the architecture cannot be quantized
            (the message names it); the rest as for :func:`quantize`.
    """
    if isinstance(model, QuantizedClassifier) or card.quantization is not None:
        raise ValueError(f"the victim ({card.arch} on {card.dataset}) is already int8-quantized; quantize its float original")
    if (test_images is None) != (test_labels is None):
        raise ValueError("give both test_images and test_labels, or neither")
    subset = calibration_subset(train_images, calibration, seed=seed)
    try:
        quantized = quantize(model, subset, engine=engine)
    except ValueError as err:
        raise ValueError(f"architecture {card.arch!r}: {err}") from err
    float_accuracy = int8_accuracy = None
    if test_images is not None and test_labels is not None:
        float_accuracy = accuracy_on(model, test_images, test_labels, device="cpu")
        int8_accuracy = accuracy_on(quantized, test_images, test_labels, device="cpu")
    record = {
        "engine": engine,
        "scheme": SCHEMES[0],
        "calibration_size": int(subset.shape[0]),
        "calibration_seed": seed,
        "float_test_accuracy": float_accuracy,
        "int8_test_accuracy": int8_accuracy,
        "torch_version": torch.__version__,
    }
    quantized_card = dataclasses.replace(
        card,
        test_accuracy=int8_accuracy,
        quantization=record,
        stealguard_version=__version__,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return quantized, quantized_card
