"""``stealguard`` command line: a thin argparse layer over :mod:`stealguard.harness`.

Subcommands::

    stealguard train  --dataset NAME --arch NAME --out DIR [--epochs N] [--lr X] [--dp noise_multiplier=S,max_grad_norm=C] ...
    stealguard attack --victim DIR --attack NAME --budget N --out FILE.json [--defense SPEC] ...
    stealguard attack --target URL --attack NAME --budget N --out FILE.json [--dataset NAME] ...
    stealguard attack ... --save-transfer FILE.safetensors          (keep every query and raw answer)
    stealguard attack --transfer FILE.safetensors --attack NAME [--budget N] [--victim DIR] --out FILE.json  (no query)
    stealguard attack ... --budgets 1000,5000,10000 --out DIR       (one query run, a replica per prefix)
    stealguard sweep  --victim DIR --attack NAME --queryset NAME --budget N --defense SPEC [--defense SPEC ...] --out DIR
    stealguard demo   [--out DIR] [--seed S] [--device D]
    stealguard grid   CONFIG.toml [--out DIR] [--address ADDR] [--resume]
    stealguard serve  --victim DIR [--defense SPEC] [--host H] [--port P] [--workers N] [--keys FILE] ...
    stealguard keygen --keys FILE --name NAME [--quota N] [--rate R] [--burst B]
    stealguard quantize --victim DIR --out DIR [--calibration N] [--seed S] [--data-root DIR]

A defense SPEC is ``name[:key=value,key=value]``, e.g. ``mad:epsilon=0.5,norm=l1``.
Results go to stdout and files, progress bars to stderr. Every bad argument (unknown
name, out-of-range value, missing files, unparsable spec) ends the program with exit
status 2 and one line ``stealguard: error: ...`` on stderr; a run that fails on its own
(training diverged) ends with status 1 and one such line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from stealguard import __version__
from stealguard.blackbox import BudgetExceededError
from stealguard.defenses.spec import parse_defense_spec
from stealguard.serve.errors import RemoteError

PROG = "stealguard"
EXTRAS = {
    "fastapi": "serve", "starlette": "serve", "uvicorn": "serve", "httpx": "serve", "psycopg": "serve",
    "opacus": "dp", "matplotlib": "plots", "ray": "grid", "psutil": "grid", "pandas": "grid", "art": "art",
}
"""Which extra of the package brings each optional dependency (``pip install 'stealguard[EXTRA]'``)."""
USAGE_ERROR = 2
RUN_FAILED = 1


class UsageError(Exception):
    """A command-line argument argparse rejected."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _one_line(message: str) -> str:
    """Fold a multi-line message into one line (``a:\\n b\\n c`` -> ``a: b; c``)."""
    parts = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not parts:
        return "unknown error"
    out = parts[0]
    for part in parts[1:]:
        out += (" " if out.endswith(":") else "; ") + part
    return out


def _fail(message: object) -> int:
    print(f"{PROG}: error: {_one_line(str(message))}", file=sys.stderr)
    return USAGE_ERROR


def _key_values(items: Sequence[str]) -> dict[str, Any]:
    """``["epochs=5", "train_on=argmax"]`` -> ``{"epochs": 5, "train_on": "argmax"}`` (values typed like specs).

    An item may hold several ``key=value`` pairs separated by commas, except when its value is a
    spec (contains ``:``): ``invert=dcp:tau=0.8,beta=0.3`` is the one parameter ``invert``.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key.strip().isidentifier() and ":" in value:
            params[key.strip()] = value.strip()
            continue
        _, parsed = parse_defense_spec("param:" + item)
        if not parsed:
            raise ValueError(f"--attack-param {item!r} must look like key=value")
        params.update(parsed)
    return params


ATTACK_FLAGS = ("epochs", "train_on", "repeat", "replica_arch", "optimizer", "lr", "policy")
"""Attack parameters with a flag of their own; ``--attack-param`` reaches the others."""


def _attack_params(args: argparse.Namespace) -> dict[str, Any]:
    params = _key_values(args.attack_param)
    for key in ATTACK_FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            params[key] = value
    return params


def _dp_params(text: str | None) -> dict[str, Any] | None:
    """``"noise_multiplier=1.1,max_grad_norm=1"`` -> ``{"noise_multiplier": 1.1, "max_grad_norm": 1}`` (None stays None)."""
    if text is None:
        return None
    try:
        _, params = parse_defense_spec("dp:" + text)
    except ValueError as err:
        raise ValueError(f"--dp {text!r}: {err}") from None
    if not params:
        raise ValueError(f"--dp {text!r} must look like noise_multiplier=S,max_grad_norm=C[,delta=D]")
    return params


def _check_out(path: Path, *, kind: str, overwrite: bool) -> None:
    """Refuse ``--out`` before any work: a file where a folder is due (or the reverse), or an earlier result without ``--overwrite``.

    Raises:
        ValueError: the message names the path and the way out.
    """
    if kind == "file":
        if path.is_dir():
            raise ValueError(f"--out {str(path)!r} is a folder; give a file name for the result JSON")
        if path.exists() and not overwrite:
            raise ValueError(f"--out {str(path)!r} exists; pass --overwrite to replace it")
        if path.parent.exists() and not path.parent.is_dir():
            raise ValueError(f"--out {str(path)!r}: {str(path.parent)!r} is not a folder")
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f"--out {str(path)!r} is not empty; pass --overwrite to replace what is there")


def _cmd_train(args: argparse.Namespace) -> int:
    from stealguard.harness import train_victim

    _check_out(args.out, kind="folder", overwrite=args.overwrite)
    _, card = train_victim(
        dataset=args.dataset,
        data_root=args.data_root,
        arch=args.arch,
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        out=args.out,
        progress=not args.quiet,
        download=args.download,
        dp=_dp_params(args.dp),
        augment={"auto": None, "on": True, "off": False}[args.augment],
        label_smoothing=args.label_smoothing,
    )
    if card.dp is not None:
        epsilon = "inf" if card.dp["epsilon"] is None else f"{card.dp['epsilon']:.4g}"
        print(
            f"trained {card.arch} on {card.dataset} with DP-SGD (noise_multiplier {card.dp['noise_multiplier']:g}, "
            f"max_grad_norm {card.dp['max_grad_norm']:g}): test accuracy {card.test_accuracy:.4f}, "
            f"epsilon {epsilon} at delta {card.dp['delta']:g}; saved to {args.out}"
        )
        return 0
    print(f"trained {card.arch} on {card.dataset}: test accuracy {card.test_accuracy:.4f}; saved to {args.out}")
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from stealguard.harness import format_table, load_victim, run_attack, write_json
    from stealguard.harness.experiment import default_queryset

    if args.transfer is not None:
        return _attack_offline(args)
    budgets = _budgets(args)
    _check_out(args.out, kind="folder" if budgets else "file", overwrite=args.overwrite)
    if args.save_transfer is not None:
        _check_out_file(args.save_transfer, "--save-transfer", overwrite=args.overwrite)
    if args.target is not None:
        if budgets:
            raise ValueError("--budgets cannot be used with --target; save the query run with --save-transfer PATH, "
                             "then train the curve offline with --transfer PATH --budgets LIST")
        return _attack_remote(args)
    if args.victim is None:
        raise ValueError("attack needs --victim DIR (in-process), --target URL (a `stealguard serve` service) or --transfer PATH")
    if args.dataset is not None:
        raise ValueError("--dataset is for --target and --transfer only; in-process attacks evaluate on the victim's data set")
    if budgets:
        return _attack_budgets(args, budgets)
    from stealguard.harness.experiment import queryset_spec

    _, card = load_victim(args.victim)
    queryset = args.queryset if args.queryset is not None else default_queryset(card.dataset)
    recorder: list[Any] | None = [] if args.save_transfer is not None else None
    result = run_attack(
        victim=args.victim,
        defense=args.defense,
        attack=args.attack,
        attack_params=_attack_params(args),
        queryset=queryset,
        data_root=args.data_root,
        budget=args.budget,
        seed=args.seed,
        defense_seed=args.defense_seed,
        device=args.device,
        progress=not args.quiet,
        download=args.download,
        recorder=recorder,
    )
    write_json(result, args.out)
    print(format_table([result]))
    print(f"wrote {args.out}")
    if recorder is not None:
        _save_transfer(args, recorder, result, queryset_spec(queryset, card.dataset))
    return 0


def _budgets(args: argparse.Namespace) -> tuple[int, ...] | None:
    """``--budgets`` parsed (None without it); ``--budget`` and ``--budgets`` exclude each other, one is needed."""
    from stealguard.harness.budgets import parse_budgets

    if args.budgets is not None and args.budget is not None:
        raise ValueError("give --budget N or --budgets LIST, not both (--budgets queries once at its largest budget)")
    if args.budgets is None and args.budget is None and getattr(args, "transfer", None) is None:
        raise ValueError(f"{args.command} needs --budget N or --budgets LIST")
    return None if args.budgets is None else parse_budgets(args.budgets)


def _check_out_file(path: Path, flag: str, *, overwrite: bool) -> None:
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {str(path)!r} exists; pass --overwrite to replace it")


def _save_transfer(args: argparse.Namespace, recorder: list[Any], result: dict[str, Any], queryset: str | None) -> None:
    from stealguard.attacks.transfer import save_transfer
    from stealguard.harness.budgets import transfer_of

    transfer = transfer_of(recorder, result, queryset=queryset)
    save_transfer(transfer, args.save_transfer)
    print(f"wrote the transfer set ({transfer.num_queries} queries) to {args.save_transfer}")


def _attack_budgets(args: argparse.Namespace, budgets: tuple[int, ...]) -> int:
    """``attack --victim DIR --budgets LIST``: one query run at the largest budget, one RunResult row per budget."""
    from stealguard.harness import format_table, write_json
    from stealguard.harness.budgets import (
        CURVE_CSV,
        CURVE_JSON,
        CURVE_PNG,
        plot_budget_curve,
        run_budgets,
    )
    from stealguard.harness.run_table import RunTable
    from stealguard.runspec import AttackSpec, Env, RunSpec

    spec = RunSpec(
        victim=str(args.victim), defense=args.defense, attack=AttackSpec(name=args.attack, params=_attack_params(args)),
        queryset=args.queryset, budget=budgets[-1], seed=args.seed, defense_seed=args.defense_seed,
    )
    env = Env(
        data_root=None if args.data_root is None else str(args.data_root), download=args.download, device=args.device,
        progress=not args.quiet, threads=None,
    )
    results = run_budgets(spec, env, budgets=budgets, save_transfer=args.save_transfer)
    table = RunTable(args.out / CURVE_CSV)
    table.path.unlink(missing_ok=True)
    for result in results:
        table.append(result)
    rows = [result.to_row() for result in results]
    write_json(rows, args.out / CURVE_JSON)
    plot_budget_curve(rows, args.out / CURVE_PNG, title=f"{args.attack}, one query run of {budgets[-1]}")
    print(format_table(rows, columns=(("budget", "budget"), ("queries_used", "queries"), ("attacker_accuracy", "attacker acc"),
                                      ("fidelity", "fidelity"))))
    if args.save_transfer is not None:
        print(f"wrote the transfer set to {args.save_transfer}")
    print(f"wrote {CURVE_CSV}, {CURVE_JSON} and {CURVE_PNG} to {args.out}")
    return 0


def _attack_offline(args: argparse.Namespace) -> int:
    """``attack --transfer PATH``: train replicas from a saved transfer set, no query."""
    from stealguard.harness import format_table, write_csv, write_json
    from stealguard.harness.budgets import (
        CURVE_CSV,
        CURVE_JSON,
        CURVE_PNG,
        OFFLINE_COLUMNS,
        plot_budget_curve,
        train_offline,
    )

    if args.target is not None or args.save_transfer is not None:
        raise ValueError("--transfer trains offline: it takes neither --target nor --save-transfer")
    if args.defense != "none":
        raise ValueError("--transfer trains offline: the defense is the one recorded in the transfer set; drop --defense")
    budgets = _budgets(args)
    _check_out(args.out, kind="folder" if budgets else "file", overwrite=args.overwrite)
    params = _attack_params(args)
    rows = train_offline(
        transfer=args.transfer, budgets=budgets if budgets else (None if args.budget is None else [args.budget]),
        attack=args.attack, attack_params={k: v for k, v in params.items() if k != "replica_arch"}, queryset=args.queryset,
        dataset=args.dataset, victim=args.victim, data_root=args.data_root, replica_arch=params.get("replica_arch"),
        seed=args.seed, device=args.device, progress=not args.quiet, download=args.download,
    )
    columns = (("budget", "budget"), ("queries_used", "queries"), ("attacker_accuracy", "attacker acc"), ("fidelity", "fidelity"))
    print(format_table(rows, columns=columns))
    if not budgets:
        write_json(rows[0], args.out)
        print(f"wrote {args.out}")
        return 0
    write_csv(rows, args.out / CURVE_CSV, columns=OFFLINE_COLUMNS)
    write_json(rows, args.out / CURVE_JSON)
    plot_budget_curve(rows, args.out / CURVE_PNG, title=f"{args.attack} trained offline on {args.transfer.name}")
    print(f"wrote {CURVE_CSV}, {CURVE_JSON} and {CURVE_PNG} to {args.out}")
    return 0


def _attack_remote(args: argparse.Namespace) -> int:
    import json

    from stealguard.harness import write_json
    from stealguard.harness.experiment import run_remote_attack

    if args.victim is not None:
        raise ValueError("give --victim or --target, not both")
    if args.defense != "none":
        raise ValueError("--defense is chosen by the service; it cannot be set with --target")
    params = _attack_params(args)
    recorder: list[Any] | None = [] if args.save_transfer is not None else None
    result = run_remote_attack(
        target=args.target,
        api_key=args.api_key,
        attack=args.attack,
        attack_params={k: v for k, v in params.items() if k != "replica_arch"},
        queryset=args.queryset if args.queryset is not None else args.dataset,
        dataset=args.dataset,
        replica_arch=params.get("replica_arch"),
        data_root=args.data_root,
        budget=args.budget,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        download=args.download,
        recorder=recorder,
    )
    write_json(result, args.out)
    shown = {k: result[k] for k in ("target", "attack", "queries_used", "attacker_accuracy", "fidelity", "fidelity_note")}
    print(json.dumps(shown, indent=2))
    print(f"wrote {args.out}")
    if recorder is not None:
        from stealguard.harness.experiment import queryset_spec

        given = args.queryset if args.queryset is not None else args.dataset
        dataset = str(result["victim"].get("dataset"))
        _save_transfer(args, recorder, result, None if given is None else queryset_spec(given, dataset))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from stealguard.serve.app import ServeConfig, serve

    config = ServeConfig(
        victim=str(args.victim),
        defense=args.defense,
        data_dir=str(args.data_dir),
        store=args.store,
        keys=None if args.keys is None else str(args.keys),
        quota=args.quota,
        rate=args.rate,
        burst=args.burst,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        body_timeout=args.body_timeout,
        header_timeout=args.header_timeout,
        max_active_requests=args.max_active_requests,
        max_connections=args.max_connections,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        query_log=not args.no_query_log,
        data_root=None if args.data_root is None else str(args.data_root),
    )
    serve(config, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from stealguard.serve.access import add_key

    key = add_key(args.keys, name=args.name, quota=args.quota, rate=args.rate, burst=args.burst)
    print(f"added key {args.name!r} to {args.keys} (only its SHA-256 is stored; this is the only time it is shown):")
    print(key)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from stealguard.harness import format_table, sweep
    from stealguard.harness.tables import TABLE_COLUMNS

    budgets = _budgets(args)
    _check_out(args.out, kind="folder", overwrite=args.overwrite)
    results = sweep(
        victim=args.victim,
        defenses=args.defense,
        attack=args.attack,
        attack_params=_attack_params(args),
        queryset=args.queryset,
        data_root=args.data_root,
        budget=budgets[-1] if budgets else args.budget,
        budgets=budgets,
        seed=args.seed,
        defense_seed=args.defense_seed,
        device=args.device,
        progress=not args.quiet,
        out_dir=args.out,
        download=args.download,
        overwrite=args.overwrite,
    )
    print(format_table([result.to_row() for result in results], columns=(("defense_label", "defense"), *TABLE_COLUMNS[1:])))
    print(f"wrote results.csv, results.json and tradeoff.png{' and budget_curve.png' if budgets else ''} to {args.out}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from stealguard.harness.ray_grid import (
        SUPERSEDED_FILE,
        grid_outcome_line,
        grid_progress,
        load_grid,
        run_grid,
        supersede_cells,
    )
    from stealguard.runspec import Env

    config = load_grid(args.config)
    if args.torch_threads is not None:
        config = config.model_copy(update={"threads": args.torch_threads})
    out = args.out if args.out is not None else Path("runs") / "grid" / (config.results or config.name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a folder for results.csv")
    if args.status:
        print("\n".join(grid_progress(config, out).lines()))
        return 0
    if args.supersede:
        moved = supersede_cells(config, out, args.supersede)
        print(f"moved {moved} row(s) of {', '.join(args.supersede)} to {out / SUPERSEDED_FILE}; --resume runs those cells again")
        return 0
    env = Env(
        data_root=None if args.data_root is None else str(args.data_root), download=args.download, device=args.device,
        progress=not args.quiet, victim_cache=str(args.victim_cache),
    )
    outcome = run_grid(config, out_dir=out, env=env, address=args.address, resume=args.resume, retry_failed=args.retry_failed)
    print(grid_outcome_line(outcome, out))
    return 1 if outcome.failures else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from stealguard.harness import demo, format_table

    started = time.perf_counter()
    threads = 1 if args.torch_threads is None else args.torch_threads
    rows = demo(out_dir=args.out, seed=args.seed, device=args.device, progress=not args.quiet, threads=threads)
    print(format_table(rows))
    print(f"wrote results.csv, results.json, tradeoff.png and victim/ to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from stealguard.harness.train import quantize_saved_victim

    if args.out.resolve() == args.victim.resolve():
        raise ValueError(f"--out {args.out} must differ from --victim: the float victim would be overwritten")
    _, card = quantize_saved_victim(
        args.victim, out=args.out, data_root=args.data_root, calibration=args.calibration, seed=args.seed, download=args.download
    )
    record = card.quantization
    print(
        f"quantized {card.arch} on {card.dataset} to int8 ({record['engine']}, {record['calibration_size']} calibration images): "
        f"test accuracy float {record['float_test_accuracy']:.4f}, int8 {record['int8_test_accuracy']:.4f}; "
        f"runs on the CPU only; saved to {args.out}"
    )
    return 0


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``--threads auto``: half the usable cores, at least 1 (1 on a 2-core machine).

    torch's own default (one intra-op thread per core) oversubscribes a machine that runs
    anything else; measured with ``benchmarks/thread_scaling.py`` on a shared 2-core machine.
    """
    return max(1, usable_cores() // 2)


def _thread_count(text: str) -> int | None:
    """``--threads`` value: a positive integer, or ``auto`` (None)."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _threads_option(parser: argparse.ArgumentParser, *, default_help: str) -> None:
    parser.add_argument(
        "--threads", type=_thread_count, default=None, metavar="N|auto", dest="torch_threads", help=default_help
    )


THREADS_HELP = (
    "torch intra-op threads (default auto: half the usable CPU cores, at least 1; torch's own default, "
    "one per core, oversubscribes a shared machine)"
)


def _common(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (the default when stderr is not a terminal)")
    if data:
        parser.add_argument("--data-root", type=Path, default=None, help="directory holding the data sets")
        parser.add_argument("--download", action="store_true", help="download missing data files where supported")


def _attack_options(parser: argparse.ArgumentParser, *, victim_required: bool = True) -> None:
    parser.add_argument(
        "--victim", type=Path, required=victim_required, default=None, help="victim directory written by `stealguard train`"
    )
    parser.add_argument("--attack", required=True, help="attack name: knockoff, jbda, jb_self, jb_top3, dfme, maze")
    parser.add_argument("--budget", type=int, default=None, help="queries the attacker may send")
    parser.add_argument(
        "--budgets", default=None, metavar="B1,B2,...", help="one query run at the largest budget, a replica trained on "
        "each prefix (query order) and one row per budget; --out is then a folder (results.csv, results.json, budget_curve.png)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="replica training epochs (default: the attack's)")
    parser.add_argument("--policy", default=None, help="knockoff sampling policy: random (default) or adaptive")
    parser.add_argument(
        "--train-on", default=None, help="probs (default) or argmax: train the replica on top-1 labels only"
    )
    parser.add_argument("--repeat", type=int, default=None, help="send every query N times and average the answers")
    parser.add_argument("--replica-arch", default=None, help="replica architecture (default: the victim's)")
    parser.add_argument("--optimizer", default=None, help="replica optimizer, sgd or adam (default: the attack's)")
    parser.add_argument("--lr", type=float, default=None, help="replica learning rate (default: the attack's)")
    parser.add_argument(
        "--attack-param", action="append", default=[], metavar="KEY=VALUE",
        help="extra attack parameter (repeatable); a spec value keeps its commas: invert=dcp:tau=0.8,beta=0.3"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``stealguard`` command."""
    parser = _Parser(prog=PROG, description="Defenses against model stealing, and the attacks to measure them.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    train = commands.add_parser("train", help="train a victim classifier and save it")
    train.add_argument(
        "--dataset",
        required=True,
        help="data set name (digits, mnist, fashionmnist, cifar10, imagefolder, ...), optionally NAME:half=0|1[,seed=S]: "
        "a stratified half of the train split (the attacker queries the other half; the test split stays whole)",
    )
    train.add_argument("--arch", required=True, help="architecture (mlp, lenet, vgg16_bn, resnet18, resnet9, resnet9_w64)")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default per arch)")
    train.add_argument("--lr", type=float, default=None, help="learning rate (default per arch)")
    train.add_argument("--optimizer", default=None, help="sgd or adam (default per arch)")
    train.add_argument("--batch-size", type=int, default=None, help="batch size (default per arch)")
    train.add_argument("--out", type=Path, required=True, help="directory for model.safetensors + card.json")
    train.add_argument("--overwrite", action="store_true", help="replace what a non-empty --out folder holds")
    train.add_argument(
        "--augment",
        choices=("auto", "on", "off"),
        default="auto",
        help="random crop (4-pixel padding) + horizontal flip; auto (default): on for 3-channel images of at least 32x32",
    )
    train.add_argument("--label-smoothing", type=float, default=None, help="label smoothing eps in [0, 1) (default per arch: 0)")
    train.add_argument(
        "--dp",
        default=None,
        metavar="KEY=VALUE,...",
        help="train with DP-SGD (Opacus): noise_multiplier=S,max_grad_norm=C[,delta=D][,accountant=rdp|prv]",
    )
    _common(train)
    _threads_option(train, default_help=THREADS_HELP)
    train.set_defaults(handler=_cmd_train)

    attack = commands.add_parser("attack", help="steal a victim behind a defense and measure both sides")
    _attack_options(attack, victim_required=False)
    attack.add_argument("--target", default=None, metavar="URL", help="attack a `stealguard serve` service instead of --victim")
    attack.add_argument(
        "--api-key", default=os.environ.get("STEALGUARD_API_KEY"), help="key for --target (default $STEALGUARD_API_KEY)"
    )
    attack.add_argument("--dataset", default=None, help="with --target: test data set (default: the one in the model card)")
    attack.add_argument("--queryset", default=None, help="attacker's query data set, NAME or NAME:half=0|1 "
                        "(default: the other half of a half-trained victim's split, else the victim's data set)")
    attack.add_argument("--defense", default="none", metavar="SPEC", help="defense spec NAME[:key=value,...] (default none)")
    attack.add_argument("--defense-seed", type=int, default=None, metavar="S", help="the defender's seed (MAD's surrogate, "
                        "noise); default: a stream derived from --seed, independent of the attacker's")
    attack.add_argument("--save-transfer", type=Path, default=None, metavar="PATH",
                        help="also save the transfer set (every query and raw answer; safetensors) to PATH")
    attack.add_argument("--transfer", type=Path, default=None, metavar="PATH", help="train from a saved transfer set, "
                        "no query (--budget: its first N queries; --victim optional: fidelity against it)")
    attack.add_argument("--out", type=Path, required=True, help="result JSON file")
    attack.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _common(attack)
    _threads_option(attack, default_help=THREADS_HELP)
    attack.set_defaults(handler=_cmd_attack)

    sweep = commands.add_parser("sweep", help="one attack against several defense specs -> CSV + plot")
    _attack_options(sweep)
    sweep.add_argument("--queryset", required=True, help="attacker's query data set")
    sweep.add_argument("--defense", action="append", required=True, metavar="SPEC", help="defense spec (repeatable)")
    sweep.add_argument("--defense-seed", type=int, default=None, metavar="S", help="the defender's seed (MAD's surrogate, "
                       "noise); default: a stream derived from --seed, independent of the attacker's")
    sweep.add_argument("--out", type=Path, required=True, help="output directory")
    sweep.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    _common(sweep)
    _threads_option(sweep, default_help=THREADS_HELP)
    sweep.set_defaults(handler=_cmd_sweep)

    serve = commands.add_parser("serve", help="serve a victim behind a defense over HTTP (FastAPI + uvicorn)")
    serve.add_argument("--victim", type=Path, required=True, help="victim directory written by `stealguard train`")
    serve.add_argument("--defense", default="none", metavar="SPEC", help="defense spec NAME[:key=value,...] (default none)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--keys", type=Path, default=None, help="key file (`stealguard keygen`); default: no keys required")
    serve.add_argument("--data-dir", type=Path, default=Path("serve_data"), help="quota and query-log databases (default serve_data)")
    serve.add_argument(
        "--store", default=None, metavar="URL",
        help="postgresql://user@host:port/db: keep quotas, rate state, query log and replays in PostgreSQL, shared by "
        "servers on several hosts (default: SQLite in --data-dir; password via PGPASSWORD or ~/.pgpass)",
    )
    serve.add_argument("--quota", type=int, default=None, help="without --keys: total queries the server answers")
    serve.add_argument("--rate", type=float, default=None, help="without --keys: queries per second")
    serve.add_argument("--burst", type=float, default=None, help="without --keys: rate-limit bucket size (default max(rate, 1))")
    serve.add_argument("--max-batch", type=int, default=1024, help="most inputs per request (default 1024)")
    serve.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024, help="largest request body (default 32 MiB)")
    serve.add_argument("--body-timeout", type=float, default=30.0, metavar="S", help="seconds a request body may take to arrive (default 30; then 408)")
    serve.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                       help="seconds a connection may take to send a complete request head, from its opening or the last response (default 10; then closed)")
    serve.add_argument("--max-active-requests", type=int, default=64, help="predict requests served at once per process, uploads included (default 64; then 503)")
    serve.add_argument("--max-connections", type=int, default=1000, help="open connections per process (default 1000; then 503 for every request)")
    serve.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker (default 1)")
    serve.add_argument("--no-query-log", action="store_true", help="do not keep the forensic query log")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    serve.add_argument(
        "--data-root", type=Path, default=None, help="data sets, for defenses that train a model on first use (adaptive_misinformation)"
    )
    _common(serve, data=False)
    serve.set_defaults(handler=_cmd_serve)

    keygen = commands.add_parser("keygen", help="create an API key for `stealguard serve --keys FILE`")
    keygen.add_argument("--keys", type=Path, required=True, help="key file (created if absent)")
    keygen.add_argument("--name", required=True, help="the key's name (unique in the file)")
    keygen.add_argument("--quota", type=int, default=None, help="total queries (default unlimited)")
    keygen.add_argument("--rate", type=float, default=None, help="queries per second (default unlimited)")
    keygen.add_argument("--burst", type=float, default=None, help="rate-limit bucket size (default max(rate, 1))")
    keygen.set_defaults(handler=_cmd_keygen)

    demo = commands.add_parser("demo", help="demonstration on the built-in digits data (under a minute on 2 cores)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out)")
    _common(demo, data=False)
    _threads_option(demo, default_help="torch intra-op threads (default 1: the demo's models are tiny)")
    demo.set_defaults(handler=_cmd_demo)

    grid = commands.add_parser("grid", help="run a grid config (victims x attacks x defenses x seeds) on Ray")
    grid.add_argument("config", type=Path, help="grid config (TOML; see stealguard.harness.ray_grid)")
    grid.add_argument("--out", type=Path, default=None, help="results folder (default runs/grid/<the config's results or name>)")
    grid.add_argument("--address", default=None, help="a running Ray cluster (auto, HOST:PORT); default: Ray embedded on this machine")
    grid.add_argument("--resume", action="store_true", help="run only the cells not yet in the results folder")
    grid.add_argument("--retry-failed", action="store_true", help="with --resume: run the cells stored as failed again")
    grid.add_argument("--status", action="store_true", help="only say how many cells of each attack the results folder holds")
    grid.add_argument("--supersede", action="append", metavar="ATTACK", default=None,
                      help="only move the stored rows of this attack name's cells to superseded.csv, so that --resume "
                      "runs them again (repeatable; stop a grid writing there first)")
    grid.add_argument("--victim-cache", type=Path, default=Path("runs/victims"), help="where victims are trained once and kept (default runs/victims)")
    _common(grid)
    _threads_option(grid, default_help="torch intra-op threads of every cell, set by each worker per cell "
                    "(default: the config's threads, 1 unless it says otherwise)")
    grid.set_defaults(handler=_cmd_grid)

    quantize = commands.add_parser("quantize", help="int8-quantize a trained victim (post-training static; runs on the CPU)")
    quantize.add_argument("--victim", type=Path, required=True, help="float victim directory written by `stealguard train`")
    quantize.add_argument("--out", type=Path, required=True, help="directory for the int8 model.safetensors + card.json")
    quantize.add_argument("--calibration", type=int, default=512, help="training images to calibrate on (default 512)")
    quantize.add_argument("--seed", type=int, default=0, help="seed of the calibration draw (default 0)")
    quantize.add_argument("--data-root", type=Path, default=None, help="directory holding the victim's data set")
    quantize.add_argument("--download", action="store_true", help="download missing data files where supported")
    quantize.set_defaults(handler=_cmd_quantize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        return _fail(err)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    if hasattr(args, "quiet") and not sys.stderr.isatty():
        args.quiet = True
    if getattr(args, "torch_threads", 0) != 0 and args.command not in ("demo", "grid"):
        import torch

        torch.set_num_threads(default_threads() if args.torch_threads is None else args.torch_threads)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, BudgetExceededError) as err:
        return _fail(err)
    except RemoteError as err:
        return _fail(err)
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").partition(".")[0])
        if extra is None:
            raise
        return _fail(f"{args.command} needs the {extra!r} extra: pip install 'stealguard[{extra}]' ({err.name} is not installed)")
    except FloatingPointError as err:
        _fail(err)
        return RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
