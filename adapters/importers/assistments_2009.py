"""ASSISTments 2009-2010 skill-builder data (``skill_builder_data.csv``).

Source: "Skill-builder data 2009-2010", ASSISTments data sets,
https://sites.google.com/site/assistmentsdata/home/assistment-2009-2010-data/skill-builder-data-2009-2010
(column list as in the file header: ``order_id, assignment_id, user_id, assistment_id,
problem_id, original, correct, attempt_count, ms_first_response, tutor_mode, answer_type,
sequence_id, student_class_id, position, type, base_sequence_id, skill_id, skill_name,
teacher_id, school_id, hint_count, hint_total, overlap_time, template_id, answer_id,
answer_text, first_action, bottom_hint, opportunity, opportunity_original``).

What the page and the layout say, and what we do with it:

- one row per problem attempt *and skill*: a problem tagged with two skills appears twice
  with the same ``order_id``; the rows collapse into one attempt whose ``skill_ids`` lists
  both (counted). The page warns of duplicated records: exact duplicates are dropped
  (counted);
- ``order_id`` is chronological and there is no timestamp: events are ordered by it, with a
  synthetic clock, ``2009-09-01 UTC`` plus ``order_id`` minus the smallest ``order_id`` in
  seconds (only the order is real);
- ``correct`` is the first attempt; "if a student uses the tutoring (hint or break this
  problem into steps), the question is marked incorrect": an attempt with ``hint_count > 0``
  logged as correct is set to 0 (counted); ``help_requested`` is ``hint_count > 0``;
- ``original`` is 1 for a main problem and 0 for a scaffolding question (shown only after a
  wrong main answer, so a recommender cannot pick it): scaffolding rows are dropped (counted);
- the topic is ``skill_name`` (``skill_id`` where the name is blank); rows with neither are
  dropped by validation ("without topic"); ids like ``280.0`` become ``280``;
- ``ms_first_response`` is the latency (negative and huge values are blanked or clipped by
  validation, counted); ``assignment_id`` is the action sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import ImportOptions, RawImport
from adapters.importers._assistments import add_outcome_columns, skill_tag
from adapters.importers._read import described, expand, numbers, read_tables, refuse_empty
from adapters.importers._students import select_students
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport, collapse_skill_rows, drop_rows, synthetic_times

FORMAT = "assistments-2009"
REQUIRED = ("order_id", "user_id", "problem_id", "correct")
OPTIONAL = (
    "skill_id",
    "skill_name",
    "ms_first_response",
    "hint_count",
    "original",
    "assignment_id",
)
TEXT = ("order_id", "user_id", "problem_id", "skill_id", "skill_name", "assignment_id")
ORIGIN = "2009-09-01"
LAYOUT = "the skill-builder layout"


def load(paths: list[Path], options: ImportOptions | None = None) -> RawImport:
    """Read skill-builder CSV files (several files are concatenated).

    ``options.skill``: ``skill_name`` (default) or ``skill_id`` (each falls back to the other
    where blank).
    """
    options = options or ImportOptions()
    files = expand(paths, FORMAT)
    report = ImportReport(FORMAT, sources=[str(p) for p in files])
    raw = read_tables(files, FORMAT, REQUIRED, OPTIONAL, text_columns=TEXT, layout=LAYOUT)
    report.rows_read = len(raw)
    report.notes.append(CLOCK_NOTE)
    keep = select_students(raw["user_id"], options, report)
    raw = raw if keep is None else raw.loc[keep]
    where = described(files)
    raw = attempts(raw, where, report, options)
    refuse_empty(raw, FORMAT, where, report)
    return RawImport(events(raw, where, report), report)


CLOCK_NOTE = f"timestamps are synthetic: {ORIGIN} UTC + (order_id - smallest order_id) seconds"


def attempts(raw: pd.DataFrame, where: str, report, options: ImportOptions) -> pd.DataFrame:
    """Raw rows (of whole students) -> one row per attempt, with ``skill_ids`` (the rules of
    the module docstring but the clock)."""
    by_id = options.skill == "skill_id"
    if "original" in raw:
        scaffolding = numbers(raw["original"], FORMAT, where, "original") == 0
        raw = drop_rows(raw, scaffolding, report, "scaffolding rows dropped (original = 0)")
    raw = raw.assign(
        skill=skill_tag(raw, *(("skill_id", "skill_name") if by_id else ("skill_name", "skill_id")))
    )
    raw = collapse_skill_rows(raw, "order_id", "skill", report)
    correct = numbers(raw["correct"], FORMAT, where, "correct")
    return drop_rows(raw, ~np.isin(correct, (0.0, 1.0)), report, "rows dropped: correct not 0 or 1")


def smallest_order(raw: pd.DataFrame, where: str) -> float:
    """The clock's zero: the smallest finite ``order_id`` of the attempts (NaN if none)."""
    order = numbers(raw["order_id"], FORMAT, where, "order_id")
    finite = order[np.isfinite(order)]
    return float(finite.min()) if finite.size else np.nan


MAX_CLOCK_SECONDS = 9.2e9
"""The synthetic clock's span limit: nanosecond timestamps reach about 292 years."""


def _check_clock(order: np.ndarray, where: str, low: float) -> None:
    """Refuse ``order_id`` values the synthetic clock cannot hold (inf, 1e18, ...)."""
    finite = np.isfinite(order)
    bad = ~np.isnan(order) & (~finite | (order - low > MAX_CLOCK_SECONDS))
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in pd.unique(order[bad])[:3])
        raise SkbanditError(
            f"{FORMAT}: {where}: column 'order_id' has {shown} ({int(bad.sum())} rows), "
            f"beyond the synthetic clock (order_id minus the smallest, {low:.0f}, must be under "
            f"{MAX_CLOCK_SECONDS:.2g} seconds, about 292 years); fix or drop those rows"
        )


def events(raw: pd.DataFrame, where: str, report: ImportReport, low: float | None = None):
    """Attempts -> canonical events; the clock starts at ``low`` (default: the attempts'
    smallest ``order_id``; a streamed import passes the whole export's)."""
    order = numbers(raw["order_id"], FORMAT, where, "order_id")
    low = smallest_order(raw, where) if low is None else low
    low = 0.0 if np.isnan(low) else low
    _check_clock(order, where, low)
    frame = pd.DataFrame(
        {
            schema.USER_ID: raw["user_id"].to_numpy(),
            schema.ITEM_ID: raw["problem_id"].to_numpy(),
            schema.SKILL_IDS: raw[schema.SKILL_IDS].to_numpy(),
            schema.TIMESTAMP: synthetic_times(order - low, ORIGIN).array,
        }
    )
    return add_outcome_columns(frame, raw, FORMAT, where, report)
