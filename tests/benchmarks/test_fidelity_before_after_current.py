"""docs/fidelity.md's before/after table is generated from the committed rows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_before_after_table_is_current() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import fidelity_before_after
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert fidelity_before_after.sync_doc(check=True), "run: python benchmarks/fidelity_before_after.py --sync-doc"


def test_the_reading_quotes_the_rows() -> None:
    import json

    import pandas as pd

    def setting(params: str) -> str:
        """Knockoff's ``training`` or MAZE's ``variant``: the schedule a cell ran with."""
        parsed = json.loads(params)
        return parsed.get("training") or parsed.get("variant")

    rows = pd.read_csv(BENCHMARKS / "results" / "fidelity" / "before_after.csv")
    rows["setting"] = rows["attack_params"].map(setting)
    knockoff = rows[rows["attack"] == "knockoff"]
    mean = knockoff.groupby(["setting", "defense"])["attacker_accuracy"].mean().mul(100)
    text = " ".join((BENCHMARKS.parent / "docs" / "fidelity.md").read_text().split())
    drop = {setting: mean[setting, "none"] - mean[setting, "mad"] for setting in ("reference", "stealguard")}
    noise = {setting: mean[setting, "none"] - mean[setting, "random_noise"] for setting in ("reference", "stealguard")}
    assert (f"the undefended replica reaches {mean['reference', 'none']:.1f}% ({mean['stealguard', 'none']:.1f}% with Adam), "
            f"and MAD ε 0.5 takes {drop['reference']:.1f} points from it ({drop['stealguard']:.1f} with Adam); the reference "
            f"random noise at the same query L1 takes {noise['reference']:.1f} ({noise['stealguard']:.1f})") in text
    spread = knockoff[knockoff["setting"] == "reference"].groupby("defense")["attacker_accuracy"].agg(lambda v: 100 * (v.max() - v.min())).max()
    assert f"the seed spread of a cell is up to {spread:.1f} points under SGD" in text
    noise_l1 = knockoff.loc[knockoff["defense"] == "random_noise", "l1_mean"].mean()
    low, high = 100 * rows["defender_accuracy"].min(), 100 * rows["defender_accuracy"].max()
    assert f"that noise moves only {noise_l1:.3f} of mass per row" in text and f"accuracy stays at {low:.2f}–{high:.2f}% in every cell" in text
    maze = rows[rows["attack"] == "maze"].set_index("setting")
    assert (f"reaches {100 * maze.loc['reference', 'attacker_accuracy']:.2f}% against {100 * maze.loc['stealguard', 'attacker_accuracy']:.2f}% "
            f"for the earlier one (`variant=stealguard`), {maze['elapsed_s'].max() / 60:.0f} minutes each") in text


def test_the_setup_quotes_the_card_the_calibration_and_the_rows() -> None:
    import json

    import pandas as pd

    rows = pd.read_csv(BENCHMARKS / "results" / "fidelity" / "before_after.csv")
    card = json.loads((BENCHMARKS / "victims" / "mnist-lenet" / "card.json").read_text())
    calibration = json.loads((BENCHMARKS / "results" / "fidelity" / "random_noise_calibration.json").read_text())
    text = " ".join((BENCHMARKS.parent / "docs" / "fidelity.md").read_text().split())
    assert set(rows["victim_accuracy"].round(4)) == {round(card["test_accuracy"], 4)}
    assert f"(`benchmarks/victims/mnist-lenet`, {100 * card['test_accuracy']:.2f}% test accuracy)" in text
    knockoff = rows[rows["attack"] == "knockoff"]
    noise = knockoff[knockoff["defense"] == "random_noise"]
    assert {json.loads(params)["epsilon"] for params in noise["defense_params"]} == {round(calibration["epsilon"], 4)}
    assert abs(calibration["mean_l1"] - calibration["target_l1"]) < 1e-6
    assert (f"calibrated to a mean L1 of {calibration['target_l1']:g} on the victim's answers to {calibration['samples']:,} "
            "Fashion-MNIST images") in text
    (answers,) = set(knockoff["queries_used"])
    assert f"the mean L1 distortion of the {answers:,} answers the attacker received" in text
    mad = knockoff.loc[knockoff["defense"] == "mad", "l1_mean"]
    assert f"(confident rows saturate the sigmoid), MAD {mad.mean():.1f};" in text
    assert set(knockoff.groupby(["attack_params", "defense"])["seed"].nunique()) == {2} and "(two seeds;" in text
