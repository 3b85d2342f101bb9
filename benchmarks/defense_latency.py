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
checks, float64 compute, projection onto the simplex): the fixed cost every defense pays.

Weights are random: latency does not depend on them (DCP's detector fires on the near-uniform
posteriors of an untrained net, which is its costlier branch).

Run:  python benchmarks/defense_latency.py            (mlp, lenet, vgg16_bn; batch 1 and 256)
      python benchmarks/defense_latency.py --quick    (mlp and lenet, fewer rounds)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

import stealguard.defenses as D
from stealguard.defenses.mad_reference import reference_mad
from stealguard.models import create as create_model

from _timing import markdown, ratio_quartiles, time_rounds  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

INPUT_SHAPES = {"mlp": (1, 8, 8), "lenet": (1, 28, 28), "vgg16_bn": (3, 32, 32), "resnet18": (3, 32, 32)}
CHEAP = ("dcp", "reverse_sigmoid", "topk", "rounding", "label_only", "random_noise")
TARGETS = {name: 1.1 for name in ("dcp", "reverse_sigmoid", "topk", "rounding", "label_only")}
TARGETS["mad (last_layer)"] = 2.5


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
    paths = {"undefended": infer, **{name: defended(defense) for name, defense in chosen.items()}}
    samples = time_rounds(paths, rounds=rounds, budget_s=budget_s)
    rows = []
    for name, values in samples.items():
        target = TARGETS.get(name)
        low, ratio, high = ratio_quartiles(values, samples["undefended"])
        rows.append(
            {
                "arch": arch,
                "batch": batch,
                "path": name,
                "us_per_query": 1e6 * statistics.median(values) / batch,
                "ratio": ratio,
                "ratio_iqr": f"{low:.3g}-{high:.3g}",
                "target": f"<= {target:g}x" if target else "",
                "meets": "" if target is None else ("yes" if ratio <= target else "NO"),
            }
        )
    return rows


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
    parser.add_argument("--archs", nargs="+", default=["mlp", "lenet", "vgg16_bn"], choices=sorted(INPUT_SHAPES))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 256])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=1.5, help="time budget per path per case")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--full-jacobian-archs", nargs="*", default=["mlp", "lenet"],
                        help="archs on which MAD's full Jacobian is timed (slow for vgg16_bn on a CPU)")
    parser.add_argument("--reference-samples", type=int, default=32,
                        help="samples the per-sample reference MAD is timed on")
    parser.add_argument("--quick", action="store_true", help="mlp and lenet only, fewer rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs = [a for a in args.archs if a in ("mlp", "lenet")]
        args.rounds, args.seconds, args.reference_samples = 5, 0.5, 8
    torch.set_num_threads(args.threads)
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu\n")
    rows = []
    for arch in args.archs:
        for batch in args.batch_sizes:
            rows += run_case(
                arch, batch, rounds=args.rounds, budget_s=args.seconds, full_jacobian=arch in args.full_jacobian_archs
            )
            print(f"done: {arch} batch {batch}", file=sys.stderr)
    print(markdown(rows, ["arch", "batch", "path", "us_per_query", "ratio", "ratio_iqr", "target", "meets"]))
    comparisons = [
        compare_full_with_reference(arch, 256, args.reference_samples)
        for arch in args.archs
        if arch in args.full_jacobian_archs
    ]
    if comparisons:
        print("\nMAD full Jacobian, batched (batch 256) vs per-sample reference (target: >= 10x on lenet)\n")
        print(markdown(comparisons, list(comparisons[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
