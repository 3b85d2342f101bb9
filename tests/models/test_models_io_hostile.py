"""Crafted hostile model folders: each ends in one clear error, in ``load_model`` and through ``stealguard attack``.

The folders are made from one saved digits mlp by editing ``card.json`` or writing
``model.safetensors`` by hand (a header, then raw bytes). One child process loads every
folder with ``load_model`` and runs the CLI on it the way ``python -m stealguard.cli attack
--victim <folder> ...`` does (``runpy.run_module`` as ``__main__``), then prints a JSON report;
the parent checks that the child ended without a signal, its peak RSS, and every message.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from stealguard.models import ModelCard, create, load_model, save_model
from stealguard.models.io import MAX_CARD_BYTES, model_bytes
from tests.childproc import PEAK_RSS_CODE, RUN_CLI_CODE, run_child

PEAK_RSS_LIMIT = 768 << 20
"""The child imports torch and the harness (about 400 MiB); the crafted folders ask for 1 GiB to 64 GiB more."""
FIRST = "net.1.weight"


def _safetensors(header: dict[str, Any] | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _card(**changes: Any) -> Callable[[dict[str, Any]], bytes]:
    return lambda card: json.dumps({**card, **changes}).encode()


def _card_text(old: str, new: str) -> Callable[[dict[str, Any]], bytes]:
    def edit(card: dict[str, Any]) -> bytes:
        text = json.dumps(card)
        assert old in text
        return text.replace(old, new).encode()

    return edit


def _weights(**changes: torch.Tensor | None) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    def edit(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {**tensors, **changes}
        return {key: value for key, value in out.items() if value is not None}

    return edit


NAN, INF = float("nan"), float("inf")
# name -> (card edit or None, weights edit / raw bytes or None, regex of the message, numbers from the folder it may quote)
CASES: dict[str, tuple[Any, Any, str, set[int]]] = {
    "card_depth_100k": (lambda card: b'{"train": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, r"nested deeper than 32 levels", set()),
    "card_depth_100k_unclosed": (lambda card: b"[" * 100_000, None, r"nested deeper than 32 levels", set()),
    "card_5mib": (_card(train={"pad": "x" * (5 << 20)}), None, rf"bytes, over the limit of {MAX_CARD_BYTES}", set()),
    "card_num_classes_1e9": (_card(num_classes=10**9), None, r"'num_classes' must be an integer in \[2, 100000\], got 1000000000", set()),
    "card_num_classes_1e9_float": (_card_text('"num_classes": 4', '"num_classes": 1e9'), None, r"'num_classes' must be an integer, got 1000000000\.0", set()),
    "card_num_classes_5000_digits": (_card_text('"num_classes": 4', '"num_classes": ' + "9" * 5000), None, r"not valid JSON: Exceeds the limit \(4300 digits\)", set()),
    "card_input_100000x100000": (_card(input_shape=[1, 100_000, 100_000]), None, r"'input_shape H' must be an integer in \[1, 1024\], got 100000", set()),
    "card_input_64x1024x1024": (_card(input_shape=[64, 1024, 1024], mean=[0.0] * 64, std=[1.0] * 64), None, r"more than 1048576 elements per input", set()),
    "card_input_negative": (_card(input_shape=[-1, 8, 8]), None, r"'input_shape C' must be an integer in \[1, 64\], got -1", set()),
    "card_input_4_dims": (_card(input_shape=[1, 8, 8, 1]), None, r"input_shape must have 3 entries", set()),
    "card_input_bool": (_card(input_shape=[True, 8, 8]), None, r"'input_shape C' must be an integer, got True \(bool\)", set()),
    "card_mlp_1gib": (_card(input_shape=[16, 256, 256], mean=[0.0] * 16, std=[1.0] * 16), None, r"describes a mlp of 1074010256 bytes .*over the limit of 536870912", set()),
    "card_lenet_1024": (_card(arch="lenet", input_shape=[1, 1024, 1024]), None, r"describes a lenet of 6401012304 bytes", {6401012304}),
    "card_arch_1mib": (_card(arch="a" * (1 << 20)), None, r"'arch' must have at most 256 characters", set()),
    "card_arch_unknown": (_card(arch="../../etc/passwd"), None, r"unknown architecture '\.\./\.\./etc/passwd'", set()),
    "card_class_names_100k_chars": (_card(classes=["x" * 100_000] * 4), None, r"names must have 1 to 256 characters", set()),
    "card_nan": (_card_text('"num_classes": 4', '"num_classes": 4, "test_accuracy": NaN'), None, r"NaN is not a JSON number", set()),
    "card_infinity_mean": (_card_text('"mean": [0.0]', '"mean": [Infinity]'), None, r"Infinity is not a JSON number", set()),
    "card_utf16": (lambda card: json.dumps(card).encode("utf-16"), None, r"not valid JSON: not UTF-8", set()),
    "card_list": (lambda card: json.dumps([card]).encode(), None, r"must be a JSON object, got list", set()),
    "card_unknown_field": (_card(exec="rm -rf /"), None, r"unknown field\(s\) exec", set()),
    "card_seed_1e30": (_card(seed=10**30), None, r"'seed' must be an integer in \[0, \d+\], got <an integer of 100 bits>", {2**64 - 1}),
    "card_symlink_dev_zero": ("/dev/zero", None, r"model card not found: expected .*card\.json", set()),
    "card_is_a_directory": ("dir", None, r"model card not found: expected .*card\.json", set()),
    "weights_nan": (None, _weights(**{FIRST: torch.full((256, 64), NAN)}), rf"tensor '{FIRST}' holds NaN or infinite values", set()),
    "weights_inf_bias": (None, _weights(**{"net.5.bias": torch.tensor([0.0, INF, 0.0, 0.0])}), r"tensor 'net\.5\.bias' holds NaN or infinite values", set()),
    "weights_float64": (None, lambda t: {k: v.double() for k, v in t.items()}, r"dtype mismatch: mean is torch\.float64, expected torch\.float32", set()),
    "weights_float16_one": (None, _weights(**{FIRST: torch.zeros(256, 64, dtype=torch.float16)}), rf"{FIRST} is torch\.float16, expected torch\.float32", set()),
    "weights_int32_one": (None, _weights(**{FIRST: torch.zeros(256, 64, dtype=torch.int32)}), rf"{FIRST} is torch\.int32, expected torch\.float32", set()),
    "weights_transposed": (None, _weights(**{FIRST: torch.zeros(64, 256)}), rf"shape mismatch .*{FIRST}: \(64, 256\) vs \(256, 64\)", set()),
    "weights_missing_tensor": (None, _weights(**{"net.5.bias": None}), r"missing keys \['net\.5\.bias'\], unexpected keys \[\]", set()),
    "weights_extra_tensor": (None, _weights(extra=torch.zeros(3)), r"missing keys \[\], unexpected keys \['extra'\]", set()),
    "weights_mean_differs_from_card": (None, _weights(mean=torch.full((1, 1, 1, 1), 0.5)), r"holds mean \[0\.5\] but the card says \[0\.0\]", set()),
    "weights_header_length_2e63": (None, struct.pack("<Q", 2**63) + b"{}", r"declares a header of 9223372036854775808 bytes, over the limit", {2**63}),
    "weights_header_length_100mb": (None, struct.pack("<Q", 100_000_000) + b"{}", r"declares a header of 100000000 bytes, over the limit", set()),
    "weights_header_1000_deep": (None, _safetensors(b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"), r"not a valid safetensors file: .*recursion limit", set()),
    "weights_header_not_utf8": (None, _safetensors(b"\xff\xfe not json"), r"not a valid safetensors file: .*invalid UTF-8", set()),
    "weights_empty_file": (None, b"", r"not a valid safetensors file: 0 bytes, shorter than the 8-byte header length", set()),
    "weights_7_bytes": (None, bytes(7), r"not a valid safetensors file: 7 bytes", set()),
    "weights_trailing_bytes": (
        None,
        _safetensors({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8) + b"junk"),
        r"not a valid safetensors file: .*not fully covered",
        set(),
    ),
    "weights_overlapping_offsets": (
        None,
        _safetensors({k: {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]} for k in "xy"}, bytes(8)),
        r"not a valid safetensors file: .*invalid offset",
        set(),
    ),
    "weights_offsets_past_the_end": (
        None,
        _safetensors({FIRST: {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, bytes(8)),
        r"not a valid safetensors file: .*not fully covered",
        set(),
    ),
    "weights_unknown_dtype": (None, _safetensors({"x": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), r"unknown variant `X99`", set()),
    "weights_pickle": (None, b"\x80\x04\x95" + bytes(64), r"not a valid safetensors file", set()),
    "weights_1mib_tensor_name": (
        None,
        _safetensors({"k" * (1 << 20): {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
        r"unexpected keys \['k{80}\.\.\.'\]",
        set(),
    ),
    "weights_sparse_64gib": (None, "sparse", r"holds 68719476736 bytes of tensor data, over the limit of 536870912", {64 << 30}),
}


def _write(out: Path, name: str, card_edit: Any, weights_edit: Any, card: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    folder = out / name
    folder.mkdir()
    if card_edit == "/dev/zero":
        (folder / "card.json").symlink_to("/dev/zero")
    elif card_edit == "dir":
        (folder / "card.json").mkdir()
    else:
        (folder / "card.json").write_bytes(card_edit(card) if card_edit else json.dumps(card).encode())
    weights = folder / "model.safetensors"
    if weights_edit == "sparse":
        size = 64 << 30
        header = json.dumps({FIRST: {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]}}).encode()
        weights.write_bytes(struct.pack("<Q", len(header)) + header)
        with weights.open("r+b") as file:
            file.truncate(8 + len(header) + size)
    elif isinstance(weights_edit, bytes):
        weights.write_bytes(weights_edit)
    else:
        save_file(weights_edit(tensors) if weights_edit else tensors, str(weights))


_DRIVER = PEAK_RSS_CODE + RUN_CLI_CODE + r"""
import contextlib, io, json, runpy, sys, traceback
from pathlib import Path
from stealguard.models import load_model
root = Path(sys.argv[1])
report = {}
for case in sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "base"):
    print("case", case, file=sys.stderr, flush=True)
    entry = {}
    try:
        load_model(root / case)
        entry["load"] = ["loaded", ""]
    except BaseException as err:
        entry["load"] = [type(err).__name__, str(err)]
    entry["cli"] = run_cli(["attack", "--victim", str(root / case), "--attack", "knockoff", "--budget", "10",
                            "--queryset", "digits", "--epochs", "1", "--out", str(root / case / "attack.json"), "--quiet"])
    report[case] = entry
print(json.dumps({"cases": report, "peak_rss": peak_rss()}))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], int]:
    root = tmp_path_factory.mktemp("hostile-models")
    torch.manual_seed(0)
    model = create("mlp", input_shape=(1, 8, 8), num_classes=4).eval()
    base = save_model(model, ModelCard(arch="mlp", dataset="digits", input_shape=(1, 8, 8), num_classes=4), root / "base")
    card, tensors = json.loads((base / "card.json").read_text()), load_file(str(base / "model.safetensors"))
    for name, (card_edit, weights_edit, _, _) in CASES.items():
        _write(root, name, card_edit, weights_edit, card, tensors)
    rc, out, err = run_child(_DRIVER, [str(root)], cwd=root)
    assert rc == 0, f"child ended with {rc} (negative: killed by that signal); last lines: {err[-2000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    return root, result["cases"], result["peak_rss"]


def _numbers_ok(message: str, folder: str, allowed: set[int]) -> bool:
    return all(int(n) < 2**32 or int(n) in allowed for n in re.findall(r"\d+", message.replace(folder, "")))


def test_every_crafted_folder_is_refused_by_load_model(report: tuple[Path, dict[str, Any], int]) -> None:
    root, results, peak = report
    assert set(results) == set(CASES)
    for name, (card_edit, _, match, allowed) in CASES.items():
        kind, message = results[name]["load"]
        folder = str(root / name)
        expected = "FileNotFoundError" if card_edit in ("/dev/zero", "dir") else "ValueError"
        assert kind == expected, (name, kind, message)
        assert folder + "/" in message and re.search(match, message), (name, message)
        assert "\n" not in message and len(message) < 1200, (name, len(message), message[:300])
        assert _numbers_ok(message, folder, allowed), (name, message)
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"


def test_every_crafted_folder_ends_stealguard_attack_with_one_line_and_exit_2(report: tuple[Path, dict[str, Any], int]) -> None:
    root, results, _ = report
    for name, (_, _, match, _) in CASES.items():
        rc, stderr = results[name]["cli"]
        assert rc == 2, (name, rc, stderr[-1500:])
        assert stderr.count("\n") == 1 and stderr.startswith("stealguard: error: "), (name, stderr[-1500:])
        assert "Traceback" not in stderr and re.search(match, stderr), (name, stderr[:300])
        assert not (root / name / "attack.json").exists(), name


def test_the_untouched_folder_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create("mlp", input_shape=(1, 8, 8), num_classes=4).eval()
    card = ModelCard(arch="mlp", dataset="digits", input_shape=(1, 8, 8), num_classes=4)
    loaded, _ = load_model(save_model(model, card, tmp_path))
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(loaded(x), model(x))
    assert model_bytes(card) == sum(v.numel() * v.element_size() for v in model.state_dict().values())
    with pytest.raises(ValueError, match=r"describes a mlp of \d+ bytes .*over the limit of 1000 bytes"):
        load_model(tmp_path, max_bytes=1000)
    assert os.path.getsize(tmp_path / "model.safetensors") > 1000
