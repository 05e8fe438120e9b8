"""ASSISTments 2012-2013 school data with affect (``2012-2013-data-with-predictions-4-final.csv``).

Source: "2012-13 School Data with Affect", ASSISTments data sets,
https://sites.google.com/site/assistmentsdata/datasets/2012-13-school-data-with-affect
and the page "An explanation on how to interpret our data sets" (one row per problem log:
``problem_log_id, skill, problem_id, user_id, assignment_id, assistment_id, start_time,
end_time, problem_type, original, correct, bottom_hint, hint_count, actions,
attempt_count, ms_first_response, ..., skill_id, ..., first_action, ...`` and the four
``Average_confidence(...)`` affect columns, which are model predictions and are not read).

What we do with it:

- ``start_time`` (when the problem was started; no zone given, taken as UTC) is the
  timestamp; ``end_time`` is not used (it can precede ``start_time`` in the file);
- ``correct`` holds partial credit for open-response problems (e.g. 0.25): only 0/1 rows
  are attempts we can learn from, the others are dropped (counted);
- the tutoring rule of ASSISTments (a hint or the answer asked before answering marks the
  problem wrong) is enforced: ``hint_count > 0`` logged as correct becomes 0 (counted);
  ``help_requested`` is ``hint_count > 0``;
- scaffolding questions (``original = 0``) are dropped (counted), as for 2009;
- the topic is ``skill`` (the name; ``skill_id`` where blank); a problem log repeated once
  per skill collapses into one attempt (counted); rows without a skill are dropped by
  validation;
- ``ms_first_response`` is the latency, ``assignment_id`` the action sequence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import ImportOptions, RawImport
from adapters.importers._assistments import add_outcome_columns, skill_tag
from adapters.importers._read import described, expand, numbers, read_tables, times
from adapters.importers._students import select_students
from skbandit import schema
from skbandit.import_rules import ImportReport, collapse_skill_rows, drop_rows

FORMAT = "assistments-2012"
REQUIRED = ("user_id", "problem_id", "start_time", "correct")
OPTIONAL = (
    "problem_log_id",
    "skill",
    "skill_id",
    "ms_first_response",
    "hint_count",
    "original",
    "assignment_id",
)
TEXT = (
    "problem_log_id",
    "user_id",
    "problem_id",
    "skill",
    "skill_id",
    "assignment_id",
    "start_time",
)
LAYOUT = "the 2012-13 problem-log layout"


def load(paths: list[Path], options: ImportOptions | None = None) -> RawImport:
    """Read 2012-13 problem-log CSV files (several files are concatenated).

    ``options.skill``: ``skill_name`` (default; the ``skill`` column) or ``skill_id`` (each
    falls back to the other where blank).
    """
    options = options or ImportOptions()
    files = expand(paths, FORMAT)
    report = ImportReport(FORMAT, sources=[str(p) for p in files])
    raw = read_tables(files, FORMAT, REQUIRED, OPTIONAL, text_columns=TEXT, layout=LAYOUT)
    report.rows_read = len(raw)
    keep = select_students(raw["user_id"], options, report)
    raw = raw if keep is None else raw.loc[keep]
    where = described(files)
    return RawImport(events(raw, where, report, options), report)


def events(raw: pd.DataFrame, where: str, report, options: ImportOptions) -> pd.DataFrame:
    """Raw rows (of whole students) -> canonical events (the rules of the module docstring)."""
    by_id = options.skill == "skill_id"
    if "original" in raw:
        raw = drop_rows(
            raw,
            numbers(raw["original"], FORMAT, where, "original") == 0,
            report,
            "scaffolding rows dropped (original = 0)",
        )
    correct = numbers(raw["correct"], FORMAT, where, "correct")
    raw = drop_rows(
        raw,
        ~np.isin(correct, (0.0, 1.0)),
        report,
        "rows dropped: partial credit (correct not 0 or 1)",
    )
    raw = raw.assign(
        skill_tag=skill_tag(raw, *(("skill_id", "skill") if by_id else ("skill", "skill_id")))
    )
    raw = raw.drop(columns=["skill", "skill_id"], errors="ignore")
    key = "problem_log_id" if "problem_log_id" in raw else ["user_id", "problem_id", "start_time"]
    raw = collapse_skill_rows(raw, key, "skill_tag", report)
    return _events(raw, where, report)


def _events(raw: pd.DataFrame, where: str, report: ImportReport) -> pd.DataFrame:
    events = pd.DataFrame(
        {
            schema.USER_ID: raw["user_id"].to_numpy(),
            schema.ITEM_ID: raw["problem_id"].to_numpy(),
            schema.SKILL_IDS: raw[schema.SKILL_IDS].to_numpy(),
            schema.TIMESTAMP: times(raw["start_time"], FORMAT, where, "start_time").array,
        }
    )
    return add_outcome_columns(events, raw, FORMAT, where, report)
