"""Per-query latency of every defense as a ratio to undefended inference, measured in the same run.

For each victim architecture and batch size, the undefended path is ``softmax(victim(x))``
under ``no_grad``; each defended path is that plus ``defense(x, probs)``. All paths are
timed interleaved, round after round; ``us_per_query`` is a path's median over the rounds,
``ratio`` the median over rounds of its time divided by the undefended time of the same
round (so drift of the machine cancels) and ``ratio_iqr`` those ratios' interquartile range,
the noise to read a ratio against. MAD's full-Jacobian mode is also compared with
the per-sample reference method (K autograd calls per sample, G stacked, the objective at
each vertex; ``stealguard.defenses.mad_reference``), on the same inputs, for time per query
and for agreement of the outputs.

The ``none`` row is the identity defense through the same ``Defense.__call__`` boundary (input
checks and renormalisation in the input's dtype): the fixed cost every defense pays.
``added_us`` is a path's time per call minus the undefended time per call (median over rounds):
victims whose undefended call costs under 1 ms (``mlp``, ``lenet`` at batch 1) are judged by it,
the 1.1x targets hold only from 1 ms up. MAD's last-layer mode is also compared with its floor,
``floor (mad)``: undefended inference plus one forward pass of its surrogate (``vs_floor``).

``--vs-art`` times each cheap defense against its IBM ART 1.20.1 counterpart (the ``bench``
extra: ``pip install -e .[bench]``) on the posterior alone: reverse_sigmoid / ReverseSigmoid,
rounding / Rounded, topk / HighConfidence, label_only / ClassLabels, random_noise /
GaussianNoise (the default probability-space variant, which walks the projected path to spend
exactly its L1 budget, and ``random_noise_logit``, the Prediction Poisoning baseline in logit
space, closer to GaussianNoise's job), and dcp against a transcription of the DCP authors' ``method_dcp`` (one value
``beta`` as both detector threshold and noise scale, the logit as ``log(clamp(y / (1 - y),
1e-12, 1 - 1e-12))``, no clamp at 0). Batch 1 and 256, K 10 and 1000, float32 posteriors
``softmax(3 z)``, interleaved rounds in one process; the ratio is the median over rounds of
stealguard's time per call divided by the other's in the same round. ART receives a numpy
view of the same memory (its native input), stealguard the tensor. The pairs do related,
not identical jobs: ART's Rounded and HighConfidence leave rows off the simplex, ClassLabels
gives each row the whole batch's argmax columns, GaussianNoise has no budget.
Two floors are timed in the same rounds against each ART counterpart, rows ``floor: ... / <ART>``:
``none`` (stealguard's boundary alone: input checks and the pass-through every defense pays
before its own work) and ``numpy simplex check`` (the same check, row sums within 1e-3 of 1 and
no entry below -1e-3, transcribed to numpy on ART's input: what any implementation that
validates its input pays). A floor above a pair's target means no defense that checks its
input can meet that target, whatever its own work costs.

Weights are random: latency does not depend on them (DCP's detector fires on the near-uniform
posteriors of an untrained net, which is its costlier branch).

Run:  python benchmarks/defense_latency.py            (mlp, lenet, vgg16_bn; batch 1, 64 and 256)
      python benchmarks/defense_latency.py --quick    (mlp and lenet, fewer rounds)
      python benchmarks/defense_latency.py --vs-art --archs lenet vgg16_bn --csv benchmarks/results/latency/latency.csv
      python benchmarks/defense_latency.py --archs mlp lenet --batch-sizes --csv benchmarks/results/latency/latency.csv
                                                 (only the full-Jacobian comparison, rows in latency-mad-full.csv)
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import stealguard.defenses as D
from stealguard.defenses.mad_reference import reference_mad
from stealguard.models import create as create_model

from _timing import markdown, ratio_quartiles, time_rounds

INPUT_SHAPES = {"mlp": (1, 8, 8), "lenet": (1, 28, 28), "vgg16_bn": (3, 32, 32), "resnet18": (3, 32, 32)}
CHEAP = ("dcp", "reverse_sigmoid", "topk", "rounding", "label_only", "random_noise")
TARGETS = {name: 1.1 for name in ("dcp", "reverse_sigmoid", "topk", "rounding", "label_only")}
TARGETED_FROM_S = 1e-3
"""The 1.1x targets apply to victims whose undefended call takes at least this long."""
MAD_FLOOR_TARGETS = {1: 1.5, 64: 1.2}
"""MAD last-layer / its floor: <= 1.5x at batch 1, <= 1.2x from batch 64 on."""
ART_TARGETS_BATCH = {1: {name: 2.0 for name in (*CHEAP, "random_noise_logit")}, 256: {"reverse_sigmoid": 1.0, "label_only": 1.0,
                     "random_noise": 1.0, "random_noise_logit": 1.0, "topk": 1.5, "rounding": 3.0, "dcp": 1.0}}
"""Targets of stealguard / ART (dcp: / the authors' function), per batch size."""


def defenses_for(arch: str, full_jacobian: bool) -> dict[str, D.Defense]:
    """The defenses to time, each with a fresh random surrogate of the victim's architecture."""
    torch.manual_seed(1)
    surrogate = create_model(arch, input_shape=INPUT_SHAPES[arch], num_classes=10).eval()
    chosen: dict[str, D.Defense] = {
        "none": D.create("none"),
        "dcp": D.create("dcp", tau=0.8, beta=0.5, gamma=0.2),
        "reverse_sigmoid": D.create("reverse_sigmoid", beta=0.3, gamma=0.2),
        "topk": D.create("topk", k=3),
        "rounding": D.create("rounding", decimals=2),
        "label_only": D.create("label_only"),
        "random_noise": D.create("random_noise", epsilon=0.5),
        "mad (last_layer)": D.create("mad", epsilon=0.5, surrogate=surrogate),
        "mad_argmax (last_layer)": D.create("mad_argmax", epsilon=0.5, surrogate=surrogate),
    }
    if full_jacobian:
        chosen["mad (full)"] = D.create("mad", epsilon=0.5, surrogate=surrogate, jacobian="full")
    return chosen


def mad_floor_target(batch: int) -> float | None:
    """MAD last-layer's target against its floor at this batch size (None between 1 and 64)."""
    if batch == 1:
        return MAD_FLOOR_TARGETS[1]
    return MAD_FLOOR_TARGETS[64] if batch >= 64 else None


def run_case(arch: str, batch: int, *, rounds: int, budget_s: float, full_jacobian: bool) -> list[dict[str, object]]:
    torch.manual_seed(0)
    victim = create_model(arch, input_shape=INPUT_SHAPES[arch], num_classes=10).eval()
    x = torch.rand(batch, *INPUT_SHAPES[arch])

    def infer() -> Tensor:
        with torch.no_grad():
            return torch.softmax(victim(x), dim=1)

    def defended(defense: D.Defense) -> Callable[[], Tensor]:
        return lambda: defense(x, infer())

    chosen = defenses_for(arch, full_jacobian)
    surrogate = chosen["mad (last_layer)"].surrogate

    def floor() -> Tensor:
        with torch.no_grad():
            surrogate(x)
        return infer()

    paths = {"undefended": infer, "floor (mad)": floor, **{name: defended(defense) for name, defense in chosen.items()}}
    samples = time_rounds(paths, rounds=rounds, budget_s=budget_s)
    base_s = statistics.median(samples["undefended"])
    rows = []
    for name, values in samples.items():
        target = TARGETS.get(name) if base_s >= TARGETED_FROM_S else None
        low, ratio, high = ratio_quartiles(values, samples["undefended"])
        vs_floor, floor_target = None, None
        if name == "mad (last_layer)":
            vs_floor = ratio_quartiles(values, samples["floor (mad)"])[1]
            floor_target = mad_floor_target(batch)
        met = [] if target is None else [ratio <= target]
        met += [] if floor_target is None else [vs_floor <= floor_target]
        rows.append(
            {
                "arch": arch,
                "batch": batch,
                "path": name,
                "us_per_call": 1e6 * statistics.median(values),
                "us_per_query": 1e6 * statistics.median(values) / batch,
                "added_us": 1e6 * (statistics.median(values) - base_s),
                "ratio": ratio,
                "ratio_iqr": f"{low:.3g}-{high:.3g}",
                "vs_floor": vs_floor,
                "target": (f"<= {target:g}x" if target else "") + (f" floor <= {floor_target:g}x" if floor_target else ""),
                "meets": "" if not met else ("yes" if all(met) else "NO"),
            }
        )
    return rows


def authors_dcp(probs: Tensor, *, beta: float, gamma: float, nu: float = 1000.0) -> Tensor:
    """The DCP authors' ``method_dcp`` on a clean posterior ``(N, K)``, transcribed (tau = beta).

    Detector ``alpha = 1 / (1 + exp(nu (max y - beta)))``; logit ``log(clamp(y / (1 - y), 1e-12,
    1 - 1e-12))``; ``r = beta (sigmoid(gamma logit) - 1/2)``; answer ``(y - alpha r) / sum``.
    """
    top = probs.max(dim=1)[0]
    alpha = torch.reciprocal(1 + torch.exp(nu * (top - beta))).unsqueeze(-1)
    logits = torch.log(torch.clamp(probs / (1 - probs), min=1e-12, max=1 - 1e-12))
    noise = beta * (torch.sigmoid(gamma * logits) - 0.5)
    answer = probs - alpha * noise
    return answer / answer.sum(-1).unsqueeze(-1)


def art_pairs() -> dict[str, tuple[D.Defense, Callable[[np.ndarray], np.ndarray] | None]]:
    """Each cheap stealguard defense with its ART counterpart (dcp: None, compared with :func:`authors_dcp`)."""
    from art.defences.postprocessor import (
        ClassLabels,
        GaussianNoise,
        HighConfidence,
        ReverseSigmoid,
        Rounded,
    )

    return {
        "reverse_sigmoid": (D.create("reverse_sigmoid", beta=0.3, gamma=0.2), ReverseSigmoid(beta=0.3, gamma=0.2)),
        "rounding": (D.create("rounding", decimals=2), Rounded(decimals=2)),
        "topk": (D.create("topk", k=3), HighConfidence(cutoff=0.1)),
        "label_only": (D.create("label_only"), ClassLabels()),
        "random_noise": (D.create("random_noise", epsilon=0.1), GaussianNoise(scale=0.2)),
        "random_noise_logit": (D.create("random_noise", epsilon=8.0, space="logit"), GaussianNoise(scale=0.2)),
        "dcp": (D.create("dcp", tau=0.5, beta=0.5, gamma=0.2, nu=1000.0), None),
    }


def numpy_simplex_check(preds: np.ndarray, tolerance: float = 1e-3) -> bool:
    """The boundary's validity check on a numpy array: every row sums to 1 within ``tolerance``, no entry below ``-tolerance``."""
    return bool(np.abs(preds.sum(axis=1) - 1).max() <= tolerance and preds.min() >= -tolerance)


FLOORS = ("none", "numpy simplex check")
"""Paths timed beside the pairs as floors: stealguard's boundary alone, and the boundary's check in numpy."""


def run_vs_art(*, rounds: int, budget_s: float) -> list[dict[str, object]]:
    """Rows ``pair, batch, K, ours_us, theirs_us, ratio, ratio_iqr, target, meets`` (per call, interleaved)."""
    rows = []
    for batch in (1, 256):
        for num_classes in (10, 1000):
            generator = torch.Generator().manual_seed(batch * 7919 + num_classes)
            probs = torch.softmax(3 * torch.randn(batch, num_classes, generator=generator), dim=1)
            preds = probs.numpy()
            x = torch.zeros(batch, 1)
            pairs = art_pairs()
            paths: dict[str, Callable[[], object]] = {}
            for name, (ours, theirs) in pairs.items():
                paths[f"{name}:ours"] = lambda ours=ours, x=x, probs=probs: ours(x, probs)
                if theirs is None:
                    paths[f"{name}:theirs"] = lambda probs=probs: authors_dcp(probs, beta=0.5, gamma=0.2)
                else:
                    paths[f"{name}:theirs"] = lambda theirs=theirs, preds=preds: theirs(preds)
            none = D.create("none")
            paths["floor:none"] = lambda none=none, x=x, probs=probs: none(x, probs)
            paths["floor:numpy simplex check"] = lambda preds=preds: numpy_simplex_check(preds)
            with np.errstate(invalid="ignore", divide="ignore"):
                samples = time_rounds(paths, rounds=rounds, budget_s=budget_s)
            for name in pairs:
                pair = f"{name} / {'method_dcp (authors)' if name == 'dcp' else ART_NAMES[name]}"
                rows.append(ratio_row(pair, batch, num_classes, samples[f"{name}:ours"], samples[f"{name}:theirs"],
                                      ART_TARGETS_BATCH[batch][name]))
            rows += floor_rows(samples, batch, num_classes)
            print(f"done: vs ART batch {batch} K {num_classes}", file=sys.stderr)
    return rows


def ratio_row(pair: str, batch: int, num_classes: int, ours: list[float], theirs: list[float], target: float) -> dict[str, object]:
    """One table row: medians in microseconds, the median per-round ratio with its interquartile range, and the target."""
    low, ratio, high = ratio_quartiles(ours, theirs)
    return {
        "pair": pair, "batch": batch, "K": num_classes,
        "ours_us": 1e6 * statistics.median(ours), "theirs_us": 1e6 * statistics.median(theirs),
        "ratio": ratio, "ratio_iqr": f"{low:.3g}-{high:.3g}", "target": f"<= {target:g}x",
        "meets": "yes" if ratio <= target else "NO",
    }


def floor_rows(samples: dict[str, list[float]], batch: int, num_classes: int) -> list[dict[str, object]]:
    """One row per floor and ART counterpart: each counterpart once (timed in its first pair), with the tightest
    target of its pairs."""
    pairs_of: dict[str, list[str]] = {}
    for name, art_name in ART_NAMES.items():
        pairs_of.setdefault(art_name, []).append(name)
    return [
        ratio_row(f"floor: {floor} / {art_name}", batch, num_classes, samples[f"floor:{floor}"], samples[f"{names[0]}:theirs"],
                  min(ART_TARGETS_BATCH[batch][name] for name in names))
        for floor in FLOORS
        for art_name, names in pairs_of.items()
    ]


ART_NAMES = {
    "reverse_sigmoid": "ReverseSigmoid", "rounding": "Rounded", "topk": "HighConfidence",
    "label_only": "ClassLabels", "random_noise": "GaussianNoise", "random_noise_logit": "GaussianNoise",
}


def write_csv(path: Path, rows: list[dict[str, object]], extra: dict[str, object]) -> None:
    """Append ``rows`` (each with ``extra``'s columns) to the CSV at ``path``, header first when new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(extra) + list(rows[0])
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({**extra, **row})


def compare_full_with_reference(arch: str, batch: int, reference_samples: int) -> dict[str, object]:
    """Time per query of MAD's batched full Jacobian vs the per-sample reference, same inputs."""
    torch.manual_seed(0)
    victim = create_model(arch, input_shape=INPUT_SHAPES[arch], num_classes=10).eval()
    torch.manual_seed(1)
    surrogate = create_model(arch, input_shape=INPUT_SHAPES[arch], num_classes=10).eval()
    x = torch.rand(batch, *INPUT_SHAPES[arch])
    with torch.no_grad():
        probs = torch.softmax(victim(x), dim=1)
    mad = D.create("mad", epsilon=0.5, surrogate=surrogate, jacobian="full")
    mad(x[:8], probs[:8])
    start = time.perf_counter()
    fast = mad(x, probs)
    fast_s = (time.perf_counter() - start) / batch
    subset = slice(0, reference_samples)
    start = time.perf_counter()
    slow = reference_mad(surrogate, x[subset], probs[subset], epsilon=0.5, jacobian="full")
    slow_s = (time.perf_counter() - start) / reference_samples
    return {
        "arch": arch,
        "batch": batch,
        "batched_ms_per_query": 1e3 * fast_s,
        "reference_ms_per_query": 1e3 * slow_s,
        "speedup": slow_s / fast_s,
        "max_abs_diff": float((fast[subset].double() - slow).abs().max()),
        "same_vertex": bool(torch.equal(fast[subset].argmax(1), slow.argmax(1))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="*", default=["mlp", "lenet", "vgg16_bn"], choices=sorted(INPUT_SHAPES))
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 64, 256],
                        help="batch sizes of the per-path timing (none: only the full-Jacobian comparison)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=1.5, help="time budget per path per case")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--full-jacobian-archs", nargs="*", default=["mlp", "lenet"],
                        help="archs on which MAD's full Jacobian is timed (slow for vgg16_bn on a CPU)")
    parser.add_argument("--reference-samples", type=int, default=32,
                        help="samples the per-sample reference MAD is timed on")
    parser.add_argument("--vs-art", action="store_true", help="also time each cheap defense against IBM ART 1.20.1 / the DCP authors")
    parser.add_argument("--csv", type=Path, default=None, help="append the raw rows to this CSV file")
    parser.add_argument("--quick", action="store_true", help="mlp and lenet only, fewer rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs = [a for a in args.archs if a in ("mlp", "lenet")]
        args.rounds, args.seconds, args.reference_samples = 5, 0.5, 8
    torch.set_num_threads(args.threads)
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    stamp = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__, "threads": torch.get_num_threads()}
    load_at_start = round(os.getloadavg()[0], 2)
    print("command: " + command)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu\n")
    if args.vs_art:
        import art

        pairs = run_vs_art(rounds=args.rounds, budget_s=args.seconds)
        print(f"stealguard / IBM ART {art.__version__} (dcp: / the authors' method_dcp), time per call, "
              "median of per-round ratios over interleaved rounds\n")
        print(markdown(pairs, ["pair", "batch", "K", "ours_us", "theirs_us", "ratio", "ratio_iqr", "target", "meets"]))
        print()
        if args.csv is not None:
            write_csv(args.csv.with_name(args.csv.stem + "-vs-art.csv"), pairs, stamp)
    rows = []
    for arch in args.archs:
        for batch in args.batch_sizes:
            rows += run_case(
                arch, batch, rounds=args.rounds, budget_s=args.seconds, full_jacobian=arch in args.full_jacobian_archs
            )
            print(f"done: {arch} batch {batch}", file=sys.stderr)
    if rows:
        print("Per query vs undefended inference; targets only where the undefended call takes >= 1 ms\n")
        print(markdown(rows, ["arch", "batch", "path", "us_per_query", "added_us", "ratio", "ratio_iqr", "vs_floor", "target", "meets"]))
        if args.csv is not None:
            write_csv(args.csv, rows, stamp)
    comparisons = [
        compare_full_with_reference(arch, 256, args.reference_samples)
        for arch in args.archs
        if arch in args.full_jacobian_archs
    ]
    if comparisons:
        print("\nMAD full Jacobian, batched (batch 256) vs per-sample reference (target: >= 10x on lenet)\n")
        print(markdown(comparisons, list(comparisons[0])))
        if args.csv is not None:
            load = {"load_1min_at_start": load_at_start}
            write_csv(args.csv.with_name(args.csv.stem + "-mad-full.csv"), comparisons, {**stamp, **load})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
