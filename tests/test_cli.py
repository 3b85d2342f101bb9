"""stealguard.cli: exit codes and one-line errors via main([...]); end-to-end train + attack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stealguard.cli import main


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models: one torch thread is fastest and avoids fighting over a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "victim"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    code = main(["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "3", "--device", "cpu", "--quiet", "--out", str(out)])
    torch.set_num_threads(threads)
    assert code == 0
    return out


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stealguard: error: ")
    assert "Traceback" not in err
    return lines[0]


def _attack(victim: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["attack", "--victim", str(victim), "--attack", "knockoff", "--budget", "20", "--epochs", "1",
            "--device", "cpu", "--quiet", "--out", str(tmp_path / "r.json"), *extra]


def test_train_and_attack_end_to_end(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (victim / "card.json").is_file()
    code = main(_attack(victim, tmp_path, "--defense", "mad_argmax:epsilon=0.5", "--queryset", "digits",
                        "--attack-param", "train_on=argmax"))
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["queries_used"] == 20 and result["defense"] == "mad_argmax"
    assert result["attack_params"]["train_on"] == "argmax" and result["attack_params"]["epochs"] == 1
    assert result["defender_accuracy"] == result["clean_accuracy"]
    assert "mad_argmax:epsilon=0.5" in out


def test_sweep_command(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--victim", str(victim), "--attack", "knockoff", "--queryset", "digits", "--budget", "20",
                 "--epochs", "1", "--defense", "topk:k=1", "--defense", "rounding:decimals=1", "--device", "cpu",
                 "--quiet", "--out", str(tmp_path / "sweep")])
    assert code == 0
    assert {"results.csv", "results.json", "tradeoff.png"} <= {p.name for p in (tmp_path / "sweep").iterdir()}
    assert "rounding:decimals=1" in capsys.readouterr().out


def test_unknown_defense(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, _attack(victim, tmp_path, "--defense", "nonsense"))
    assert "unknown defense 'nonsense'" in line and "mad" in line


def test_epsilon_out_of_range(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, _attack(victim, tmp_path, "--defense", "mad:epsilon=5"))
    assert "epsilon" in line and "5" in line


@pytest.mark.parametrize("spec", ["mad:epsilon", ":epsilon=1", "mad:=3"])
def test_bad_spec(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    assert spec in _error(capsys, _attack(victim, tmp_path, "--defense", spec))


def test_unknown_defense_parameter(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown parameter" in _error(capsys, _attack(victim, tmp_path, "--defense", "mad:eps=0.5"))


def test_missing_victim_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, _attack(tmp_path / "no_victim", tmp_path))
    assert "victim directory" in line and "no_victim" in line


def test_missing_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "empty"), "--arch", "lenet",
                           "--quiet", "--out", str(tmp_path / "v")])
    assert "mnist" in line and "not found" in line


def test_missing_queryset_files(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, _attack(victim, tmp_path, "--queryset", "cifar10", "--data-root", str(tmp_path)))
    assert "cifar10" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--dataset", "digits", "--arch", "alexnet", "--out", "x"], "unknown architecture 'alexnet'"),
        (["train", "--dataset", "nodata", "--arch", "mlp", "--out", "x"], "nodata"),
        (["train", "--dataset", "digits", "--arch", "mlp"], "--out"),
        (["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "many", "--out", "x"], "invalid int"),
        (["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "0", "--out", "x", "--quiet"], "epochs"),
        (["train", "--dataset", "digits", "--arch", "mlp", "--device", "tpu", "--out", "x"], "device"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_argument_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert needle in _error(capsys, argv)


def test_attack_argument_errors(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown attack 'jbdx'" in _error(capsys, [*_attack(victim, tmp_path)[:3], "--attack", "jbdx", *_attack(victim, tmp_path)[5:]])
    assert "budget" in _error(capsys, [a if a != "20" else "0" for a in _attack(victim, tmp_path)])
    assert "key=value" in _error(capsys, _attack(victim, tmp_path, "--attack-param", "train_on"))
    assert "train_on" in _error(capsys, _attack(victim, tmp_path, "--attack-param", "train_on=soft"))


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "stealguard" in capsys.readouterr().out


def test_attack_flags_reach_every_attack(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["attack", "--victim", str(victim), "--budget", "40", "--epochs", "1", "--device", "cpu", "--quiet",
            "--queryset", "digits", "--out", str(tmp_path / "j.json"), "--overwrite"]
    assert main([*argv, "--attack", "jbda", "--train-on", "argmax", "--repeat", "2", "--optimizer", "adam", "--lr", "0.002",
                 "--replica-arch", "mlp", "--attack-param", "seed_size=5", "--attack-param", "round_epochs=1"]) == 0
    result = json.loads((tmp_path / "j.json").read_text())
    assert result["queries_used"] == 40 and result["attack"] == "jbda"
    params = result["attack_params"]
    assert (params["train_on"], params["repeat"], params["optimizer"], params["lr"], params["seed_size"]) == ("argmax", 2, "adam", 0.002, 5)
    assert result["attack_report"]["transfer_set_size"] == 20
    assert main([*argv, "--attack", "knockoff", "--policy", "adaptive"]) == 0
    result = json.loads((tmp_path / "j.json").read_text())
    assert result["attack_params"]["policy"] == "adaptive" and sum(result["attack_report"]["arm_pulls"]) == 40
    capsys.readouterr()
    assert "unknown parameter(s) policy" in _error(capsys, [*argv, "--attack", "jb_top3", "--policy", "adaptive"])
    assert "repeat" in _error(capsys, [*argv, "--attack", "jb_self", "--repeat", "0"])
    assert "train_on" in _error(capsys, [*argv, "--attack", "knockoff", "--train-on", "labels"])


def test_diverging_training_is_one_line_and_status_1(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["attack", "--victim", str(victim), "--attack", "knockoff", "--budget", "50", "--epochs", "3", "--device", "cpu",
                 "--quiet", "--optimizer", "sgd", "--lr", "1e30", "--out", str(tmp_path / "d.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().startswith("stealguard: error: training loss became") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d.json").exists()


def test_a_bad_out_fails_before_any_work(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from stealguard import harness

    def no_work(**_kwargs):
        raise AssertionError("the run started although --out was bad")

    monkeypatch.setattr(harness, "run_attack", no_work)
    monkeypatch.setattr(harness, "train_victim", no_work)
    monkeypatch.setattr(harness, "sweep", no_work)
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    attack = ["attack", "--victim", str(victim), "--attack", "knockoff", "--budget", "10", "--queryset", "digits", "--quiet"]
    cases = [
        ([*attack, "--out", str(tmp_path)], "is a folder"),
        ([*attack, "--out", str(existing)], "exists; pass --overwrite"),
        (["sweep", "--victim", str(victim), "--attack", "knockoff", "--budget", "10", "--queryset", "digits",
          "--defense", "none", "--out", str(existing)], "is a file"),
        (["train", "--dataset", "digits", "--arch", "mlp", "--out", str(victim)], "is not empty; pass --overwrite"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
    assert existing.read_text() == "{}"


def test_progress_is_quiet_when_stderr_is_not_a_terminal(victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "--victim", str(victim), "--attack", "knockoff", "--budget", "30", "--epochs", "1", "--device", "cpu",
                 "--queryset", "digits", "--out", str(tmp_path / "q.json")]) == 0
    assert "\r" not in capsys.readouterr().err


def test_attack_and_sweep_train_adaptive_misinformation_once_from_the_given_root(
    victim: Path, tmp_path: Path, monkeypatch
) -> None:
    import stealguard.data as sgdata
    from stealguard.defenses import misinformation

    trained: list[str] = []
    roots: list[object] = []
    original_train, original_load = misinformation.train_misinformation_model, sgdata.load_dataset

    def counting_train(*args, **kwargs):
        trained.append("once")
        kwargs["epochs"] = 1
        return original_train(*args, **kwargs)

    def recording_load(name, *args, **kwargs):
        roots.append(kwargs.get("root"))
        return original_load(name, *args, **kwargs)

    monkeypatch.setattr(misinformation, "train_misinformation_model", counting_train)
    monkeypatch.setattr(sgdata, "load_dataset", recording_load)
    import shutil

    own_victim = tmp_path / "victim"
    shutil.copytree(victim, own_victim, ignore=shutil.ignore_patterns("misinformation"))
    root = tmp_path / "data-root"
    root.mkdir()
    common = ["--victim", str(own_victim), "--attack", "knockoff", "--budget", "20", "--epochs", "1", "--device", "cpu",
              "--queryset", "digits", "--data-root", str(root), "--quiet"]
    assert main(["attack", *common, "--defense", "adaptive_misinformation", "--out", str(tmp_path / "a.json")]) == 0
    assert main(["attack", *common, "--defense", "adaptive_misinformation", "--out", str(tmp_path / "b.json")]) == 0
    assert main(["sweep", *common, "--defense", "adaptive_misinformation", "--out", str(tmp_path / "s")]) == 0
    assert trained == ["once"]
    assert roots and all(str(r) == str(root) for r in roots)


@pytest.mark.parametrize(
    ("argv", "blocked", "extra"),
    [
        (["serve", "--victim", "VICTIM"], "fastapi", "serve"),
        (["train", "--dataset", "digits", "--arch", "mlp", "--out", "OUT", "--dp", "noise_multiplier=1.0,max_grad_norm=1.0"], "opacus", "dp"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(
    victim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, argv: list[str], blocked: str, extra: str
) -> None:
    import sys

    importers = ("stealguard.serve.app", "stealguard.serve.protocol")
    for name in [m for m in sys.modules if m == blocked or m.startswith(blocked + ".") or m in importers]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, blocked, None)
    argv = [str(victim) if a == "VICTIM" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"pip install 'stealguard[{extra}]'" in err and blocked in err


def test_attack_param_with_a_spec_value_keeps_its_commas() -> None:
    from stealguard.cli import _key_values

    assert _key_values(["invert=dcp:tau=0.8,beta=0.3", "epochs=2,train_on=argmax"]) == {
        "invert": "dcp:tau=0.8,beta=0.3", "epochs": 2, "train_on": "argmax",
    }
    assert _key_values(["invert=mad"]) == {"invert": "mad"}


def test_python_dash_m_runs_the_command_line() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "stealguard", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "usage: stealguard" in done.stdout
