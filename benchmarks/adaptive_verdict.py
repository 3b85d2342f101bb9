"""The adaptive verdict grid's report: cell and summary CSVs, one plot per block, the Markdown tables.

Reads the results tables of the grid blocks (``benchmarks/results/adaptive/grid-<block>/results.csv``,
written by ``benchmarks/adaptive_grid.sh``), and writes, all generated from them:

* ``benchmarks/results/adaptive/verdict-cells.csv``: one row per cell and seed (victim, defense,
  defense_params, attacker, seed, defender_accuracy, attacker_accuracy, fidelity, l1_mean, ...);
* ``benchmarks/results/adaptive/verdict-summary.csv``: one row per setting and attacker, means and 95%
  Student-t half-widths over seeds;
* ``docs/img/adaptive-<block>.png``: attacker against defender accuracy, naive and best adaptive attacker;
* the marked tables of ``docs/adaptive.md`` (per block: headline and all settings) and the README's
  headline tables (the MNIST Knockoff blocks, and every victim and attack side by side, :data:`VIEWS`).

    python benchmarks/adaptive_verdict.py            # write everything
    python benchmarks/adaptive_verdict.py --check    # exit 1 if a CSV or a table is not current
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from stealguard.harness.ray_grid import SUPERSEDED_FILE, GridConfig, load_grid
from stealguard.harness.run_table import RunTable

from report import verdict
from report.doc_tables import sync_marked

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "adaptive"
CELLS, SUMMARY = RESULTS / "verdict-cells.csv", RESULTS / "verdict-summary.csv"
DOC = ROOT.parent / "docs" / "adaptive.md"
README = ROOT.parent / "README.md"
IMAGES = ROOT.parent / "docs" / "img"
HEADLINE_BLOCK = "mnist"
"""The block whose headline table the README quotes."""
BLOCKS = ("mnist", "mnist-adam", "fashionmnist", "fashionmnist-adam", "jbtop3")
"""Blocks in report order."""
LEARNERS = ({"mnist": "sgd", "mnist-adam": "adam"}, {"fashionmnist": "sgd", "fashionmnist-adam": "adam"})
"""Families of blocks that differ only in the attackers' replica training (``{block: learner}``):
the last block's section of each family also takes the best attacker over all of them; the
README's headline takes it over the family of :data:`HEADLINE_BLOCK`."""

VIEWS = {
    "MNIST, Knockoff": LEARNERS[0],
    "Fashion-MNIST, Knockoff": LEARNERS[1],
    "MNIST, JB-top3": {"jbtop3": "sgd"},
}
"""The README's side-by-side table: ``{title: {block: learner}}``, the best attacker over each view's blocks."""


def tables() -> list[Path]:
    """The grid blocks' results tables, in :data:`BLOCKS` order."""
    return [path for block in BLOCKS if (path := RESULTS / f"grid-{block}" / "results.csv").is_file()]


def cells() -> pd.DataFrame:
    """:func:`report.verdict.cell_frame` of :func:`tables`."""
    return verdict.cell_frame(tables())


def configs() -> dict[str, GridConfig]:
    """Each block's committed config (``benchmarks/configs/adaptive-<block>.toml``), in :data:`BLOCKS` order."""
    return {block: load_grid(ROOT / "configs" / f"adaptive-{block}.toml") for block in BLOCKS}


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def superseded_line(block: str) -> str:
    """A sentence on the block's superseded rows (cells run again after their attacker was improved), or ''."""
    table = RunTable(RESULTS / f"grid-{block}" / SUPERSEDED_FILE)
    rows = table.results()
    if not rows:
        return ""
    attackers = sorted({verdict.attacker_of(dict(result.run_spec().attack.params))[0] for result in rows})
    return (
        f" {len(rows)} earlier row(s) of cells run again ({', '.join(attackers)}) are kept in "
        f"`grid-{block}/{SUPERSEDED_FILE}`, not in these tables."
    )


def block_section(frame: pd.DataFrame, block: str, plan: verdict.Planned, progress: str) -> str:
    """The generated section of ``docs/adaptive.md`` for one block (``progress``: :func:`report.verdict.grid_progress`)."""
    return "\n".join([
        progress + superseded_line(block),
        "",
        verdict.baseline_line(frame, block),
        "",
        ("Headline (each defense's setting that leaves the best attacker the least, among those costing the defender "
        "at most one point of accuracy plus the tolerance):"),
        "",
        verdict.headline_table(frame, block, plan),
        "",
        verdict.readout(frame, block, plan),
        "",
        ("All settings (attacker accuracy %, 95% interval over seeds; '± ?' one seed, '(n=2)' two; 'pending': in the "
        "config, not yet run):"),
        "",
        verdict.settings_table(frame, block, plan),
        "",
        f"![{block}](img/adaptive-{block}.png)",
        *(
            line for family in LEARNERS if block == list(family)[-1]
            for line in ("", learners_intro(family), "", verdict.across_learners_table(frame, family, plan), "",
                         verdict.across_learners_readout(frame, family, plan))
        ),
    ])


def learners_intro(family: dict[str, str]) -> str:
    """The sentence before a family's :func:`report.verdict.across_learners_table`."""
    return ("The attacker picks its optimizer: the best attacker over the learners of blocks "
            f"{', '.join(f'`{name}` ({learner})' for name, learner in family.items())}, at the settings all of them met:")


def sections(frame: pd.DataFrame) -> dict[Path, dict[str, str]]:
    """``{page: {marker name: generated text}}`` for every block present (docs/adaptive.md) and the README's headline."""
    out: dict[Path, dict[str, str]] = {DOC: {}}
    grids = configs()
    plan, progress = verdict.planned_attackers(grids), verdict.grid_progress(grids, frame)
    blocks = [block for block in BLOCKS if (frame["block"] == block).any()]
    for block in blocks:
        out[DOC][f"verdict-{block}"] = (
            block_section(frame, block, plan, progress) if verdict.has_baseline(frame, block)
            else f"{progress}\n\nNo result against the undefended victim yet: the protections have no baseline."
        )
    if HEADLINE_BLOCK in blocks:
        family = next(family for family in LEARNERS if HEADLINE_BLOCK in family)
        out[README] = {"adaptive-headline": "\n".join([
            progress, "", learners_intro(family), "", verdict.across_learners_table(frame, family, plan), "",
            verdict.across_learners_readout(frame, family, plan), "",
            ("Side by side, every victim and attack of the grid (protection left against the best attacker over each "
             "view's learners, in points, at the setting that leaves it the least within one point of defender loss; "
             "95% intervals, Bonferroni over the settings chosen from):"), "",
            verdict.views_table(frame, VIEWS), "",
            f"Every strength, with the learner of block `{HEADLINE_BLOCK}` ({family[HEADLINE_BLOCK]}) only:", "",
            verdict.baseline_line(frame, HEADLINE_BLOCK), "", verdict.headline_table(frame, HEADLINE_BLOCK, plan),
            "", verdict.readout(frame, HEADLINE_BLOCK, plan),
        ])}
    return out


def stale(frame: pd.DataFrame) -> list[str]:
    """What is not current: the CSVs and the marked sections."""
    out = []
    for path, expected in ((CELLS, csv_text(frame)), (SUMMARY, csv_text(verdict.summary_frame(frame)))):
        if not path.is_file() or path.read_text() != expected:
            out.append(str(path))
    for page, bodies in sections(frame).items():
        out += [f"{page} ({name})" for name in sync_marked(page, bodies, check=True)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say what is not current (exit 1 if anything)")
    parser.add_argument("--no-plots", action="store_true", help="leave the PNGs as they are")
    args = parser.parse_args(argv)
    frame = cells()
    if args.check:
        out = stale(frame)
        for item in out:
            print(f"not current: {item}", file=sys.stderr)
        return 1 if out else 0
    CELLS.write_text(csv_text(frame))
    SUMMARY.write_text(csv_text(verdict.summary_frame(frame)))
    for page, bodies in sections(frame).items():
        missing = sync_marked(page, bodies, check=False)
        if missing:
            raise ValueError(f"{page} has no markers for {', '.join(missing)}")
    if not args.no_plots:
        for block in BLOCKS:
            if verdict.has_baseline(frame, block):
                verdict.plot_block(frame, block, IMAGES / f"adaptive-{block}.png")
    print(f"{len(frame)} cell rows from {len(tables())} block(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
