"""The folder ``python -m train.ingest`` writes: canonical tables plus the cleaning report.

``events.parquet`` and ``items.parquet`` (the canonical schema, read back by
:mod:`adapters.data.datasets`) and ``cleaning.json`` (every count, the calibration window) are
written together into a temporary folder next to ``--out`` and renamed into place, so a
failed or interrupted run leaves ``--out`` as it was. The calibration summary is also stored
in ``items.parquet``'s schema metadata (key :data:`CALIBRATION_KEY`), so the items file
alone says which events set its difficulties.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pandas as pd

from skbandit.exceptions import SkbanditError

EVENTS_FILE = "events.parquet"
ITEMS_FILE = "items.parquet"
CLEANING_FILE = "cleaning.json"
OUTPUT_FILES = (EVENTS_FILE, ITEMS_FILE, CLEANING_FILE)
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        events.to_parquet(staging / EVENTS_FILE, index=False)
        table = pa.Table.from_pandas(items, preserve_index=False)
        calibration = json.dumps(cleaning.get("calibration", {}), default=str).encode()
        metadata = {**(table.schema.metadata or {}), CALIBRATION_KEY: calibration}
        pq.write_table(table.replace_schema_metadata(metadata), staging / ITEMS_FILE)
        text = json.dumps(cleaning, indent=2, default=str)
        (staging / CLEANING_FILE).write_text(text + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; published data should be readable
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
