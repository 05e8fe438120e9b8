"""Benchmark ``train.ingest`` at full size: 10M ASSISTments rows and EdNet-KT1 (issue 23).

Run from the repository root (generated data goes to ``--data-dir``, default
``/tmp/skbandit-bench-ingest``; never into the repository)::

    python -m bench.bench_ingest                          # 10M rows, 40,000 EdNet files
    python -m bench.bench_ingest --rows 1000000 --ednet-students 5000   # a quick look
    python -m bench.bench_ingest --in-memory              # also the in-memory ingest (before)
    python -m bench.bench_ingest --with-2pl               # also time the 2PL calibration

Cases, each in a fresh subprocess; peak RSS is the process **and its worker processes**
together (``/proc`` sampled every 0.1 s), CPU is theirs together:

1. **assistments-2009 (streamed)**: ``run_ingest(stream=True)`` on a generated skill-builder
   CSV of ``--rows`` rows and all 30 columns, with the layout's quirks (10 % multi-skill
   attempts written once per skill, 1 % duplicated records, 3 % scaffolding rows, blank
   skills, negative and huge response times). Target: 10M rows in 2 minutes, 4 GB.
2. **ednet-kt1 (streamed)**: a generated tree of ``--ednet-students`` files ``KT1/u*.csv``
   of :data:`EDNET_ROWS_PER_STUDENT` rows (KT1's mean) and a 13,169-question
   ``contents/questions.csv``. The full KT1 (784,309 files, ~95M rows) is **extrapolated,
   not measured**: wall and CPU scaled linearly by 784,309 / N (the parts are of constant
   size; with 40,000 files the calibration already reaches its 2M-event cap, so it is
   counted once more per scale: an over-estimate), peak RSS plus 8 bytes per extra event
   (the cut-off reads every event's time). Target: 20 minutes, 4 GB.
3. **calibration**: ``calibrate(method="rasch")`` on ``--calibration-rows`` Rasch responses.

The table shows rows/s, wall, CPU, peak RSS, the target and pass/fail, and the load
average: on a busy machine the wall times include waiting for a core. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"calibration": 30.0}
TARGET_RSS_GB = 3.0
COLUMNS = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,"
    "ms_first_response,tutor_mode,answer_type,sequence_id,student_class_id,position,type,"
    "base_sequence_id,skill_id,skill_name,teacher_id,school_id,hint_count,hint_total,"
    "overlap_time,template_id,answer_id,answer_text,first_action,bottom_hint,opportunity,"
    "opportunity_original"
).split(",")


def skill_builder_csv(n_rows: int, data_dir: Path) -> Path:
    """A skill-builder CSV of about ``n_rows`` rows (generated once, cached), written in
    blocks of a million rows so that 10M rows do not need 10M rows in memory."""
    import numpy as np

    path = data_dir / f"skill_builder_{n_rows}.csv"
    if path.is_file():
        return path
    print(f"writing {n_rows:,} skill-builder rows to {path} (once) ...", flush=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    block = 1_000_000
    with partial.open("w") as out:
        for start in range(0, n_rows, block):
            rows = _skill_builder_block(
                min(block, n_rows - start), start, np.random.default_rng(start)
            )
            rows[list(COLUMNS)].to_csv(out, index=False, header=start == 0)
    partial.rename(path)
    return path


def _skill_builder_block(n_rows: int, start: int, rng):
    import numpy as np
    import pandas as pd

    n_attempts = int(n_rows / 1.11)
    problem = rng.integers(0, 20_000, n_attempts)
    skill = problem % 120 + 1
    frame = pd.DataFrame(
        {
            "order_id": np.arange(n_attempts) * 3 + 20_000_000 + start * 3,
            "assignment_id": rng.integers(200_000, 210_000, n_attempts),
            "user_id": rng.integers(60_000, 60_000 + max(10_000, n_rows // 100), n_attempts),
            "assistment_id": problem + 30_000,
            "problem_id": problem + 40_000,
            "original": (rng.random(n_attempts) > 0.03).astype(int),
            "correct": (rng.random(n_attempts) < 0.65).astype(int),
            "attempt_count": rng.integers(1, 4, n_attempts),
            "ms_first_response": rng.lognormal(10, 1, n_attempts).astype(int),
            "tutor_mode": "tutor",
            "answer_type": "algebra",
            "sequence_id": 5948,
            "student_class_id": 13241,
            "position": 126,
            "type": "MasterySection",
            "base_sequence_id": 5948,
            "skill_id": skill.astype(float),
            "skill_name": pd.Series([f"Skill {s}, part {s % 7}" for s in range(121)])[
                skill
            ].to_numpy(),
            "teacher_id": 22763,
            "school_id": 73,
            "hint_count": rng.poisson(0.3, n_attempts),
            "hint_total": 3,
            "overlap_time": 1000,
            "template_id": 30799,
            "answer_id": "",
            "answer_text": "26",
            "first_action": 0,
            "bottom_hint": "",
            "opportunity": 1,
            "opportunity_original": 1,
        }
    )
    blank = rng.random(n_attempts) < 0.02
    frame.loc[blank, ["skill_id", "skill_name"]] = [np.nan, ""]
    odd = rng.random(n_attempts)
    frame.loc[odd < 0.005, "ms_first_response"] = -7759
    frame.loc[odd > 0.997, "ms_first_response"] = 1_060_180_000
    multi = frame[rng.random(n_attempts) < 0.10].assign(
        skill_id=lambda f: f["skill_id"] + 500, skill_name=lambda f: f["skill_name"] + " B"
    )
    dup = frame.sample(frac=0.01, random_state=1)
    return pd.concat([frame, multi, dup]).sort_values("order_id", kind="stable")


EDNET_FILES = 784_309
EDNET_ROWS_PER_STUDENT = 121
EDNET_QUESTIONS = 13_169


def ednet_tree(n_students: int, data_dir: Path) -> Path:
    """An EdNet-KT1-shaped folder: ``KT1/u<id>.csv`` files and ``contents/questions.csv``."""
    import numpy as np
    import pandas as pd

    root = data_dir / f"ednet_{n_students}"
    if (root / "done").is_file():
        return root
    print(f"writing {n_students:,} EdNet student files to {root} (once) ...", flush=True)
    rng = np.random.default_rng(2)
    (root / "KT1").mkdir(parents=True, exist_ok=True)
    (root / "contents").mkdir(exist_ok=True)
    pd.DataFrame(
        {
            "question_id": [f"q{i}" for i in range(1, EDNET_QUESTIONS + 1)],
            "bundle_id": [f"b{i // 3}" for i in range(EDNET_QUESTIONS)],
            "explanation_id": [f"e{i // 3}" for i in range(EDNET_QUESTIONS)],
            "correct_answer": rng.choice(list("abcd"), EDNET_QUESTIONS),
            "part": rng.integers(1, 8, EDNET_QUESTIONS),
            "tags": [
                ";".join(map(str, rng.integers(1, 190, 1 + i % 3))) for i in range(EDNET_QUESTIONS)
            ],
            "deployed_at": 1_560_000_000_000,
        }
    ).to_csv(root / "contents" / "questions.csv", index=False)
    n = EDNET_ROWS_PER_STUDENT
    head = "timestamp,solving_id,question_id,user_answer,elapsed_time\n"
    answers = np.array(list("abcd"))
    for user in range(n_students):
        stamp = 1_560_000_000_000 + user * 1_000 + np.cumsum(rng.integers(1_000, 90_000, n))
        question = rng.integers(1, EDNET_QUESTIONS + 1, n)
        answer = answers[rng.integers(0, 4, n)]
        elapsed = rng.integers(5_000, 60_000, n)
        lines = [
            f"{t},{i},q{q},{a},{e}\n"
            for t, i, q, a, e in zip(
                stamp.tolist(),
                range(1, n + 1),
                question.tolist(),
                answer.tolist(),
                elapsed.tolist(),
                strict=True,
            )
        ]
        (root / "KT1" / f"u{user + 1}.csv").write_text(head + "".join(lines))
    (root / "done").write_text("")
    return root


def child_ingest(csv: str, out: str, fmt: str = "assistments-2009", stream: bool = False) -> dict:
    from train.ingest.job import IngestOptions, run_ingest

    options = IngestOptions(format=fmt, raw_files=(Path(csv),), out=Path(out), stream=stream)
    start = time.perf_counter()
    result = run_ingest(options)
    return {
        "seconds": time.perf_counter() - start,
        "stages": result.seconds,
        "rows": result.cleaning["rows_read"],
        "events": result.cleaning["output"]["events"],
        "items": len(result.items),
    }


def child_calibration(n_rows: int, method: str) -> dict:
    import numpy as np
    import pandas as pd

    from skbandit.calibration import calibrate

    rng = np.random.default_rng(1)
    theta, b = rng.normal(0.5, 1, 10_000), rng.normal(0, 1, 2_000)
    topic = rng.integers(0, 40, 2_000)
    user, item = rng.integers(0, 10_000, n_rows), rng.integers(0, 2_000, n_rows)
    events = pd.DataFrame(
        {
            "user_id": pd.Series(user).astype(str),
            "item_id": pd.Series(item).astype(str),
            "topic": pd.Series(topic[item]).astype(str),
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(np.arange(n_rows), unit="s"),
            "correct": (rng.random(n_rows) < 1 / (1 + np.exp(b[item] - theta[user]))).astype(int),
        }
    )
    start = time.perf_counter()
    fit = calibrate(events, method=method)
    seconds = time.perf_counter() - start
    order = pd.Series(np.arange(2_000)).astype(str)
    estimate = fit.items.set_index("item_id")["difficulty"].reindex(order).to_numpy()
    return {
        "seconds": seconds,
        "rows": n_rows,
        "items": 2_000,
        "corr": float(np.corrcoef(estimate, b)[0, 1]),
    }


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _run_child(args: list) -> dict:
    """Run ``args[0](*args[1:])`` in a fresh interpreter; wall time, CPU and the peak RSS
    of the process and its worker processes together (sampled every 0.1 s)."""
    code = (
        "import json, resource, sys; from bench.bench_ingest import *; "
        f"r = {args[0]}(*{args[1:]!r}); "
        "u = resource.getrusage(resource.RUSAGE_SELF); "
        "c = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "r['cpu'] = u.ru_utime + u.ru_stime + c.ru_utime + c.ru_stime; "
        "print('RESULT', json.dumps(r))"
    )
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(child.pid))
        time.sleep(0.1)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise SystemExit(stderr)
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line.removeprefix("RESULT "))
    return {**result, "wall": time.perf_counter() - start, "rss_gb": peak / 1024**3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="ASSISTments rows")
    parser.add_argument(
        "--ednet-students",
        type=int,
        default=40_000,
        help="EdNet student files measured (the full 784,309 is extrapolated from them).",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/skbandit-bench-ingest"))
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="Also time the in-memory ingest of the same ASSISTments CSV (before streaming).",
    )
    parser.add_argument("--calibration-rows", type=int, default=1_000_000)
    parser.add_argument("--with-2pl", action="store_true")
    args = parser.parse_args()
    csv = skill_builder_csv(args.rows, args.data_dir)
    tree = ednet_tree(args.ednet_students, args.data_dir) if args.ednet_students else None
    results = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        results["assistments-2009 (streamed)"] = _run_child(
            ["child_ingest", str(csv), f"{tmp}/a09", "assistments-2009", True]
        )
        load.append(os.getloadavg()[0])
        if args.in_memory:
            results["assistments-2009 (in memory)"] = _run_child(
                ["child_ingest", str(csv), f"{tmp}/a09m", "assistments-2009", False]
            )
            load.append(os.getloadavg()[0])
        if tree is not None:
            results["ednet-kt1 (streamed)"] = _run_child(
                ["child_ingest", str(tree), f"{tmp}/ednet", "ednet-kt1", True]
            )
            load.append(os.getloadavg()[0])
    methods = ["rasch", "2pl"] if args.with_2pl else ["rasch"]
    for method in methods:
        results[f"calibration ({method})"] = _run_child(
            ["child_calibration", args.calibration_rows, method]
        )
    load.append(os.getloadavg()[0])
    _print(results, args, load)


def _print(results: dict, args, load: list[float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="train.ingest on this 2-core machine")
    columns = ("case", "size", "rows/s", "wall (s)", "CPU (s)", "peak RSS (GB)", "target", "")
    for column in columns:
        table.add_column(column, justify="left" if column in ("case", "size") else "right")
    for case, r in results.items():
        if case.startswith("calibration"):
            size = f"{r['rows']:,} responses, {r['items']:,} items (corr {r['corr']:.3f})"
            seconds, rss = TARGETS["calibration"], TARGET_RSS_GB
            wall = r["wall"]
        else:
            size = f"{r['rows']:,} rows -> {r['events']:,} events, {r['items']:,} items"
            seconds, rss = (1200.0, 4.0) if case.startswith("ednet") else (120.0, 4.0)
            wall = r["wall"]
        if case.startswith("ednet"):
            files = r["rows"] / EDNET_ROWS_PER_STUDENT
            scale = EDNET_FILES / files
            table.add_row(
                f"{case}, {files:,.0f} files (measured)",
                size,
                f"{r['rows'] / wall:,.0f}",
                f"{wall:.1f}",
                f"{r['cpu']:.1f}",
                f"{r['rss_gb']:.2f}",
                "",
                "",
            )
            extra = (scale - 1) * files * EDNET_ROWS_PER_STUDENT * 8 / 1024**3
            case, wall = (
                f"ednet-kt1, {EDNET_FILES:,} files (EXTRAPOLATED x{scale:.1f})",
                wall * scale,
            )
            size = f"~{EDNET_FILES * EDNET_ROWS_PER_STUDENT / 1e6:.0f}M rows"
            r = {**r, "cpu": r["cpu"] * scale, "rss_gb": r["rss_gb"] + extra}
        verdict = "pass" if wall <= seconds and r["rss_gb"] <= rss else "FAIL"
        table.add_row(
            case,
            size,
            f"{r['rows'] / r['wall']:,.0f}" if "EXTRA" not in case else "",
            f"{wall:.1f}",
            f"{r['cpu']:.1f}",
            f"{r['rss_gb']:.2f}",
            f"<= {seconds / 60:.0f} min, <= {rss:.0f} GB"
            if seconds >= 60
            else f"<= {seconds:.0f} s",
            verdict,
        )
    Console(width=160).print(table)
    print(
        "load average (1 min) before/after each case: "
        + ", ".join(f"{x:.1f}" for x in load)
        + " (2 cores; above 2 the wall times include waiting for a core)"
    )
    for case, r in results.items():
        if "stages" in r:
            print(f"{case} stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["stages"].items()))
    print(
        "peak RSS: the ingest process and its worker processes together, sampled every 0.1 s. "
        "EdNet at full size is extrapolated linearly from the measured files (the parts are "
        "of constant size; the extrapolated peak adds the 8 bytes per event the cut-off "
        "reads at once)."
    )


if __name__ == "__main__":
    main()
