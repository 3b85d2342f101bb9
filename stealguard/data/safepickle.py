"""A pickle loader that can rebuild numpy arrays and nothing else.

CIFAR's "python version" batches are pickles, and ``pickle.load`` on a file runs whatever
callables the file names (``os.system`` included). ``SafeUnpickler.find_class`` refuses every
global except the few functions numpy's own pickles name to rebuild arrays and dtypes:

* ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``
  and ``numpy.dtype`` (arrays pickled with protocol 0..4, including Python 2's cPickle);
* ``numpy.core.numeric._frombuffer`` / ``numpy._core.numeric._frombuffer`` (protocol 5);
* ``numpy.core.multiarray.scalar`` / ``numpy._core.multiarray.scalar`` (numpy scalars);
* ``_codecs.encode`` (how Python 3 writes ``bytes`` at protocol 2, e.g. the array's raw data).

Plain containers (dict, list, tuple, str, bytes, int, float) need no globals.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
for _package in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_package}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_package}.numeric", "_frombuffer")] = _numeric._frombuffer
_ALLOWED[("_codecs", "encode")] = codecs.encode


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only resolves numpy's array-rebuilding globals.

    Raises:
        pickle.UnpicklingError: on any other global, naming it.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array data is allowed in this pickle"
            ) from None


def safe_loads(data: bytes, *, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` with ``SafeUnpickler``.

    Args:
        data: the pickle.
        encoding: how Python 2 ``str`` objects are decoded; ``"latin1"`` (default) is what
            numpy arrays pickled by Python 2 need.

    Raises:
        pickle.UnpicklingError: a forbidden global or a malformed pickle.
    """
    return SafeUnpickler(io.BytesIO(data), encoding=encoding).load()


def safe_load(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Unpickle the file at ``path`` with ``SafeUnpickler`` (see ``safe_loads``)."""
    return safe_loads(Path(path).read_bytes(), encoding=encoding)
