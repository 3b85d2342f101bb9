"""Transfer sets as data: what an attack sent to a black box and what came back.

:class:`RecordingBlackBox` wraps any black box (in-process :class:`~stealguard.blackbox.BlackBox`
or :class:`~stealguard.serve.remote.RemoteBlackBox`) and keeps every query it answers, so every
attack is recorded without knowing it. :func:`save_transfer` writes a :class:`TransferSet` and
:func:`load_transfer` reads one back without pickle; :func:`train_from_transfer` trains a
replica on a prefix of one with an attack's own final-training settings, sending no query.

File format (one ``.safetensors`` file, format ``stealguard.transfer`` version 1):

* tensor ``inputs``: float32 ``(N, *input_shape)``, every query as sent, in query order;
* tensor ``answers``: float32 ``(N, K)``, the black box's answers as returned, **raw**: before
  the attack's ``repeat`` averaging and before any ``invert``. A query sent ``repeat`` times is
  ``repeat`` rows (so the defended answers of every send are kept);
* tensor ``calls``: int64 ``(C,)``, the number of queries of each black-box call, in order
  (they sum to N); the oracle sends an input's ``repeat`` copies in one call as ``repeat``
  stacked copies of the call's distinct inputs, which is how :meth:`TransferSet.distinct`
  averages them again exactly as the attack did;
* safetensors metadata key ``stealguard_transfer``: a JSON object with ``format``,
  ``version``, ``num_queries`` (N), ``input_shape``, ``num_classes`` (K), ``num_calls`` (C), and
  what is known of the run: ``attack``, ``attack_params``, ``seed``, ``budget``,
  ``queries_used`` (the black box's counter after the attack), ``defense`` (its spec, or None
  for a remote service), ``defense_seed``, ``target`` (a service's URL), ``victim`` (the victim's
  card summary, or the service's public model card), ``queryset`` (its spec) and
  ``stealguard_version``.

On loading, the file is treated as hostile: the header length is bounded, the header is read
and every tensor's dtype, shape and byte range is checked against the JSON and the file's size
before anything is allocated, and the values are checked (finite, call sizes summing to N); a
bad file is a :class:`ValueError` naming it.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stealguard._checks import check_int

FORMAT = "stealguard.transfer"
VERSION = 1
METADATA_KEY = "stealguard_transfer"
MAX_HEADER_BYTES = 8 * 1024 * 1024
"""Largest safetensors header (JSON) accepted; a transfer set's header is a few kilobytes."""
MAX_DIMS = 4
TENSORS = {"inputs": ("F32", 4), "answers": ("F32", 4), "calls": ("I64", 8)}


@dataclass(frozen=True)
class TransferSet:
    """A recorded query run: raw ``inputs`` ``(N, *input_shape)``, raw ``answers`` ``(N, K)``,
    the sizes of the black-box ``calls`` ``(C,)`` and JSON ``meta`` (see the module docstring)."""

    inputs: Tensor
    answers: Tensor
    calls: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_tensors(self.inputs, self.answers, self.calls, where="transfer set")

    @property
    def num_queries(self) -> int:
        """Queries recorded (rows, repeats included)."""
        return int(self.inputs.shape[0])

    def distinct(self, repeat: int = 1) -> tuple[Tensor, Tensor]:
        """The distinct inputs ``(N / repeat, ...)`` and their mean answers ``(N / repeat, K)``, in query order.

        Each call of ``s`` queries holds ``repeat`` stacked copies of ``s / repeat`` inputs (the
        :class:`~stealguard.attacks.oracle.Oracle`'s layout); their answers are averaged with the
        oracle's own operation, so the result is bitwise what the attack trained on.

        Raises:
            ValueError: ``repeat`` < 1, or a call whose size is not a multiple of ``repeat``.
        """
        repeat = check_int("repeat", repeat, low=1)
        if repeat == 1:
            return self.inputs, self.answers
        sizes = self.calls.tolist()
        if any(size % repeat for size in sizes):
            raise ValueError(f"repeat={repeat}: a call of this transfer set holds a number of queries that is not a multiple of it")
        inputs, answers = [], []
        for rows, replies in zip(self.inputs.split(sizes), self.answers.split(sizes)):
            count = rows.shape[0] // repeat
            inputs.append(rows[:count])
            answers.append(replies.view(repeat, count, -1).mean(dim=0))
        return torch.cat(inputs), torch.cat(answers)

    def prefix(self, budget: int, repeat: int = 1) -> tuple[Tensor, Tensor, int]:
        """The first ``budget // repeat`` distinct inputs in query order, their mean answers, and the queries they cost.

        What an attacker with ``budget`` queries would have had for a non-adaptive attack
        (knockoff's random policy); for round-based attacks it is the first ``budget`` queries.

        Raises:
            ValueError: ``budget`` < ``repeat`` or more than the set holds.
        """
        budget = check_int("budget", budget, low=1)
        if budget > self.num_queries:
            raise ValueError(f"budget {budget} exceeds the {self.num_queries} queries this transfer set holds")
        count = budget // repeat
        if count < 1:
            raise ValueError(f"budget {budget} is smaller than repeat={repeat}: not one input fits")
        inputs, answers = self.distinct(repeat)
        return inputs[:count], answers[:count], count * repeat


class RecordingBlackBox:
    """A black box that keeps every query it answers; otherwise ``blackbox`` itself.

    ``query`` forwards to ``blackbox`` and keeps a CPU float32 copy of the inputs and of the
    answers as returned; every other attribute (``input_shape``, ``num_classes``,
    ``queries_used``, ``remaining``, ``model``, ``card``, ``distortions``...) is the wrapped box's.
    """

    def __init__(self, blackbox: Any) -> None:
        for name in ("query", "input_shape", "num_classes"):
            if not hasattr(blackbox, name):
                raise TypeError(f"blackbox must have {name!r} (a BlackBox or RemoteBlackBox), got {type(blackbox).__name__}")
        self.blackbox = blackbox
        self._inputs: list[Tensor] = []
        self._answers: list[Tensor] = []
        self._calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        if name == "blackbox":
            raise AttributeError(name)
        return getattr(self.blackbox, name)

    def query(self, x: Tensor) -> Tensor:
        """The wrapped box's answers to ``x`` (recorded when the call succeeds)."""
        answers = self.blackbox.query(x)
        if int(x.shape[0]):
            self._inputs.append(x.detach().to("cpu", torch.float32).clone())
            self._answers.append(answers.detach().to("cpu", torch.float32).clone())
            self._calls.append(int(x.shape[0]))
        return answers

    @property
    def recorded(self) -> int:
        """Queries recorded so far."""
        return sum(self._calls)

    def transfer_set(self, meta: dict[str, Any] | None = None) -> TransferSet:
        """What was recorded, with ``meta`` (JSON-serialisable) plus the shape fields.

        Raises:
            ValueError: nothing was recorded.
        """
        if not self._calls:
            raise ValueError("no query was recorded: the attack sent nothing through this black box")
        return TransferSet(
            torch.cat(self._inputs), torch.cat(self._answers), torch.tensor(self._calls, dtype=torch.int64), dict(meta or {})
        )


def save_transfer(transfer: TransferSet, path: Path | str) -> Path:
    """Write ``transfer`` to ``path`` (one safetensors file, written to a temporary file and renamed into place).

    Raises:
        TypeError: ``meta`` is not JSON-serialisable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    meta = {
        **transfer.meta,
        "format": FORMAT,
        "version": VERSION,
        "num_queries": transfer.num_queries,
        "input_shape": list(transfer.inputs.shape[1:]),
        "num_classes": int(transfer.answers.shape[1]),
        "num_calls": int(transfer.calls.shape[0]),
    }
    try:
        text = json.dumps(meta, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"transfer set metadata must be JSON-serialisable: {err}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    try:
        tensors = {"inputs": transfer.inputs.contiguous(), "answers": transfer.answers.contiguous(), "calls": transfer.calls.contiguous()}
        save_file(tensors, staging, metadata={METADATA_KEY: text})
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)
    return path


def load_transfer(path: Path | str) -> TransferSet:
    """Read a transfer set written by :func:`save_transfer`, checking everything before allocating.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a safetensors file, not a transfer set of this version, a header that
            disagrees with its JSON or with the file's size, or bad values (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transfer set {str(path)!r} does not exist")
    size = path.stat().st_size
    header, meta = _read_header(path, size)
    shapes = _expected_shapes(path, meta)
    _check_layout(path, header, shapes, data_bytes=size - 8 - _header_length(path))
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as opened:
            tensors = {name: opened.get_tensor(name) for name in TENSORS}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"transfer set {str(path)!r}: safetensors could not read it: {err}") from None
    _check_tensors(tensors["inputs"], tensors["answers"], tensors["calls"], where=f"transfer set {str(path)!r}")
    return TransferSet(tensors["inputs"], tensors["answers"], tensors["calls"], meta)


def _header_length(path: Path) -> int:
    with open(path, "rb") as handle:
        return int(struct.unpack("<Q", handle.read(8))[0])


def _read_header(path: Path, size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    where = f"transfer set {str(path)!r}"
    if size < 8:
        raise ValueError(f"{where} is not a safetensors file ({size} bytes, shorter than its 8-byte header length)")
    length = _header_length(path)
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise ValueError(
            f"{where} is not a safetensors file: it declares a {length}-byte header "
            f"(at most {MAX_HEADER_BYTES}, and the file holds {size} bytes)"
        )
    with open(path, "rb") as handle:
        handle.seek(8)
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{where} is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where} is not a safetensors file: its header is not a JSON object")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not isinstance(metadata.get(METADATA_KEY), str):
        raise ValueError(f"{where} is a safetensors file but not a stealguard transfer set (no {METADATA_KEY!r} metadata)")
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError:
        raise ValueError(f"{where}: its {METADATA_KEY!r} metadata is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{where}: its metadata does not name the format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise ValueError(f"{where}: format version {meta.get('version')!r} is not supported (this stealguard reads {VERSION})")
    return header, meta


def _count(value: Any, name: str, where: str, *, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{where}: metadata {name} must be an integer >= {low}, got {value!r}")
    return value


def _expected_shapes(path: Path, meta: dict[str, Any]) -> dict[str, list[int]]:
    where = f"transfer set {str(path)!r}"
    n = _count(meta.get("num_queries"), "num_queries", where, low=1)
    k = _count(meta.get("num_classes"), "num_classes", where, low=2)
    calls = _count(meta.get("num_calls"), "num_calls", where, low=1)
    shape = meta.get("input_shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_DIMS:
        raise ValueError(f"{where}: metadata input_shape must be a list of 1 to {MAX_DIMS} sizes, got {shape!r}")
    dims = [_count(d, "input_shape", where, low=1) for d in shape]
    if calls > n:
        raise ValueError(f"{where}: metadata num_calls={calls} exceeds num_queries={n}")
    return {"inputs": [n, *dims], "answers": [n, k], "calls": [calls]}


def _check_layout(path: Path, header: dict[str, Any], shapes: dict[str, list[int]], *, data_bytes: int) -> None:
    """Every tensor of the header has the dtype and shape the JSON says, and the byte ranges tile the data exactly."""
    where = f"transfer set {str(path)!r}"
    names = sorted(name for name in header if name != "__metadata__")
    if names != sorted(TENSORS):
        raise ValueError(f"{where}: holds tensors {names}, expected {sorted(TENSORS)}")
    spans = []
    for name, (dtype, itemsize) in TENSORS.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") != dtype:
            got = entry.get("dtype") if isinstance(entry, dict) else entry
            raise ValueError(f"{where}: tensor {name!r} must be {dtype}, got {got!r}")
        if entry.get("shape") != shapes[name]:
            raise ValueError(f"{where}: tensor {name!r} has shape {entry.get('shape')!r}, but its metadata says {shapes[name]}")
        offsets = entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"{where}: tensor {name!r} has malformed data_offsets {offsets!r}")
        begin, end = offsets
        if end - begin != math.prod(shapes[name]) * itemsize:
            raise ValueError(f"{where}: tensor {name!r} spans {end - begin} bytes, its shape needs {math.prod(shapes[name]) * itemsize}")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"{where}: tensor data overlaps or leaves a gap at byte {position}")
        position = end
    if position != data_bytes:
        raise ValueError(f"{where}: the header declares {position} data bytes but the file holds {data_bytes} (truncated or padded)")


def _check_tensors(inputs: Tensor, answers: Tensor, calls: Tensor, *, where: str) -> None:
    if not all(isinstance(t, Tensor) for t in (inputs, answers, calls)):
        raise TypeError(f"{where}: inputs, answers and calls must be tensors")
    if inputs.dtype != torch.float32 or answers.dtype != torch.float32 or calls.dtype != torch.int64:
        raise ValueError(f"{where}: inputs and answers must be float32 and calls int64, got {inputs.dtype}, {answers.dtype}, {calls.dtype}")
    if inputs.dim() < 2 or answers.dim() != 2 or calls.dim() != 1 or inputs.shape[0] != answers.shape[0] or inputs.shape[0] < 1:
        raise ValueError(f"{where}: shapes {tuple(inputs.shape)}, {tuple(answers.shape)}, {tuple(calls.shape)} do not fit (N, ...), (N, K), (C,)")
    if calls.numel() == 0 or bool((calls < 1).any()) or int(calls.sum()) != inputs.shape[0]:
        raise ValueError(f"{where}: call sizes must be >= 1 and sum to the {inputs.shape[0]} queries")
    if not bool(torch.isfinite(inputs).all()) or not bool(torch.isfinite(answers).all()):
        raise ValueError(f"{where}: inputs and answers must be finite; they contain NaN or Inf")


class _Shape:
    """What a replica is built for: ``input_shape`` and ``num_classes`` (a black box's shape, offline)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes


def trainer_repeat(attack: Any) -> int:
    """The ``repeat`` under which ``attack`` averages answers (1 for attacks without it)."""
    return int(getattr(attack, "repeat", 1))


def train_from_transfer(attack: Any, transfer: TransferSet, *, budget: int | None = None) -> tuple[nn.Module, int]:
    """A replica trained by ``attack``'s final training on the first ``budget`` queries of ``transfer``; no query is sent.

    The replica is built as the attack builds its final one (same architecture source, same
    seed, normalised with the mean/std of the same reference images: the query set for
    knockoff, the seed images, i.e. the first distinct inputs, for the Jacobian attacks) and
    trained with :meth:`~stealguard.attacks.replica.ReplicaAttack.train` on the prefix's
    distinct inputs and mean answers, inverted with the attack's ``invert`` when it has one.
    With the whole set, a non-adaptive attack's online replica is reproduced exactly on the CPU.

    Args:
        attack: a :class:`~stealguard.attacks.replica.ReplicaAttack` other than the ART
            extraction attacks (which train inside ART).
        budget: queries of the prefix, >= 1 (default: all).

    Returns:
        ``(replica, queries)``: the replica in eval mode and the queries its prefix cost.

    Raises:
        TypeError: ``attack`` cannot train offline. ValueError: ``budget`` out of range.
    """
    from stealguard.attacks.art_extraction import ArtExtraction
    from stealguard.attacks.inversion import inverter_from_spec
    from stealguard.attacks.jacobian import JacobianAttack
    from stealguard.attacks.replica import ReplicaAttack

    if not isinstance(attack, ReplicaAttack) or isinstance(attack, ArtExtraction):
        name = getattr(attack, "name", type(attack).__name__)
        raise TypeError(
            f"attack {name!r} cannot train a replica offline (it trains online or inside ART); "
            "train the transfer set with a replica attack such as knockoff"
        )
    budget = transfer.num_queries if budget is None else budget
    inputs, answers, queries = transfer.prefix(budget, trainer_repeat(attack))
    if tuple(inputs.shape[1:]) != tuple(attack.images.shape[1:]):
        raise ValueError(
            f"transfer set inputs have shape {tuple(inputs.shape[1:])} but the attack's query set has {tuple(attack.images.shape[1:])}"
        )
    if attack.invert is not None:
        answers = inverter_from_spec(attack.invert)(answers)
    reference = attack.images
    if isinstance(attack, JacobianAttack):
        reference = inputs[: min(attack.seed_size, inputs.shape[0], attack.images.shape[0])]
    shape = _Shape(tuple(inputs.shape[1:]), int(answers.shape[1]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(attack.seed)
        replica = attack.make_replica(shape, reference, seed=attack.seed)  # type: ignore[arg-type]
        replica = attack.train(replica, inputs, answers, probe=False)
    return replica, queries
