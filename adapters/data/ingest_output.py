"""The folder ``python -m train.ingest`` writes: canonical tables plus the cleaning report.

``events.parquet`` (or, from a streamed ingest, ``events/part-00000.parquet``, ...: each
part holds whole students, so a student's events stay together) and ``items.parquet`` (the
canonical schema, read back by :mod:`adapters.data.datasets`) and ``cleaning.json`` (every
count, the calibration window) are written together into a temporary folder next to
``--out`` and renamed into place, so a failed or interrupted run leaves ``--out`` as it was.
The calibration summary is also stored in ``items.parquet``'s schema metadata (key
:data:`CALIBRATION_KEY`), so the items file alone says which events set its difficulties.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError

EVENTS_FILE = "events.parquet"
EVENTS_DIR = "events"
ITEMS_FILE = "items.parquet"
CLEANING_FILE = "cleaning.json"
OUTPUT_FILES = (EVENTS_FILE, EVENTS_DIR, ITEMS_FILE, CLEANING_FILE)
CALIBRATION_KEY = b"skbandit.calibration"


def check_output_dir(out: Path) -> None:
    """Refuse an ``--out`` that is a file or a folder holding anything but our outputs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SkbanditError(f"--out {out} is a file; pass a folder (new or from an earlier run)")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_FILES)
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise SkbanditError(
                f"--out {out} already holds other files ({shown}); pass a new or empty folder "
                f"(a folder holding only {', '.join(OUTPUT_FILES)} is replaced)"
            )


def write_ingested(out: Path, events: pd.DataFrame, items: pd.DataFrame, cleaning: dict) -> None:
    """Write the three files atomically into ``out`` (replacing an earlier run's files)."""
    with staged_output(out) as staging:
        events.to_parquet(staging / EVENTS_FILE, index=False)
        publish(staging, out, items, cleaning)


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A temporary folder next to ``out`` to write into; removed unless :func:`publish` moved
    it into place."""
    out = Path(out)
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, items: pd.DataFrame, cleaning: dict) -> None:
    """Add ``items.parquet`` and ``cleaning.json`` to ``staging`` and swap it into ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(items, preserve_index=False)
    calibration = json.dumps(cleaning.get("calibration", {}), default=str).encode()
    metadata = {**(table.schema.metadata or {}), CALIBRATION_KEY: calibration}
    pq.write_table(table.replace_schema_metadata(metadata), staging / ITEMS_FILE)
    text = json.dumps(cleaning, indent=2, default=str)
    (staging / CLEANING_FILE).write_text(text + "\n", encoding="utf-8")
    os.chmod(staging, 0o755)  # mkdtemp creates 0700; published data should be readable
    _swap_into_place(staging, Path(out))


PART_TYPES = {
    "user_id": "string",
    "item_id": "string",
    "topic": "string",
    "skill_ids": "list<string>",
    "timestamp": "timestamp[ns, tz=UTC]",
    "correct": "int64",
    "latency_ms": "float64",
    "help_requested": "float64",
    "action_sequence_id": "string",
}
"""Every part of a streamed events folder has these types (a part whose skills are all
empty lists would otherwise be ``list<null>``, and Spark refuses mixed schemas)."""


def part_path(parts: Path, index: int) -> Path:
    return Path(parts) / f"part-{index:05d}.parquet"


def write_part(events: pd.DataFrame, path: Path) -> None:
    """One part of a streamed events folder, with the :data:`PART_TYPES` schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "list<string>": pa.list_(pa.string()),
        "timestamp[ns, tz=UTC]": pa.timestamp("ns", tz="UTC"),
        "int64": pa.int64(),
        "float64": pa.float64(),
    }
    schema = pa.schema([(c, types[PART_TYPES[c]]) for c in events.columns])
    table = pa.Table.from_pandas(events, preserve_index=False)
    pq.write_table(table.cast(schema.with_metadata(table.schema.metadata)), path)


def part_files(parts: Path) -> list[Path]:
    """The parts of a streamed events folder, in name order."""
    return sorted(Path(parts).glob("part-*.parquet"))


def part_times(parts: Path) -> np.ndarray:
    """Every event's timestamp (int64 nanoseconds), read one column of one part at a time."""
    import pyarrow.parquet as pq

    columns = [
        pq.read_table(f, columns=["timestamp"]).column(0).cast("int64").to_numpy()
        for f in part_files(parts)
    ]
    return np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)


def read_window(parts: Path, until: pd.Timestamp, columns: list[str], max_events: int | None):
    """The events at or before ``until`` (``columns``), part by part, in time order (stable).

    With ``max_events``, whole parts (whole students) are taken in name order until the
    window holds that many events; returns ``(window, parts used, parts)``.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files, tables, n = part_files(parts), [], 0
    for file in files:
        table = pq.read_table(file, columns=columns)
        table = table.filter(pc.less_equal(table["timestamp"], pa_scalar(until)))
        tables.append(table)
        n += table.num_rows
        if max_events is not None and n >= max_events:
            break
    import pyarrow as pa

    frame = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=columns)
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return frame, len(tables), len(files)


def pa_scalar(when: pd.Timestamp):
    import pyarrow as pa

    return pa.scalar(pd.Timestamp(when).as_unit("ns"), type=pa.timestamp("ns", tz="UTC"))


def shift_part_times(parts: Path, seconds: float) -> None:
    """Move every part's timestamps by ``seconds`` (a streamed clock's origin, corrected)."""
    for file in part_files(parts):
        events = pd.read_parquet(file)
        events["timestamp"] = events["timestamp"] + pd.to_timedelta(seconds, unit="s")
        write_part(events, file)


def read_calibration(items_path: Path) -> dict | None:
    """The calibration summary stored in an items parquet file, or None if it has none."""
    import pyarrow.parquet as pq

    path = Path(items_path)
    if path.suffix.lower() not in (".parquet", ".pq") or not path.is_file():
        return None
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(CALIBRATION_KEY)
    return json.loads(raw) if raw else None


def _swap_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
