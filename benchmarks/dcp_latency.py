"""DCP's cost claim, measured: per-query time (and energy) of DCP and the defenses it is compared with.

The Deception paper (arXiv 2309.01838) says DCP is "up to 37x faster" than earlier defenses.
For a CIFAR-10 victim in float and in int8 form, at batch sizes 1 and 256, this times:

    undefended               softmax(victim(x)) under no_grad
    none                     + the identity defense (the fixed cost of a defended answer)
    dcp, reverse_sigmoid     + the posterior perturbation
    mad (last_layer)         + MAD with the closed-form last-layer Jacobian of a surrogate
    mad (full)               + MAD with the full parameter Jacobian (K backward passes)
    adaptive_misinformation  + a second network (the misinformation model) and the blend

all interleaved in one run (median of rounds), as ratios to undefended inference, and the
speed-up of DCP over each other defense, both in total time per query and in added time
(defended minus undefended). Energy per query comes from RAPL counters when the CPU exposes
them (reported as not available otherwise, never estimated).

With ``--victim DIR`` the trained victim is timed on real test images of its data set (DCP's
detector fires only on low-confidence answers, so the input distribution matters); the int8
version is ``--int8 DIR`` (from ``stealguard quantize``) or quantized here from the float one,
calibrated on 256 training images. Without ``--victim`` a randomly initialised ``--arch`` is
timed on uniform noise (all answers low-confidence: DCP's costlier branch).

MAD's surrogate and the misinformation model are random networks of the victim's
architecture (latency does not depend on their weights); the misinformation model is
quantized like the victim in the int8 rows. MAD's surrogate stays float (it must be
differentiable).

With ``--out FILE`` each case's rows are appended to a CSV as soon as it is timed, every row
stamped with the run (a timestamp), the torch version, the thread count and the machine's 1-minute
load average when the run started (``benchmarks/dcp_latency_table.py`` renders the latest run of
``benchmarks/results/dcp-latency/latency.csv`` into ``benchmarks/dcp.md``).

Run:  python benchmarks/dcp_latency.py --victim runs/cifar10-resnet9 --data-root /tmp/cifar10-jpg
      python benchmarks/dcp_latency.py --arch resnet9 --quick
      python benchmarks/dcp_latency.py --victim benchmarks/results/dcp-cpu/victims/cifar10-resnet9 \
          --int8 benchmarks/results/dcp-cpu/victims/cifar10-resnet9-int8 --data-root /tmp/cifar \
          --out benchmarks/results/dcp-latency/latency.csv
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

import stealguard.defenses as D
from stealguard import data as sgdata
from stealguard import models
from stealguard.device import resolve_device
from stealguard.harness.experiment import make_surrogate
from stealguard.models.quantization import calibration_subset

from _timing import joules_per_call, markdown, rapl_counters, time_paths
from defense_latency import write_csv

COMPARED = ("reverse_sigmoid", "mad (last_layer)", "mad (full)", "adaptive_misinformation")
PAPER_SPEEDUP = 37.0


def build_defenses(card: Any, int8: bool, calibration: Tensor, full_jacobian: bool) -> dict[str, D.Defense]:
    """The defenses timed with the victim of ``card`` (each with its own random helper networks)."""
    surrogate = make_surrogate(card, seed=1)
    misinformation = make_surrogate(card, seed=2)
    if int8:
        misinformation = models.quantize(misinformation, calibration)
    chosen = {
        "none": D.create("none"),
        "dcp": D.create("dcp"),
        "reverse_sigmoid": D.create("reverse_sigmoid"),
        "mad (last_layer)": D.create("mad", epsilon=0.5, surrogate=surrogate),
        "adaptive_misinformation": D.create("adaptive_misinformation", misinformation=misinformation),
    }
    if full_jacobian:
        chosen["mad (full)"] = D.create("mad", epsilon=0.5, surrogate=surrogate, jacobian="full")
    return chosen


def time_case(
    victim: models.Classifier, images: Tensor, *, card: Any, label: str, int8: bool, calibration: Tensor, batch: int,
    device: torch.device, rounds: int, budget_s: float, full_jacobian: bool, counters: list[Path],
) -> list[dict[str, object]]:
    """Rows of one (victim form, batch size): time per query, ratio, energy per query of every path."""
    run_on = torch.device("cpu") if int8 else device
    victim = victim.to(run_on).eval()
    x = images[:batch].to(run_on)
    chosen = build_defenses(card, int8, calibration, full_jacobian)
    for defense in chosen.values():
        for module in (getattr(defense, "surrogate", None), getattr(defense, "misinformation", None)):
            if module is not None and not isinstance(module, models.QuantizedClassifier):
                module.to(run_on)

    def infer() -> Tensor:
        with torch.no_grad():
            out = torch.softmax(victim(x), dim=1)
        if run_on.type == "cuda":
            torch.cuda.synchronize()
        return out

    def defended(defense: D.Defense) -> Callable[[], Tensor]:
        def call() -> Tensor:
            out = defense(x, infer())
            if run_on.type == "cuda":
                torch.cuda.synchronize()
            return out

        return call

    paths = {"undefended": infer, **{name: defended(d) for name, d in chosen.items()}}
    medians = time_paths(paths, rounds=rounds, budget_s=budget_s)
    base = medians["undefended"]
    with torch.no_grad():
        fired = float((torch.softmax(victim(x), dim=1).max(dim=1).values < chosen["dcp"].tau).float().mean())
    rows = []
    for name, seconds in medians.items():
        energy = joules_per_call(paths[name], max(1, int(0.5 / max(seconds, 1e-6))), counters)
        rows.append(
            {
                "victim": label, "device": str(run_on), "batch": batch, "path": name, "us_per_query": 1e6 * seconds / batch,
                "ratio": seconds / base, "mJ_per_query": None if energy is None else 1e3 * energy / batch,
                "dcp_fires": fired,
            }
        )
    return rows


def speedups(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """DCP's speed-up over each compared defense: total time, and added time over undefended."""
    out = []
    cases = sorted({(r["victim"], r["device"], r["batch"]) for r in rows}, key=str)
    for victim, device, batch in cases:
        case = {r["path"]: r for r in rows if (r["victim"], r["device"], r["batch"]) == (victim, device, batch)}
        base, dcp = case["undefended"]["us_per_query"], case["dcp"]["us_per_query"]
        dcp_added = dcp - base
        for other in COMPARED:
            if other not in case:
                continue
            t = case[other]["us_per_query"]
            out.append(
                {
                    "victim": victim, "device": device, "batch": batch, "vs": other,
                    "speedup_total": t / dcp,
                    "added_us_dcp": dcp_added, "added_us_other": t - base,
                    "speedup_added": (t - base) / dcp_added if dcp_added > 0 else None,
                }
            )
    return out


def load_victims(args: argparse.Namespace) -> tuple[Any, models.Classifier, models.Classifier | None, Tensor, Tensor, str]:
    """(card, float victim, int8 victim or None to quantize here, timing images, calibration images, what they are).

    Without ``--victim`` the card is a stand-in naming the random network's arch and input contract.
    """
    if args.victim is None:
        card = SimpleNamespace(arch=args.arch, input_shape=(3, 32, 32), num_classes=10, mean=None, std=None)
        torch.manual_seed(0)
        model = models.create(card.arch, input_shape=card.input_shape, num_classes=card.num_classes).eval()
        images = torch.rand(max(args.batch_sizes), *card.input_shape)
        return card, model, None, images, torch.rand(256, *card.input_shape), f"random-weight {args.arch} on uniform noise"
    model, card = models.load_model(args.victim, device="cpu")
    int8 = models.load_model(args.int8, device="cpu")[0] if args.int8 else None
    test = sgdata.load_dataset(card.dataset, root=args.data_root, split="test")
    train = sgdata.load_dataset(card.dataset, root=args.data_root, split="train")
    generator = torch.Generator().manual_seed(0)
    images = test.tensors()[0][torch.randperm(len(test), generator=generator)[: max(args.batch_sizes)]]
    calibration = calibration_subset(train.tensors()[0], 256, seed=0)
    return card, model, int8, images, calibration, f"{card.arch} trained on {card.dataset} ({card.test_accuracy:.2%}), test images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--victim", type=Path, default=None, help="trained float victim directory")
    parser.add_argument("--int8", type=Path, default=None, help="its int8 version (default: quantized here)")
    parser.add_argument("--data-root", default=None, help="data root of the victim's data set (test images)")
    parser.add_argument("--arch", default="resnet9", help="architecture timed with random weights when --victim is not given")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 256])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per path per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (int8 runs on the CPU regardless)")
    parser.add_argument("--no-full-jacobian", action="store_true", help="skip MAD's full Jacobian (slow on CPU)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and less time per path")
    parser.add_argument("--out", type=Path, default=None, help="append each case's rows to this CSV file as it is timed")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 0.5
    torch.set_num_threads(args.threads)
    stamp = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__, "threads": torch.get_num_threads(),
             "load_1min_at_start": round(os.getloadavg()[0], 2)}
    device = resolve_device(args.device)
    counters = rapl_counters()
    card, model, int8, images, calibration, what = load_victims(args)
    if int8 is None:
        int8 = models.quantize(model, calibration)
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, device {device}")
    print(f"victim: {what}")
    print(f"energy: {'RAPL ' + ', '.join(str(c) for c in counters) if counters else 'not available (no RAPL counters under /sys/class/powercap)'}\n")
    print(f"1-minute load at start: {stamp['load_1min_at_start']}")
    rows = []
    for label, victim, is_int8 in (("float", model, False), ("int8", int8, True)):
        for batch in args.batch_sizes:
            case = time_case(
                victim, images, card=card, label=label, int8=is_int8, calibration=calibration, batch=batch, device=device,
                rounds=args.rounds, budget_s=args.seconds, full_jacobian=not args.no_full_jacobian, counters=counters,
            )
            if args.out is not None:
                write_csv(args.out, case, stamp)
            rows += case
            print(f"done: {label} batch {batch}", file=sys.stderr)
    print(markdown(rows, ["victim", "device", "batch", "path", "us_per_query", "ratio", "mJ_per_query", "dcp_fires"]))
    print(f"\nSpeed-up of DCP over each defense (paper: up to {PAPER_SPEEDUP:g}x); total = time per defended query,")
    print("added = time over undefended inference (n/a when DCP adds nothing measurable)\n")
    print(markdown(speedups(rows), ["victim", "device", "batch", "vs", "speedup_total", "added_us_dcp", "added_us_other", "speedup_added"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
