"""Which preimage a folded defense map's inverter should take, by query distribution.

Reverse sigmoid's per-entry map (and DCP's, which applies it to the rows it is unsure of) is folded:
a served value has up to three preimages. The inverter takes the outermost one (``branch=outer``:
entries near 0 and a top near 1, as a victim gives its own data), the one closest to 1/2
(``branch=inner``: diffuse posteriors, as it gives queries far from its data) or chooses per row
(``branch=auto``). For the committed MNIST LeNet victim (``benchmarks/victims/mnist-lenet``), on
MNIST test images (in distribution) and Fashion-MNIST test images (the Knockoff attacker's queries),
each defense setting with its parameters known: naive and recovered L1 to the clean posterior.

Writes ``benchmarks/results/adaptive/branches.csv`` and the marked table of ``docs/adaptive.md``
(``--table-only``: only the table, from the committed CSV).

    OMP_NUM_THREADS=1 python benchmarks/inversion_branches.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from recovery import BATCH, DEFENDER_SEED, DOC, EXACT, VICTIM, l1_stats

from stealguard import data as sgdata
from stealguard.attacks.inversion import inverter_from_spec
from stealguard.harness.experiment import build_defense, load_victim

from report.doc_tables import markers, write_section

CSV = Path(__file__).resolve().parent / "results" / "adaptive" / "branches.csv"
SECTION = "branches-table"
BEGIN, END = markers(SECTION)
QUERY_SETS = ("mnist", "fashionmnist")
BRANCHES = ("outer", "inner", "auto")
SPECS = (
    "reverse_sigmoid:beta=0.1", "reverse_sigmoid:beta=0.3", "reverse_sigmoid:beta=0.6",
    "dcp:tau=0.8,beta=0.1", "dcp:tau=0.8,beta=0.3", "dcp:tau=0.8,beta=0.6", "dcp:tau=0.8,beta=1.0",
    "dcp:variant=authors,beta=0.2", "dcp:variant=authors,beta=0.5", "dcp:variant=authors,beta=1.0",
)


def measure(data_root: str) -> pd.DataFrame:
    model, card = load_victim(VICTIM)
    rows = []
    for query_set in QUERY_SETS:
        images, _ = sgdata.load_dataset(query_set, root=data_root, split="test").tensors()
        with torch.no_grad():
            clean = torch.cat([torch.softmax(model(chunk), dim=1) for chunk in images.split(BATCH)])
        for spec in SPECS:
            defense, _ = build_defense(spec, card=card, seed=DEFENDER_SEED)
            answers = torch.cat([defense(x, y) for x, y in zip(images.split(BATCH), clean.split(BATCH))])
            naive = (answers.double() - clean.double()).abs().sum(dim=1)
            for branch in BRANCHES:
                recovered = l1_stats(inverter_from_spec(f"{spec},branch={branch}")(answers), clean)
                rows.append({
                    "queries": query_set, "spec": spec, "branch": branch, "rows": int(clean.shape[0]),
                    "perturbed_rows": int((naive > 1e-6).sum()), "naive_l1_mean": float(naive.mean()),
                    "l1_mean": recovered["l1_mean"], "naive_frac_exact": float((naive < EXACT).double().mean()),
                    "frac_exact": recovered["frac_exact"],
                })
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame) -> str:
    """Markdown: per query set and setting, the recovered L1 mean under each branch (best in bold)."""
    lines = [
        "| queries | defense spec (known) | rows perturbed | naive L1 mean | " + " | ".join(f"`{b}` L1 mean" for b in BRANCHES) + " |",
        "|---|---|---|---|" + "---|" * len(BRANCHES),
    ]
    for (queries, spec), group in frame.groupby(["queries", "spec"], sort=False):
        by_branch = group.set_index("branch")
        best = by_branch["l1_mean"].idxmin()
        cells = [f"**{by_branch.loc[b, 'l1_mean']:.4f}**" if b == best else f"{by_branch.loc[b, 'l1_mean']:.4f}" for b in BRANCHES]
        first = group.iloc[0]
        lines.append(
            f"| {queries} | `{spec}` | {first.perturbed_rows} of {first.rows} | {first.naive_l1_mean:.4f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--table-only", action="store_true", help="regenerate the doc table from the committed CSV")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table_only:
        frame = pd.read_csv(CSV)
    else:
        frame = measure(args.data_root)
        CSV.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(CSV, index=False)
    write_section(DOC, SECTION, table(frame))
    print(table(frame))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
