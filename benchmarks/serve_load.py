"""Bounded load test of ``stealguard serve`` from several client processes: req/s, p50 / p99 latency.

For each defense and each server thread setting, a real server (``python -m stealguard.cli
serve``, one uvicorn worker) is started on a free 127.0.0.1 port with a digits ``mlp``
victim. ``--clients`` client processes (multiprocessing, spawn) then each run ``--concurrency``
httpx connections on an asyncio loop and send their share of exactly ``--requests`` POST
/v1/predict requests (``--batch`` inputs each, ``.npy`` bodies), each stopping at the
``--max-seconds`` deadline. Everything stays on loopback and is bounded in count and time.
Reported per (defense, threads): requests and inputs per second, p50 / p99 latency, errors
(non-200 answers or transport failures) and requests not sent before the deadline.

Thread settings (``--threads``): ``torch`` is torch's own default in a fresh process without
``OMP_NUM_THREADS`` (one intra-op thread per core: the server's behaviour before it defaulted to
one thread), an integer is passed as ``serve --threads N``. Settings alternate within each
defense, ``--repeats`` times, so drift of the machine hits them alike.

Run:  python benchmarks/serve_load.py                                  (none, dcp, mad; torch vs 1 thread)
      python benchmarks/serve_load.py --requests 600 --clients 3 --quick
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import multiprocessing
import multiprocessing.pool
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
MAX_CLIENTS = 16
MAX_CONCURRENCY = 256


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torch_default_threads() -> int:
    """torch's intra-op thread count in a fresh process without ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env, check=True,
        capture_output=True, text=True,
    )
    return int(out.stdout.strip())


def start_server(victim: Path, defense: str, data_dir: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server and wait for /healthz; return the process and its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "stealguard.cli", "serve", "--victim", str(victim), "--defense", defense,
        "--data-dir", str(data_dir), "--port", str(port), "--threads", str(threads), "--log-level", "warning",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
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


async def _client_load(url: str, requests: int, concurrency: int, batch: int, deadline: float, seed: int) -> dict[str, object]:
    bodies = [npy_body(batch, seed * 16 + i) for i in range(16)]
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    next_index = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            for index in next_index:
                if time.time() > deadline:
                    return
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

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"latencies": latencies, **counts}


def client_process(args: tuple[str, int, int, int, float, float, int]) -> dict[str, object]:
    """One client process: wait for the common start time, send its requests, return what it measured."""
    url, requests, concurrency, batch, start_at, deadline, seed = args
    time.sleep(max(0.0, start_at - time.time()))
    return asyncio.run(_client_load(url, requests, concurrency, batch, deadline, seed))


def load(pool: multiprocessing.pool.Pool, url: str, *, requests: int, clients: int, concurrency: int, batch: int,
         max_seconds: float) -> dict[str, float]:
    """Send ``requests`` requests from ``clients`` processes (``concurrency`` connections each); measurements."""
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    start_at = time.time() + 1.0
    jobs = [(url, share, concurrency, batch, start_at, start_at + max_seconds, i) for i, share in enumerate(shares)]
    results = pool.map(client_process, jobs)
    elapsed = time.time() - start_at
    latencies = np.sort(np.concatenate([np.asarray(r["latencies"], dtype=float) for r in results]))
    ok, errors = sum(int(r["ok"]) for r in results), sum(int(r["errors"]) for r in results)
    return {
        "requests": requests,
        "req_per_s": ok / elapsed,
        "inputs_per_s": ok * batch / elapsed,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
        "errors": errors,
        "not_sent": requests - ok - errors,
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
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (default 2000)")
    parser.add_argument("--clients", type=int, default=4, help=f"client processes (default 4, at most {MAX_CLIENTS})")
    parser.add_argument("--concurrency", type=int, default=16, help=f"connections per client (default 16, at most {MAX_CONCURRENCY})")
    parser.add_argument("--batch", type=int, default=1, help="inputs per request (default 1)")
    parser.add_argument("--threads", nargs="+", default=["torch", "1"], help="server thread settings: torch or N (default: torch 1)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs per setting (default 1)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="deadline of each run's clients (default 120)")
    parser.add_argument("--victim", type=Path, default=None, help="victim directory (default: train a digits mlp)")
    parser.add_argument("--csv", type=Path, default=None, help="append the raw rows to this CSV file")
    parser.add_argument("--quick", action="store_true", help="at most 300 requests per run")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.concurrency <= MAX_CONCURRENCY or args.requests < 1:
        parser.error(f"--clients in [1, {MAX_CLIENTS}], --concurrency in [1, {MAX_CONCURRENCY}], --requests >= 1")
    if args.quick:
        args.requests = min(args.requests, 300)
    default = torch_default_threads()
    settings = [(name, default if name == "torch" else int(name)) for name in args.threads]
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    rows = []
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp, context.Pool(args.clients) as pool:
        victim = args.victim
        if victim is None:
            victim = Path(tmp) / "victim"
            subprocess.run(
                [sys.executable, "-m", "stealguard.cli", "train", "--dataset", "digits", "--arch", "mlp", "--epochs", "3",
                 "--out", str(victim), "--quiet", "--threads", "1"],
                check=True, stdout=subprocess.DEVNULL,
            )
        for d_index, defense in enumerate(args.defenses):
            for repeat in range(args.repeats):
                for name, threads in settings:
                    data_dir = Path(tmp) / f"data-{d_index}-{repeat}-{name}"
                    process, url = start_server(victim, defense, data_dir, threads)
                    try:
                        load(pool, url, requests=min(64, args.requests), clients=args.clients,
                             concurrency=args.concurrency, batch=args.batch, max_seconds=args.max_seconds)
                        measured = load(pool, url, requests=args.requests, clients=args.clients,
                                        concurrency=args.concurrency, batch=args.batch, max_seconds=args.max_seconds)
                    finally:
                        process.terminate()
                        process.wait(timeout=30)
                    label = f"torch ({threads})" if name == "torch" else str(threads)
                    rows.append({"defense": defense, "threads": label, "repeat": repeat, "clients": args.clients,
                                 "concurrency": args.concurrency, "batch": args.batch, **measured})
                    print(f"done: {defense} threads {label} repeat {repeat}", file=sys.stderr)
    print(f"{os.cpu_count()} CPUs, server: 1 uvicorn worker, loopback, {args.clients} client processes x "
          f"{args.concurrency} connections; threads 'torch (N)' = torch's default without OMP_NUM_THREADS\n")
    columns = ["defense", "threads", "repeat", "requests", "req_per_s", "inputs_per_s", "p50_ms", "p99_ms", "errors", "not_sent"]
    print(markdown(rows, columns))
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        new = not args.csv.exists()
        stamp = {"run": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count()}
        with args.csv.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*stamp, *rows[0]])
            if new:
                writer.writeheader()
            writer.writerows({**stamp, **row} for row in rows)
    return 0 if all(row["errors"] == 0 and row["not_sent"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
