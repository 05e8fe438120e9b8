"""Canonical event and item tables: type coercion, validation and cleaning.

Every engine validates learning events and items through this module (files are read by
:mod:`adapters.data.datasets`), so every engine sees the same types and the same cleaning:

**events** (one row per attempt)
    ``user_id`` str, ``item_id`` str, ``topic`` str (or ``skill_ids``, a list of str whose
    first entry is the topic), ``timestamp`` UTC ``datetime64``, ``correct`` int 0/1;
    optional ``latency_ms``, ``help_requested``, ``action_sequence_id``, ``propensity``,
    ``policy``.
**items** (one row per practice item)
    ``item_id`` str, ``topic`` str, ``difficulty`` float (IRT b, logit scale);
    optional ``discrimination`` (default 1.0), ``guessing``, ``drift_flag`` (default False).

Cleaning rules (each counted in a :class:`CleaningReport`, nothing is dropped silently):

- rows without ``user_id``, ``item_id``, ``topic`` or ``timestamp`` are dropped;
- exact duplicate rows are dropped;
- ``latency_ms`` above :data:`LATENCY_CAP_MS` is clipped to the cap; negative latency is
  set to NaN; missing latency stays NaN (``float64``) and missing ``help_requested`` stays
  NaN (``float64`` 0.0/1.0/NaN). Context code ignores NaN, so NaN never becomes a feature;
- naive timestamps are taken as UTC; events are sorted by timestamp (stable).

Values that cannot be cleaned without guessing (``correct`` outside {0, 1}, a propensity
outside (0, 1], an unparseable timestamp or one outside :data:`TIMESTAMP_RANGE`, a
difficulty outside [-10, 10], a discrimination outside (0, 10], a guessing outside [0, 1),
a missing column) raise
:class:`~skbandit.exceptions.SkbanditError` with a one-line message naming the source, the
column, what was expected and what was found. The rules for one column at a time are in
:mod:`skbandit.cleaning_columns`; :func:`clean_event_rows` applies every row-by-row rule, so
an engine that holds the rows in parts (the Spark engine, per partition) applies the same
functions and then drops duplicates (:func:`drop_duplicates`) where whole students meet.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.cleaning_columns import (
    LATENCY_CAP_MS,
    TIMESTAMP_RANGE,
    as_str,
    blank,
    check_propensity,
    clean_help,
    clean_id,
    clean_ids,
    clean_latency,
    coerce_correct,
    coerce_timestamp,
    derive_topic,
    fail,
    numeric,
    refuse_nested,
    require,
    shown_value,
)
from skbandit.exceptions import SkbanditError

__all__ = [
    "LATENCY_CAP_MS",
    "MAX_ABS_DIFFICULTY",
    "MAX_DISCRIMINATION",
    "STRING_COLUMNS",
    "TIMESTAMP_RANGE",
    "CleaningReport",
    "check_topics",
    "clean_event_rows",
    "clean_id",
    "clean_ids",
    "drop_duplicates",
    "unknown_items",
    "validate_events",
    "validate_items",
]

MAX_ABS_DIFFICULTY = 10.0
"""Item difficulty (IRT b, logits) must lie in [-10, 10]: beyond, P(correct) is 1 or 0 to
four decimals for every student, and huge values overflow the features."""
MAX_DISCRIMINATION = 10.0
"""Item discrimination (IRT a) must lie in (0, 10]."""


STRING_COLUMNS = (
    schema.USER_ID,
    schema.ITEM_ID,
    schema.TOPIC,
    schema.ACTION_SEQUENCE_ID,
    schema.POLICY,
)


@dataclass
class CleaningReport:
    """What cleaning did to one table.

    Attributes
    ----------
    source : str
        The file (or frame label) the table came from.
    n_rows_in, n_rows_out : int
        Rows before and after cleaning.
    dropped_missing : dict of str to int
        Rows dropped because the named key column was empty.
    dropped_duplicates : int
        Exact duplicate rows dropped.
    latency_clipped : int
        Latencies above :data:`LATENCY_CAP_MS` clipped to the cap.
    latency_invalid : int
        Negative latencies set to NaN.
    latency_missing, help_missing : int
        Rows with NaN latency / help kept as NaN (not dropped).
    filled_defaults : dict of str to int
        Missing optional item values filled with their default.
    """

    source: str
    n_rows_in: int = 0
    n_rows_out: int = 0
    dropped_missing: dict[str, int] = field(default_factory=dict)
    dropped_duplicates: int = 0
    latency_clipped: int = 0
    latency_invalid: int = 0
    latency_missing: int = 0
    help_missing: int = 0
    filled_defaults: dict[str, int] = field(default_factory=dict)
    unknown_topic: int = 0

    @property
    def n_dropped(self) -> int:
        """Rows removed by cleaning."""
        return self.n_rows_in - self.n_rows_out

    def summary(self) -> str:
        """One line: rows kept and every non-zero cleaning count."""
        parts = [f"{self.source}: kept {self.n_rows_out} of {self.n_rows_in} rows"]
        parts += [f"dropped {n} without {col}" for col, n in self.dropped_missing.items() if n]
        counts = {
            "dropped {} duplicate rows": self.dropped_duplicates,
            f"clipped {{}} latencies at {LATENCY_CAP_MS} ms": self.latency_clipped,
            "set {} negative latencies to NaN": self.latency_invalid,
            "{} latencies missing (kept as NaN)": self.latency_missing,
            "{} help values missing (kept as NaN)": self.help_missing,
        }
        parts += [text.format(n) for text, n in counts.items() if n]
        parts += [f"filled {n} missing {col}" for col, n in self.filled_defaults.items() if n]
        if self.unknown_topic:
            parts.append(f"{self.unknown_topic} events on topics the items table lacks")
        return "; ".join(parts)


ROW_COUNTS = (
    "dropped_duplicates",
    "latency_clipped",
    "latency_invalid",
    "latency_missing",
    "help_missing",
    "unknown_topic",
)
"""The :class:`CleaningReport` fields that count rows dropped or changed by one rule."""


def summed_reports(reports, source: str) -> CleaningReport:
    """One report for a table cleaned in parts (every count added up).

    >>> a, b = CleaningReport("a", 3, 2), CleaningReport("b", 5, 5)
    >>> summed_reports([a, b], "both").summary()
    'both: kept 7 of 8 rows'
    """
    total = CleaningReport(source=source)
    for report in reports:
        for name in ("n_rows_in", "n_rows_out", *ROW_COUNTS):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        for counts, into in (
            (report.dropped_missing, total.dropped_missing),
            (report.filled_defaults, total.filled_defaults),
        ):
            for column, n in counts.items():
                into[column] = into.get(column, 0) + n
    return total


def drop_missing(df, report, columns):
    """Drop rows whose key column is missing or blank; count them per column, in order."""
    keep = np.ones(len(df), dtype=bool)
    for col in columns:
        missing = keep & blank(df[col])
        report.dropped_missing[col] = int(missing.sum())
        keep &= ~missing
    return df if keep.all() else df.loc[keep]


def drop_duplicates(df, report):
    """Drop exact duplicate rows (first kept); the exact check runs on row-hash collisions only."""
    hashable = [c for c in df.columns if c != schema.SKILL_IDS]
    dup = np.zeros(len(df), dtype=bool)
    if hashable and len(df):
        row_hash = pd.util.hash_pandas_object(df[hashable], index=False)
        candidates = row_hash.duplicated(keep=False).to_numpy()
        if candidates.any():
            dup[candidates] = df.loc[candidates, hashable].duplicated().to_numpy()
    report.dropped_duplicates = int(dup.sum())
    return df.loc[~dup] if dup.any() else df


# --- events ------------------------------------------------------------------------------


def validate_events(
    df: pd.DataFrame, source: str = "events"
) -> tuple[pd.DataFrame, CleaningReport]:
    """Coerce and check an events frame against the canonical event schema.

    Parameters
    ----------
    df : DataFrame
        Raw events; needs ``user_id, item_id, timestamp, correct`` and ``topic`` or
        ``skill_ids``. Extra columns are kept.
    source : str
        Name used in error messages and the report (usually the file path).

    Returns
    -------
    events : DataFrame
        Cleaned copy sorted by timestamp with a fresh RangeIndex.
    report : CleaningReport

    Raises
    ------
    SkbanditError
        On a missing column or a value that cannot be cleaned (see the module docstring).
    """
    try:
        return _validate_events(df, source)
    except TypeError as error:  # pandas hashes ids and rows: nested values are unhashable
        if "unhashable" not in str(error):
            raise
        refuse_nested(df, source, allowed=(schema.SKILL_IDS,))
        raise


def _validate_events(df: pd.DataFrame, source) -> tuple[pd.DataFrame, CleaningReport]:
    report = CleaningReport(source=str(source), n_rows_in=len(df))
    df = drop_duplicates(clean_event_rows(df, source, report), report)
    df = df.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    report.n_rows_out = len(df)
    return df, report


def clean_event_rows(df: pd.DataFrame, source, report: CleaningReport) -> pd.DataFrame:
    """Every row-by-row rule of :func:`validate_events` (all but duplicates and the order).

    Types coerced, rows without a key dropped, latency and help cleaned, ``correct`` and
    ``propensity`` checked; the counts go into ``report``. The rows keep their order and
    index. Raises :class:`~skbandit.exceptions.SkbanditError` like :func:`validate_events`.
    """
    require(df, source, schema.EVENT_REQUIRED, "event")
    df = derive_topic(df.copy(), source)
    df[schema.TIMESTAMP] = coerce_timestamp(df, source)
    for col in STRING_COLUMNS:
        if col in df.columns:
            df[col] = as_str(df[col])
    df = drop_missing(df, report, (schema.USER_ID, schema.ITEM_ID, schema.TOPIC, schema.TIMESTAMP))
    df[schema.CORRECT] = coerce_correct(df, source)
    if schema.LATENCY_MS in df.columns:
        df[schema.LATENCY_MS] = clean_latency(df, source, report)
    if schema.HELP_REQUESTED in df.columns:
        df[schema.HELP_REQUESTED] = clean_help(df, source, report)
    if schema.PROPENSITY in df.columns:
        df[schema.PROPENSITY] = check_propensity(df, source)
    return df


# --- items -------------------------------------------------------------------------------


def _fill_default(df, report, column, default):
    if column not in df.columns:
        df[column] = np.nan
    missing = df[column].isna()
    report.filled_defaults[column] = int(missing.sum())
    df[column] = df[column].where(~missing, default)


def validate_items(df: pd.DataFrame, source: str = "items") -> tuple[pd.DataFrame, CleaningReport]:
    """Coerce and check an items frame against the canonical item schema.

    ``discrimination`` defaults to 1.0 and ``drift_flag`` to False (missing values filled
    and counted). ``difficulty`` may be blank or absent (a log's item list): it is then NaN,
    which ``--calibrate`` estimates or the topic's mean stands in for
    (:func:`skbandit.context.difficulty_or_topic_mean`). Item ids must be unique after exact
    duplicates are dropped.

    Parameters
    ----------
    df : DataFrame
        Raw items with ``item_id, topic`` and usually ``difficulty``.
    source : str
        Name used in error messages and the report.

    Returns
    -------
    items : DataFrame
    report : CleaningReport
    """
    try:
        return _validate_items(df, source)
    except TypeError as error:
        if "unhashable" not in str(error):
            raise
        refuse_nested(df, source)
        raise


def _validate_items(df: pd.DataFrame, source) -> tuple[pd.DataFrame, CleaningReport]:
    report = CleaningReport(source=str(source), n_rows_in=len(df))
    require(df, source, schema.ITEM_REQUIRED, "item")
    df = df.copy()
    for col in (schema.ITEM_ID, schema.TOPIC):
        df[col] = as_str(df[col])
    df = drop_missing(df, report, (schema.ITEM_ID, schema.TOPIC))
    difficulty = f"a number in [-{MAX_ABS_DIFFICULTY}, {MAX_ABS_DIFFICULTY}] (logit scale)"
    if schema.DIFFICULTY not in df.columns:  # a log's item list: --calibrate estimates them
        df[schema.DIFFICULTY] = np.nan
    df[schema.DIFFICULTY] = numeric(df, source, schema.DIFFICULTY, difficulty)
    given = df[schema.DIFFICULTY].notna()  # a blank: the topic's mean stands in (context.py)
    bad = given & ~(df[schema.DIFFICULTY].abs() <= MAX_ABS_DIFFICULTY)
    if bad.any():
        fail(source, schema.DIFFICULTY, difficulty, df.loc[bad, schema.DIFFICULTY])
    _fill_default(df, report, schema.DISCRIMINATION, 1.0)
    positive = f"a number in (0, {MAX_DISCRIMINATION}]"
    df[schema.DISCRIMINATION] = numeric(df, source, schema.DISCRIMINATION, positive)
    bad = ~((df[schema.DISCRIMINATION] > 0) & (df[schema.DISCRIMINATION] <= MAX_DISCRIMINATION))
    if bad.any():
        fail(source, schema.DISCRIMINATION, positive, df.loc[bad, schema.DISCRIMINATION])
    if schema.GUESSING in df.columns:
        df[schema.GUESSING] = numeric(df, source, schema.GUESSING, "a number in [0, 1)")
        bad = df[schema.GUESSING].notna() & ~df[schema.GUESSING].between(0, 1, inclusive="left")
        if bad.any():
            fail(source, schema.GUESSING, "a number in [0, 1)", df.loc[bad, schema.GUESSING])
    _fill_default(df, report, schema.DRIFT_FLAG, False)
    flags = numeric(df, source, schema.DRIFT_FLAG, "a boolean")
    bad = ~flags.isin([0.0, 1.0])
    if bad.any():
        fail(source, schema.DRIFT_FLAG, "a boolean", df.loc[bad, schema.DRIFT_FLAG])
    df[schema.DRIFT_FLAG] = flags.astype(bool)
    df = drop_duplicates(df, report)
    dup_ids = df[schema.ITEM_ID].duplicated(keep=False)
    if dup_ids.any():
        fail(source, schema.ITEM_ID, "unique (one row per item)", df.loc[dup_ids, schema.ITEM_ID])
    df = df.reset_index(drop=True)
    report.n_rows_out = len(df)
    return df, report


def check_topics(events: pd.DataFrame, items: pd.DataFrame, source: str) -> int:
    """Events whose topic the items table lacks; an error when no topic is shared at all.

    An items table made for other events (another data set) shares no topic with them, and
    training on it would learn nothing a recommendation can use.

    >>> ev = pd.DataFrame({"topic": ["a", "a", "b"]})
    >>> check_topics(ev, pd.DataFrame({"topic": ["a"]}), "x")
    1
    """
    event_topics = pd.unique(events[schema.TOPIC].dropna())
    item_topics = set(items[schema.TOPIC].dropna())
    shared = [t for t in event_topics if t in item_topics]
    if len(event_topics) and item_topics and not shared:

        def few(values):
            values = sorted(map(str, values))
            return ", ".join(shown_value(v, 30) for v in values[:3]) + (
                f", ... ({len(values):,})" if len(values) > 3 else ""
            )

        raise SkbanditError(
            f"{source}: none of the events' {len(event_topics):,} topics ({few(event_topics)}) "
            f"is among the items' {len(item_topics):,} topics ({few(item_topics)}); the items "
            "table belongs to other events: pass the items.parquet written with these events"
        )
    return int((~events[schema.TOPIC].isin(item_topics)).sum())


def unknown_items(events: pd.DataFrame, items: pd.DataFrame) -> int:
    """Number of events whose ``item_id`` is not in the items table.

    >>> ev = pd.DataFrame({"item_id": ["a", "b", "b"]})
    >>> unknown_items(ev, pd.DataFrame({"item_id": ["a"]}))
    2
    """
    return int((~events[schema.ITEM_ID].isin(items[schema.ITEM_ID])).sum())
