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
  first-attempt correctness), or with ``--item problem`` one problem (an attempt is a
  problem view, right when every step's first attempt was right, its skills every step's
  KCs, its time the first step's, its latency the views' summed step latencies);
- the skills are the KCs of one KC model (``--skill MODEL``; default ``Default`` when the
  export has it, else the first model, with a note naming the others), ``~~``-separated.
  DataShop repeats ``KC (model)`` once per KC of a step (pandas names the copies
  ``KC (Default).1``, ...): every copy's KCs are kept, sorted (the topic is the first, the
  same in both export types). Steps without a KC are dropped by
  validation (or kept with ``--keep-untagged``);
- every column is read as text with one parser, whatever the file's size; ``.`` and empty
  fields are blanks; ``Attempt At Step`` (often blank on hint rows) is not read;
- step rows: the timestamp is ``First Transaction Time`` (else ``Step Start Time``), the
  latency the time from step start to first transaction; a first attempt that is a hint is
  wrong; ``help_requested`` is ``Hints > 0``;
- transaction rows: only the first transaction of each (student, problem view, step)
  counts (later ones dropped, counted); ``CORRECT``/``OK`` is 1, anything else 0 (a hint
  first marks the step wrong); ``help_requested`` is any hint on the step (a blank
  ``Problem View`` is a view of its own, not a lost group); the latency is the first
  transaction's ``Duration (sec)``; ``Session Id`` is the action sequence;
- ``Duration (sec)`` whose median over positive values exceeds :data:`PLAUSIBLE_SECONDS`
  (10 minutes for one transaction) holds milliseconds, as some exports do: it is read as
  milliseconds and a note says so;
- transaction times are local to the ``Time Zone`` column (``UTC``, ``GMT``,
  ``US/Eastern``, ...) and converted to UTC; without that column (step exports) times are
  taken as UTC.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.importers import ImportOptions, RawImport, checked_choice
from adapters.importers._read import concatenated, expand, header, numbers, read_table, times
from skbandit import schema
from skbandit.cleaning import clean_ids
from skbandit.exceptions import SkbanditError
from skbandit.import_rules import ImportReport, drop_rows, first_rows

FORMAT = "datashop"
KEYS = ("Anon Student Id", "Problem Name", "Step Name")
STEP = (
    "Correct First Attempt",
    "First Attempt",
    "First Transaction Time",
    "Step Start Time",
    "Hints",
    "Problem View",
)
TRANSACTION = ("Outcome", "Time", "Time Zone", "Session Id", "Duration (sec)", "Problem View")
_KC = re.compile(r"^KC ?\((.*)\)(\.\d+)?$")
"""``KC (model)`` or ``KC(model)``, and pandas' names for repeats (``KC (Default).1``)."""
LAYOUT = "a DataShop student-step or transaction export"
PLAUSIBLE_SECONDS = 600.0
"""A median transaction ``Duration (sec)`` above this (10 minutes) is read as milliseconds."""
ITEMS = ("step", "problem")


def load(paths: list[Path], options: ImportOptions | None = None) -> RawImport:
    """Read tab-separated DataShop exports (every file in the same layout)."""
    options = options or ImportOptions()
    item = checked_choice(FORMAT, "--item", options.item, ITEMS)
    files = expand(paths, FORMAT)
    report = ImportReport(FORMAT, sources=[str(p) for p in files])
    events = concatenated([_load_file(path, options.skill, report) for path in files])
    if item == "problem":
        events = _per_problem(events, report)
        report.notes.append(
            "items are problems (--item problem): an attempt is a problem "
            "view, right when every step's first attempt was right"
        )
    return RawImport(events.drop(columns=["_problem", "_view"]), report)


def _load_file(path: Path, model: str | None, report: ImportReport) -> pd.DataFrame:
    """One export file, in whichever layout its header shows (files may differ)."""
    raw = read_table(
        path,
        FORMAT,
        KEYS,
        STEP + TRANSACTION,
        extra=lambda column: _KC.match(column) is not None,
        sep="\t",
        text_columns=("*",),
        layout=LAYOUT,
    )
    report.rows_read += len(raw)
    kcs = kc_columns(raw.columns, str(path), model, report)
    if "Outcome" in raw:
        return _transactions(raw, kcs, str(path), report)
    if "Correct First Attempt" in raw or "First Attempt" in raw:
        return _steps(raw, kcs, str(path), report)
    found = ", ".join(header(path, FORMAT, "\t")[:12])
    raise SkbanditError(
        f"{FORMAT}: {path} has no first-attempt column (expected 'Correct First Attempt' "
        f"or 'First Attempt' in a step export, 'Outcome' in a transaction export); "
        f"found columns: {found}"
    )


def kc_columns(columns, where: str, model: str | None, report: ImportReport) -> list[str]:
    """The columns of one KC model (all its repeats): ``model``, else Default, else the first.

    >>> kc_columns(["KC (Area)", "KC (Default)", "KC (Default).1"], "f", None,
    ...            ImportReport("datashop"))
    ['KC (Default)', 'KC (Default).1']
    """
    models: dict[str, list[str]] = {}
    for column in columns:
        match = _KC.match(str(column))
        if match:
            models.setdefault(match.group(1).strip(), []).append(column)
    if not models:
        raise SkbanditError(
            f"{FORMAT}: {where} has no KC column (expected e.g. 'KC(Default)' or "
            f"'KC (Default)'); found columns: {', '.join(map(str, list(columns)[:12]))}; export "
            "with a knowledge-component model"
        )
    by_name = {name.lower(): name for name in models}
    if model is not None:
        if model.strip().lower() not in by_name:
            raise SkbanditError(
                f"{FORMAT}: {where} has no KC model {model!r} (--skill); its KC models are: "
                f"{', '.join(models)}; pass one of them"
            )
        chosen = by_name[model.strip().lower()]
    else:
        chosen = by_name.get("default", next(iter(models)))
    others = [name for name in models if name != chosen]
    note = f"{Path(where).name}: skills from the KC model '{chosen}'"
    if len(models[chosen]) > 1:
        note += f" ({len(models[chosen])} repeated KC columns, all kept)"
    if others:
        note += f"; other models: {', '.join(others)} (choose with --skill)"
    report.notes.append(note)
    return models[chosen]


def _skills(raw: pd.DataFrame, kcs: list[str]) -> list[list[str]]:
    """Each row's KCs over every column of the model, ``~~``-split, distinct, sorted.

    Sorted because a step's KCs are a set whose order differs between export types (a
    ``~~`` list in one, repeated columns in the other): the topic (the first) is then the
    same whichever export a data set comes from.
    """
    parts = [raw[c].fillna("").astype(str).str.split("~~").to_numpy(dtype=object) for c in kcs]
    return [
        sorted({k.strip() for ks in row for k in ks if k.strip()})
        for row in zip(*parts, strict=True)
    ]


def _base(raw: pd.DataFrame, kcs: list[str], when: pd.Series) -> pd.DataFrame:
    view = raw["Problem View"] if "Problem View" in raw else pd.Series("", index=raw.index)
    return pd.DataFrame(
        {
            schema.USER_ID: clean_ids(raw["Anon Student Id"]).to_numpy(),
            schema.ITEM_ID: (
                raw["Problem Name"].fillna("").str.strip()
                + " | "
                + raw["Step Name"].fillna("").str.strip()
            ).to_numpy(),
            schema.SKILL_IDS: pd.Series(_skills(raw, kcs), dtype=object).to_numpy(),
            schema.TIMESTAMP: when.array,
            "_problem": raw["Problem Name"].fillna("").str.strip().to_numpy(dtype=object),
            "_view": view.fillna("").astype(str).str.strip().to_numpy(dtype=object),
        }
    )


def _steps(raw, kcs, where, report) -> pd.DataFrame:
    column = "First Transaction Time" if "First Transaction Time" in raw else "Step Start Time"
    when = times(raw[column], FORMAT, where, column)
    events = _base(raw, kcs, when)
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
        events[schema.HELP_REQUESTED] = np.where(
            np.isnan(hints), np.nan, ((hints > 0) | hint_first).astype(float)
        )
    if {"First Transaction Time", "Step Start Time"} <= set(raw.columns):
        start = times(raw["Step Start Time"], FORMAT, where, "Step Start Time")
        events[schema.LATENCY_MS] = (when - start).dt.total_seconds().to_numpy() * 1000
    return drop_rows(events, np.isnan(correct), report, "steps dropped: no first attempt")


def _transactions(raw, kcs, where, report) -> pd.DataFrame:
    if "Time" not in raw:
        raise SkbanditError(f"{FORMAT}: {where} is a transaction export without 'Time'")
    raw = drop_rows(
        raw,
        raw["Step Name"].fillna("").str.strip().eq("").to_numpy(),
        report,
        "transactions dropped: no step",
    )
    outcome = raw["Outcome"].fillna("").str.strip().str.upper()
    if "Problem View" in raw:  # a blank view is a view: grouping must not drop it (help lost)
        raw = raw.assign(**{"Problem View": raw["Problem View"].fillna("").str.strip()})
    view = ["Problem View"] if "Problem View" in raw else []
    key = ["Anon Student Id", "Problem Name", *view, "Step Name"]
    groups = [raw[k].fillna("") for k in key]
    hinted = outcome.str.contains("HINT").groupby(groups, dropna=False).transform("max")
    raw = raw.assign(
        _when=zoned_times(raw, where),
        _row=np.arange(len(raw)),
        _correct=outcome.isin(["CORRECT", "OK"]).to_numpy(),
        _hinted=hinted.to_numpy(dtype=bool),
    )
    raw = first_rows(
        raw,
        key,
        ["_when", "_row"],
        report,
        "later transactions on a step dropped (first attempt counts)",
    )
    events = _base(raw, kcs, raw["_when"])
    events[schema.CORRECT] = raw["_correct"].to_numpy(dtype=np.int64)
    events[schema.HELP_REQUESTED] = raw["_hinted"].to_numpy(dtype=float)
    if "Duration (sec)" in raw:
        seconds = numbers(raw["Duration (sec)"], FORMAT, where, "Duration (sec)")
        events[schema.LATENCY_MS] = seconds * _duration_scale(seconds, where, report)
    if "Session Id" in raw:
        events[schema.ACTION_SEQUENCE_ID] = clean_ids(raw["Session Id"]).to_numpy()
    return events


def _duration_scale(seconds: np.ndarray, where: str, report: ImportReport) -> float:
    """1000 (seconds to ms), or 1 when the column plainly holds milliseconds (said in a note)."""
    positive = seconds[np.isfinite(seconds) & (seconds > 0)]
    if positive.size == 0 or np.median(positive) <= PLAUSIBLE_SECONDS:
        return 1000.0
    report.notes.append(
        f"{Path(where).name}: 'Duration (sec)' read as milliseconds: its median, "
        f"{np.median(positive):,.0f}, is implausible as seconds for one transaction (over "
        f"{PLAUSIBLE_SECONDS:.0f} s; the export seems to hold milliseconds)"
    )
    return 1.0


def zoned_times(raw: pd.DataFrame, where: str) -> pd.Series:
    """``Time`` as UTC: local to each row's ``Time Zone`` where the export gives one.

    >>> raw = pd.DataFrame({"Time": ["2020-01-06 00:30:00"] * 2,
    ...                     "Time Zone": ["UTC", "US/Eastern"]})
    >>> zoned_times(raw, "f").dt.strftime("%m-%d %H:%M").tolist()
    ['01-06 00:30', '01-06 05:30']
    """
    when = times(raw["Time"], FORMAT, where, "Time")
    if "Time Zone" not in raw:
        return when
    zone = raw["Time Zone"].fillna("").astype(str).str.strip()
    wall = when.dt.tz_localize(None)
    out = when.copy()
    for name in pd.unique(zone.to_numpy()):
        if name.upper() in ("", "UTC", "GMT", "Z", "ETC/UTC", "UCT"):
            continue
        rows = (zone == name).to_numpy()
        try:
            local = wall[rows].dt.tz_localize(name, ambiguous=False, nonexistent="shift_forward")
        except Exception:  # unknown zone names raise several types (pytz, zoneinfo)
            raise SkbanditError(
                f"{FORMAT}: {where}: column 'Time Zone' has {name!r} ({int(rows.sum())} rows), "
                "not a known time zone (expected e.g. UTC or America/New_York); fix the "
                "column or drop it to read the times as UTC"
            ) from None
        out[rows] = local.dt.tz_convert("UTC")
    return out


def _per_problem(events: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """One attempt per (student, problem, problem view) from its steps' first attempts."""
    key = [schema.USER_ID, "_problem", "_view"]
    events = events.sort_values(schema.TIMESTAMP, kind="stable")
    grouped = events.groupby(key, sort=False, dropna=False)
    out = grouped.agg(
        **{
            schema.TIMESTAMP: (schema.TIMESTAMP, "min"),
            schema.CORRECT: (schema.CORRECT, "min"),
            schema.SKILL_IDS: (
                schema.SKILL_IDS,
                lambda lists: list(dict.fromkeys(k for ks in lists for k in ks)),
            ),
            **{c: (c, "max") for c in (schema.HELP_REQUESTED,) if c in events},
            **{c: (c, lambda v: v.sum(min_count=1)) for c in (schema.LATENCY_MS,) if c in events},
            **{c: (c, "first") for c in (schema.ACTION_SEQUENCE_ID,) if c in events},
        }
    ).reset_index()
    out[schema.ITEM_ID] = out["_problem"]
    report.count("steps merged into their problem view (--item problem)", len(events) - len(out))
    columns = [schema.USER_ID, schema.ITEM_ID, schema.SKILL_IDS, schema.TIMESTAMP, schema.CORRECT]
    return out[columns + [c for c in out.columns if c not in columns]]
