"""Reading data files: where the command lines and the warm-start job find their data.

Explicit ``--events``/``--items`` paths win, then the ``SKBANDIT_EVENTS``/``SKBANDIT_ITEMS``
environment variables, then the embedded default: a simulated school generated on first use
into a cache directory (``$SKBANDIT_DATA_DIR``, else ``<project folder>/.cache/default-school``,
the project folder as in :mod:`adapters.paths`: the checkout you work in, else
``~/.skbandit``) and read back through the same loaders as real data.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from adapters import paths
from adapters.data.ingest_output import read_calibration
from adapters.errors import first_line
from skbandit.cleaning import (
    STRING_COLUMNS,
    CleaningReport,
    check_topics,
    summed_reports,
    validate_events,
    validate_items,
)
from skbandit.exceptions import SkbanditError
from skbandit.schema import TIMESTAMP
from skbandit.sim.generate import default_school_config, simulate_school

EVENTS_FILE = "events.parquet"
ITEMS_FILE = "items.parquet"
CONFIG_FILE = "school.json"
ENV_DATA_DIR = "SKBANDIT_DATA_DIR"
ENV_EVENTS = "SKBANDIT_EVENTS"
ENV_ITEMS = "SKBANDIT_ITEMS"
SUPPORTED_SUFFIXES = (".parquet", ".pq", ".csv")


def default_school_dir(seed: int | None = None) -> Path:
    """The cache directory of the default school (a ``seed-S`` subfolder for other seeds)."""
    base = os.environ.get(ENV_DATA_DIR)
    root = Path(base) if base else paths.project_dir() / ".cache" / "default-school"
    if seed is None or seed == default_school_config().seed:
        return root
    return root / f"seed-{seed}"


def write_school(events: pd.DataFrame, items: pd.DataFrame, out_dir, config=None) -> None:
    """Write ``events.parquet``, ``items.parquet`` (and the config) atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / EVENTS_FILE, lambda p: events.to_parquet(p, index=False))
    _atomic_write(out_dir / ITEMS_FILE, lambda p: items.to_parquet(p, index=False))
    if config is not None:
        text = json.dumps(_config_dict(config), sort_keys=True)
        _atomic_write(out_dir / CONFIG_FILE, lambda p: Path(p).write_text(text))


def load_default_school(seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The default school's ``(events, items)``, generated and cached on first use.

    The cache is regenerated when its ``school.json`` does not match the current default
    configuration (so a changed simulator never serves stale data).
    """
    config = default_school_config()
    if seed is not None:
        config = type(config)(**{**asdict(config), "seed": seed})
    folder = default_school_dir(seed)
    if not _cache_matches(folder, config):
        school = simulate_school(config)
        write_school(school.events, school.items, folder, config)
    events, _ = read_events(folder / EVENTS_FILE)
    items, _ = read_items(folder / ITEMS_FILE)
    return events, items


@dataclass
class LoadedSchool:
    """The loaded tables, where they came from, and what cleaning did to them.

    Attributes
    ----------
    events, items : DataFrame
    source : str
        The two paths, or ``default-school(seed=S)``.
    event_report, item_report : CleaningReport or None
        The cleaning counts of the files (None for the default school, written clean).
    calibration : dict or None
        The calibration window stored in an ingested ``items.parquet``
        (:func:`adapters.data.ingest_output.read_calibration`), else None.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    source: str
    event_report: CleaningReport | None = None
    item_report: CleaningReport | None = None
    calibration: dict | None = None


def load_school(events_path=None, items_path=None, seed: int | None = None):
    """Resolve and load ``(events, items, source)`` (see :func:`load_school_reports`)."""
    loaded = load_school_reports(events_path, items_path, seed)
    return loaded.events, loaded.items, loaded.source


def load_school_reports(events_path=None, items_path=None, seed: int | None = None):
    """Resolve and load the tables with their cleaning reports.

    Parameters
    ----------
    events_path, items_path : str or Path, optional
        Give both or neither. When neither is given, ``SKBANDIT_EVENTS`` and
        ``SKBANDIT_ITEMS`` are used (again both or neither), else the default school.
    seed : int, optional
        Seed of the default school (ignored for files).

    Returns
    -------
    LoadedSchool
    """
    if events_path is None and items_path is None:
        events_path, items_path = os.environ.get(ENV_EVENTS), os.environ.get(ENV_ITEMS)
        where = f"${ENV_EVENTS} and ${ENV_ITEMS}"
    else:
        where = "--events and --items"
    if (events_path is None) != (items_path is None):
        raise SkbanditError(
            f"give {where} together (or neither, for the default school); "
            f"found only {'events' if events_path is not None else 'items'}"
        )
    if events_path is None:
        events, items = load_default_school(seed)
        used = default_school_config().seed if seed is None else seed
        return LoadedSchool(events, items, f"default-school(seed={used})")
    events, event_report = read_events(events_path)
    items, item_report = read_items(items_path)
    event_report.unknown_topic = check_topics(events, items, f"{events_path} + {items_path}")
    return LoadedSchool(
        events,
        items,
        f"{events_path} + {items_path}",
        event_report,
        item_report,
        read_calibration(items_path),
    )


def _read_table(path) -> pd.DataFrame:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SkbanditError(
            f"{path}: unsupported file format '{path.suffix or '(none)'}' "
            f"(expected one of {', '.join(SUPPORTED_SUFFIXES)})"
        )
    if not path.is_file():
        raise SkbanditError(f"{path}: no such file (expected a {suffix} file; check the path)")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={c: str for c in STRING_COLUMNS})
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise SkbanditError(f"{path}: could not read as {suffix} ({first_line(exc)})") from exc


def read_events(path) -> tuple[pd.DataFrame, CleaningReport]:
    """Read and validate an events file (``.parquet``/``.pq`` or ``.csv`` by suffix), or a
    folder of parquet parts (a streamed ingest's ``events/``: :func:`read_event_parts`).

    See :func:`validate_events` for the rules; errors name ``path``.
    """
    if Path(path).is_dir():
        return read_event_parts(path)
    return validate_events(_read_table(path), source=str(path))


def read_event_parts(folder) -> tuple[pd.DataFrame, CleaningReport]:
    """The parquet parts of ``folder`` (name order), read and validated one at a time.

    Each part is cleaned on its own and the parts are then put in time order (stable), so
    the table equals the validated concatenation of the parts when no duplicate spans two
    parts (a streamed ingest's parts hold whole students), in less memory: one raw part at
    a time beside the cleaned events.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    if not files:
        raise SkbanditError(
            f"{folder}: the folder holds no parquet parts (expected part-00000.parquet, ... "
            "as `python -m train.ingest --stream` writes); check the path"
        )
    frames, reports = [], []
    for file in files:
        events, report = validate_events(_read_table(file), source=str(file))
        frames.append(events)
        reports.append(report)
    events = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    events = events.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    return events, summed_reports(reports, str(folder))


def read_items(path) -> tuple[pd.DataFrame, CleaningReport]:
    """Read and validate an items file (``.parquet``/``.pq`` or ``.csv`` by suffix).

    See :func:`validate_items` for the rules; errors name ``path``.
    """
    return validate_items(_read_table(path), source=str(path))


def _config_dict(config) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _cache_matches(folder: Path, config) -> bool:
    files = [folder / EVENTS_FILE, folder / ITEMS_FILE, folder / CONFIG_FILE]
    if not all(f.is_file() for f in files):
        return False
    try:
        return json.loads(files[2].read_text()) == _config_dict(config)
    except (OSError, ValueError):
        return False


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; published data should be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
