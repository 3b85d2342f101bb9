"""Bounded load test of ``stealguard serve``: throughput and latency per defense over loopback.

For each defense a real server (``python -m stealguard.cli serve``, one uvicorn worker) is
started on a free 127.0.0.1 port with a digits ``mlp`` victim. An asyncio loop of
``--concurrency`` httpx clients then sends exactly ``--requests`` POST /v1/predict requests
(``--batch`` inputs each, ``.npy`` bodies) and stops by itself. Reported per defense: requests
and inputs per second, p50 / p99 latency, errors (non-200 answers or transport failures) and
lost requests (sent but neither answered nor failed). The server is stopped after its run.

Run:  python benchmarks/serve_load.py                          (none, dcp, mad; 2000 requests, 64 clients)
      python benchmarks/serve_load.py --requests 500 --quick   (shorter)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

STARTUP_S = 120.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(victim: Path, defense: str, data_dir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server and wait for /healthz; return the process and its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "stealguard.cli", "serve", "--victim", str(victim), "--defense", defense,
        "--data-dir", str(data_dir), "--port", str(port), "--threads", str(threads), "--log-level", "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {defense} exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server for {defense} did not start within {STARTUP_S} s")


def npy_body(batch: int, seed: int) -> bytes:
    """A ``.npy`` body of ``batch`` random digits-shaped inputs."""
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).random((batch, 1, 8, 8), dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


async def load(url: str, *, requests: int, concurrency: int, batch: int) -> dict[str, float]:
    """Send exactly ``requests`` requests from ``concurrency`` clients; return the measurements."""
    bodies = [npy_body(batch, seed) for seed in range(16)]
    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0, "errors": 0}
    next_index = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            for index in next_index:
                counts["sent"] += 1
                start = time.perf_counter()
                try:
                    reply = await client.post(
                        "/v1/predict", content=bodies[index % len(bodies)], headers={"Content-Type": "application/x-npy"}
                    )
                    ok = reply.status_code == 200 and len(reply.json()["labels"]) == batch
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                latencies.append(time.perf_counter() - start)
                counts["ok" if ok else "errors"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = np.sort(np.asarray(latencies))
    return {
        "requests": requests,
        "req_per_s": counts["ok"] / elapsed,
        "inputs_per_s": counts["ok"] * batch / elapsed,
        "p50_ms": 1000 * float(np.percentile(ordered, 50)),
        "p99_ms": 1000 * float(np.percentile(ordered, 99)),
        "errors": counts["errors"],
        "lost": requests - counts["ok"] - counts["errors"],
    }


def markdown(rows: list[dict[str, object]], columns: list[str]) -> str:
    """A markdown table of ``rows``."""
    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defenses", nargs="+", default=["none", "dcp", "mad:epsilon=0.5"], help="defense specs")
    parser.add_argument("--requests", type=int, default=2000, help="requests per defense (default 2000)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--batch", type=int, default=1, help="inputs per request (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    parser.add_argument("--victim", type=Path, default=None, help="victim directory (default: train a digits mlp)")
    parser.add_argument("--quick", action="store_true", help="200 requests per defense")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 200)
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        victim = args.victim
        if victim is None:
            victim = Path(tmp) / "victim"
            subprocess.run(
                [sys.executable, "-m", "stealguard.cli", "train", "--dataset", "digits", "--arch", "mlp", "--epochs", "3",
                 "--out", str(victim), "--quiet"],
                check=True, stdout=subprocess.DEVNULL,
            )
        rows = []
        for index, defense in enumerate(args.defenses):
            process, url = start_server(victim, defense, Path(tmp) / f"data{index}", args.threads)
            try:
                asyncio.run(load(url, requests=min(64, args.requests), concurrency=args.concurrency, batch=args.batch))
                measured = asyncio.run(load(url, requests=args.requests, concurrency=args.concurrency, batch=args.batch))
            finally:
                process.terminate()
                process.wait(timeout=30)
            rows.append({"defense": defense, "concurrency": args.concurrency, "batch": args.batch, **measured})
            print(f"done: {defense}", file=sys.stderr)
    print(f"{os.cpu_count()} CPUs, server: 1 uvicorn worker, {args.threads} torch thread(s), loopback\n")
    columns = ["defense", "requests", "concurrency", "batch", "req_per_s", "inputs_per_s", "p50_ms", "p99_ms", "errors", "lost"]
    print(markdown(rows, columns))
    return 0 if all(row["errors"] == 0 and row["lost"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
