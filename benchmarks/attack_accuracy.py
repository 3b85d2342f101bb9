"""Replica accuracy of the attacks against an undefended (or defended) MNIST LeNet.

Runs ``stealguard train`` (once, if the victim directory is missing) and then one
``stealguard attack`` process per attack, each writing its JSON result; prints every
command before it runs and ends with a Markdown table of the results (budget spent,
replica accuracy, fidelity, time). Usage (2 CPU cores: see benchmarks/README.md for times):

    python benchmarks/attack_accuracy.py --data-root ../shared/data --budget 50000 --out runs/attacks-50k
    python benchmarks/attack_accuracy.py --budget 10000 --epochs 30 --attacks jbda knockoff-adaptive
    python benchmarks/attack_accuracy.py --budget 1000000 --attacks dfme maze --defense mad:epsilon=0.5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ATTACKS: dict[str, list[str]] = {
    "jbda": ["--attack", "jbda", "--queryset", "mnist"],
    "jb_self": ["--attack", "jb_self", "--queryset", "mnist"],
    "jb_top3": ["--attack", "jb_top3", "--queryset", "mnist"],
    "knockoff": ["--attack", "knockoff", "--queryset", "fashionmnist"],
    "knockoff-adaptive": ["--attack", "knockoff", "--policy", "adaptive", "--queryset", "fashionmnist"],
    "dfme": ["--attack", "dfme"],
    "maze": ["--attack", "maze"],
}
DATA_FREE = ("dfme", "maze")
"""Attacks without a replica training schedule in epochs (``--epochs`` does not apply)."""


def _run(argv: list[str]) -> float:
    """Run ``argv`` (printed first); return the CPU seconds (user + system) it used."""
    print("$ " + " ".join(shlex.quote(a) for a in argv), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data", help="directory with mnist/ and fashionmnist/")
    parser.add_argument("--victim", default=None, help="victim directory (default OUT/mnist-lenet; trained if missing)")
    parser.add_argument("--budget", type=int, default=50000)
    parser.add_argument("--epochs", type=int, default=None, help="final replica epochs (default: each attack's own)")
    parser.add_argument("--defense", default="none")
    parser.add_argument("--attacks", nargs="+", default=[a for a in ATTACKS if a not in DATA_FREE], choices=list(ATTACKS))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/attack-accuracy"))
    args = parser.parse_args()

    stealguard = [sys.executable, "-m", "stealguard.cli"]
    args.out.mkdir(parents=True, exist_ok=True)
    victim = Path(args.victim) if args.victim else args.out / "mnist-lenet"
    if not (victim / "card.json").is_file():
        _run([*stealguard, "train", "--dataset", "mnist", "--arch", "lenet", "--data-root", args.data_root, "--out", str(victim), "--seed", str(args.seed)])
    rows = []
    for name in args.attacks:
        result = args.out / f"{name}-{args.defense.replace(':', '-').replace('=', '').replace(',', '-')}-{args.budget}.json"
        argv = [*stealguard, "attack", "--victim", str(victim), *ATTACKS[name], "--budget", str(args.budget),
                "--defense", args.defense, "--data-root", args.data_root, "--seed", str(args.seed), "--out", str(result)]
        if args.epochs is not None and name not in DATA_FREE:
            argv += ["--epochs", str(args.epochs)]
        started = time.perf_counter()
        cpu = _run(argv + (["--quiet"] if args.quiet else []))
        rows.append((name, json.loads(result.read_text()), time.perf_counter() - started, cpu))

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"\n{len(rows)} attacks, budget {args.budget}, defense {args.defense}, victim {victim}, "
          f"OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs\n")
    print("| attack | queries used | epochs | iterations | replica accuracy | fidelity | defender accuracy | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, result, wall, cpu in rows:
        report = result.get("attack_report") or {}
        print(
            f"| {name} | {result['queries_used']} | {result['attack_params'].get('epochs')} | {report.get('iterations', '')} | "
            f"{result['attacker_accuracy']:.4f} | {result['fidelity']:.4f} | {result['defender_accuracy']:.4f} | "
            f"{wall:.0f} | {cpu:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
