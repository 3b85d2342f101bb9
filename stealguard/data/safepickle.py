"""A pickle loader that rebuilds plain numeric numpy arrays and nothing else.

CIFAR's "python version" batches are pickles. ``pickle.load`` runs whatever callables a file
names (``os.system`` included), and even numpy's own array-rebuilding functions are unsafe on
hostile bytes: ``ndarray.__setstate__`` with an object dtype turns attacker bytes into
pointers, a void dtype with crafted fields reads outside the buffer, and ``_reconstruct`` of a
931 GiB shape allocates it. This loader therefore never calls numpy while unpickling:

1. **Placeholders, not numpy.** ``find_class`` resolves only the names numpy's pickles use
   (``numpy.core``/``numpy._core`` ``multiarray._reconstruct``, ``multiarray.scalar``,
   ``numeric._frombuffer``; ``numpy.ndarray``; ``numpy.dtype``; ``_codecs.encode``; empty
   ``bytes``) and maps each to an inert placeholder that records its arguments and ``BUILD``
   state. Every other global is refused.
2. **A restricted opcode table.** The stream is run by a subclass of the pure-Python
   ``pickle._Unpickler`` whose dispatch table holds only the data opcodes: no ``NEWOBJ``,
   ``INST``/``OBJ``, extension codes, persistent ids, sets or out-of-band buffers. ``REDUCE``
   calls placeholders only, ``BUILD`` reaches placeholders only, dict keys are ``str`` or
   ``bytes`` (randomised hashes: no collision stalls), memo indices are bounded (the C
   unpickler sizes its memo table by the largest index a file names), and the number of
   opcodes is capped, which caps every container's size and the objects made.
3. **Checked rebuilding.** A dtype is accepted only as one of the plain numeric names
   (``b1``, ``u1``..``u8``, ``i1``..``i8``, ``f2``/``f4``/``f8``) with a byte order; a state
   with fields, a subarray, metadata or flags is refused. An array is made by
   ``np.frombuffer(buffer, dtype).reshape(shape, order)`` only after checking the shape (at most
   :data:`MAX_DIMS` non-negative integer dimensions) and that ``itemsize * prod(shape)`` equals
   the buffer's length and is at most ``max_bytes``: strides and offsets are numpy's own.
4. **A bounded walk.** After ``STOP`` the result is walked to depth ``max_depth``, shared
   objects once each, cycles refused, and every placeholder is replaced by its array, dtype or
   scalar.

Arrays are views of the pickle's buffers (read-only when the pickle held ``bytes``). Every
refusal and every malformed stream raises :class:`UnsafePickleError`, a ``ValueError`` (and a
``pickle.UnpicklingError``) whose one-line message names the source and never echoes more than
a short excerpt of it.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stealguard._checks import check_int

DEFAULT_MAX_BYTES = 1 << 30
"""Largest pickle file, and so largest array, read by default (1 GiB)."""
DEFAULT_MAX_OPCODES = 2_000_000
"""Most opcodes run by default; a CIFAR-100 ``train`` batch (50,000 images) needs about 300,000."""
DEFAULT_MAX_DEPTH = 32
"""Deepest container nesting accepted by default; a CIFAR batch is 3 deep."""
MAX_DIMS = 8
"""Most dimensions an array may declare."""
MAX_DIM = 1 << 48
"""Largest single dimension an array may declare."""
_EXCERPT = 60
_MESSAGE = 400

_DTYPES = ("b1", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8")
_BYTE_ORDERS = ("|", "<", ">", "=")


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle this loader refuses, or one that is malformed; the message says why."""


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    max_opcodes: int
    max_depth: int


def _excerpt(value: Any) -> str:
    """A short, escaped picture of ``value`` for a message (never a huge repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, (str, bytes, bytearray, int, float, bool)) or value is None:
        text = ascii(value[: _EXCERPT + 1] if isinstance(value, (str, bytes, bytearray)) else value)
        return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."
    if isinstance(value, _Global):
        return value.name
    if isinstance(value, (tuple, list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _name(text: str) -> str:
    """A global's module or name for a message: as is when short and printable, else escaped and cut."""
    if len(text) <= _EXCERPT and text.isascii() and text.isprintable():
        return text
    return _excerpt(text)


class _Global:
    """What ``find_class`` returns: an inert token that ``REDUCE`` may call with a tuple."""

    __slots__ = ("_make", "name")

    def __init__(self, name: str, make: Callable[[_Limits, tuple[Any, ...]], Any] | None) -> None:
        self.name = name
        self._make = make

    def call(self, limits: _Limits, args: tuple[Any, ...]) -> Any:
        if self._make is None:
            raise UnsafePickleError(f"{self.name} may only be named as the array type inside _reconstruct, not called")
        return self._make(limits, args)


class _Dtype:
    """Placeholder for ``numpy.dtype(name, align, copy)``; ``BUILD`` may set its byte order once."""

    __slots__ = ("built", "dtype", "name", "used")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(name)
        self.built = False
        self.used = False

    def build(self, state: Any) -> None:
        if self.built or self.used:
            raise UnsafePickleError(f"dtype {self.name!r} receives a second state or one after use")
        if type(state) is not tuple or len(state) not in (8, 9):
            raise UnsafePickleError(f"dtype {self.name!r} state must be numpy's 8- or 9-item tuple, got {_excerpt(state)}")
        version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
        if version != (3 if len(state) == 8 else 4) or type(version) is not int:
            raise UnsafePickleError(f"dtype {self.name!r} state version {_excerpt(version)} with {len(state)} items is not numpy's")
        if subarray is not None or names is not None or fields is not None or (len(state) == 9 and state[8] is not None):
            raise UnsafePickleError(f"dtype {self.name!r} has fields, a subarray or metadata: only plain numeric dtypes are accepted")
        if type(elsize) is not int or type(alignment) is not int or type(flags) is not int:
            raise UnsafePickleError(f"dtype {self.name!r} state has non-integer size, alignment or flags")
        if flags != 0:
            raise UnsafePickleError(f"dtype {self.name!r} state has flags {_excerpt(flags)}: plain numeric dtypes have flags 0")
        if order not in _BYTE_ORDERS or type(order) is not str:
            raise UnsafePickleError(f"dtype {self.name!r} byte order must be one of {', '.join(_BYTE_ORDERS)}, got {_excerpt(order)}")
        if self.dtype.itemsize > 1:
            if order == "|":
                raise UnsafePickleError(f"dtype {self.name!r} of {self.dtype.itemsize} bytes needs a byte order, got '|'")
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True

    def take(self) -> np.dtype:
        self.used = True
        return self.dtype


class _Array:
    """Placeholder for ``_reconstruct(ndarray, (0,), b"b")``; ``BUILD`` gives it shape, dtype and data once."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def build(self, state: Any, limits: _Limits) -> None:
        if self.array is not None:
            raise UnsafePickleError("an array receives a second state")
        if type(state) is not tuple or len(state) not in (4, 5):
            raise UnsafePickleError(f"array state must be numpy's (version, shape, dtype, is_fortran, data), got {_excerpt(state)}")
        if len(state) == 5:
            if state[0] != 1 or type(state[0]) is not int:
                raise UnsafePickleError(f"array state version {_excerpt(state[0])} is not numpy's (1)")
            state = state[1:]
        shape, dtype, fortran, data = state
        if fortran not in (0, 1) or type(fortran) not in (bool, int):
            raise UnsafePickleError(f"array state is_fortran must be a bool, got {_excerpt(fortran)}")
        self.array = _make_array(data, dtype, shape, "F" if fortran else "C", limits)


class _Value:
    """A finished array or scalar held where the stream could otherwise reach a real numpy object."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _buffer(data: Any, what: str) -> bytes | bytearray:
    """``data`` as bytes; a Python 2 ``str`` (decoded as latin-1) is encoded back."""
    if type(data) in (bytes, bytearray):
        return data
    if type(data) is str:
        try:
            return data.encode("latin1")
        except UnicodeEncodeError:
            raise UnsafePickleError(f"{what} is a text string with characters beyond latin-1, not raw bytes") from None
    raise UnsafePickleError(f"{what} must be bytes, got {_excerpt(data)}")


def _make_array(data: Any, dtype: Any, shape: Any, order: Any, limits: _Limits) -> np.ndarray:
    """``np.frombuffer(data, dtype).reshape(shape, order)`` after checking every argument."""
    if type(dtype) is not _Dtype:
        raise UnsafePickleError(f"array dtype must be a numpy.dtype record, got {_excerpt(dtype)}")
    if type(shape) is not tuple or len(shape) > MAX_DIMS:
        raise UnsafePickleError(f"array shape must be a tuple of at most {MAX_DIMS} dimensions, got {_excerpt(shape)}")
    for dim in shape:
        if type(dim) is not int or not 0 <= dim <= MAX_DIM:
            raise UnsafePickleError(f"array dimension {_excerpt(dim)} is not an integer in [0, 2**48]")
    if order not in ("C", "F") or type(order) is not str:
        raise UnsafePickleError(f"array order must be 'C' or 'F', got {_excerpt(order)}")
    buffer = _buffer(data, "array data")
    dt = dtype.take()
    count = math.prod(shape)
    nbytes = count * dt.itemsize
    if nbytes > limits.max_bytes:
        raise UnsafePickleError(f"array of shape {shape} and dtype {dtype.name} declares {nbytes} bytes, over the limit of {limits.max_bytes}")
    if nbytes != len(buffer):
        raise UnsafePickleError(f"array of shape {shape} and dtype {dtype.name} needs {nbytes} bytes of data, the pickle holds {len(buffer)}")
    return np.frombuffer(buffer, dtype=dt, count=count).reshape(shape, order=order)


def _args(args: tuple[Any, ...], name: str, low: int, high: int) -> None:
    if not low <= len(args) <= high:
        raise UnsafePickleError(f"{name} takes {low}..{high} arguments, got {len(args)}")


def _reconstruct(limits: _Limits, args: tuple[Any, ...]) -> _Array:
    _args(args, "_reconstruct", 3, 3)
    subtype, shape, typecode = args
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError("_reconstruct must be numpy's (numpy.ndarray, (0,), b'b')")
    return _Array()


def _dtype(limits: _Limits, args: tuple[Any, ...]) -> _Dtype:
    _args(args, "numpy.dtype", 1, 3)
    name = args[0].decode("ascii", "replace") if type(args[0]) is bytes else args[0]
    if type(name) is not str or name not in _DTYPES:
        raise UnsafePickleError(f"dtype {_excerpt(name)} refused: only {', '.join(_DTYPES)} are accepted")
    align = args[1] if len(args) > 1 else False
    copy = args[2] if len(args) > 2 else False
    if align not in (0, 1) or copy not in (0, 1) or type(align) not in (bool, int) or type(copy) not in (bool, int):
        raise UnsafePickleError("numpy.dtype flags align and copy must be booleans")
    if align:
        raise UnsafePickleError(f"dtype {name!r} with align=True refused: only plain numeric dtypes are accepted")
    return _Dtype(name)


def _frombuffer(limits: _Limits, args: tuple[Any, ...]) -> _Value:
    _args(args, "_frombuffer", 4, 4)
    data, dtype, shape, order = args
    return _Value(_make_array(data, dtype, shape, order, limits))


def _scalar(limits: _Limits, args: tuple[Any, ...]) -> _Value:
    _args(args, "scalar", 2, 2)
    return _Value(_make_array(args[1], args[0], (), "C", limits)[()])


def _encode(limits: _Limits, args: tuple[Any, ...]) -> bytes:
    _args(args, "_codecs.encode", 2, 2)
    text, encoding = args
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode is accepted only as (str, 'latin1'), got encoding {_excerpt(encoding)}")
    try:
        return text.encode("latin1")
    except UnicodeEncodeError:
        raise UnsafePickleError("_codecs.encode of a string with characters beyond latin-1") from None


def _empty_bytes(limits: _Limits, args: tuple[Any, ...]) -> bytes:
    if args != ():
        raise UnsafePickleError("bytes is accepted only without arguments (an empty bytes object)")
    return b""


_NDARRAY = _Global("numpy.ndarray", None)
_GLOBALS: dict[tuple[str, str], _Global] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _Global("numpy.dtype", _dtype)}
for _package in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_package}.multiarray", "_reconstruct")] = _Global("_reconstruct", _reconstruct)
    _GLOBALS[(f"{_package}.multiarray", "scalar")] = _Global("scalar", _scalar)
    _GLOBALS[(f"{_package}.numeric", "_frombuffer")] = _Global("_frombuffer", _frombuffer)
_GLOBALS[("_codecs", "encode")] = _Global("_codecs.encode", _encode)
_GLOBALS[("builtins", "bytes")] = _GLOBALS[("__builtin__", "bytes")] = _Global("bytes", _empty_bytes)

_MALFORMED = (pickle.UnpicklingError, EOFError, struct.error, IndexError, KeyError, TypeError, AttributeError, ValueError, OverflowError)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= _MESSAGE else text[:_MESSAGE] + "..."


_DATA_OPCODES = (
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT",
    "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BYTEARRAY8", "EMPTY_LIST", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_DICT", "GET",
    "BINGET", "LONG_BINGET", "MEMOIZE", "GLOBAL", "STACK_GLOBAL",
)


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Unpickler that rebuilds plain numeric numpy arrays and plain containers only.

    Reads the whole stream from ``file`` (at most ``max_bytes``) when made; :meth:`load`
    returns the object with every numpy placeholder replaced by its checked array, dtype or
    numpy scalar (see the module docstring for what is accepted).

    Args:
        file: a binary file object holding the pickle.
        encoding: how Python 2 ``str`` objects are decoded; ``"latin1"`` (default) is what
            numpy arrays pickled by Python 2 need.
        source: what the stream is (e.g. the file's path), named first in every message.
        max_bytes: largest stream (and so largest array) accepted, >= 1; default 1 GiB.
        max_opcodes: most opcodes run, >= 1 (caps container sizes and objects made).
        max_depth: deepest container nesting accepted, >= 1.

    Raises:
        UnsafePickleError: (a ``ValueError``) a stream larger than ``max_bytes``; from
            :meth:`load`, any refused global, opcode, dtype or shape, a limit exceeded, or a
            malformed stream.
        TypeError / ValueError: a limit that is not an integer >= 1.
    """

    dispatch: ClassVar[dict[int, Callable[[SafeUnpickler], None]]] = {}

    def __init__(
        self,
        file: io.BufferedIOBase | io.BytesIO,
        *,
        encoding: str = "latin1",
        source: str = "pickle data",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_opcodes: int = DEFAULT_MAX_OPCODES,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._source = source
        self._limits = _Limits(
            max_bytes=check_int("max_bytes", max_bytes, low=1),
            max_opcodes=check_int("max_opcodes", max_opcodes, low=1),
            max_depth=check_int("max_depth", max_depth, low=1),
        )
        data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise UnsafePickleError(f"{source}: pickle is larger than the limit of {max_bytes} bytes")
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._opcodes = 0

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {_name(module)}.{_name(name)}: "
                "only numpy array data is allowed in this pickle"
            ) from None

    def load(self) -> Any:
        """Run the stream and return its object with numpy placeholders replaced by checked values.

        Raises:
            UnsafePickleError: one line ``"<source>: <reason>"`` (see the class docstring);
                memory or recursion exhausted while reading is reported the same way.
        """
        try:
            return _Finisher(self._limits.max_depth).finish(super().load(), 0)
        except UnsafePickleError as err:
            reason = _one_line(err)
        except EOFError:
            reason = "truncated pickle (it ends before STOP)"
        except _MALFORMED as err:
            reason = f"malformed pickle ({type(err).__name__}: {_one_line(err)})"
        except (MemoryError, RecursionError) as err:
            reason = f"{type(err).__name__} while unpickling"
        raise UnsafePickleError(f"{self._source}: {reason}")

    def _count(self) -> None:
        self._opcodes += 1
        if self._opcodes > self._limits.max_opcodes:
            raise UnsafePickleError(f"pickle runs more than {self._limits.max_opcodes} opcodes")

    def _memo_put(self, index: int) -> None:
        if not 0 <= index <= self._limits.max_opcodes:
            raise UnsafePickleError(f"memo index {_excerpt(index)} is outside [0, {self._limits.max_opcodes}]")
        self.memo[index] = self.stack[-1]

    def _load_put(self) -> None:
        line = self.readline()[:-1]
        if len(line) > 20 or not line.isdigit():
            raise UnsafePickleError(f"PUT index {_excerpt(line)} is not a small decimal integer")
        self._memo_put(int(line))

    def _load_binput(self) -> None:
        self._memo_put(self.read(1)[0])

    def _load_long_binput(self) -> None:
        self._memo_put(struct.unpack("<I", self.read(4))[0])

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if type(func) is not _Global:
            raise UnsafePickleError(f"REDUCE calls {_excerpt(func)}: only the numpy placeholders may be called")
        if type(args) is not tuple:
            raise UnsafePickleError(f"REDUCE arguments must be a tuple, got {_excerpt(args)}")
        self.stack[-1] = func.call(self._limits, args)

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is _Dtype:
            target.build(state)
        elif type(target) is _Array:
            target.build(state, self._limits)
        else:
            raise UnsafePickleError(f"BUILD on {_excerpt(target)}: only numpy's array and dtype records take a state")

    def _list(self) -> list[Any]:
        target = self.stack[-1]
        if type(target) is not list:
            raise UnsafePickleError(f"APPEND to {_excerpt(target)}: only lists take items")
        return target

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._list().append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._list().extend(items)

    def _set_items(self, target: Any, items: list[Any]) -> None:
        if type(target) is not dict:
            raise UnsafePickleError(f"SETITEM on {_excerpt(target)}: only dicts take items")
        if len(items) % 2:
            raise UnsafePickleError("SETITEMS with an odd number of stack items")
        for index in range(0, len(items), 2):
            key = items[index]
            if type(key) not in (str, bytes):
                raise UnsafePickleError(f"dict key {_excerpt(key)} refused: keys must be str or bytes")
            target[key] = items[index + 1]

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    def _load_dict(self) -> None:
        items = self.pop_mark()
        target: dict[Any, Any] = {}
        self._set_items(target, items)
        self.append(target)


def _counted(handler: Callable[[SafeUnpickler], None]) -> Callable[[SafeUnpickler], None]:
    def run(self: SafeUnpickler) -> None:
        self._count()
        handler(self)

    return run


def _refused_opcode(code: int) -> Callable[[SafeUnpickler], None]:
    def run(self: SafeUnpickler) -> None:
        raise UnsafePickleError(f"opcode {bytes([code])!r} refused: only plain data and numpy's array opcodes are allowed")

    return run


def _dispatch_table() -> dict[int, Callable[[SafeUnpickler], None]]:
    table = {code: _refused_opcode(code) for code in range(256)}
    for name in _DATA_OPCODES:
        code = getattr(pickle, name)[0]
        table[code] = _counted(pickle._Unpickler.dispatch[code])  # type: ignore[attr-defined]
    own = {
        "PUT": SafeUnpickler._load_put,
        "BINPUT": SafeUnpickler._load_binput,
        "LONG_BINPUT": SafeUnpickler._load_long_binput,
        "REDUCE": SafeUnpickler._load_reduce,
        "BUILD": SafeUnpickler._load_build,
        "APPEND": SafeUnpickler._load_append,
        "APPENDS": SafeUnpickler._load_appends,
        "SETITEM": SafeUnpickler._load_setitem,
        "SETITEMS": SafeUnpickler._load_setitems,
        "DICT": SafeUnpickler._load_dict,
    }
    for name, handler in own.items():
        table[getattr(pickle, name)[0]] = _counted(handler)
    return table


SafeUnpickler.dispatch = _dispatch_table()


class _Finisher:
    """Walk an unpickled object (depth-bounded, each shared object once) and replace placeholders."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.done: dict[int, Any] = {}
        self.open: set[int] = set()

    def finish(self, obj: Any, depth: int) -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, int, float, str, bytes, bytearray):
            return obj
        if kind is _Value:
            return obj.value
        if kind is _Array:
            if obj.array is None:
                raise UnsafePickleError("an array from _reconstruct never received its data (no BUILD)")
            return obj.array
        if kind is _Dtype:
            return obj.take()
        if kind not in (list, tuple, dict):
            raise UnsafePickleError(f"{_excerpt(obj)} is not data (a numpy name used as a value?)")
        if depth >= self.max_depth:
            raise UnsafePickleError(f"containers nested deeper than {self.max_depth} levels")
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.open:
            raise UnsafePickleError(f"a {kind.__name__} contains itself")
        self.open.add(key)
        if kind is dict:
            out: Any = {k: self.finish(v, depth + 1) for k, v in obj.items()}
        else:
            out = kind(self.finish(v, depth + 1) for v in obj)
        self.open.discard(key)
        self.done[key] = out
        return out


def safe_loads(
    data: bytes,
    *,
    encoding: str = "latin1",
    source: str = "pickle data",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_opcodes: int = DEFAULT_MAX_OPCODES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`.

    Args:
        data: the pickle.
        encoding: how Python 2 ``str`` objects are decoded (default ``"latin1"``).
        source: what ``data`` is, for messages (e.g. the file's path).
        max_bytes, max_opcodes, max_depth: limits, as for :class:`SafeUnpickler`.

    Raises:
        UnsafePickleError: (a ``ValueError``) one line ``"<source>: <reason>"`` for a refused
            global, opcode, dtype or shape, a limit exceeded, a malformed or truncated stream,
            or memory or recursion exhausted while reading.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    unpickler = SafeUnpickler(
        io.BytesIO(data), encoding=encoding, source=source, max_bytes=max_bytes, max_opcodes=max_opcodes, max_depth=max_depth
    )
    return unpickler.load()


def safe_load(
    path: str | Path,
    *,
    encoding: str = "latin1",
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_opcodes: int = DEFAULT_MAX_OPCODES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Unpickle the file at ``path`` with :class:`SafeUnpickler` (see :func:`safe_loads`).

    The file's size is checked against ``max_bytes`` before it is read; ``source`` (default:
    the path) starts every message.

    Raises:
        UnsafePickleError: (a ``ValueError``) naming ``path``, as for :func:`safe_loads`, or
            the file is larger than ``max_bytes``.
        OSError: the file cannot be read.
    """
    path = Path(path)
    source = str(path) if source is None else source
    check_int("max_bytes", max_bytes, low=1)
    with path.open("rb") as file:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnsafePickleError(f"{source}: pickle of {size} bytes is larger than the limit of {max_bytes} bytes")
        data = file.read(max_bytes + 1)
    return safe_loads(data, encoding=encoding, source=source, max_bytes=max_bytes, max_opcodes=max_opcodes, max_depth=max_depth)
