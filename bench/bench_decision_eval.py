"""Benchmark: evaluating a candidate on 1,000,000 served decisions (issue 10).

Run from the repository root::

    python -m bench.bench_decision_eval                        # 1,000,000 decisions, 10 candidates
    python -m bench.bench_decision_eval --decisions 100000     # a quicker look

In a temporary folder: a small simulated school trains two versions with
``python -m train.warmstart`` (v1 ``champion``, v2 ``challenger``); a SQLite decision log is
filled with ``--decisions`` decisions of v1 (``--candidates`` candidates each, random model
inputs in their ranges, softmax first-slot propensities, 20,000 students over 100 days) and one
answered attempt per decision is written as the outcomes file. Then it times the command a
user runs, ``python -m train.evaluate compare --candidate ...@challenger --decisions LOG
--events OUTCOMES`` (reading the log, joining outcomes, scoring both versions on every
candidate, DR with the student bootstrap, MLflow logging), as a fresh process, and its stages
in process; then the same command on the log's parquet export (what a nightly job would
read). Target: under 60 s for 1,000,000 decisions. Needs GNU time (``/usr/bin/time``, Debian
package ``time``) for the peak memory. Prints a table, asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.decision_log import DecisionLog
from adapters.decision_log.candidate_sets import pack
from bench.bench_serving import REPO_ROOT, _environment, _run, _write_school
from skbandit import schema

BLOCK = 50_000
N_STUDENTS, N_DAYS, N_ITEMS = 20_000, 100, 2_000
SETTINGS = '{"alpha": 1.0, "epsilon": 0.1, "exploration": "softmax", "objective": "target_band"}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-decision-eval-") as tmp:
        tmp = Path(tmp)
        env = _environment(tmp)
        events, items = _write_school(tmp)
        for _ in range(2):  # v1 champion (first run), v2 challenger
            _run(
                [sys.executable, "-m", "train.warmstart", "--events", events, "--items", items], env
            )
        log, outcomes = tmp / "decisions.db", tmp / "outcomes.parquet"
        start = time.perf_counter()
        answered = _fill_log(DecisionLog(str(log)), args.decisions, args.candidates)
        answered.to_parquet(outcomes, index=False)
        rows.append(("write the log and the outcomes (setup)", time.perf_counter() - start, None))
        rows += _in_process(log, outcomes)
        start = time.perf_counter()
        DecisionLog(str(log)).export_parquet(tmp / "export")
        rows.append(
            (
                "  export the log to parquet (DecisionLog.export_parquet)",
                time.perf_counter() - start,
                None,
            )
        )
        rows.append(_command(env, str(log), outcomes, "the SQLite log"))
        rows.append(_command(env, str(tmp / "export"), outcomes, "its parquet export"))
        size_mb = log.stat().st_size / 1e6
    _print(args, rows, size_mb)


def _fill_log(log: DecisionLog, n: int, k: int) -> pd.DataFrame:
    """``n`` decisions of ``skbandit-linucb`` v1 in blocks (one transaction each); returns
    one answered attempt per decision."""
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2024-01-08", tz="UTC")
    answers = []
    for lo in range(0, n, BLOCK):
        m = min(BLOCK, n - lo)
        ids = [f"{lo + j:032x}" for j in range(m)]
        users = rng.integers(N_STUDENTS, size=m)
        seconds = rng.uniform(N_DAYS * 86400 * lo / n, N_DAYS * 86400 * (lo + m) / n, m)
        when = (start + pd.to_timedelta(np.sort(seconds), "s")).floor("us")
        items = rng.integers(N_ITEMS, size=(m, k))
        inputs = _model_inputs(rng, m * k).reshape(m, k, -1)
        scores = rng.normal(size=(m, k)) / 0.5
        propensity = np.exp(scores - scores.max(axis=1, keepdims=True))
        propensity = 0.9 * propensity / propensity.sum(axis=1, keepdims=True) + 0.1 / k
        served = np.array([rng.choice(k, p=p) for p in propensity])
        served_items = items[np.arange(m), served]
        rank = np.zeros((m, k), dtype=int)
        rank[np.arange(m), served] = 1
        slot = np.where(rank == 1, propensity, np.nan)
        decisions = [
            (
                ids[j],
                when[j].to_pydatetime(),
                f"s{users[j]}",
                "7.RP.A.1",
                "skbandit-linucb",
                "1",
                SETTINGS,
                False,
                f"I{served_items[j]}",
            )
            for j in range(m)
        ]
        sets = [
            pack(
                ids[j],
                [f"I{i}" for i in items[j]],
                inputs[j],
                schema.MODEL_INPUT,
                rank[j],
                propensity[j],
                slot[j],
            )
            for j in range(m)
        ]
        log.append_rows(decisions, sets)
        answers.append(
            pd.DataFrame(
                {
                    schema.USER_ID: [f"s{u}" for u in users],
                    schema.ITEM_ID: [f"I{i}" for i in served_items],
                    schema.TOPIC: "7.RP.A.1",
                    schema.TIMESTAMP: when + pd.Timedelta("30s"),
                    schema.CORRECT: rng.random(m) < 0.65,
                    schema.DECISION_ID: ids,
                }
            )
        )
    return pd.concat(answers, ignore_index=True)


def _model_inputs(rng, n: int) -> np.ndarray:
    """Random model inputs within each column's range."""
    draws = {
        schema.DIFFICULTY: lambda: rng.normal(0, 1, n),
        schema.DISCRIMINATION: lambda: rng.uniform(0.5, 2.0, n),
        schema.ITEM_ATTEMPTS: lambda: rng.integers(0, 2000, n).astype(float),
        "guessing": lambda: rng.uniform(0.0, 0.3, n),
    }
    return np.column_stack(
        [draws[c]() if c in draws else rng.uniform(0.0, 1.0, n) for c in schema.MODEL_INPUT]
    )


def _in_process(log: Path, outcomes: Path) -> list[tuple]:
    """Read, join and score stages timed in this process (memory not separated)."""
    from adapters.data.datasets import read_events
    from skbandit.ope import join

    timed = []
    start = time.perf_counter()
    decisions, _ = DecisionLog(str(log)).read()
    timed.append(("  read the log (DecisionLog.read)", time.perf_counter() - start, None))
    start = time.perf_counter()
    events, _ = read_events(outcomes)
    _, report = join.join_outcomes(decisions, events, model_name="skbandit-linucb")
    timed.append(
        (
            f"  read and join outcomes ({report.matched:,} matched)",
            time.perf_counter() - start,
            None,
        )
    )
    return timed


def _command(env, decisions: str, outcomes: Path, what: str) -> tuple:
    """The compare command as a fresh process; its wall time and peak RSS (from GNU time)."""
    command = [
        "/usr/bin/time",
        "-f",
        "%M",
        sys.executable,
        "-m",
        "train.evaluate",
        "compare",
        "--candidate",
        "models:/skbandit-linucb@challenger",
        "--decisions",
        decisions,
        "--events",
        str(outcomes),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"compare failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return (f"compare --decisions {what} (fresh process)", wall, peak_kb / 1e6)


def _print(args, rows, size_mb: float) -> None:
    print(
        f"\nEvaluating a challenger on {args.decisions:,} logged decisions "
        f"({args.candidates} candidates each; log {size_mb:,.0f} MB; "
        f"{datetime.date.today()})"
    )
    print("| step | wall s | peak RSS GB |")
    print("|---|---:|---:|")
    for label, seconds, peak in rows:
        print(f"| {label} | {seconds:.1f} | {'' if peak is None else f'{peak:.2f}'} |")
    print("\nTarget: the compare command under 60 s for 1,000,000 decisions.")


if __name__ == "__main__":
    main()
