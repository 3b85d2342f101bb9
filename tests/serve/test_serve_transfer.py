"""A transfer set saved by `attack --target URL` retrains a replica offline without another query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stealguard.attacks.transfer import load_transfer
from stealguard.cli import main
from tests.serve._server import Server

ATTACK = ["--attack", "knockoff", "--epochs", "2", "--attack-param", "batch_size=32", "--queryset", "digits", "--seed", "1",
          "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def server(victim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("transfer-server")
    running = Server(victim_dir, root / "data", root / "server.log", "--defense", "reverse_sigmoid:beta=0.3", "--seed", "0")
    yield running
    running.stop()


def used(server: Server) -> int:
    return int(httpx.get(f"{server.url}/v1/usage", timeout=30.0).json()["used"])


def test_remote_transfer_set_retrains_offline_with_no_query(server: Server, victim_dir: Path, tmp_path: Path) -> None:
    saved = tmp_path / "remote.safetensors"
    code = main(["attack", "--target", server.url, *ATTACK, "--budget", "200", "--save-transfer", str(saved), "--out", str(tmp_path / "remote.json")])
    assert code == 0
    online = json.loads((tmp_path / "remote.json").read_text())
    transfer = load_transfer(saved)
    assert transfer.num_queries == 200 == transfer.meta["queries_used"] and transfer.meta["target"] == server.url
    assert transfer.meta["defense"] is None and transfer.meta["victim"]["num_classes"] == 10
    before = used(server)
    assert before == 200 + online["fidelity_queries"]

    offline_out = tmp_path / "offline.json"
    code = main(["attack", "--transfer", str(saved), *ATTACK, "--out", str(offline_out)])
    assert code == 0 and used(server) == before
    offline = json.loads(offline_out.read_text())
    assert offline["attacker_accuracy"] == online["attacker_accuracy"] and offline["queries_used"] == 200
    assert offline["fidelity"] is None and "not measured" in offline["fidelity_note"]

    code = main(["attack", "--transfer", str(saved), "--victim", str(victim_dir), *ATTACK, "--budgets", "100,200",
                 "--out", str(tmp_path / "curve")])
    assert code == 0 and used(server) == before
    rows = json.loads((tmp_path / "curve" / "results.json").read_text())
    assert [row["budget"] for row in rows] == [100, 200] and all(0 <= row["fidelity"] <= 1 for row in rows)
