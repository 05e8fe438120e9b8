"""Benchmark the warm-start on the local engine and on Spark ``local[2]`` (issue 15).

Run from the repository root (parts can be run on their own)::

    python -m bench.bench_spark                          # 1M events, both engines
    python -m bench.bench_spark --sizes 1M,5M            # two sizes
    python -m bench.bench_spark --sizes 20M --engines spark   # beyond the local engine's memory

Data (generated once into ``--data-dir``, not timed): a simulated school of about a million
events (``skbandit.sim``, 10,000 students), and for larger sizes that school repeated with
renamed students (``u~1``, ``u~2``, ...) as a directory of one parquet file per copy: the
simulator is too slow for 20M events, and a copy has the same shape of history. The local
engine reads one parquet file (written for the sizes it runs), Spark the directory.

Each run is ``python -m train.warmstart`` in a fresh subprocess against a temporary MLflow
store (``--engine spark --spark-master local[2]`` with the driver capped at
``--driver-memory``, default 4g). The parent samples the RSS of the run's whole process tree
every half second: the Python driver, Spark's JVM (driver and executors in ``local`` mode) and
Spark's Python workers. The table shows seconds per stage, wall time and peak memory; the
closing lines extrapolate the local engine's memory and estimate a 32-core cluster from
Spark's measured per-core throughput. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE_STUDENTS = 10_000
STAGES = (
    "load",
    "contexts",
    "features",
    "params",
    "replay",
    "progress",
    "metrics",
    "plots",
    "dataset",
    "model",
    "register",
)
LOCAL_LIMIT = 10_000_000
"""Sizes above this are not run on the local engine unless --force-local (the memory line
extrapolates its ceiling from the smaller sizes)."""
CLUSTER_CORES = 32
CLUSTER_EVENTS = 500_000_000


def parse_size(text: str) -> int:
    """``1M`` -> 1_000_000, ``500k`` -> 500_000, ``2000`` -> 2000.

    >>> parse_size("5M"), parse_size("250k")
    (5000000, 250000)
    """
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def base_school(data_dir: Path) -> Path:
    """The simulated school of about a million events (generated once)."""
    from adapters.data.datasets import write_school
    from skbandit.sim.generate import SchoolConfig, simulate_school

    folder = data_dir / "base"
    if not (folder / "events.parquet").is_file():
        print(f"simulating {BASE_STUDENTS:,} students into {folder} (once) ...", flush=True)
        school = simulate_school(SchoolConfig(n_students=BASE_STUDENTS, seed=0))
        write_school(school.events, school.items, folder)
    return folder


def school_of(size: int, data_dir: Path, local: bool) -> dict[str, Path]:
    """Paths of a school of about ``size`` events: a directory of copies (and one file)."""
    import pandas as pd

    base = base_school(data_dir)
    events = pd.read_parquet(base / "events.parquet")
    copies = max(1, round(size / len(events)))
    folder = data_dir / f"copies-{copies}"
    parts = folder / "events"
    parts.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        part = parts / f"part-{k:04d}.parquet"
        if not part.is_file():
            _copy(events, k).to_parquet(part, index=False)
    single = folder / "events.parquet"
    if local and not single.is_file():
        pd.concat([_copy(events, k) for k in range(copies)]).to_parquet(single, index=False)
    return {
        "dir": parts,
        "file": single,
        "items": base / "items.parquet",
        "events": len(events) * copies,
    }


def _copy(events, k: int):
    if k == 0:
        return events
    return events.assign(user_id=events["user_id"] + f"~{k}")


def child(engine: str, events: str, items: str, out: str, master: str, memory: str) -> None:
    """One timed warm-start (runs in its own process)."""
    import io

    from rich.console import Console

    from train.warmstart.job import WarmstartOptions, run_warmstart

    options = WarmstartOptions(events=events, items=items, engine=engine, spark_master=master)
    console = Console(file=io.StringIO(), width=120)
    start = time.perf_counter()
    if engine == "spark":
        from adapters.data.spark import start_session
        from train.spark.warmstart import run_spark_warmstart

        java_options = os.environ.get("BENCH_JAVA_OPTIONS", "")
        conf = {"spark.driver.extraJavaOptions": java_options} if java_options else {}
        start_session(master, driver_memory=memory, conf=conf)  # the job reuses it
        session_seconds = time.perf_counter() - start
        result = run_spark_warmstart(options, console)
    else:
        session_seconds = 0.0
        result = run_warmstart(options, console)
    report = {
        "seconds": {"session": session_seconds, **result.seconds},
        "total": time.perf_counter() - start,
        "events": result.history.n_events,
    }
    Path(out).write_text(json.dumps(report))


class TreeMemory:
    """Peak RSS of a process and its descendants, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.5):
        self.pid, self.every = pid, every
        self.peak = {"total": 0, "python": 0, "jvm": 0, "workers": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            sample = {"python": 0, "jvm": 0, "workers": 0}
            for pid, kind in self._tree().items():
                sample[kind] += _rss(pid)
            sample["total"] = sum(sample.values())
            for key, value in sample.items():
                self.peak[key] = max(self.peak[key], value)
            self._stop.wait(self.every)

    def _tree(self) -> dict[int, str]:
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    parents[int(entry.name)] = (int(fields[1]), _command(entry))
                except (OSError, IndexError, ValueError):
                    continue
        kinds, frontier = {self.pid: "python"}, [self.pid]
        while frontier:
            parent = frontier.pop()
            for pid, (ppid, command) in parents.items():
                if ppid == parent and pid not in kinds:
                    under_jvm = kinds[parent] in ("jvm", "workers")
                    kinds[pid] = (
                        "jvm" if "java" in command else "workers" if under_jvm else "python"
                    )
                    frontier.append(pid)
        return kinds


def _command(entry: Path) -> str:
    return (entry / "comm").read_text().strip()


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_once(engine: str, paths: dict, master: str, memory: str, java_options: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENCH_JAVA_OPTIONS": java_options,
        }
        out = Path(tmp) / "report.json"
        events = paths["dir"] if engine == "spark" else paths["file"]
        args = [
            sys.executable,
            "-m",
            "bench.bench_spark",
            "--child",
            engine,
            str(events),
            str(paths["items"]),
            str(out),
            master,
            memory,
        ]
        wall = time.perf_counter()
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        with TreeMemory(process.pid) as memory_use:
            _, errors = process.communicate()
        if process.returncode != 0:
            log = paths["dir"].parent / f"failed-{engine}.log"
            log.write_text(errors)
            lines = errors.strip().splitlines()
            cause = [line for line in lines if "Error" in line or "Exception" in line]
            return {
                "engine": engine,
                "failed": f"{(cause or lines or ['?'])[-1].strip()} (whole log: {log})",
            }
        report = json.loads(out.read_text())
    report.update(engine=engine, wall=time.perf_counter() - wall, peak=memory_use.peak)
    return report


def print_table(reports: list[dict], master: str, memory: str, java_options: str) -> None:
    print(
        f"\n| events | engine | {' | '.join(('session', *STAGES))} | total s | peak GB "
        "(python / JVM / workers) |"
    )
    print("|" + "---|" * (len(STAGES) + 5))
    for r in reports:
        if "failed" in r:
            print(f"| {r['size']:,} | {r['engine']} | failed: {r['failed']} |")
            continue
        s = r["seconds"]
        cells = [f"{s.get(k, 0.0):.1f}" for k in ("session", *STAGES)]
        gb = {k: v / 2**30 for k, v in r["peak"].items()}
        print(
            f"| {r['events']:,} | {r['engine']} | {' | '.join(cells)} | {r['total']:.1f} | "
            f"{gb['total']:.2f} ({gb['python']:.2f} / {gb['jvm']:.2f} / {gb['workers']:.2f}) |"
        )
    print(
        f"\nSpark: master {master}, driver memory {memory}, Java options "
        f"{java_options or '(none)'}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end (wall times suffer "
        "when the machine is shared)."
    )
    _closing_lines(reports)


def _closing_lines(reports: list[dict]) -> None:
    done = [r for r in reports if "failed" not in r]
    local = sorted((r["events"], r["peak"]["total"]) for r in done if r["engine"] == "local")
    if len(local) >= 2:
        (n0, m0), (n1, m1) = local[0], local[-1]
        per_million = (m1 - m0) / (n1 - n0) * 1e6
        ceiling = n0 + (24 * 2**30 - m0) / per_million * 1e6
        print(
            f"local engine memory: {per_million / 2**30:.2f} GB per million events "
            f"(from {n0:,} to {n1:,}); 24 GB runs out near {ceiling / 1e6:.0f}M events"
        )
    spark = [r for r in done if r["engine"] == "spark"]
    if spark:
        big = max(spark, key=lambda r: r["events"])
        fixed = big["seconds"].get("session", 0.0) + sum(
            big["seconds"].get(k, 0.0) for k in ("params", "plots", "dataset", "model", "register")
        )
        scaled = big["total"] - fixed
        per_core = big["events"] / (scaled * 2)  # local[2]: two cores did the scaled work
        estimate = CLUSTER_EVENTS / (per_core * CLUSTER_CORES) + fixed
        print(
            f"Spark per-core throughput at {big['events']:,} events: {per_core:,.0f} events/s "
            f"per core ({scaled:.0f} s of data work on 2 cores, {fixed:.0f} s fixed); "
            f"{CLUSTER_EVENTS / 1e6:.0f}M events on {CLUSTER_CORES} cores: about "
            f"{estimate / 60:.0f} min if the work scales linearly (no shuffle or skew "
            "penalty counted)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M", help="comma-separated, e.g. 1M,5M,20M")
    parser.add_argument("--engines", default="local,spark")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument(
        "--force-local",
        action="store_true",
        help=f"run the local engine above {LOCAL_LIMIT:,} events too",
    )
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".cache" / "bench-spark")
    parser.add_argument(
        "--java-options",
        default="",
        help="spark.driver.extraJavaOptions, e.g. -XX:TieredStopAtLevel=1",
    )
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    engines = [e.strip() for e in args.engines.split(",")]
    reports = []
    for size in (parse_size(s) for s in args.sizes.split(",")):
        local = "local" in engines and (size <= LOCAL_LIMIT or args.force_local)
        paths = school_of(size, args.data_dir, local)
        for engine in engines:
            if engine == "local" and not local:
                print(
                    f"skipping the local engine at {size:,} events (above {LOCAL_LIMIT:,}; "
                    "--force-local runs it)"
                )
                continue
            print(f"running {engine} on {paths['events']:,} events ...", flush=True)
            report = run_once(engine, paths, args.master, args.driver_memory, args.java_options)
            report["size"] = paths["events"]
            reports.append(report)
    print_table(reports, args.master, args.driver_memory, args.java_options)


if __name__ == "__main__":
    main()
