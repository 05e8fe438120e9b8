"""Benchmark ``train.ingest`` and item calibration at a million rows (issue 12).

Run from the repository root::

    python -m bench.bench_ingest                 # 1,000,000 rows / responses
    python -m bench.bench_ingest --rows 200000   # smaller
    python -m bench.bench_ingest --with-2pl      # also time the 2PL calibration
    python -m bench.bench_ingest --rows 10000000 # the issue-23 ASSISTments size (minutes)
    python -m bench.bench_ingest --ednet-students 5000   # also an EdNet-KT1-shaped tree

Two timed cases, each in a fresh subprocess (so the peak RSS is that case's alone,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``):

1. **ingest**: ``run_ingest`` (what ``python -m train.ingest`` runs) on a generated
   ``assistments-2009`` skill-builder CSV of ``--rows`` rows and all 30 columns, with the
   layout's quirks (10 % multi-skill attempts written once per skill, 1 % duplicated
   records, 3 % scaffolding rows, blank skills, negative and huge response times): read,
   collapse, validate, build items, Rasch-calibrate the first half, write parquet + JSON.
   The CSV is generated once into ``--data-dir`` (not timed).
2. **calibration**: ``skbandit.calibration.calibrate(method="rasch")`` on ``--rows``
   responses of 10,000 students to 2,000 items in 40 topics, drawn from a Rasch model
   (drawing is not timed).

3. **ednet** (with ``--ednet-students N``): ``run_ingest`` of ``ednet-kt1`` on a generated
   tree of ``N`` student files ``KT1/u*.csv`` of :data:`EDNET_ROWS_PER_STUDENT` rows each
   (KT1's mean: about 95M rows over 784,309 files) and a 13,169-question
   ``contents/questions.csv``. The full KT1 size is **extrapolated, not measured**: wall time
   scaled linearly by 784,309 / N files, printed as such (the peak RSS of the sample is
   shown as measured; the full tree in one pandas frame would not fit the 4 GB target).

Targets on the 2-core development machine: ingest under 20 s, calibration under 30 s, peak
RSS under 3 GB. The table also shows each process's CPU seconds and the load average: on a
busy machine the wall time includes waiting for a core. This script prints a table and
asserts nothing.
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
TARGETS = {"ingest": 20.0, "calibration (rasch)": 30.0, "calibration (2pl)": 30.0}
TARGET_RSS_GB = 3.0
COLUMNS = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,"
    "ms_first_response,tutor_mode,answer_type,sequence_id,student_class_id,position,type,"
    "base_sequence_id,skill_id,skill_name,teacher_id,school_id,hint_count,hint_total,"
    "overlap_time,template_id,answer_id,answer_text,first_action,bottom_hint,opportunity,"
    "opportunity_original"
).split(",")


def skill_builder_csv(n_rows: int, data_dir: Path) -> Path:
    """A skill-builder CSV of about ``n_rows`` rows (generated once, cached)."""
    import numpy as np
    import pandas as pd

    path = data_dir / f"skill_builder_{n_rows}.csv"
    if path.is_file():
        return path
    print(f"writing {n_rows:,} skill-builder rows to {path} (once) ...", flush=True)
    rng = np.random.default_rng(0)
    n_attempts = int(n_rows / 1.11)
    problem = rng.integers(0, 20_000, n_attempts)
    skill = problem % 120 + 1
    frame = pd.DataFrame(
        {
            "order_id": np.arange(n_attempts) * 3 + 20_000_000,
            "assignment_id": rng.integers(200_000, 210_000, n_attempts),
            "user_id": rng.integers(60_000, 70_000, n_attempts),
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
            "skill_name": [f"Skill {s}, part {s % 7}" for s in skill],
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
    rows = pd.concat([frame, multi, dup]).sort_values("order_id", kind="stable")
    data_dir.mkdir(parents=True, exist_ok=True)
    rows[COLUMNS].to_csv(path, index=False)
    return path


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
    for user in range(n_students):
        n = EDNET_ROWS_PER_STUDENT
        stamp = 1_560_000_000_000 + np.cumsum(rng.integers(1_000, 90_000, n))
        pd.DataFrame(
            {
                "timestamp": stamp,
                "solving_id": np.arange(1, n + 1),
                "question_id": [f"q{q}" for q in rng.integers(1, EDNET_QUESTIONS + 1, n)],
                "user_answer": rng.choice(list("abcd"), n),
                "elapsed_time": rng.integers(5_000, 60_000, n),
            }
        ).to_csv(root / "KT1" / f"u{user + 1}.csv", index=False)
    (root / "done").write_text("")
    return root


def child_ingest(csv: str, out: str, fmt: str = "assistments-2009") -> dict:
    from train.ingest.job import IngestOptions, run_ingest

    options = IngestOptions(format=fmt, raw_files=(Path(csv),), out=Path(out))
    start = time.perf_counter()
    result = run_ingest(options)
    return {
        "seconds": time.perf_counter() - start,
        "stages": result.seconds,
        "rows": result.cleaning["rows_read"],
        "events": len(result.events),
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


def _run_child(args: list[str]) -> dict:
    code = (
        "import json, resource, sys; from bench.bench_ingest import *; "
        f"r = {args[0]}(*{args[1:]!r}); "
        "u = resource.getrusage(resource.RUSAGE_SELF); r['rss_gb'] = u.ru_maxrss / 1024**2; "
        "r['cpu'] = u.ru_utime + u.ru_stime; "
        "print('RESULT', json.dumps(r))"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return {**json.loads(line.removeprefix("RESULT ")), "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".cache" / "bench-ingest")
    parser.add_argument("--with-2pl", action="store_true")
    parser.add_argument(
        "--ednet-students",
        type=int,
        default=0,
        help="Also ingest an EdNet-KT1-shaped tree of this many student files "
        "(the full size is extrapolated from it).",
    )
    args = parser.parse_args()
    csv = skill_builder_csv(args.rows, args.data_dir)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["ingest"] = _run_child(["child_ingest", str(csv), str(Path(tmp) / "out")])
    if args.ednet_students:
        tree = ednet_tree(args.ednet_students, args.data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            results["ednet"] = _run_child(
                ["child_ingest", str(tree), str(Path(tmp) / "out"), "ednet-kt1"]
            )
    methods = ["rasch", "2pl"] if args.with_2pl else ["rasch"]
    for method in methods:
        results[f"calibration ({method})"] = _run_child(["child_calibration", args.rows, method])
    _print(results)


def _print(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="train.ingest and calibration (2-core machine)")
    columns = (
        "case",
        "size",
        "work (s)",
        "process wall (s)",
        "process CPU (s)",
        "peak RSS (GB)",
        "target",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for case, r in results.items():
        if case == "ednet":
            continue
        size = (
            f"{r['rows']:,} rows -> {r['events']:,} events, {r['items']:,} items"
            if case == "ingest"
            else f"{r['rows']:,} responses, {r['items']:,} items (corr {r['corr']:.3f})"
        )
        table.add_row(
            case,
            size,
            f"{r['seconds']:.1f}",
            f"{r['wall']:.1f}",
            f"{r['cpu']:.1f}",
            f"{r['rss_gb']:.2f}",
            f"< {TARGETS[case]:.0f} s, < {TARGET_RSS_GB:.0f} GB",
        )
    Console(width=140).print(table)
    print(
        f"load average while running: {os.getloadavg()[0]:.1f} (2 cores; above 2 the "
        "wall times include waiting for a core)"
    )
    stages = results["ingest"]["stages"]
    print("ingest stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    if "ednet" in results:
        r = results["ednet"]
        files = r["rows"] / EDNET_ROWS_PER_STUDENT
        full = r["wall"] * EDNET_FILES / files
        print(
            f"ednet-kt1: {files:,.0f} student files, {r['rows']:,} rows -> {r['events']:,} "
            f"events in {r['wall']:.1f} s wall ({r['cpu']:.1f} s CPU), peak RSS "
            f"{r['rss_gb']:.2f} GB (measured); full KT1 ({EDNET_FILES:,} files) "
            f"EXTRAPOLATED linearly: {full / 60:.0f} min (target 20 min, 4 GB)"
        )


if __name__ == "__main__":
    main()
