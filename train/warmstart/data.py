"""What a training job learns from: the tables, their cleaning counts, calibrated items.

:func:`load_training_data` loads through :func:`adapters.data.datasets.load_school_reports`, so
the counts of what cleaning did (rows dropped, latencies clipped or blanked, duplicates) are
kept, printed and logged instead of discarded. With ``calibrate`` it re-estimates the items'
difficulties (and 2PL discriminations) from the earliest ``fraction`` of the events
(:mod:`skbandit.calibration`); items written by ``python -m train.ingest`` carry the window
they were calibrated on. Either way :attr:`TrainingData.calibrated_until` is the end of that
window, and progressive validation learns those events without scoring them
(:func:`scored_from`), so no score comes from an outcome that set an item's difficulty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import pandas as pd

from adapters.data import datasets
from skbandit import schema
from skbandit.calibration import CALIBRATION_FRACTION, calibrate, calibration_cutoff
from skbandit.cleaning import ROW_COUNTS
from skbandit.context import missing_difficulty_note
from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from rich.console import Console

    from skbandit.progressive import ReplayResult


@dataclass
class TrainingData:
    """Loaded (and possibly calibrated) tables with what was done to them."""

    events: pd.DataFrame
    items: pd.DataFrame
    source: str
    cleaning: dict[str, int]
    calibration: dict | None = None

    @property
    def calibrated_until(self) -> pd.Timestamp | None:
        """Last event time whose outcome set a difficulty (None: published difficulties)."""
        if not self.calibration:
            return None
        return pd.Timestamp(self.calibration["window_end"])


def load_training_data(
    events_path=None,
    items_path=None,
    seed=None,
    *,
    calibrate_method: str | None = None,
    fraction: float = CALIBRATION_FRACTION,
    max_events: int | None = None,
) -> TrainingData:
    """Load the tables with their cleaning counts; calibrate the items when asked.

    With ``max_events`` the calibration window is the first ``fraction`` of the earliest
    ``max_events`` events (the ones the job will use).
    """
    loaded = datasets.load_school_reports(events_path, items_path, seed=seed)
    data = TrainingData(
        loaded.events, loaded.items, loaded.source, cleaning_counts(loaded), loaded.calibration
    )
    if calibrate_method is not None:
        data = _calibrated(data, calibrate_method, fraction, max_events)
    return data


def cleaning_counts(loaded) -> dict[str, int]:
    """Every non-zero count of the two cleaning reports, as flat ``name -> count``."""
    counts: dict[str, int] = {}
    for table, report in (("events", loaded.event_report), ("items", loaded.item_report)):
        if report is None:
            continue
        values = asdict(report)
        counts[f"{table}_rows_dropped"] = report.n_dropped
        for column, n in values["dropped_missing"].items():
            counts[f"{table}_dropped_without_{column}"] = n
        for key in ROW_COUNTS:
            counts[f"{table}_{key}"] = values[key]
        for column, n in values["filled_defaults"].items():
            counts[f"{table}_filled_{column}"] = n
    return {k: int(v) for k, v in counts.items() if v}


def _calibrated(
    data: TrainingData, method: str, fraction: float, max_events: int | None
) -> TrainingData:
    known = data.events[schema.ITEM_ID].isin(data.items[schema.ITEM_ID]).to_numpy()
    events = data.events.loc[known].sort_values(schema.TIMESTAMP, kind="stable")
    events = events.iloc[:max_events] if max_events is not None else events
    if events.empty:
        raise SkbanditError(
            "--calibrate: no event names an item of the items table; pass "
            "the items file that goes with the events"
        )
    until = calibration_cutoff(events[schema.TIMESTAMP], fraction)
    fit = calibrate(events, data.items[[schema.ITEM_ID, schema.TOPIC]], method=method, until=until)
    params = fit.items.set_index(schema.ITEM_ID)
    items = data.items.copy()
    for column in (schema.DIFFICULTY, schema.DISCRIMINATION):
        items[column] = items[schema.ITEM_ID].map(params[column]).to_numpy()
    summary = {**fit.summary(), "fraction": fraction}
    return TrainingData(data.events, items, data.source, data.cleaning, summary)


def scored_from(learned_events: pd.DataFrame, calibrated_until: pd.Timestamp | None) -> int:
    """How many learned events (in time order) lie inside the calibration window."""
    if calibrated_until is None:
        return 0
    inside = int((learned_events[schema.TIMESTAMP] <= calibrated_until).sum())
    if inside >= len(learned_events):
        raise SkbanditError(
            f"every learned event is inside the calibration window (up to "
            f"{calibrated_until.isoformat()}), so progressive validation could score none; "
            "pass a smaller --calibration-fraction, or events that go on after the window"
        )
    return inside


def run_params(data: TrainingData, n_unscored: int) -> dict[str, object]:
    """MLflow params: the calibration window (empty when the difficulties were published)."""
    cal = data.calibration or {}
    return {
        "calibration_method": cal.get("method", ""),
        "calibration_window_start": cal.get("window_start", ""),
        "calibration_window_end": cal.get("window_end", ""),
        "calibration_events": cal.get("events", ""),
        "calibration_items_few_responses": cal.get("items_few_responses", ""),
        "calibration_items_unseen": cal.get("items_unseen", ""),
        "unscored_events": n_unscored,
    }


def run_metrics(data: TrainingData, replay: ReplayResult) -> dict[str, float]:
    """MLflow metrics: the cleaning counts and the metrics without the untrained batch."""
    metrics = {f"cleaning_{k}": float(v) for k, v in data.cleaning.items()}
    after = replay.metrics_after_first_batch() or {}
    metrics |= {f"final_after_first_batch_{k}": v for k, v in after.items() if pd.notna(v)}
    return metrics


def print_data_report(console: Console, data: TrainingData, n_unscored: int) -> None:
    """One line of cleaning counts (or that nothing was changed), one about calibration, or
    (no calibration) one about the items without difficulty, if any."""
    if data.cleaning:
        shown = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in data.cleaning.items())
        console.print(f"[yellow]cleaning: {shown}[/yellow]", soft_wrap=True, highlight=False)
    elif not data.source.startswith("default-school"):
        console.print("cleaning: nothing dropped or changed", soft_wrap=True)
    if data.calibration:
        cal = data.calibration
        console.print(
            f"item difficulties calibrated ({cal['method']}) on {cal['events']:,} events up to "
            f"{cal['window_end']}; the {n_unscored:,} events of that window are learned but "
            "not scored",
            soft_wrap=True,
            highlight=False,
        )
    else:
        note = missing_difficulty_note(data.items)
        if note:
            console.print(f"[yellow]note: {note}[/yellow]", soft_wrap=True, highlight=False)


def print_caveats(console: Console, replay: ReplayResult) -> None:
    """The replay's caveats (too few events, an untrained first batch), in yellow."""
    for caveat in replay.caveats():
        console.print(f"[yellow]note: {caveat}[/yellow]", soft_wrap=True, highlight=False)
