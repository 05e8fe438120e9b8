"""The ingest job: raw export -> canonical events, calibrated items, cleaning report.

Steps: read the raw files with the format's importer (:mod:`adapters.importers`), validate
the events (:func:`skbandit.cleaning.validate_events`: ids, types, latency clipping,
duplicates), build the items table (each item's most frequent topic), calibrate difficulties
on the earliest ``calibration_fraction`` of the events (:mod:`skbandit.calibration`), and
write ``events.parquet``, ``items.parquet`` and ``cleaning.json`` atomically
(:mod:`adapters.data.ingest_output`). Every change to the data is a count in the report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from adapters import importers
from adapters.data.ingest_output import EVENTS_FILE, check_output_dir, write_ingested
from skbandit import schema
from skbandit.calibration import (
    calibration_cutoff,
)
from skbandit.cleaning import validate_events
from skbandit.import_rules import items_from_events
from train.ingest.options import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    IngestOptions,
    IngestResult,
    calibrated_items,
    cleaning_document,
    no_attempts_left,
)

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["EVENT_COLUMNS", "ITEM_COLUMNS", "IngestOptions", "IngestResult", "run_ingest"]


def run_ingest(options: IngestOptions) -> IngestResult:
    """Read, clean, calibrate and write; nothing is written unless every step succeeded."""
    check_output_dir(options.out)
    if options.streamed():
        from train.ingest.streamed import run_streamed_ingest

        return run_streamed_ingest(options)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    raw = importers.load(options.format, options.raw_files, options.import_options())
    events, event_report = validate_events(raw.events, source=f"{options.format} events")
    if events.empty:
        raise no_attempts_left(options, raw.report, event_report.dropped_missing)
    events = events[[c for c in EVENT_COLUMNS if c in events.columns]]
    seconds["read and clean"] = time.perf_counter() - start
    start = time.perf_counter()
    cutoff = calibration_cutoff(events[schema.TIMESTAMP], options.calibration_fraction)
    fit, items, item_report = calibrated_items(options, events, items_from_events(events), cutoff)
    seconds["calibrate"] = time.perf_counter() - start
    start = time.perf_counter()
    cleaning = cleaning_document(
        options,
        raw.report,
        event_report,
        item_report,
        fit,
        n_events=len(events),
        n_students=int(events[schema.USER_ID].nunique()),
    )
    write_ingested(options.out, events, items[list(ITEM_COLUMNS)], cleaning)
    seconds["write"] = time.perf_counter() - start
    return IngestResult(events, items, fit, cleaning, seconds)


def report_rows(result: IngestResult) -> list[tuple[str, str]]:
    """The cleaning report as (what, count) rows, in the order things happened."""
    doc = result.cleaning
    rows = [("raw rows read", f"{doc['rows_read']:,}")]
    rows += [(step["step"], f"{step['count']:,}") for step in doc["import"] if step["count"]]
    ev = doc["events"]
    rows += [(f"dropped: no {col}", f"{n:,}") for col, n in ev["dropped_missing"].items() if n]
    for label, key in (
        ("dropped: exact duplicate attempts", "dropped_duplicates"),
        ("latencies clipped at 30 min", "latency_clipped"),
        ("negative latencies blanked", "latency_invalid"),
        ("latencies missing (kept blank)", "latency_missing"),
        ("help flags missing (kept blank)", "help_missing"),
    ):
        if ev[key]:
            rows.append((label, f"{ev[key]:,}"))
    out, cal = doc["output"], doc["calibration"]
    rows += [
        ("events written", f"{out['events']:,} ({out['students']:,} students)"),
        ("items written", f"{out['items']:,} ({out['topics']:,} topics)"),
        (
            f"calibration ({cal['method']})",
            f"{cal['events']:,} events, {cal['window_start'][:10]} to {cal['window_end'][:10]} "
            f"(first {cal['fraction']:.0%})",
        ),
        (
            f"items with 1-{cal['min_responses'] - 1} responses (shrunk to topic)",
            f"{cal['items_few_responses']:,}",
        ),
        ("items unseen in window (topic mean)", f"{cal['items_unseen']:,}"),
    ]
    return rows


def print_report(console: Console, result: IngestResult) -> None:
    """The cleaning report as a rich table, then the notes and the files written."""
    from rich.table import Table

    doc = result.cleaning
    table = Table(title=f"Ingest report: {doc['format']}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in report_rows(result):
        table.add_row(what, count)
    console.print(table)
    for note in doc["notes"]:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    folder = doc["output"]["folder"]
    events_path = doc["output"].get("events_path", f"{folder}/{EVENTS_FILE}")
    written = Path(events_path).name + ("/" if doc.get("streamed") else "")
    console.print(
        f"wrote {folder}/{written}, items.parquet, cleaning.json",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        f"next: python -m train.warmstart --events {events_path} --items {folder}/items.parquet",
        soft_wrap=True,
        highlight=False,
    )
