"""The README's first code example runs as printed: its listed defenses are the registry's, and MAD's answer keeps its promises."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_defenses_example_prints_what_its_comment_says() -> None:
    code = re.search(r"### Defenses\n\n```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    listed = ast.literal_eval(re.search(r"print\(D\.names\(\)\)\s+# (\[.*\])", code).group(1))
    printed = io.StringIO()
    namespace: dict = {}
    torch.manual_seed(0)
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (the README's own example, run as documented)
    assert ast.literal_eval(printed.getvalue().strip()) == listed
    perturbed, probs = namespace["perturbed"], namespace["probs"]
    assert perturbed.shape == (8, 10)
    assert torch.allclose(perturbed.sum(dim=1), torch.ones(8), atol=1e-6) and bool((perturbed >= 0).all())
    assert float((perturbed - probs).abs().sum(dim=1).max()) <= 0.5 + 1e-6


def test_the_runspec_example_runs_and_prints_its_result(tmp_path: Path, monkeypatch) -> None:
    section = README.read_text().split("### Runs as values, grids on Ray", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102  (the README's own example, run as documented)
    attacker, defender, defense_seed = printed.getvalue().split()
    assert 0.0 <= float(attacker) <= 1.0 and 0.5 < float(defender) <= 1.0
    assert int(defense_seed) != 0
    assert any((tmp_path / "runs" / "victims").iterdir())


def test_the_defenses_table_has_a_row_for_every_registered_defense() -> None:
    import stealguard.defenses as D

    section = README.read_text().split("### Defenses", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)(?::[^`]*)?` \|", section, re.MULTILINE)
    assert set(rows) == set(D.names())


def test_the_measured_numbers_are_the_committed_rows() -> None:
    results = README.parent / "benchmarks" / "results"
    text = " ".join(README.read_text().split())
    paragraph = text[text.index("What these commands measured") :].split("`benchmarks/README.md` has the commands", 1)[0]
    none = json.loads((results / "readme" / "knockoff-none.json").read_text())
    mad = json.loads((results / "readme" / "knockoff-mad.json").read_text())
    victim = json.loads((README.parent / "benchmarks" / "victims" / "mnist-lenet" / "card.json").read_text())
    runs = results / "attack-accuracy" / "budget-10000"
    attacks = {name: json.loads((runs / f"{name}-none-10000.json").read_text()) for name in ("jbda", "jb_self", "jb_top3", "knockoff-adaptive")}

    def pct(fraction: float) -> str:
        return f"{100 * fraction:.2f}%"

    expected = [
        f"replica with {pct(none['attacker_accuracy'])} accuracy (fidelity {pct(none['fidelity'])})",
        f"`benchmarks/victims/mnist-lenet`, {pct(victim['test_accuracy'])} test accuracy",
        f"and {pct(mad['attacker_accuracy'])} (fidelity {pct(mad['fidelity'])}) behind `mad:epsilon=0.5`",
        f"keep the defender's {pct(mad['defender_accuracy'])} accuracy (mean L1 distortion {mad['l1_mean']:.2f})",
        (f"JBDA reaches {pct(attacks['jbda']['attacker_accuracy'])}, JB-self {pct(attacks['jb_self']['attacker_accuracy'])}, "
         f"JB-top3 {pct(attacks['jb_top3']['attacker_accuracy'])} and adaptive Knockoff {pct(attacks['knockoff-adaptive']['attacker_accuracy'])}"),
    ]
    for phrase in expected:
        assert phrase in paragraph, phrase
    assert none["budget"] == mad["budget"] == 10000 and all(r["budget"] == 10000 and r["attack_params"]["epochs"] == 30 for r in attacks.values())
    numbers = re.findall(r"\d+\.\d+", paragraph.replace("mad:epsilon=0.5", ""))
    assert len(numbers) == 2 * 2 + 1 + 2 + 4, f"a number in the paragraph that no phrase checks: {numbers}"


def _flat_readme() -> str:
    return " ".join(README.read_text().split())


def test_the_digits_dp_and_int8_numbers_are_the_committed_rows() -> None:
    import csv

    from stealguard import data

    with (README.parent / "benchmarks" / "results" / "readme" / "victims.csv").open(newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    text = _flat_readme()

    def pct1(model: str) -> str:
        return f"{100 * float(rows[model]['test_accuracy']):.1f}%"

    dp = "; ".join(
        f"{pct1(f'dp-{noise}')} at noise {noise} (epsilon {float(rows[f'dp-{noise}']['epsilon']):.2g})" for noise in ("0.5", "1.1", "2.0")
    )
    assert f"{pct1('float')} test accuracy without DP; {dp}." in text
    test_size = len(data.load_dataset("digits", split="test").tensors()[1])
    int8 = rows["int8"]
    assert (f"{test_size} test images; the same script and rows): {100 * float(int8['float_test_accuracy']):.2f}% float, "
            f"{100 * float(int8['test_accuracy']):.2f}% int8.") in text


def test_the_cifar10_victim_numbers_are_the_committed_cards() -> None:
    victims = README.parent / "benchmarks" / "results" / "dcp-cpu" / "victims"
    float_card = json.loads((victims / "cifar10-resnet9" / "card.json").read_text())
    int8_card = json.loads((victims / "cifar10-resnet9-int8" / "card.json").read_text())
    assert int8_card["quantization"]["float_test_accuracy"] == float_card["test_accuracy"]
    assert (f"**{100 * float_card['test_accuracy']:.2f}%** float and **{100 * int8_card['test_accuracy']:.2f}%** int8 test accuracy"
            in _flat_readme())


def test_the_thread_scaling_numbers_are_the_committed_rows() -> None:
    import csv

    with (README.parent / "benchmarks" / "results" / "latency" / "thread_scaling.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    last = [row for row in rows if row["run"] == max(r["run"] for r in rows)]
    two = {row["job"]: row for row in last if row["threads"] == "2"}
    expected = (f"(load average {float(last[0]['load1']):.1f}) a LeNet SGD step took {float(two['train']['vs_1_thread']):.1f}x longer "
                f"and a batch-1 LeNet inference {float(two['infer']['vs_1_thread']):.0f}x longer with 2 threads than with 1")
    assert expected in _flat_readme()


def test_the_headline_reading_is_the_committed_verdict(monkeypatch) -> None:
    """The sentence above the generated headline: which defenses keep under one point against the Adam-trained inverter."""
    monkeypatch.syspath_prepend(str(README.parent / "benchmarks"))
    import adaptive_verdict

    from report import verdict

    cells = adaptive_verdict.cells()
    (family,) = [family for family in adaptive_verdict.LEARNERS if "mnist-adam" in family]
    rows = {row["defense_label"]: row for row in verdict.across_learners(cells, family)}
    under = ("mad:epsilon=0.5", "mad_argmax:epsilon=0.5", "reverse_sigmoid:beta=0.3", "dcp:tau=0.8,beta=0.3", "dcp:variant=authors,beta=0.5")
    assert all(rows[label]["best"].startswith("invert-") and rows[label]["best"].endswith("@adam") for label in under)
    assert max(rows[label]["best_protection"][0] for label in under) < 0.01
    keyed = max((label for label in rows if label.startswith("mad_keyed:")), key=lambda label: float(label.split("=")[1]))
    assert min(rows[label]["best_protection"][0] for label in ("adaptive_misinformation:tau=0.8", keyed)) > 0.01
    assert ("against an Adam-trained attacker that inverts the answers, MAD, MAD-argmax, reverse sigmoid and DCP keep under one "
            "point of its accuracy on MNIST; adaptive misinformation and `mad_keyed` at its largest budget keep more.") in _flat_readme()
    (fashion_family,) = [family for family in adaptive_verdict.LEARNERS if "fashionmnist-adam" in family]
    fashion = [row for row in verdict.across_learners(cells, fashion_family) if row["qualifies"]]
    assert fashion and all(row["best_protection"][0] - row["best_protection"][1] <= 0 for row in fashion)
    halves = [100 * row["best_protection"][1] for row in fashion]
    sgd = verdict.undefended_attackers(cells, "fashionmnist")
    more = verdict.welch_interval(verdict.undefended_attackers(cells, "fashionmnist-adam")["naive"], sgd[verdict.strongest(sgd)])
    assert (f"On Fashion-MNIST, where the Adam-trained attacker steals {100 * more[0]:.2f} ± {100 * more[1]:.2f} points more than the "
            "SGD-trained ones, no defense shows protection left within one point of defender loss against the best attacker over "
            f"both learners, but with three seeds the intervals' half-widths are {min(halves):.0f} to {max(halves):.0f} points") in _flat_readme()


def test_the_code_facts_quoted_beside_the_numbers() -> None:
    """The adaptive-misinformation argmax threshold, resnet9's size and the CIFAR-10 halves, computed."""
    import inspect

    from stealguard import models
    from stealguard.defenses.adaptive_misinformation import AdaptiveMisinformation, blend_argmax_threshold

    text = _flat_readme()
    defaults = inspect.signature(AdaptiveMisinformation.__init__).parameters
    threshold = blend_argmax_threshold(tau=defaults["tau"].default, nu=defaults["nu"].default)
    assert f"(≈ {threshold:.3f} at the default `tau = {defaults['tau'].default}`)" in text
    size = sum(p.numel() for p in models.create("resnet9", input_shape=(3, 32, 32), num_classes=10).parameters())
    assert f"ResNet-9 at half width ({size / 1e6:.1f} M parameters)" in text
    card = json.loads((README.parent / "benchmarks" / "results" / "dcp-cpu" / "victims" / "cifar10-resnet9" / "card.json").read_text())
    half = card["train"]["train_size"]
    assert f"({half:,} + {half:,} images for CIFAR-10)" in text and f"for twice the steps on {half:,} images" in text
    int8 = json.loads((README.parent / "benchmarks" / "results" / "dcp-cpu" / "victims" / "cifar10-resnet9-int8" / "card.json").read_text())
    assert f"--data-root data`, {int8['quantization']['calibration_size']} calibration images) are committed" in text
