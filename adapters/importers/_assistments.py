"""What the ASSISTments problem-log exports (2009 skill builder, 2012-13) share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapters.importers._read import numbers
from skbandit import schema
from skbandit.cleaning import clean_ids
from skbandit.import_rules import ImportReport, help_marks_wrong


def skill_tag(raw: pd.DataFrame, name: str, number: str) -> pd.Series:
    """The skill's name where given, else its id (clean strings; None where neither)."""
    blank = pd.Series(None, index=raw.index, dtype=object)
    names = clean_ids(raw[name]) if name in raw else blank
    if number not in raw:
        return names
    return names.where(names.fillna("").str.len() > 0, clean_ids(raw[number]))


def add_outcome_columns(
    events: pd.DataFrame, raw: pd.DataFrame, fmt: str, where: str, report: ImportReport
) -> pd.DataFrame:
    """``correct`` (help first marks it wrong), ``help_requested``, latency and sequence."""
    correct = numbers(raw["correct"], fmt, where, "correct")
    if "hint_count" in raw:
        hints = numbers(raw["hint_count"], fmt, where, "hint_count")
        helped = np.where(np.isnan(hints), np.nan, (hints > 0).astype(float))
        correct = help_marks_wrong(correct, helped == 1, report)
        events[schema.HELP_REQUESTED] = helped
    events[schema.CORRECT] = correct.astype(np.int64)
    if "ms_first_response" in raw:
        events[schema.LATENCY_MS] = numbers(
            raw["ms_first_response"], fmt, where, "ms_first_response"
        )
    if "assignment_id" in raw:
        events[schema.ACTION_SEQUENCE_ID] = raw["assignment_id"].to_numpy()
    return events
