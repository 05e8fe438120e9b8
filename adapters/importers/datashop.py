"""PSLC DataShop exports and KDD Cup 2010 files (tab-separated, a step or transaction a row).

Sources: KDD Cup 2010 "Data Format",
https://pslcdatashop.web.cmu.edu/KDDCup/rules_data_format.jsp (student-step rows: ``Anon
Student Id``, ``Problem Hierarchy``, ``Problem Name``, ``Problem View``, ``Step Name``,
``Step Start Time``, ``First Transaction Time``, ..., ``Correct First Attempt`` "the tutor's
evaluation of the student's first attempt on the step (1 if correct, 0 if an error)",
``Hints``, ``KC(model)`` with several KCs joined by ``~~``), and DataShop help, "Export"
and "Tab-delimited format" (https://pslcdatashop.web.cmu.edu/help?page=export,
https://pslcdatashop.web.cmu.edu/help?page=importFormatTd): the student-step export names
the first attempt ``First Attempt`` (``correct``/``incorrect``/``hint``) and the KC columns
``KC (model)``; the transaction export has ``Session Id``, ``Time``, ``Duration (sec)``,
``Attempt At Step``, ``Outcome`` (``CORRECT``/``INCORRECT``/``HINT``, some tutors log
``OK``/``BUG``/``ERROR``) and ``KC (model)``;
DataShop writes ``.`` for a missing duration.

What we do with it:

- an item is one step of one problem, ``Problem Name | Step Name`` (the unit that has a
  first-attempt correctness), its skills the first KC column's KCs (``~~``-separated; a
  ``Default`` model is preferred); steps without a KC are dropped by validation;
- step rows: the timestamp is ``First Transaction Time`` (else ``Step Start Time``), the
  latency the time from step start to first transaction; a first attempt that is a hint is
  wrong; ``help_requested`` is ``Hints > 0``;
- transaction rows: only the first transaction of each (student, problem view, step)
  counts (later ones dropped, counted); ``CORRECT``/``OK`` is 1, anything else 0 (a hint
  first marks the step wrong); ``help_requested`` is any hint on the step; the latency is
  the first transaction's ``Duration (sec)``; ``Session Id`` is the action sequence;
- times carry no zone in the export and are taken as UTC.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import RawImport
from adapters.importers._read import concatenated, expand, header, numbers, read_table, times
from skbandit import schema
from skbandit.cleaning import clean_ids
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport, drop_rows, first_rows

FORMAT = "datashop"
KEYS = ("Anon Student Id", "Problem Name", "Step Name")
STEP = ("Correct First Attempt", "First Attempt", "First Transaction Time", "Step Start Time",
        "Hints", "Problem View")
TRANSACTION = ("Outcome", "Time", "Session Id", "Duration (sec)", "Attempt At Step",
               "Problem View")
_KC = re.compile(r"^KC ?\((.*)\)$")
LAYOUT = "a DataShop student-step or transaction export"


def load(paths: list[Path]) -> RawImport:
    """Read tab-separated DataShop exports (every file in the same layout)."""
    files = expand(paths, FORMAT)
    report = ImportReport(FORMAT, sources=[str(p) for p in files])
    parts = [_load_file(path, report) for path in files]
    return RawImport(concatenated(parts), report)


def _load_file(path: Path, report: ImportReport) -> pd.DataFrame:
    """One export file, in whichever layout its header shows (files may differ)."""
    raw = read_table(path, FORMAT, KEYS, STEP + TRANSACTION, extra=_KC.match, sep="\t",
                     text_columns=(*KEYS, "Session Id"), layout=LAYOUT)
    report.rows_read += len(raw)
    kc = _kc_column(raw.columns, str(path))
    report.notes.append(f"{path.name}: skills from the KC model column '{kc}'")
    if "Outcome" in raw:
        return _transactions(raw, kc, str(path), report)
    if "Correct First Attempt" in raw or "First Attempt" in raw:
        return _steps(raw, kc, str(path), report)
    found = ", ".join(header(path, FORMAT, "\t")[:12])
    raise SkbanditError(
        f"{FORMAT}: {path} has no first-attempt column (expected 'Correct First Attempt' "
        f"or 'First Attempt' in a step export, 'Outcome' in a transaction export); "
        f"found columns: {found}"
    )


def _kc_column(columns, where: str) -> str:
    kcs = [c for c in columns if _KC.match(c)]
    if not kcs:
        raise SkbanditError(
            f"{FORMAT}: {where} has no KC column (expected e.g. 'KC(Default)' or "
            f"'KC (Default)'); found columns: {', '.join(map(str, columns[:12]))}; export "
            "with a knowledge-component model"
        )
    default = [c for c in kcs if _KC.match(c).group(1).strip().lower() == "default"]
    return (default or kcs)[0]


def _base(raw: pd.DataFrame, kc: str, when: pd.Series) -> pd.DataFrame:
    skills = raw[kc].fillna("").astype(str).str.split("~~")
    return pd.DataFrame({
        schema.USER_ID: clean_ids(raw["Anon Student Id"]).to_numpy(),
        schema.ITEM_ID: (raw["Problem Name"].fillna("").str.strip() + " | "
                         + raw["Step Name"].fillna("").str.strip()).to_numpy(),
        schema.SKILL_IDS: skills.map(lambda ks: [k.strip() for k in ks if k.strip()]).to_numpy(),
        schema.TIMESTAMP: when.array,
    })


def _steps(raw, kc, where, report) -> pd.DataFrame:
    column = "First Transaction Time" if "First Transaction Time" in raw else "Step Start Time"
    when = times(raw[column], FORMAT, where, column)
    events = _base(raw, kc, when)
    hint_first = np.zeros(len(raw), dtype=bool)
    if "Correct First Attempt" in raw:
        correct = numbers(raw["Correct First Attempt"], FORMAT, where, "Correct First Attempt")
    else:
        first = raw["First Attempt"].fillna("").str.strip().str.lower()
        hint_first = (first == "hint").to_numpy()
        correct = np.where(first == "correct", 1.0, np.where(first == "", np.nan, 0.0))
    events[schema.CORRECT] = correct
    if "Hints" in raw:
        hints = numbers(raw["Hints"], FORMAT, where, "Hints")
        events[schema.HELP_REQUESTED] = np.where(np.isnan(hints), np.nan,
                                                 ((hints > 0) | hint_first).astype(float))
    if {"First Transaction Time", "Step Start Time"} <= set(raw.columns):
        start = times(raw["Step Start Time"], FORMAT, where, "Step Start Time")
        events[schema.LATENCY_MS] = (when - start).dt.total_seconds().to_numpy() * 1000
    return drop_rows(events, np.isnan(correct), report,
                     "steps dropped: no first attempt")


def _transactions(raw, kc, where, report) -> pd.DataFrame:
    if "Time" not in raw:
        raise SkbanditError(f"{FORMAT}: {where} is a transaction export without 'Time'")
    raw = drop_rows(raw, raw["Step Name"].fillna("").str.strip().eq("").to_numpy(), report,
                    "transactions dropped: no step")
    outcome = raw["Outcome"].fillna("").str.strip().str.upper()
    view = ["Problem View"] if "Problem View" in raw else []
    key = ["Anon Student Id", "Problem Name", *view, "Step Name"]
    hinted = outcome.str.contains("HINT").groupby([raw[k] for k in key]).transform("max")
    raw = raw.assign(_when=times(raw["Time"], FORMAT, where, "Time"), _row=np.arange(len(raw)),
                     _correct=outcome.isin(["CORRECT", "OK"]), _hinted=hinted)
    raw = first_rows(raw, key, ["_when", "_row"], report,
                     "later transactions on a step dropped (first attempt counts)")
    events = _base(raw, kc, raw["_when"])
    events[schema.CORRECT] = raw["_correct"].to_numpy(dtype=np.int64)
    events[schema.HELP_REQUESTED] = raw["_hinted"].to_numpy(dtype=float)
    if "Duration (sec)" in raw:
        events[schema.LATENCY_MS] = 1000 * numbers(raw["Duration (sec)"], FORMAT, where,
                                                   "Duration (sec)")
    if "Session Id" in raw:
        events[schema.ACTION_SEQUENCE_ID] = clean_ids(raw["Session Id"]).to_numpy()
    return events
