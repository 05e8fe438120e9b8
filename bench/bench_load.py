"""Load and soak benchmark (issue 11): ``skbandit serve`` with decision logging on.

Run from the repository root::

    python -m bench.bench_load                 # 5,000 requests of 100 rows, 8-way, 2 workers
    python -m bench.bench_load --requests 500  # a quicker look

Builds a temporary store (``python -m train.warmstart`` on a small simulated school), starts
``skbandit serve --workers W`` on 127.0.0.1 (loopback only: the script refuses any other
address) with the decision log in the same temporary folder, warms it up, then sends the
requests from ``--concurrency`` threads. Prints req/s, latency percentiles, errors, the
server's resident memory (all its processes) after warm-up and at the end, and how many
decisions the log holds. Targets: 0 errors, RSS growth below 10%. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from adapters.decision_log import DecisionLog
from bench.bench_serving import _environment, _payload, _run, _write_school
from tests.support.local_server import HOST, skbandit_server

WARMUP = 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp = Path(tmp)
        env = _environment(tmp)
        env["SKBANDIT_DECISION_LOG"] = str(tmp / "decisions.db")
        events, items = _write_school(tmp)
        _run([sys.executable, "-m", "train.warmstart", "--events", events, "--items", items], env)
        with skbandit_server(
            "models:/skbandit-linucb@champion", env, tmp / "server.log", workers=args.workers
        ) as (url, process):
            if not url.startswith(f"http://{HOST}:"):
                sys.exit(f"refusing to load anything but loopback, got {url}")
            body = _payload(args.rows)
            _send(url, body, WARMUP, args.concurrency)
            rss_before = _group_rss_mb(process.pid)
            start = time.perf_counter()
            latencies, errors = _send(url, body, args.requests, args.concurrency)
            wall = time.perf_counter() - start
            rss_after = _group_rss_mb(process.pid)
        decisions, _ = DecisionLog(env["SKBANDIT_DECISION_LOG"]).read()
    _print(args, latencies, errors, wall, rss_before, rss_after, len(decisions))


def _send(url: str, body: str, n: int, concurrency: int):
    """``n`` POSTs from ``concurrency`` threads; (latencies in s, error descriptions)."""
    headers = {"Content-Type": "application/json"}
    per_thread = [n // concurrency + (k < n % concurrency) for k in range(concurrency)]

    def worker(count):
        session, times, errors = requests.Session(), [], []
        for _ in range(count):
            start = time.perf_counter()
            try:
                answer = session.post(f"{url}/invocations", data=body, headers=headers, timeout=60)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:120]}")
            except requests.RequestException as error:
                errors.append(type(error).__name__)
            times.append(time.perf_counter() - start)
        return times, errors

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, per_thread))
    return np.concatenate([t for t, _ in results]), [e for _, es in results for e in es]


def _group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the server's process group, in MB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat: process group
                status = (stat.parent / "status").read_text()
                total += int(status.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def _print(args, latencies, errors, wall, rss_before, rss_after, n_logged):
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1e3
    print(
        f"\nskbandit serve --workers {args.workers}, decision logging on, {args.requests} "
        f"requests of {args.rows} rows, {args.concurrency}-way, 127.0.0.1"
    )
    print(
        "| req/s | p50 ms | p95 ms | p99 ms | errors | RSS after warm-up MB | RSS end MB | "
        "RSS growth | decisions logged |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    growth = (rss_after / rss_before - 1) * 100 if rss_before else float("nan")
    print(
        f"| {args.requests / wall:.0f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {len(errors)} | "
        f"{rss_before:.0f} | {rss_after:.0f} | {growth:+.1f}% | {n_logged} |"
    )
    if errors:
        print("first errors:", errors[:3])


if __name__ == "__main__":
    main()
