"""The README's measurements of DP-SGD and int8 victims on the built-in digits, as committed rows.

Trains the digits ``mlp`` (its defaults, seed 0, one torch thread) without DP and with DP-SGD at
noise multipliers 0.5, 1.1 and 2.0 (clipping norm 1.0, RDP accountant, delta 1e-5), quantizes the
float one to int8, and writes one row per model, read from the card each command wrote, to
``benchmarks/results/readme/victims.csv`` (``tests/test_readme.py`` checks the README quotes them):

    python benchmarks/readme_victims.py            # about a minute on one core
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "readme" / "victims.csv"
NOISE = (0.5, 1.1, 2.0)
COLUMNS = ("model", "command", "test_accuracy", "float_test_accuracy", "noise_multiplier", "max_grad_norm", "delta", "epsilon")


def _cli(*argv: str) -> str:
    """Run ``stealguard ARGV`` (printed first); return the command line."""
    command = ["stealguard", *argv]
    print("$ " + " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "stealguard.cli", *argv], check=True)
    return " ".join(command)


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = ["train", "--dataset", "digits", "--arch", "mlp", "--seed", "0", "--threads", "1", "--quiet"]
        runs = [("float", [])] + [
            (f"dp-{noise}", ["--dp", f"noise_multiplier={noise},max_grad_norm=1.0,delta=1e-5,accountant=rdp"]) for noise in NOISE
        ]
        for name, extra in runs:
            command = _cli(*base, "--out", f"{tmp}/{name}", *extra)
            card = json.loads(Path(tmp, name, "card.json").read_text())
            dp = card.get("dp") or {}
            rows.append({
                "model": name, "command": command.replace(tmp + "/", "OUT/"), "test_accuracy": card["test_accuracy"],
                "float_test_accuracy": "", "noise_multiplier": dp.get("noise_multiplier", ""),
                "max_grad_norm": dp.get("max_grad_norm", ""), "delta": dp.get("delta", ""), "epsilon": dp.get("epsilon", ""),
            })
        command = _cli("quantize", "--victim", f"{tmp}/float", "--out", f"{tmp}/int8")
        quantization = json.loads(Path(tmp, "int8", "card.json").read_text())["quantization"]
        rows.append({
            "model": "int8", "command": command.replace(tmp + "/", "OUT/"), "test_accuracy": quantization["int8_test_accuracy"],
            "float_test_accuracy": quantization["float_test_accuracy"], "noise_multiplier": "", "max_grad_norm": "",
            "delta": "", "epsilon": "",
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
