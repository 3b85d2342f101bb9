"""Before/after check of the fidelity changes on real data (docs/fidelity.md, "Before/after on real data").

MNIST LeNet victim (``benchmarks/victims/mnist-lenet``):

* Knockoff at 10,000 Fashion-MNIST queries against ``none``, ``mad:epsilon=0.5`` and the reference random noise
  (``random_noise:space=logit``) at the L1 of MAD (its logit-space epsilon calibrated so that the mean L1
  distortion of the answers to the query set is 0.5), seeds 0 and 1, with the earlier training
  (``training=stealguard``: Adam, cosine, 30 epochs) and the reference one (``training=reference``: SGD,
  momentum 0.5, lr 0.01, 50 epochs);
* MAZE at 100,000 queries with the earlier generator (``variant=stealguard``) and the published one
  (``variant=reference``), seed 0.

Each cell is a :class:`~stealguard.runspec.RunSpec` run by ``stealguard.run``; rows are appended to
``benchmarks/results/fidelity/before_after.csv`` as they finish and a stored key is skipped, so the script
resumes. Two lanes side by side: ``--lane 0 --lanes 2`` and ``--lane 1 --lanes 2`` (one torch thread each).
``--report`` prints the deltas from the stored rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

import stealguard
from stealguard import data as sgdata
from stealguard import defenses, models
from stealguard.harness.run_table import RunTable
from stealguard.runspec import Env, RunSpec

from report.doc_tables import sync_marked

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VICTIM = "benchmarks/victims/mnist-lenet"
"""The victim as the specs name it: relative to the repository root, where :func:`main` runs the cells."""
OUT = HERE / "results" / "fidelity"
TABLE = OUT / "before_after.csv"
CALIBRATION = OUT / "random_noise_calibration.json"
TARGET_L1 = 0.5


def calibrate(data_root: str, *, samples: int = 2000) -> float:
    """The logit-space epsilon of ``random_noise:space=logit`` whose mean L1 on the victim's answers to
    ``samples`` Fashion-MNIST training images is :data:`TARGET_L1` (bisection; the mean L1 grows with epsilon)."""
    if CALIBRATION.is_file():
        return float(json.loads(CALIBRATION.read_text())["epsilon"])
    model, _ = models.load_model(REPO / VICTIM)
    images, _ = sgdata.load_dataset("fashionmnist", root=data_root, split="train").tensors()
    x = images[:samples].float() / 255.0 if images.dtype == torch.uint8 else images[:samples]
    clean = models.predict_proba(model, x, device="cpu").double()

    def mean_l1(epsilon: float) -> float:
        defense = defenses.create("random_noise", space="logit", epsilon=epsilon, seed=0)
        return float((defense(x, clean) - clean).abs().sum(1).mean())

    low, high = 1e-3, 50.0
    for _ in range(40):
        middle = (low * high) ** 0.5
        low, high = (middle, high) if mean_l1(middle) < TARGET_L1 else (low, middle)
    epsilon = (low * high) ** 0.5
    OUT.mkdir(parents=True, exist_ok=True)
    CALIBRATION.write_text(json.dumps({"epsilon": epsilon, "mean_l1": mean_l1(epsilon), "samples": samples,
                                       "target_l1": TARGET_L1, "queryset": "fashionmnist train"}, indent=2) + "\n")
    return epsilon


def specs(epsilon: float) -> list[RunSpec]:
    """Every cell, Knockoff first, MAZE last."""
    out = []
    for training in ("stealguard", "reference"):
        for seed in (0, 1):
            for defense in ("none", "mad:epsilon=0.5", f"random_noise:space=logit,epsilon={epsilon:.6g}"):
                out.append(RunSpec(victim=VICTIM, defense=defense, attack={"name": "knockoff", "params": {"training": training}},
                                   queryset="fashionmnist", budget=10_000, seed=seed))
    for variant in ("stealguard", "reference"):
        out.append(RunSpec(victim=VICTIM, defense="none", attack={"name": "maze", "params": {"variant": variant}},
                           budget=100_000, seed=0))
    return out


def report() -> None:
    frame = RunTable(TABLE).frame()
    if frame.empty:
        print("no rows yet")
        return
    frame["setting"] = [json.loads(p).get("training") or json.loads(p).get("variant") for p in frame.attack_params]
    frame["defense_name"] = frame.defense
    columns = ["attack", "defense_name", "seed", "setting", "attacker_accuracy", "fidelity", "defender_accuracy", "l1_mean", "query_l1_mean", "queries_used"]
    print(frame[columns].sort_values(["attack", "defense_name", "seed", "setting"]).to_string(index=False))


SECTION = "before-after"
"""The marked section of docs/fidelity.md that holds :func:`markdown`."""
DOC = HERE.parent / "docs" / "fidelity.md"


def markdown() -> str:
    """The before/after table: attacker accuracy (%) per seed and its mean, and the mean's drop from
    undefended under the same training (Knockoff) or generator (MAZE), from the stored rows."""
    frame = RunTable(TABLE).frame()
    frame["setting"] = [json.loads(p).get("training") or json.loads(p).get("variant") for p in frame.attack_params]
    lines = [
        "| attack | setting | defense | query L1 | attacker accuracy % (seeds) | mean | drop from none |",
        "|---|---|---|---|---|---|---|",
    ]
    for (attack, setting), group in frame.groupby(["attack", "setting"], sort=False):
        baseline = group[group.defense == "none"].attacker_accuracy.mean()
        for defense, rows in group.groupby("defense_label", sort=False):
            rows = rows.sort_values("seed")
            seeds = " / ".join(f"{100 * a:.2f}" for a in rows.attacker_accuracy)
            mean = rows.attacker_accuracy.mean()
            lines.append(
                f"| {attack} | {setting} | `{defense}` | {rows.query_l1_mean.mean():.3f} | {seeds} | {100 * mean:.2f} | "
                f"{100 * (baseline - mean):.2f} |"
            )
    return "\n".join(lines)


def sync_doc(check: bool = False) -> bool:
    """Write :func:`markdown` into the :data:`SECTION` of docs/fidelity.md (``report.doc_tables.sync_marked``);
    with ``check``, only say whether it is current. False: not current (``check``), or the page has no markers."""
    return not sync_marked(DOC, {SECTION: markdown()}, check=check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--lane", type=int, default=0)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="print the stored rows")
    parser.add_argument("--sync-doc", action="store_true", help="write the table into docs/fidelity.md")
    args = parser.parse_args(argv)
    if args.report:
        report()
        return 0
    if args.sync_doc:
        if not sync_doc():
            print(f"error: {DOC} has no <!-- {SECTION}:begin/end --> markers", file=sys.stderr)
            return 1
        print(markdown())
        return 0
    torch.set_num_threads(1)
    data_root = str(Path(args.data_root).resolve())
    os.chdir(REPO)
    epsilon = calibrate(data_root)
    table = RunTable(TABLE)
    env = Env(data_root=data_root, device="cpu", threads=1)
    for index, spec in enumerate(specs(epsilon)):
        if index % args.lanes != args.lane or spec.key() in table.keys():  # noqa: SIM118  (RunTable has keys(), no __contains__)
            continue
        result = stealguard.run(spec, env)
        table.append(result)
        print(f"done {spec.describe()}: attacker {result.attacker_accuracy:.4f}, {result.elapsed_s:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
