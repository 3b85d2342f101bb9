"""Can an attacker who knows adaptive misinformation keep only its clean answers by their confidence?

Adaptive misinformation (Kariyappa & Qureshi, CVPR 2020) answers ``(1 - a) y + a y_mis`` with
``a = sigmoid(nu (tau - max y))``: confident rows pass nearly unchanged, uncertain ones get the
misinformation model's posterior. An attacker that knows this would keep only the answers it
believes are clean. The obvious rule keeps the answers whose top entry is at least a threshold;
it helps only if the misinformation answers are less confident than the clean ones.

For the committed MNIST LeNet victim and the Knockoff attacker's queries (the 10,000
Fashion-MNIST test images, as in ``recovery.py --queries fashionmnist``; defender seed
``recovery.DEFENDER_SEED``, the misinformation model trained once into the cache), each
``tau`` and threshold: the share of answers kept and the share of those whose top class is the
clean posterior's (the labels a replica would learn from). Writes
``benchmarks/results/adaptive/misinformation-filter.csv``.

    OMP_NUM_THREADS=1 python benchmarks/misinformation_filter.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from recovery import DEFENDER_SEED, VICTIM

from stealguard import data as sgdata
from stealguard.harness.experiment import build_defense, load_victim
from stealguard.models import predict_proba

CSV = Path(__file__).resolve().parent / "results" / "adaptive" / "misinformation-filter.csv"
TAUS = (0.5, 0.8, 0.95)
THRESHOLDS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)


def measure(data_root: str, cache: Path, queries: str = "fashionmnist") -> pd.DataFrame:
    """One row per ``tau`` and threshold: ``kept`` (share of answers) and ``label_agreement`` among them."""
    model, card = load_victim(VICTIM)
    images, _ = sgdata.load_dataset(queries, root=data_root, split="test").tensors()
    clean = predict_proba(model, images, device="cpu")
    rows = []
    for tau in TAUS:
        defense, _ = build_defense(
            f"adaptive_misinformation:tau={tau}", card=card, seed=DEFENDER_SEED, victim_dir=cache, data_root=data_root
        )
        with torch.no_grad():
            answers = defense(images, clean)
        agree = answers.argmax(dim=1) == clean.argmax(dim=1)
        top = answers.amax(dim=1)
        for threshold in THRESHOLDS:
            kept = top >= threshold
            rows.append({
                "queries": queries, "tau": tau, "threshold": threshold, "rows": int(images.shape[0]),
                "kept": float(kept.double().mean()),
                "label_agreement": float(agree[kept].double().mean()) if bool(kept.any()) else float("nan"),
            })
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cache", type=Path, default=Path("runs/recovery-cache"),
                        help="where the misinformation model is trained once and kept (default runs/recovery-cache)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    frame = measure(args.data_root, args.cache)
    CSV.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(CSV, index=False, float_format="%.4f")
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
