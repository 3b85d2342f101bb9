"""Crafted hostile CIFAR pickles: each ends in one clear ValueError, in the library and through the CLI.

The pickles are assembled from raw protocol-2 opcodes (nothing here unpickles them in the test
process). One child process loads every crafted batch with ``load_dataset`` and runs the CLI on
it the way ``python -m stealguard.cli train ...`` does (``runpy.run_module`` as ``__main__``,
its ``SystemExit`` code and stderr recorded; any other exception would be a traceback), then
prints a JSON report. The parent checks that the child ended without a signal, that its peak
RSS stayed far below the allocations the files ask for, and every message.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stealguard.data.safepickle import UnsafePickleError, safe_load, safe_loads
from tests.childproc import PEAK_RSS_CODE, RUN_CLI_CODE, run_child

PEAK_RSS_LIMIT = 768 << 20
"""The children import torch (about 250-450 MiB); every crafted file asks for 1 MiB to 931 GiB more."""
MARKER = "stealguard-safepickle-pwned"


# ---- a tiny assembler for protocol-2 opcodes --------------------------------------------------


def _s(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _b(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def _i(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    size = (value.bit_length() + 8) // 8
    return b"\x8a" + bytes([size]) + value.to_bytes(size, "little", signed=True)


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + _t(*args) + b"R"


def _build(obj: bytes, state: bytes) -> bytes:
    return obj + state + b"b"


NONE, TRUE, FALSE = b"N", b"\x88", b"\x89"
RECONSTRUCT = _g("numpy.core.multiarray", "_reconstruct")
FROMBUFFER = _g("numpy.core.numeric", "_frombuffer")


def _dtype(name: str, order: str = "|", names: bytes = NONE, fields: bytes = NONE, elsize: int = -1, align: int = -1, flags: int = 0) -> bytes:
    state = _t(_i(3), _s(order), NONE, names, fields, _i(elsize), _i(align), _i(flags))
    return _build(_call(_g("numpy", "dtype"), _s(name), FALSE, TRUE), state)


def _array(shape: tuple[int, ...], dtype: bytes, data: bytes) -> bytes:
    array = _call(RECONSTRUCT, _g("numpy", "ndarray"), _t(_i(0)), _b(b"b"))
    return _build(array, _t(_i(1), _t(*map(_i, shape)), dtype, FALSE, _b(data)))


def _list(*items: bytes) -> bytes:
    return b"](" + b"".join(items) + b"e"


def _dict(*pairs: tuple[str, bytes]) -> bytes:
    return b"}(" + b"".join(_s(key) + value for key, value in pairs) + b"u"


def _pickle(body: bytes, protocol: int = 2) -> bytes:
    return b"\x80" + bytes([protocol]) + body + b"."


DATA = _array((2, 3072), _dtype("u1"), bytes(range(256)) * 24)
OBJECT = _dtype("O8", flags=63)


def _batch(labels: bytes = _list(_i(1), _i(2)), data: bytes = DATA) -> bytes:
    return _pickle(_dict(("data", data), ("labels", labels)))


# name -> (payload, regex the message must contain, numbers from the file the message may quote)
CASES: dict[str, tuple[bytes, str, set[int]]] = {
    "object_dtype_ndarray_call": (_batch(labels=_call(_g("numpy", "ndarray"), _t(_i(4)), OBJECT, _b(b"A" * 32))), r"dtype 'O8' refused", set()),
    "ndarray_call_u1": (_batch(labels=_call(_g("numpy", "ndarray"), _t(_i(4)), _dtype("u1"), _b(b"A" * 4))), r"numpy\.ndarray may only be named", set()),
    "object_dtype_reconstruct": (_batch(labels=_array((4,), OBJECT, b"A" * 32)), r"dtype 'O8' refused", set()),
    "void_object_field_flags0": (
        _batch(labels=_array((4,), _dtype("V8", names=_t(_s("f")), fields=_dict(("f", _t(OBJECT, _i(0)))), elsize=8, align=1), b"A" * 32)),
        r"dtype 'V8' refused",
        set(),
    ),
    "field_offset_1mib": (
        _batch(labels=_array((8,), _dtype("V1", names=_t(_s("a")), fields=_dict(("a", _t(_dtype("u1"), _i(1 << 20)))), elsize=1, align=1), bytes(8))),
        r"dtype 'V1' refused",
        set(),
    ),
    "u1_with_field_at_1mib": (
        _batch(labels=_array((8,), _dtype("u1", names=_t(_s("a")), fields=_dict(("a", _t(_dtype("u1"), _i(1 << 20))))), bytes(8))),
        r"dtype 'u1' has fields",
        set(),
    ),
    "reconstruct_931gib": (_batch(data=_array((1_000_000, 1_000_000), _dtype("u1"), b"")), r"declares 1000000000000 bytes, over the limit", {10**6, 10**12}),
    "labels_1e30": (_batch(labels=_list(_i(10**30), _i(0))), r"label <an integer of 100 bits> beyond the 10 classes", set()),
    "label_10": (_batch(labels=_list(_i(10), _i(0))), r"label 10 beyond the 10 classes", set()),
    "label_negative": (_batch(labels=_list(_i(0), _i(-1))), r"label -1 beyond the 10 classes", set()),
    "labels_float": (_batch(labels=_list(b"G" + struct.pack(">d", 1.5), _i(0))), r"must be a list of integers, found a float", set()),
    "deep_list_100k": (_batch(labels=b"]" * 100_000 + b"a" * 99_999), r"nested deeper than 32 levels", set()),
    "deep_tuples_100k": (_batch(labels=b"(" * 100_000 + b"t" * 100_000), r"nested deeper than 32 levels", set()),
    "os_system": (_pickle(_call(_g("os", "system"), _s(f"touch {MARKER}"))), r"refusing to load global os\.system", set()),
    "posix_system": (_pickle(_call(_g("posix", "system"), _s(f"touch {MARKER}"))), r"refusing to load global posix\.system", set()),
    "builtins_eval": (_pickle(_call(_g("builtins", "eval"), _s(f"open({MARKER!r}, 'w')"))), r"refusing to load global builtins\.eval", set()),
    "out_of_band_buffer": (_pickle(_dict(("data", b"\x97"), ("labels", _list())), protocol=5), r"opcode b'\\x97' refused", set()),
    "newobj": (_pickle(_g("numpy", "dtype") + _t(_s("u1")) + b"\x81"), r"opcode b'\\x81' refused", set()),
    "truncated": (_batch()[: len(_batch()) // 2], r"truncated pickle", set()),
    "empty_file": (b"", r"truncated pickle", set()),
    "memo_index_2e32": (_pickle(b"Nr\xff\xff\xff\xff"), r"memo index 4294967295 is outside", {4294967295}),
    "int_dict_keys": (_pickle(b"}(" + _i(0) + _i(1) + b"u"), r"dict key 0 refused", set()),
    "build_on_list": (_pickle(b"]}b"), r"BUILD on a list", set()),
    "dtype_state_twice": (_batch(labels=_build(_dtype("u1"), _t(_i(3), _s("<"), NONE, NONE, NONE, _i(-1), _i(-1), _i(0)))), r"second state", set()),
    "frombuffer_size_mismatch": (
        _batch(data=_call(FROMBUFFER, _b(bytes(10)), _dtype("u1"), _t(_i(2), _i(3072)), _s("C"))),
        r"needs 6144 bytes of data, the pickle holds 10",
        set(),
    ),
    "frombuffer_negative_dims": (_batch(data=_call(FROMBUFFER, _b(bytes(6144)), _dtype("u1"), _t(_i(-2), _i(-3072)), _s("C"))), r"dimension -2 is not", set()),
    "scalar_object": (_batch(labels=_list(_call(_g("numpy.core.multiarray", "scalar"), OBJECT, _b(b"A" * 8)))), r"dtype 'O8' refused", set()),
    "codecs_zlib": (_pickle(_call(_g("_codecs", "encode"), _s("x" * 100), _s("zlib"))), r"encoding 'zlib'", set()),
    "bytes_1e12": (_pickle(_call(_g("builtins", "bytes"), _t(_i(10**12)))), r"bytes is accepted only without arguments", set()),
    "datetime_dtype": (_batch(labels=_array((2,), _dtype("M8", "<"), bytes(16))), r"dtype 'M8' refused", set()),
    "self_cycle": (_batch(labels=b"]q\x00h\x00a"), r"a list contains itself", set()),
    "long_5000_digits": (_pickle(b"L" + b"9" * 5000 + b"L\n"), r"malformed pickle .*4300 digits", set()),
    "data_float64": (_batch(data=_array((2, 3072), _dtype("f8", "<"), bytes(8 * 6144))), r"'data' must be a uint8 array", set()),
    "nine_dims": (_batch(data=_array((1,) * 9, _dtype("u1"), b"\0")), r"at most 8 dimensions", set()),
    "ndarray_as_value": (_batch(labels=_g("numpy", "ndarray")), r"numpy\.ndarray is not data", set()),
    "reconstruct_without_build": (_batch(data=_call(RECONSTRUCT, _g("numpy", "ndarray"), _t(_i(0)), _b(b"b"))), r"never received its data", set()),
    "sparse_2gib_file": (b"", r"pickle of 2147483648 bytes is larger than the limit of 1073741824", {2**31}),
}
BATCHES = ["test_batch"] + [f"data_batch_{k}" for k in range(1, 6)]
LIBRARY_ONLY = ("deep_list_100k", "deep_tuples_100k")
"""Slow to unpickle (200,000 opcodes) and refused by the same code either way: not run again through the CLI."""


def _write_root(root: Path, name: str, payload: bytes) -> Path:
    folder = root / name / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    first = folder / BATCHES[0]
    first.write_bytes(payload)
    if name == "sparse_2gib_file":
        with first.open("r+b") as file:
            file.truncate(2**31)
    for batch in BATCHES[1:]:
        (folder / batch).symlink_to(first)
    return root / name


_DRIVER = PEAK_RSS_CODE + RUN_CLI_CODE + r"""
import contextlib, io, json, runpy, sys, traceback
from pathlib import Path
from stealguard.data import load_dataset
root, skip = Path(sys.argv[1]), sys.argv[2:]
report = {}
for case in sorted(p.name for p in root.iterdir() if p.is_dir()):
    print("case", case, file=sys.stderr, flush=True)
    entry = {"cli": [None, ""]}
    try:
        load_dataset("cifar10", root=root / case, split="test")
        entry["load"] = ["loaded", ""]
    except BaseException as err:
        entry["load"] = [type(err).__name__, str(err)]
    if case in skip:
        report[case] = entry
        continue
    entry["cli"] = run_cli(["train", "--dataset", "cifar10", "--data-root", str(root / case), "--arch", "lenet",
                            "--out", str(root / case / "out"), "--epochs", "1", "--quiet"])
    report[case] = entry
print(json.dumps({"cases": report, "peak_rss": peak_rss()}))
"""


def _numbers_ok(message: str, path: str, allowed: set[int]) -> bool:
    """No number in ``message`` (its path removed) is outside 32 bits unless the crafted file declared it."""
    return all(int(n) < 2**32 or int(n) in allowed for n in re.findall(r"\d+", message.replace(path, "")))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int]:
    root = tmp_path_factory.mktemp("hostile-cifar")
    for name, (payload, _, _) in CASES.items():
        _write_root(root, name, payload)
    rc, out, err = run_child(_DRIVER, [str(root), *LIBRARY_ONLY], cwd=root)
    assert rc == 0, f"child ended with {rc} (negative: killed by that signal); last lines: {err[-2000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    return root, result["cases"], result["peak_rss"]


def test_every_crafted_pickle_is_refused_with_a_clear_value_error(report: tuple[Path, dict[str, Any], int]) -> None:
    root, results, peak = report
    assert set(results) == set(CASES)
    for name, (_, match, allowed) in CASES.items():
        kind, message = results[name]["load"]
        folder = str(root / name / "cifar10" / "cifar-10-batches-py")
        assert kind == "UnsafePickleError" or kind == "ValueError", (name, kind, message)
        assert message.startswith(folder + "/"), (name, message)
        assert re.search(match, message), (name, message)
        assert "\n" not in message and len(message) < 600, (name, message)
        assert _numbers_ok(message, folder, allowed), (name, message)
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    assert not (root / MARKER).exists() and not Path(MARKER).exists()


def test_every_crafted_pickle_ends_the_cli_with_one_line_and_exit_2(report: tuple[Path, dict[str, Any], int]) -> None:
    root, results, _ = report
    for name, (_, match, _) in CASES.items():
        if name in LIBRARY_ONLY:
            continue
        rc, stderr = results[name]["cli"]
        assert rc == 2, (name, rc, stderr[-1500:])
        assert stderr.count("\n") == 1 and stderr.startswith("stealguard: error: "), (name, stderr[-1500:])
        assert "Traceback" not in stderr and re.search(match, stderr), (name, stderr)
        assert not (root / name / "out").exists(), name


# ---- what must keep loading ------------------------------------------------------------------

PLAIN = [np.dtype(f"{order}{kind}") for kind in ("u2", "u4", "u8", "i2", "i4", "i8", "f2", "f4", "f8") for order in "<>"]
PLAIN += [np.dtype(kind) for kind in ("b1", "u1", "i1")]


@settings(max_examples=60, deadline=None)
@given(
    array=st.sampled_from(PLAIN).flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))),
    protocol=st.integers(min_value=2, max_value=5),
    fortran=st.booleans(),
)
def test_plain_numeric_arrays_round_trip_at_every_protocol(array: np.ndarray, protocol: int, fortran: bool) -> None:
    array = np.asfortranarray(array) if fortran else array
    back = safe_loads(pickle.dumps({"a": array, "s": array.dtype.type(0) if array.dtype != bool else np.bool_(True)}, protocol=protocol))
    assert back["a"].dtype == array.dtype and back["a"].shape == array.shape
    np.testing.assert_array_equal(back["a"], array)
    assert type(back["s"]) is array.dtype.type


def test_limits_are_configurable_and_checked(tmp_path: Path) -> None:
    blob = pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}, protocol=4)
    path = tmp_path / "batch"
    path.write_bytes(blob)
    assert safe_load(path)["data"].shape == (4, 3072)
    with pytest.raises(UnsafePickleError, match=re.escape(str(path)) + r": pickle of \d+ bytes is larger than the limit of 1000 bytes"):
        safe_load(path, max_bytes=1000)
    with pytest.raises(ValueError, match=r"more than 5 opcodes"):
        safe_load(path, max_opcodes=5)
    with pytest.raises(ValueError, match=r"nested deeper than 1 levels"):
        safe_loads(blob, max_depth=1)
    with pytest.raises(ValueError, match=r"max_depth must be an integer in \[1, inf\], got 0"):
        safe_loads(blob, max_depth=0)
    assert issubclass(UnsafePickleError, ValueError) and issubclass(UnsafePickleError, pickle.UnpicklingError)


def test_shared_arrays_are_rebuilt_once_and_python2_text_buffers_still_load() -> None:
    array = np.arange(6, dtype=">i4").reshape(2, 3)
    back = safe_loads(pickle.dumps([array, array, (array,)], protocol=2))
    assert back[0] is back[1] is back[2][0] and back[0].dtype == np.dtype(">i4")
    # Python 2's cPickle wrote the array's bytes as a str; read with latin-1 it must come back as the bytes
    py2 = b"\x80\x02" + _call(RECONSTRUCT, _g("numpy", "ndarray"), _t(_i(0)), b"U\x01b")
    py2 += _t(_i(1), _t(_i(3)), _dtype("u1"), FALSE, b"U\x03\x00\xff\x80") + b"b."
    np.testing.assert_array_equal(safe_loads(py2), np.array([0, 255, 128], np.uint8))
