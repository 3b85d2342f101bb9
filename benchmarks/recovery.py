"""How much of the clean posterior an attacker recovers from each defense's answers (adaptive attackers).

For the committed MNIST LeNet victim (``benchmarks/victims/mnist-lenet``) and its MNIST test
set: clean posteriors ``y`` (float32, as the black box serves them), each defense at three
strengths answers ``y~ = D(x, y)`` (float32; built by the harness's ``build_defense`` with
defender seed ``DEFENDER_SEED``, different from any attacker seed; MAD's surrogate is the
harness's random copy of the victim arch with that seed), then ``stealguard.attacks.invert``
recovers ``y^`` with the defense's parameters known (the full spec) and estimated (the name
only: the budget is estimated for the MAD family and ``beta`` for reverse sigmoid; for the others
the name-only inverter assumes the defense's default parameters, marked ``assumed-defaults``). Per row L1 ``||y^ - y||_1``
against the naive attacker's ``||y~ - y||_1``: mean, median and the fraction of rows below 1e-3.

Writes ``benchmarks/results/adaptive/recovery.csv`` and regenerates the marked table in
``docs/adaptive.md`` from it (``--table-only``: only the table, from the committed CSV).

    OMP_NUM_THREADS=1 python benchmarks/recovery.py --data-root ../shared/data
    OMP_NUM_THREADS=1 python benchmarks/recovery.py --families mad mad_keyed   # re-measure some rows
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from stealguard import data as sgdata
from stealguard.attacks.inversion import inverter_from_spec
from stealguard.attacks.inversion import parameters as inverter_parameters
from stealguard.defenses import parse_defense_spec
from stealguard.harness.experiment import build_defense, load_victim

from report.doc_tables import markers, write_section

ROOT = Path(__file__).resolve().parent
VICTIM = ROOT / "victims" / "mnist-lenet"
CSV = ROOT / "results" / "adaptive" / "recovery.csv"
DOC = ROOT.parent / "docs" / "adaptive.md"
SECTION = "recovery-table"
BEGIN, END = markers(SECTION)
DEFENDER_SEED = 1009
EXACT = 1e-3
BATCH = 1000

DEFENSES: dict[str, list[str]] = {
    "mad": ["mad:epsilon=0.1", "mad:epsilon=0.5", "mad:epsilon=1.0"],
    "mad_argmax": ["mad_argmax:epsilon=0.1", "mad_argmax:epsilon=0.5", "mad_argmax:epsilon=1.0"],
    "mad_keyed": ["mad_keyed:epsilon=0.1", "mad_keyed:epsilon=0.5", "mad_keyed:epsilon=1.0"],
    "reverse_sigmoid": ["reverse_sigmoid:beta=0.1", "reverse_sigmoid:beta=0.3", "reverse_sigmoid:beta=0.6"],
    "reverse_sigmoid_keyed": ["reverse_sigmoid_keyed:beta=0.1", "reverse_sigmoid_keyed:beta=0.3",
                              "reverse_sigmoid_keyed:beta=0.6"],
    "dcp": ["dcp:beta=0.3", "dcp:beta=0.6,tau=0.95", "dcp:beta=0.3,epsilon=0.2"],
    "random_noise": ["random_noise:epsilon=0.1,consistent=true", "random_noise:epsilon=0.5,consistent=true",
                     "random_noise:epsilon=1.0,consistent=true"],
    "adaptive_misinformation": ["adaptive_misinformation:tau=0.5", "adaptive_misinformation:tau=0.8",
                                "adaptive_misinformation:tau=0.95"],
    "rounding": ["rounding:decimals=3", "rounding:decimals=2", "rounding:decimals=1"],
    "topk": ["topk:k=5", "topk:k=3", "topk:k=1"],
    "label_only": ["label_only"],
}
ESTIMATED = ("mad", "mad_argmax", "mad_keyed", "reverse_sigmoid")
"""Inverters that estimate a parameter from the answers when the spec gives none (MAD's budget, reverse sigmoid's beta)."""


def attacker_spec(spec: str) -> str:
    """The spec the attacker passes for known parameters: the defense's, minus the defender's secrets."""
    name, params = parse_defense_spec(spec)
    accepted = set(inverter_parameters(name))
    kept = [f"{key}={value}" for key, value in params.items() if key in accepted]
    return name + (":" + ",".join(kept) if kept else "")


def l1_stats(estimate: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    l1 = (estimate.double() - clean).abs().sum(dim=1)
    return {"l1_mean": float(l1.mean()), "l1_median": float(l1.median()), "frac_exact": float((l1 < EXACT).double().mean())}


QUERY_OPTIONS: dict[str, dict[str, str]] = {
    "fashionmnist": {"reverse_sigmoid": "branch=auto", "reverse_sigmoid_keyed": "branch=auto", "dcp": "branch=inner"},
}
"""The attacker's own inverter options for a query set far from the victim's data (the verdict grid's choices)."""


def with_options(spec: str, options: str | None) -> str:
    """``spec`` with the attacker's ``options`` appended (``name:options`` when the spec has no parameters)."""
    if not options:
        return spec
    return f"{spec},{options}" if ":" in spec else f"{spec}:{options}"


def measure(data_root: str, cache: Path, families: list[str], queries: str | None = None) -> pd.DataFrame:
    """Rows of the recovery table; ``queries``: the test images of this data set instead of the victim's own."""
    model, card = load_victim(VICTIM)
    images, _ = sgdata.load_dataset(queries or card.dataset, root=data_root, split="test").tensors()
    with torch.no_grad():
        clean = torch.cat([torch.softmax(model(chunk), dim=1) for chunk in images.split(BATCH)])
    rows = []
    for family in families:
        for spec in DEFENSES[family]:
            defense, _ = build_defense(spec, card=card, seed=DEFENDER_SEED, victim_dir=cache, data_root=data_root)
            answers = torch.cat([defense(x, y) for x, y in zip(images.split(BATCH), clean.split(BATCH))])
            naive = l1_stats(answers, clean)
            options = QUERY_OPTIONS.get(queries or "", {}).get(family)
            for parameters, inverter_spec in (("known", attacker_spec(spec)), ("estimated", family)):
                inverter_spec = with_options(inverter_spec, options)
                inverter = inverter_from_spec(inverter_spec)
                start = time.perf_counter()
                recovered = inverter(answers)
                seconds = time.perf_counter() - start
                estimated = getattr(inverter, "estimated_epsilon", None)
                estimated_beta = getattr(inverter, "estimated_beta", None)
                rows.append({
                    "defense": family, "spec": spec,
                    "parameters": parameters if parameters == "known" or family in ESTIMATED else "assumed-defaults",
                    "inverter": inverter_spec, "estimated_epsilon": estimated, "estimated_beta": estimated_beta, "exact_possible": type(inverter).exact,
                    "rows": int(clean.shape[0]),
                    **{f"naive_{key}": value for key, value in naive.items()},
                    **l1_stats(recovered, clean), "invert_seconds": round(seconds, 3),
                })
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame) -> str:
    """The Markdown recovery table (one line per defense strength and parameter knowledge)."""
    lines = [
        "| defense spec | attacker knows | naive L1 mean | naive L1 median | recovered L1 mean | recovered L1 median | rows L1 < 1e-3 (naive -> recovered) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in frame.itertuples():
        knows = row.parameters
        if not pd.isna(row.estimated_epsilon):
            knows = f"estimated (eps ~ {row.estimated_epsilon:.4f})"
        elif not pd.isna(getattr(row, "estimated_beta", float("nan"))):
            knows = f"estimated (beta ~ {row.estimated_beta:.4f})"
        lines.append(
            f"| `{row.spec}` | {knows} | {row.naive_l1_mean:.4f} | {row.naive_l1_median:.2e} | {row.l1_mean:.4f} | "
            f"{row.l1_median:.2e} | {100 * row.naive_frac_exact:.1f}% -> {100 * row.frac_exact:.1f}% |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cache", type=Path, default=Path("runs/recovery-cache"),
                        help="where the adaptive-misinformation model is trained once and kept (default runs/recovery-cache)")
    parser.add_argument("--table-only", action="store_true", help="regenerate the doc table from the committed CSV")
    parser.add_argument("--families", nargs="+", choices=list(DEFENSES), default=None,
                        help="re-measure only these defenses, replacing their rows in the existing CSV (default: all)")
    parser.add_argument("--queries", choices=sorted(QUERY_OPTIONS), default=None,
                        help="measure on this data set's test images (the Knockoff attacker's queries) instead of the "
                             "victim's own: rows in recovery-QUERIES.csv, table under its own marker")
    args = parser.parse_args()
    csv_path, section = CSV, SECTION
    if args.queries:
        csv_path = CSV.with_name(f"recovery-{args.queries}.csv")
        section = f"recovery-{args.queries}-table"
    if args.table_only:
        frame = pd.read_csv(csv_path)
    else:
        args.cache.mkdir(parents=True, exist_ok=True)
        families = args.families or list(DEFENSES)
        fresh = measure(args.data_root, args.cache, families, args.queries)
        if args.families and csv_path.exists():
            kept = pd.read_csv(csv_path)
            frame = pd.concat([kept[~kept["defense"].isin(families)], fresh])
            order = {name: i for i, name in enumerate(DEFENSES)}
            frame = frame.sort_values("defense", key=lambda col: col.map(order), kind="stable").reset_index(drop=True)
        else:
            frame = fresh
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv_path, index=False)
    if DOC.exists():
        write_section(DOC, section, table(frame))
    print(table(frame))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
