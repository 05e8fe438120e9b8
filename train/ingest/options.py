"""What an ingest is asked and what it returns: options, the written columns, the result,
and the ``cleaning.json`` document (shared by the in-memory job, :mod:`train.ingest.job`, and
the streamed one, :mod:`train.ingest.streamed`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from adapters import importers
from adapters.data.ingest_output import EVENTS_FILE
from skbandit import schema
from skbandit.calibration import CALIBRATION_FRACTION, MIN_RESPONSES, CalibrationResult, calibrate
from skbandit.cleaning import CleaningReport, validate_items
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport

EVENT_COLUMNS = (
    schema.USER_ID,
    schema.ITEM_ID,
    schema.TOPIC,
    schema.SKILL_IDS,
    schema.TIMESTAMP,
    schema.CORRECT,
    schema.LATENCY_MS,
    schema.HELP_REQUESTED,
    schema.ACTION_SEQUENCE_ID,
)
ITEM_COLUMNS = (
    schema.ITEM_ID,
    schema.TOPIC,
    schema.DIFFICULTY,
    schema.DISCRIMINATION,
    schema.DRIFT_FLAG,
)


CALIBRATION_MAX_EVENTS = 2_000_000
"""A streamed ingest calibrates on at most about this many events of the window: those of
whole parts (whole students), in part order. An in-memory ingest uses the whole window."""


@dataclass(frozen=True)
class IngestOptions:
    """What to read, where to write, how to calibrate."""

    format: str
    raw_files: tuple[Path, ...]
    out: Path
    calibrate: str = "rasch"
    calibration_fraction: float = CALIBRATION_FRACTION
    min_responses: int = MIN_RESPONSES
    skill: str | None = None
    item: str | None = None
    keep_untagged: bool = False
    max_students: int | None = None
    sample_students: float | None = None
    seed: int = 0
    stream: bool | None = None
    workers: int | None = None
    calibration_max_events: int | None = CALIBRATION_MAX_EVENTS

    def import_options(self) -> importers.ImportOptions:
        """The importer's choices (topic source, item granularity, untagged items)."""
        return importers.ImportOptions(
            skill=self.skill,
            item=self.item,
            keep_untagged=self.keep_untagged,
            max_students=self.max_students,
            sample_students=self.sample_students,
            seed=self.seed,
        )

    def streamed(self) -> bool:
        """Stream when asked, or (unless ``stream=False``) for a streamable format whose
        input is big (:func:`adapters.importers.streaming.is_big`)."""
        if self.stream is not None:
            return self.stream
        from adapters.importers import streaming

        return self.format in streaming.STREAMED and streaming.is_big(self.raw_files)


@dataclass
class IngestResult:
    """The tables written and the report (``cleaning`` is what ``cleaning.json`` holds;
    ``events`` is None for a streamed ingest, whose events are only on disk)."""

    events: pd.DataFrame | None
    items: pd.DataFrame
    calibration: CalibrationResult
    cleaning: dict
    seconds: dict[str, float] = field(default_factory=dict)


def no_attempts_left(options, import_report: ImportReport, dropped_missing: dict):
    """The one-line error when cleaning dropped every row (in memory or streamed)."""
    dropped = [f"{n:,} without {col}" for col, n in dropped_missing.items() if n]
    dropped += import_report.lines()
    return SkbanditError(
        f"{options.format}: no attempts left after cleaning "
        f"({import_report.rows_read:,} raw rows; "
        f"{'; '.join(dropped) or 'every row dropped'}); check --format, --skill "
        "(or --keep-untagged) and the files"
    )


def calibrated_items(options, events, items, cutoff):
    """``(fit, items, item_report)``: the items' parameters calibrated on the events before
    ``cutoff`` (``--calibrate``), checked as an items table."""
    fit = calibrate(
        events, items, method=options.calibrate, until=cutoff, min_responses=options.min_responses
    )
    checked, item_report = validate_items(fit.items[list(ITEM_COLUMNS[:4])], "calibrated items")
    return fit, checked, item_report


def cleaning_document(
    options: IngestOptions,
    imported: ImportReport,
    event_report: CleaningReport,
    item_report: CleaningReport,
    fit: CalibrationResult,
    *,
    n_events: int,
    n_students: int,
    events_path: str = EVENTS_FILE,
) -> dict:
    """Everything ``cleaning.json`` records: counts per step, the window, the output sizes."""
    return {
        "format": options.format,
        "sources": imported.sources,
        "rows_read": imported.rows_read,
        "import": [{"step": label, "count": n} for label, n in imported.steps.items()],
        "notes": imported.notes,
        "options": {
            "skill": options.skill,
            "item": options.item,
            "keep_untagged": options.keep_untagged,
            "max_students": options.max_students,
            "sample_students": options.sample_students,
            "seed": options.seed,
        },
        "events": {**asdict(event_report), "summary": event_report.summary()},
        "items": {**asdict(item_report), "summary": item_report.summary()},
        "calibration": {**fit.summary(), "fraction": options.calibration_fraction},
        "output": {
            "events": n_events,
            "students": n_students,
            "items": len(fit.items),
            "topics": int(fit.items[schema.TOPIC].nunique()),
            "folder": str(options.out),
            "events_path": str(Path(options.out) / events_path),
        },
    }
