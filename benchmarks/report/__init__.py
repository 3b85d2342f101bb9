"""The reports of the paper reproductions: result rows named as the grid configs name them, seed
means (pandas), defenses compared at equal cost, ``summary.md`` and the doc-table syncing.

A plain package of the benchmarks, not of ``stealguard``: the scripts in ``benchmarks/`` import it
as ``report`` (their folder is on ``sys.path``), and so do their tests (``tests/benchmarks``).
Results are :class:`~stealguard.runspec.RunResult` rows in a
:class:`~stealguard.harness.run_table.RunTable`, as ``stealguard grid`` writes them.
"""
