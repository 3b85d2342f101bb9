"""The README's first code example runs as printed: its listed defenses are the registry's, and MAD's answer keeps its promises."""

from __future__ import annotations

import ast
import contextlib
import io
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
