"""Transfer sets: recording every query, the safetensors format, hostile files, offline training."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from stealguard import data, models
from stealguard.attacks.knockoff import Knockoff
from stealguard.attacks.oracle import Oracle
from stealguard.attacks.transfer import (
    METADATA_KEY,
    RecordingBlackBox,
    TransferSet,
    load_transfer,
    save_transfer,
    train_from_transfer,
)
from stealguard.blackbox import BlackBox
from stealguard.defenses import defense_from_spec


def _set(n: int = 12, k: int = 4, shape: tuple[int, ...] = (1, 3, 3), calls: list[int] | None = None) -> TransferSet:
    generator = torch.Generator().manual_seed(n)
    answers = torch.softmax(torch.randn(n, k, generator=generator), dim=1)
    sizes = calls if calls is not None else [n // 2, n - n // 2]
    return TransferSet(
        torch.rand(n, *shape, generator=generator), answers, torch.tensor(sizes, dtype=torch.int64),
        {"attack": "knockoff", "attack_params": {"epochs": 1}, "seed": 3, "defense": "mad:epsilon=0.5", "budget": n},
    )


def _box(budget: int | None = None, defense: str = "none") -> BlackBox:
    victim = models.create("mlp", input_shape=(1, 8, 8), num_classes=10)
    return BlackBox(victim, defense_from_spec(defense), budget=budget, device="cpu")


def test_round_trip_is_bitwise_with_metadata(tmp_path: Path) -> None:
    original = _set()
    loaded = load_transfer(save_transfer(original, tmp_path / "t.safetensors"))
    assert torch.equal(loaded.inputs, original.inputs) and torch.equal(loaded.answers, original.answers)
    assert torch.equal(loaded.calls, original.calls)
    assert {key: loaded.meta[key] for key in original.meta} == original.meta
    assert loaded.meta["num_queries"] == 12 and loaded.meta["input_shape"] == [1, 3, 3] and loaded.meta["num_classes"] == 4
    assert loaded.meta["format"] == "stealguard.transfer" and loaded.meta["version"] == 1


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 20), repeat=st.integers(1, 3))
def test_distinct_averages_each_call_as_the_oracle_does(n: int, repeat: int) -> None:
    box = RecordingBlackBox(_box(defense="random_noise:epsilon=0.3"))
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(n))
    oracle = Oracle(box, n * repeat, repeat=repeat, batch_size=max(1, n // 2), progress=False)
    answers = oracle.ask(x)
    transfer = box.transfer_set()
    assert transfer.num_queries == n * repeat and int(transfer.calls.sum()) == n * repeat
    inputs, mean = transfer.distinct(repeat)
    assert torch.equal(inputs, x) and torch.equal(mean, answers)


def test_prefix_never_costs_more_than_its_budget() -> None:
    transfer = _set(n=12, calls=[6, 6])
    for budget, repeat, count in ((5, 1, 5), (7, 2, 3), (12, 3, 4), (2, 2, 1)):
        inputs, answers, queries = transfer.prefix(budget, repeat)
        assert inputs.shape[0] == answers.shape[0] == count and queries == count * repeat <= budget
    with pytest.raises(ValueError, match="exceeds the 12 queries"):
        transfer.prefix(13)
    with pytest.raises(ValueError, match="smaller than repeat=3"):
        transfer.prefix(2, 3)
    with pytest.raises(ValueError, match="not a multiple"):
        _set(n=12, calls=[5, 7]).distinct(2)


def test_recording_keeps_every_raw_answer_repeats_included() -> None:
    box = RecordingBlackBox(_box(budget=40, defense="random_noise:epsilon=0.3"))
    images = torch.rand(20, 1, 8, 8)
    attack = Knockoff(queryset=images, replica_arch="mlp", epochs=1, device="cpu", progress=False, repeat=2)
    attack.run(box, 40)
    transfer = box.transfer_set()
    assert transfer.num_queries == 40 == box.queries_used == box.recorded
    first, second = transfer.answers[:20], transfer.answers[20:]
    assert torch.equal(transfer.inputs[:20], transfer.inputs[20:]) and not torch.equal(first, second)
    assert torch.allclose(transfer.answers.sum(dim=1), torch.ones(40), atol=1e-5)


def test_offline_training_reproduces_the_online_replica(tmp_path: Path) -> None:
    queryset = data.load_dataset("digits", split="test")
    images = queryset.tensors()[0][:150]
    box = RecordingBlackBox(_box(budget=100, defense="random_noise:epsilon=0.3"))
    settings_ = {"replica_arch": "mlp", "epochs": 2, "batch_size": 32, "seed": 4, "device": "cpu", "progress": False}
    with torch.random.fork_rng():
        torch.manual_seed(4)
        online = Knockoff(queryset=images, **settings_).run(box, 100)
    loaded = load_transfer(save_transfer(box.transfer_set({"attack": "knockoff"}), tmp_path / "t.safetensors"))
    offline, queries = train_from_transfer(Knockoff(queryset=images, **settings_), loaded)
    assert queries == 100
    for mine, theirs in zip(offline.state_dict().values(), online.state_dict().values()):
        assert torch.equal(mine, theirs)


def test_an_attack_that_trains_online_cannot_train_offline() -> None:
    from stealguard.attacks import create

    dfme = create("dfme", replica_arch="mlp", device="cpu", progress=False)
    with pytest.raises(TypeError, match="cannot train a replica offline"):
        train_from_transfer(dfme, _set(n=8, shape=(1, 8, 8), k=10))


# Hostile files: every one is a ValueError naming the file, raised before the tensors are allocated.


def _write_raw(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _header(meta: dict, shapes: dict[str, list[int]], dtypes: dict[str, str] | None = None) -> tuple[dict, int]:
    header: dict = {"__metadata__": {METADATA_KEY: json.dumps(meta)}}
    offset = 0
    for name in ("inputs", "answers", "calls"):
        size = (8 if name == "calls" else 4)
        for dim in shapes[name]:
            size *= dim
        header[name] = {"dtype": (dtypes or {}).get(name, "I64" if name == "calls" else "F32"), "shape": shapes[name], "data_offsets": [offset, offset + size]}
        offset += size
    return header, offset


META = {"format": "stealguard.transfer", "version": 1, "num_queries": 4, "input_shape": [1, 2, 2], "num_classes": 3, "num_calls": 1}
SHAPES = {"inputs": [4, 1, 2, 2], "answers": [4, 3], "calls": [1]}


def test_a_well_formed_hand_written_file_loads(tmp_path: Path) -> None:
    header, size = _header(META, SHAPES)
    data_bytes = torch.zeros(16).numpy().tobytes() + torch.full((12,), 1 / 3).numpy().tobytes() + struct.pack("<q", 4)
    assert len(data_bytes) == size
    loaded = load_transfer(_write_raw(tmp_path / "ok.safetensors", header, data_bytes))
    assert loaded.num_queries == 4


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "truncated or padded"),
        ("shape", "has shape"),
        ("huge", "spans|has shape"),
        ("huge_meta", "spans"),
        ("dtype", "must be F32"),
        ("extra", "holds tensors"),
        ("not_transfer", "not a stealguard transfer set"),
        ("version", "version 2"),
        ("bad_calls", "sum to the 4 queries"),
        ("nan", "finite"),
        ("short", "shorter than its 8-byte"),
        ("giant_header", "declares a"),
        ("not_json", "header is not JSON"),
    ],
)
def test_hostile_files_are_refused_with_the_file_named(tmp_path: Path, case: str, message: str) -> None:
    path = tmp_path / f"{case}.safetensors"
    meta, shapes, dtypes = dict(META), {k: list(v) for k, v in SHAPES.items()}, {}
    answers = torch.full((12,), 1 / 3)
    calls = struct.pack("<q", 4)
    if case == "shape":
        shapes["answers"] = [4, 4]
    elif case == "huge":
        shapes["inputs"] = [10**12, 1, 2, 2]
    elif case == "huge_meta":
        meta["num_queries"], shapes["inputs"], shapes["answers"] = 10**12, [10**12, 1, 2, 2], [10**12, 3]
    elif case == "dtype":
        dtypes["answers"] = "F64"
    elif case == "version":
        meta["version"] = 2
    elif case == "bad_calls":
        calls = struct.pack("<q", 3)
    elif case == "nan":
        answers[0] = float("nan")
    header, _ = _header(meta, shapes, dtypes)
    data_bytes = torch.zeros(16).numpy().tobytes() + answers.numpy().tobytes() + calls
    if case in ("huge", "huge_meta"):
        header, _ = _header(meta, shapes, dtypes)
        if case == "huge_meta":
            for name in ("inputs", "answers", "calls"):
                header[name]["data_offsets"] = [0, 64] if name == "inputs" else header[name]["data_offsets"]
    if case == "extra":
        header["evil"] = {"dtype": "U8", "shape": [1], "data_offsets": [data_bytes.__len__(), len(data_bytes) + 1]}
        data_bytes += b"\0"
    if case == "not_transfer":
        header["__metadata__"] = {"other": "x"}
    _write_raw(path, header, data_bytes)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:-5])
    elif case == "short":
        path.write_bytes(b"\x01\x02")
    elif case == "giant_header":
        path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    elif case == "not_json":
        path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{{")
    with pytest.raises(ValueError, match=message) as caught:
        load_transfer(path)
    assert str(path) in str(caught.value)


def test_pickles_and_torch_files_are_not_transfer_sets(tmp_path: Path) -> None:
    for name, payload in (
        ("pickle.safetensors", pickle.dumps({"inputs": [1.0, 2.0]})),
        ("torch.safetensors", None),
    ):
        path = tmp_path / name
        if payload is None:
            torch.save({"inputs": torch.zeros(2)}, path)
        else:
            path.write_bytes(payload)
        with pytest.raises(ValueError, match="not a safetensors file") as caught:
            load_transfer(path)
        assert str(path) in str(caught.value)


def test_a_model_file_is_not_a_transfer_set(tmp_path: Path) -> None:
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"), metadata={"arch": "mlp"})
    with pytest.raises(ValueError, match="not a stealguard transfer set"):
        load_transfer(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_transfer(tmp_path / "absent.safetensors")


def test_offline_training_reproduces_a_round_based_attack_at_its_full_budget() -> None:
    from stealguard.attacks.jbda import JBDA

    images = data.load_dataset("digits", split="test").tensors()[0][:80]
    box = RecordingBlackBox(_box(budget=60))
    settings_ = {"replica_arch": "mlp", "epochs": 1, "batch_size": 16, "seed": 2, "device": "cpu", "progress": False,
                 "seed_size": 15, "round_epochs": 1}
    with torch.random.fork_rng():
        torch.manual_seed(2)
        online = JBDA(queryset=images, **settings_).run(box, 60)
    offline, queries = train_from_transfer(JBDA(queryset=images, **settings_), box.transfer_set())
    assert queries == 60
    for mine, theirs in zip(offline.state_dict().values(), online.state_dict().values()):
        assert torch.equal(mine, theirs)
