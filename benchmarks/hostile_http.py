"""Hostile HTTP against ``stealguard serve``: how fast oversized and stalled uploads are refused.

A real server (``python -m stealguard.cli serve``, one uvicorn worker, default limits) serves a
digits ``mlp`` victim on a free 127.0.0.1 port. Measured, each ``--repeats`` times:

* ``small``: latency of a 2-input JSON request on an idle server (the baseline);
* ``big json, Content-Length``: an httpx client posting a 32 MiB JSON body with its length
  declared, from the call to the 413 (refused from the header, nothing read);
* ``declared, headers only``: a raw connection sending only the headers of that request, until
  the 413 arrives (the server's own refusal time);
* ``big json, chunked``: the same body without a length (refused while streaming);
* ``4 big json at once``: four such uploads in parallel, until the last 413;
* ``small during big``: latency of 2-input requests sent while 4 big uploads are in flight;
* ``healthz under stalls``: ``GET /healthz`` latency while ``--stalls`` raw connections hold
  headers and a partial body; the stalled connections still open (each holding one of the
  ``--max-active-requests`` slots) and those refused with 503 are counted.

* ``json decode, (3, 32, 32) victim``: in-process, :func:`stealguard.serve.codec.decode_inputs`
  of a valid JSON body of 896 CIFAR-shaped inputs (about 31 MiB, under the default 32 MiB
  limit) on a worker thread, and the longest the main thread waited
  meanwhile (a 1 ms sleep loop: the GIL the parse holds; the same loop with nothing running
  is the ``idle`` row, what the machine's scheduling alone costs; ``reference`` is plain
  ``json.loads`` and one ``np.asarray``, as the decoder did before).

Also reported: the server's peak resident memory (VmHWM) before and after. Rows go to
``--out`` (CSV: scenario, statistic, value, unit); the table goes to stdout.

Run:  python benchmarks/hostile_http.py                 (5 repeats, 300 stalls)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

STARTUP_S = 120.0
BIG = 32 * 1024 * 1024
SHAPE = (1, 8, 8)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(victim: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a server with default limits and wait for /healthz."""
    command = [
        sys.executable, "-m", "stealguard.cli", "serve", "--victim", str(victim), "--data-dir", str(data_dir),
        "--port", str(port), "--threads", "1", "--log-level", "warning", "--no-query-log",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start within {STARTUP_S} s")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_json() -> bytes:
    """A syntactically valid JSON body of about 32 MiB (8 Mi values)."""
    count = BIG // 4 - 4
    return b'{"inputs": [' + b"0.5," * count + b"0.5]}"


def timed(call: object) -> tuple[float, int]:
    """Seconds ``call()`` took and the status it returned."""
    start = time.perf_counter()
    status = call()  # type: ignore[operator]
    return time.perf_counter() - start, int(status)


def longest_wait(work: object) -> tuple[float, float]:
    """Seconds ``work()`` took on a worker thread and the longest gap of a 1 ms sleep loop meanwhile."""
    import threading

    gaps: list[float] = []
    done = threading.Event()
    worker = threading.Thread(target=lambda: (work(), done.set()))  # type: ignore[operator]
    start = last = time.perf_counter()
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    return time.perf_counter() - start, max(gaps, default=0.0)


def cifar_json_rows(repeats: int) -> list[dict[str, object]]:
    """Decode time and longest main-thread wait for a max-size valid JSON body of a (3, 32, 32) victim."""
    from stealguard.serve.codec import decode_inputs

    images = np.round(np.random.default_rng(0).random((896, 3, 32, 32)), 8)
    body = json.dumps({"inputs": images.tolist()}).encode()
    rows: list[dict[str, object]] = []
    for name, work in (
        ("idle", lambda: time.sleep(1.0)),
        (f"json decode, (3, 32, 32) victim, {len(body) / 2**20:.0f} MiB",
         lambda: decode_inputs(body, "application/json", input_shape=(3, 32, 32), max_batch=1024)),
        ("reference: json.loads + np.asarray of the same body", lambda: np.asarray(json.loads(body)["inputs"])),
    ):
        runs = [longest_wait(work) for _ in range(repeats)]
        rows.append({"scenario": name, "statistic": "median time", "value": 1000 * statistics.median(t for t, _ in runs), "unit": "ms"})
        rows.append({"scenario": name, "statistic": "median longest wait of a 1 ms loop", "value": 1000 * statistics.median(g for _, g in runs), "unit": "ms"})
        rows.append({"scenario": name, "statistic": "max longest wait of a 1 ms loop", "value": 1000 * max(g for _, g in runs), "unit": "ms"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each measurement (default 5)")
    parser.add_argument("--stalls", type=int, default=300, help="stalled uploads (default 300)")
    parser.add_argument("--victim", type=Path, default=None, help="victim directory (default: train a digits mlp)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hostile_http/hostile_http.csv"), help="CSV of the rows")
    args = parser.parse_args(argv)
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))
    rows: list[dict[str, object]] = []

    def record(scenario: str, seconds: list[float], statuses: list[int]) -> None:
        rows.append({"scenario": scenario, "statistic": "median", "value": 1000 * statistics.median(seconds), "unit": "ms"})
        rows.append({"scenario": scenario, "statistic": "max", "value": 1000 * max(seconds), "unit": "ms"})
        rows.append({"scenario": scenario, "statistic": "statuses", "value": " ".join(f"{s}x{statuses.count(s)}" for s in sorted(set(statuses))), "unit": ""})

    body = big_json()
    small = json.dumps({"inputs": np.full((2, *SHAPE), 0.5).tolist()}).encode()
    with tempfile.TemporaryDirectory(prefix="hostile-http-") as tmp:
        victim = args.victim
        if victim is None:
            victim = Path(tmp) / "victim"
            subprocess.run(
                [sys.executable, "-m", "stealguard.cli", "train", "--dataset", "digits", "--arch", "mlp", "--epochs", "3",
                 "--out", str(victim), "--quiet"],
                check=True, stdout=subprocess.DEVNULL,
            )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(victim, Path(tmp) / "data", port)
        try:
            with httpx.Client(base_url=url, timeout=120.0) as client:
                def post_small() -> int:
                    return client.post("/v1/predict", content=small, headers={"Content-Type": "application/json"}).status_code

                def post_big() -> int:
                    with httpx.Client(base_url=url, timeout=120.0) as own:
                        return own.post("/v1/predict", content=body, headers={"Content-Type": "application/json"}).status_code

                def post_big_chunked() -> int:
                    def chunks():  # type: ignore[no-untyped-def]
                        for start in range(0, len(body), 1 << 20):
                            yield body[start:start + (1 << 20)]

                    with httpx.Client(base_url=url, timeout=120.0) as own:
                        return own.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"}).status_code

                for _ in range(3):
                    post_small()
                rss_before = peak_rss_mib(process.pid)
                runs = [timed(post_small) for _ in range(20 * args.repeats)]
                record("small (2 inputs), idle server", [t for t, _ in runs], [s for _, s in runs])
                runs = [timed(post_big) for _ in range(args.repeats)]
                record("big json (32 MiB), Content-Length", [t for t, _ in runs], [s for _, s in runs])
                def declare_big() -> int:
                    head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n").encode()
                    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                        sock.sendall(head)
                        return int(sock.recv(64).split(b" ", 2)[1])

                runs = [timed(declare_big) for _ in range(args.repeats)]
                record("big json (32 MiB) declared, headers only, until the 413", [t for t, _ in runs], [s for _, s in runs])
                runs = [timed(post_big_chunked) for _ in range(args.repeats)]
                record("big json (32 MiB), chunked", [t for t, _ in runs], [s for _, s in runs])

                together, during, statuses, small_statuses = [], [], [], []
                with ThreadPoolExecutor(max_workers=5) as pool:
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        futures = [pool.submit(post_big) for _ in range(4)]
                        while True:
                            seconds, status = timed(post_small)
                            during.append(seconds)
                            small_statuses.append(status)
                            if all(f.done() for f in futures):
                                break
                        statuses += [f.result() for f in futures]
                        together.append(time.perf_counter() - start)
                record("4 big json at once, until the last 413", together, statuses)
                record("small (2 inputs) during 4 big uploads", during, small_statuses)
                rss_after = peak_rss_mib(process.pid)

                stalled: list[socket.socket] = []
                head = (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                        "Content-Length: 100000\r\n\r\n").encode() + b'{"inputs": [[[[0.5, '
                try:
                    for _ in range(args.stalls):
                        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                        sock.sendall(head)
                        stalled.append(sock)
                    runs = [timed(lambda: client.get("/healthz").status_code) for _ in range(20 * args.repeats)]
                    record(f"healthz under {args.stalls} stalled uploads", [t for t, _ in runs], [s for _, s in runs])
                    still_open = refused = 0
                    for sock in stalled:
                        sock.setblocking(False)
                        try:
                            answer = sock.recv(64)
                        except BlockingIOError:
                            still_open += 1
                            continue
                        refused += answer.startswith(b"HTTP/1.1 503")
                    rows.append({"scenario": f"{args.stalls} stalled uploads", "statistic": "still open", "value": still_open, "unit": "connections"})
                    rows.append({"scenario": f"{args.stalls} stalled uploads", "statistic": "answered 503", "value": refused, "unit": "connections"})
                finally:
                    for sock in stalled:
                        sock.close()
                rows.append({"scenario": "server", "statistic": "peak RSS before big bodies", "value": rss_before, "unit": "MiB"})
                rows.append({"scenario": "server", "statistic": "peak RSS after big bodies", "value": rss_after, "unit": "MiB"})
                alive = client.get("/healthz").status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=30)
    rows += cifar_json_rows(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["scenario", "statistic", "value", "unit"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{os.cpu_count()} CPUs (shared), server: 1 uvicorn worker, 1 torch thread, default limits, loopback; "
          f"{args.repeats} repeats\n")
    print("| scenario | statistic | value | unit |\n|---|---|---|---|")
    for row in rows:
        value = f"{row['value']:.1f}" if isinstance(row["value"], float) else str(row["value"])
        print(f"| {row['scenario']} | {row['statistic']} | {value} | {row['unit']} |")
    print(f"\nserver still answering: {alive}; wrote {args.out}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
