"""The defense-latency tables of benchmarks/README.md and the numbers its reading quotes are the latest
committed run's (benchmarks/latency_table.py, rows in benchmarks/results/latency/)."""

from __future__ import annotations

from types import ModuleType

import latency_table
from report.doc_tables import sync_marked

CHEAP = ("dcp", "reverse_sigmoid", "topk", "rounding", "label_only")


def claims(module: ModuleType) -> dict[str, str]:
    """The numbers the reading of the tables quotes, from the latest runs (formatted as quoted)."""
    rows = module.latest_run(module.TABLES["latency-defenses"][0])
    full = module.latest_run(module.TABLES["latency-mad-full"][0])

    def where(**match: str) -> list[dict[str, str]]:
        return [row for row in rows if all(row[key] == value for key, value in match.items())]

    targeted = [row for row in rows if row["path"] in CHEAP and row["target"].strip()]
    assert targeted and all(row["meets"] == "yes" for row in targeted)
    ratios = [float(row["ratio"]) for row in targeted]
    lenet1 = where(arch="lenet", batch="1")
    floors = [row for row in rows if row["path"] == "mad (last_layer)"]
    assert all(row["meets"] == "yes" for row in floors)
    others = [float(row["vs_floor"]) for row in floors if not (row["arch"] == "lenet" and row["batch"] == "1")]
    speedup = {row["arch"]: row for row in full}
    assert all(row["same_vertex"] == "True" for row in full) and float(speedup["lenet"]["speedup"]) >= 10
    return {
        "cheap_low": f"{min(ratios):.2f}", "cheap_high": f"{max(ratios):.2f}",
        "lenet1_us": f"{float(where(arch='lenet', batch='1', path='undefended')[0]['us_per_query']):.0f}",
        "none_added": f"{float(where(arch='lenet', batch='1', path='none')[0]['added_us']):.0f}",
        "cheap_added_high": f"{max(float(row['added_us']) for row in lenet1 if row['path'] in CHEAP):.0f}",
        "mad_floor_1": f"{float(where(arch='lenet', batch='1', path='mad (last_layer)')[0]['vs_floor']):.2f}",
        "mad_floor_low": f"{min(others):.2f}", "mad_floor_high": f"{max(others):.2f}",
        "speedup_lenet": f"{float(speedup['lenet']['speedup']):.1f}", "speedup_mlp": f"{float(speedup['mlp']['speedup']):.0f}",
        "max_diff": f"{max(float(row['max_abs_diff']) for row in full):.1e}",
        "load": f"{float(full[0]['load_1min_at_start']):.1f}",
    }


def test_the_tables_are_the_latest_committed_runs() -> None:
    assert sync_marked(latency_table.PAGE, latency_table.bodies(), check=True) == [], "run: python benchmarks/latency_table.py"


def test_the_reading_quotes_the_latest_runs() -> None:
    module = latency_table
    text = " ".join(module.PAGE.read_text().split())
    reading = text[text.index("### Reading the table") :].split("- Not targeted:", 1)[0]
    for name in claims(module):
        assert "{" + name + "}" not in reading, f"placeholder {name} left in the page"
    phrases = [
        "the ratios between {cheap_low} and {cheap_high}",
        "undefended call of {lenet1_us} µs",
        "{none_added} µs for `none`",
        "up to {cheap_added_high} µs for the cheap defenses",
        "{mad_floor_1}× the floor on `lenet` at batch 1",
        "between {mad_floor_low} and {mad_floor_high}× in the other cases",
        "{speedup_lenet}× (mlp {speedup_mlp}×)",
        "max abs difference {max_diff}",
        "1-minute load {load} on the 2 cores",
    ]
    values = claims(module)
    for phrase in phrases:
        assert phrase.format(**values) in reading, phrase.format(**values)
