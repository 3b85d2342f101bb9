"""Reproduce the Prediction Poisoning trade-off experiment: every defense against every attack.

Runs a grid config (``benchmarks/configs/*.toml``: victims x attacks x defense settings x seeds)
through :func:`stealguard.harness.ray_grid.run_grid` on an embedded Ray (the same runner as
``stealguard grid CONFIG``, which also joins a cluster with ``--address``): victims are trained once
and cached, every cell not yet in the results file runs, then the report is written from all rows:

    OUT/results.csv      one RunResult row per cell: the spec, both seeds, every metric, the code version
    OUT/failed.csv       cells that failed after their retries, with the error
    OUT/summary.md       seed means per defense setting; the grid's references (default MAD) against
                         its rivals at equal defender accuracy and at equal mean L1 distortion
    OUT/<victim>-<attack>.png   attacker accuracy vs defender accuracy and vs mean L1
    OUT/superseded.csv   (where present) earlier rows of cells that were run again

Usage:

    python benchmarks/reproduce.py --quick                        # digits grid, minutes
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --workers 2
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --victims mnist-lenet --attacks knockoff
    python benchmarks/reproduce.py --config benchmarks/configs/paper.toml --report-only

Interrupt it at any time: finished cells are in the results file and are not run again. On several
machines run ``stealguard grid CONFIG --out OUT --address auto --resume`` and then this script with
``--report-only``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tqdm.auto import tqdm

from stealguard import models
from stealguard.data import parse_dataset_spec
from stealguard.harness.ray_grid import RESULTS_FILE, GridConfig, load_grid, run_grid
from stealguard.models.io import CARD_FILE
from stealguard.provenance import code_version
from stealguard.runspec import Env, Int8Variant, RunResult, RunSpec, VictimSpec

from report.names import Names, defense_of
from report.summary import comparison_of, write_report

HERE = Path(__file__).resolve().parent
QUICK_CONFIG = HERE / "configs" / "quick.toml"


def command_line() -> str:
    return "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def card_differences(card: object, spec: VictimSpec) -> list[str]:
    """How a saved victim's card differs from ``spec`` (architecture, data set, seed, training overrides, int8 settings, DP)."""
    expected = {
        "arch": spec.arch, "dataset": str(parse_dataset_spec(spec.dataset)), "seed": spec.seed,
        "int8": (spec.variant.calibration, spec.variant.seed) if isinstance(spec.variant, Int8Variant) else None,
        "dp": spec.variant.model_dump(exclude={"kind"}) if spec.variant.kind == "dp" else None,
        **{f"train.{key}": value for key, value in spec.train.items()},
    }
    quantization, dp, train = getattr(card, "quantization", None), getattr(card, "dp", None), getattr(card, "train", None) or {}
    found = {
        "arch": card.arch, "dataset": card.dataset, "seed": card.seed,
        "int8": None if quantization is None else (quantization["calibration_size"], quantization["calibration_seed"]),
        "dp": None if dp is None else {key: float(dp[key]) for key in ("noise_multiplier", "max_grad_norm")},
        **{f"train.{key}": train.get(key) for key in spec.train},
    }
    return [f"{key}: card {found[key]!r}, grid {expected[key]!r}" for key in expected if found[key] != expected[key]]


def link_committed_victims(config: GridConfig, config_path: Path, cache: Path) -> list[Path]:
    """Link the victims a config commits (``<victim_cache>/victims/<name>/``, relative to the config) into ``cache``.

    A grid whose victims are committed (the DCP grids' CIFAR-10 resnet9 and its int8 copy) then
    attacks those weights instead of training new ones: each becomes ``<cache>/<VictimSpec.label()>``,
    the folder :func:`stealguard.harness.run.prepare_victim` looks in, as a symbolic link.

    Returns:
        The links made or found in place.

    Raises:
        ValueError: a committed victim whose card is not the config's victim, or a cache entry
            that is neither absent nor that link.
    """
    if config.victim_cache is None:
        return []
    folder = (config_path.parent / config.victim_cache / "victims").resolve()
    links = []
    for name, spec in config.victim_specs().items():
        source = folder / name
        if not (source / CARD_FILE).is_file():
            continue
        differing = card_differences(models.load_card(source), spec)
        if differing:
            raise ValueError(f"committed victim {str(source)!r} is not the grid's victim {name!r} ({'; '.join(differing)})")
        link = cache / spec.label()
        if link.is_symlink() and link.resolve() == source:
            links.append(link)
            continue
        if link.exists() or link.is_symlink():
            raise ValueError(f"{link} exists and is not a link to the committed victim {source}; move it away")
        cache.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source, target_is_directory=True)
        links.append(link)
    return links


def describe(spec: RunSpec, names: Names) -> str:
    """``<victim> <attack> <defense setting> seed <S>``, in the grid's names."""
    return f"{names.victim(spec.victim)} {names.attack(spec.attack)} {defense_of(spec)[1]} seed {spec.seed}"


def print_result(result: RunResult, names: Names) -> None:
    """One ``done`` line on stdout (``FAILED`` on stderr) per finished cell, flushed, so a background
    run's log shows progress; through ``tqdm.write`` so that it does not break the cell bar."""
    where = describe(result.run_spec(), names)
    if result.status != "ok":
        tqdm.write(f"FAILED {where}: {result.error}", file=sys.stderr)
        return
    tqdm.write(
        f"done {where}: attacker acc {result.attacker_accuracy:.4f}, defender acc {result.defender_accuracy:.4f}, "
        f"{result.elapsed_s:.0f} s",
        file=sys.stdout,
    )
    sys.stdout.flush()


def selector(names: Names, args: argparse.Namespace):
    """Accept the specs whose victim name, attack label, defense name or setting and seed were asked for (none asked: all)."""

    def accept(spec: RunSpec) -> bool:
        defense, label = defense_of(spec)
        return (
            (not args.victims or names.victim(spec.victim) in args.victims)
            and (not args.attacks or names.attack(spec.attack) in args.attacks)
            and (not args.defenses or defense in args.defenses or label in args.defenses)
            and (not args.seeds or spec.seed in args.seeds)
        )

    return accept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="grid TOML (default with --quick: configs/quick.toml)")
    parser.add_argument("--quick", action="store_true", help="the digits grid of configs/quick.toml")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/<grid results name>)")
    parser.add_argument("--work", type=Path, default=Path("runs") / "victims", help="cache of trained victims (default runs/victims)")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1, help="cells run side by side (CPUs of the embedded Ray), one torch thread each")
    parser.add_argument("--victims", nargs="*", default=[], help="only these victim names")
    parser.add_argument("--attacks", nargs="*", default=[], help="only these attack labels")
    parser.add_argument("--defenses", nargs="*", default=[], help="only these defense names or settings (dp_sgd: the DP-SGD victims)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[], help="only these seeds")
    parser.add_argument("--report-only", action="store_true", help="run nothing; rewrite summary and plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.config is None:
        if not args.quick:
            parser.error("give --config FILE or --quick")
        args.config = QUICK_CONFIG
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        config = load_grid(args.config)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or HERE / "results" / (config.results or config.name)
    if out.exists() and not out.is_dir():
        print(f"error: --out {str(out)!r} is a file; give a folder", file=sys.stderr)
        return 2
    names = Names.committed(config)
    command = command_line()
    print(f"$ {command}\ncode version {code_version()}; results {out / RESULTS_FILE}; victims cached in {args.work}", flush=True)
    failures = 0
    if not args.report_only:
        try:
            link_committed_victims(config, args.config, args.work)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        env = Env(data_root=args.data_root, device=args.device, progress=not args.quiet, victim_cache=str(args.work))
        outcome = run_grid(
            config, out_dir=out, env=env, resume=True, select=selector(names, args),
            on_result=lambda result: print_result(result, names), ray_init={"num_cpus": args.workers},
        )
        failures = len(outcome.failures)
    if not (out / RESULTS_FILE).is_file():
        print(f"error: no results in {out / RESULTS_FILE}: nothing to report (run the grid without --report-only first)", file=sys.stderr)
        return 2
    references, rivals = comparison_of(config.compare)
    summary = write_report(out / RESULTS_FILE, out, command=command, references=references, rivals=rivals, names=names)
    print(f"wrote {summary} and the plots to {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
