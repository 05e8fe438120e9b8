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
column, what was expected and what was found.
"""

import ast
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError

LATENCY_CAP_MS = 30 * 60 * 1000
"""Latencies above 30 minutes are clipped to 30 minutes (real logs reach 1e9 ms)."""
MAX_ABS_DIFFICULTY = 10.0
"""Item difficulty (IRT b, logits) must lie in [-10, 10]: beyond, P(correct) is 1 or 0 to
four decimals for every student, and huge values overflow the features."""
MAX_DISCRIMINATION = 10.0
"""Item discrimination (IRT a) must lie in (0, 10]."""
TIMESTAMP_RANGE = (pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2262-04-11", tz="UTC"))
"""Timestamps must lie in pandas' nanosecond range (about years 1678 to 2262)."""


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


def summed_reports(reports, source: str) -> CleaningReport:
    """One report for a table cleaned in parts (every count added up).

    >>> a, b = CleaningReport("a", 3, 2), CleaningReport("b", 5, 5)
    >>> summed_reports([a, b], "both").summary()
    'both: kept 7 of 8 rows'
    """
    total = CleaningReport(source=source)
    for report in reports:
        for name in (
            "n_rows_in",
            "n_rows_out",
            "dropped_duplicates",
            "latency_clipped",
            "latency_invalid",
            "latency_missing",
            "help_missing",
            "unknown_topic",
        ):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        for counts, into in (
            (report.dropped_missing, total.dropped_missing),
            (report.filled_defaults, total.filled_defaults),
        ):
            for column, n in counts.items():
                into[column] = into.get(column, 0) + n
    return total


# --- helpers -----------------------------------------------------------------------------


def _fail(source, column, expected, bad: pd.Series):
    """Raise the one-line error for ``bad`` (the offending values) in ``column``."""
    shown = ", ".join(_show(v) for v in pd.unique(bad.to_numpy(dtype=object))[:3])
    raise SkbanditError(
        f"{source}: column '{column}' must be {expected}; found {shown} ({len(bad)} rows)"
    )


def _show(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NaN"
    return repr(value) if isinstance(value, str) else str(value)


def _require(df, source, columns, what):
    for col in columns:
        if col not in df.columns:
            raise SkbanditError(
                f"{source}: missing column '{col}' (expected the canonical {what} schema: "
                f"{', '.join(columns)}); found columns: {', '.join(map(str, df.columns))}"
            )


def clean_id(value) -> str | None:
    """One id as a clean string: integral numbers lose their ``.0``, text is stripped.

    >>> clean_id(280.0), clean_id(7), clean_id(" q12 "), clean_id(float("nan"))
    ('280', '7', 'q12', None)
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        if float(value).is_integer() and abs(value) < 2**63:
            return str(int(value))
    return str(value)


def clean_ids(values: pd.Series) -> pd.Series:
    """Ids of any type as clean strings (object dtype), missing values kept as ``None``.

    Each distinct value is converted once, so a million rows over a few thousand ids are
    cheap. Integral floats (ids of a column with gaps, read from CSV) become ``'280'``.

    >>> clean_ids(pd.Series([280.0, None, 281.0])).tolist()
    ['280', None, '281']
    """
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.astype(str).astype(object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([clean_id(v) for v in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def _as_str(values: pd.Series) -> pd.Series:
    """Strings with missing values kept missing (ints and floats become '123')."""
    return clean_ids(values)


def _numeric(df, source, column, expected) -> pd.Series:
    raw = df[column]
    if raw.dtype == bool:
        return raw.astype(np.float64)
    values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    bad = raw.notna() & values.isna()
    if bad.any():
        _fail(source, column, expected, raw[bad])
    return values


MAX_SKILL_TEXT = 10_000
"""A ``skill_ids`` text longer than this is refused (a list of skills is short; parsing a
100,000-character ``[---...-1]`` exhausted memory)."""


class _BadSkills(ValueError):
    """A ``skill_ids`` value that is not a list of skill ids (reported by the caller)."""


def _shown_value(value, limit: int = 40) -> str:
    """A value for an error message: ``repr``, cut to ``limit`` characters with its length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _skill_list(value) -> list[str]:
    """``skill_ids`` as a list of str (from a list, array, number, JSON-ish or ';'/','-separated).

    >>> _skill_list(280.0), _skill_list("[1, 2]"), _skill_list(np.array([3.0, 4.0]))
    (['280'], ['1', '2'], ['3', '4'])
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if type(value) is list and all(type(v) is str for v in value):  # the common case, fast
        return [v for v in (x.strip() for x in value) if v]
    if not isinstance(value, (str, list, tuple)):
        single = clean_id(value)
        return [single] if single else []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            if len(text) > MAX_SKILL_TEXT:
                raise _BadSkills(value)
            try:
                value = ast.literal_eval(text)
            except (MemoryError, RecursionError):
                raise _BadSkills(value) from None
            except (ValueError, SyntaxError):
                value = text.strip("[]").replace("'", "").replace('"', "").split(",")
        else:
            value = text.replace(";", ",").split(",")
    items = [clean_id(v) for v in list(value)]
    return [v for v in items if v]


def _blank(values: pd.Series) -> np.ndarray:
    """Missing or whitespace-only entries (vectorised; only text columns can be blank)."""
    missing = values.isna().to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_string_dtype(values.dtype):  # ids repeat: strip each distinct value once
        blank = [v for v in pd.unique(values.to_numpy()) if isinstance(v, str) and not v.strip()]
        if blank:
            missing |= values.isin(blank).to_numpy(dtype=bool)
    return missing


def _drop_missing(df, report, columns):
    """Drop rows whose key column is missing or blank; count them per column, in order."""
    keep = np.ones(len(df), dtype=bool)
    for col in columns:
        missing = keep & _blank(df[col])
        report.dropped_missing[col] = int(missing.sum())
        keep &= ~missing
    return df if keep.all() else df.loc[keep]


def _drop_duplicates(df, report):
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


def _coerce_timestamp(df, source) -> pd.Series:
    raw = df[schema.TIMESTAMP]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        if raw.notna().any():
            _fail(source, schema.TIMESTAMP, "a datetime or ISO-8601 string", raw[raw.notna()])
    try:
        ts = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        ts = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    bad = raw.notna() & ts.isna()
    if bad.any():
        _fail(source, schema.TIMESTAMP, "a datetime or ISO-8601 string", raw[bad])
    beyond = ts.notna() & ((ts < TIMESTAMP_RANGE[0]) | (ts > TIMESTAMP_RANGE[1]))
    if beyond.any():
        row = beyond.index[np.flatnonzero(beyond.to_numpy())[0]]
        raise SkbanditError(
            f"{source}: column '{schema.TIMESTAMP}' row {row} has {raw.loc[row]}, outside the "
            f"supported range {TIMESTAMP_RANGE[0].date()} to {TIMESTAMP_RANGE[1].date()} "
            f"({int(beyond.sum())} rows); fix or drop those rows"
        )
    return ts.astype("datetime64[ns, UTC]")


def _coerce_correct(df, source) -> pd.Series:
    values = _numeric(df, source, schema.CORRECT, "0 or 1")
    bad = ~values.isin([0.0, 1.0])
    if bad.any():
        _fail(source, schema.CORRECT, "0 or 1", df.loc[bad, schema.CORRECT])
    return values.astype(np.int64)


def _clean_latency(df, source, report) -> pd.Series:
    values = _numeric(df, source, schema.LATENCY_MS, "a number of milliseconds")
    negative = values < 0
    report.latency_invalid = int(negative.sum())
    values = values.mask(negative)
    over = values > LATENCY_CAP_MS
    report.latency_clipped = int(over.sum())
    report.latency_missing = int(values.isna().sum())
    return values.clip(upper=LATENCY_CAP_MS)


def _clean_help(df, source, report) -> pd.Series:
    raw = df[schema.HELP_REQUESTED]
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):  # pandas 2 / pandas 3
        lowered = raw.astype(object).map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        raw = lowered.replace({"true": 1.0, "false": 0.0, "": np.nan})
        raw = raw.infer_objects()
    values = _numeric(
        df.assign(**{schema.HELP_REQUESTED: raw}),
        source,
        schema.HELP_REQUESTED,
        "a boolean (0/1, True/False)",
    )
    bad = values.notna() & ~values.isin([0.0, 1.0])
    if bad.any():
        _fail(
            source,
            schema.HELP_REQUESTED,
            "a boolean (0/1, True/False)",
            df.loc[bad, schema.HELP_REQUESTED],
        )
    report.help_missing = int(values.isna().sum())
    return values


def _check_propensity(df, source) -> pd.Series:
    values = _numeric(df, source, schema.PROPENSITY, "a probability in (0, 1]")
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        _fail(source, schema.PROPENSITY, "a probability in (0, 1]", values[bad])
    return values


def _skill_lists(values: np.ndarray) -> list[list[str]]:
    """:func:`_skill_list` of each value; a value object repeated over rows (an importer's
    per-item list) is parsed once and its result shared."""
    parsed: dict[int, list[str]] = {}
    out = []
    for value in values:
        key = id(value)  # every value is alive in ``values``, so ids do not repeat
        if key not in parsed:
            parsed[key] = _skill_list(value)
        out.append(parsed[key])
    return out


def _derive_topic(df, source) -> pd.DataFrame:
    if schema.TOPIC not in df.columns and schema.SKILL_IDS not in df.columns:
        _require(df, source, (*schema.EVENT_REQUIRED, schema.TOPIC), "event")
    if schema.SKILL_IDS in df.columns:
        try:
            lists = _skill_lists(df[schema.SKILL_IDS].to_numpy(dtype=object))
        except _BadSkills as bad:
            raise SkbanditError(
                f"{source}: column '{schema.SKILL_IDS}' has {_shown_value(bad.args[0])}, not a "
                f"list of skill ids (expected e.g. ['12', '7'] or 12;7, under "
                f"{MAX_SKILL_TEXT:,} characters); fix or drop that row"
            ) from None
        skills = pd.Series(lists, index=df.index, dtype=object)
        df[schema.SKILL_IDS] = skills
        derived = pd.Series([s[0] if s else None for s in lists], index=df.index, dtype=object)
        topic = df[schema.TOPIC] if schema.TOPIC in df.columns else derived
        df = df.assign(**{schema.TOPIC: topic.where(topic.notna(), derived)})
    return df


def _refuse_nested(df: pd.DataFrame, source, allowed=()) -> None:
    """Raise a one-line error naming the first column holding dicts or lists (nested data)."""
    nested = (dict, list, tuple, set, np.ndarray)
    for column in df.columns:
        if column in allowed or df[column].dtype != object:
            continue
        for value in df[column].to_numpy(dtype=object):
            if isinstance(value, nested):
                raise SkbanditError(
                    f"{source}: column '{column}' holds nested values ({type(value).__name__}, "
                    f"e.g. {_shown_value(value)}); expected one plain value per row: flatten "
                    "or drop that column"
                )


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
        _refuse_nested(df, source, allowed=(schema.SKILL_IDS,))
        raise


def _validate_events(df: pd.DataFrame, source) -> tuple[pd.DataFrame, CleaningReport]:
    report = CleaningReport(source=str(source), n_rows_in=len(df))
    _require(df, source, schema.EVENT_REQUIRED, "event")
    df = _derive_topic(df.copy(), source)
    df[schema.TIMESTAMP] = _coerce_timestamp(df, source)
    for col in STRING_COLUMNS:
        if col in df.columns:
            df[col] = _as_str(df[col])
    df = _drop_missing(df, report, (schema.USER_ID, schema.ITEM_ID, schema.TOPIC, schema.TIMESTAMP))
    df[schema.CORRECT] = _coerce_correct(df, source)
    if schema.LATENCY_MS in df.columns:
        df[schema.LATENCY_MS] = _clean_latency(df, source, report)
    if schema.HELP_REQUESTED in df.columns:
        df[schema.HELP_REQUESTED] = _clean_help(df, source, report)
    if schema.PROPENSITY in df.columns:
        df[schema.PROPENSITY] = _check_propensity(df, source)
    df = _drop_duplicates(df, report)
    df = df.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    report.n_rows_out = len(df)
    return df, report


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
    and counted). Item ids must be unique after exact duplicates are dropped.

    Parameters
    ----------
    df : DataFrame
        Raw items with ``item_id, topic, difficulty``.
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
        _refuse_nested(df, source)
        raise


def _validate_items(df: pd.DataFrame, source) -> tuple[pd.DataFrame, CleaningReport]:
    report = CleaningReport(source=str(source), n_rows_in=len(df))
    _require(df, source, schema.ITEM_REQUIRED, "item")
    df = df.copy()
    for col in (schema.ITEM_ID, schema.TOPIC):
        df[col] = _as_str(df[col])
    df = _drop_missing(df, report, (schema.ITEM_ID, schema.TOPIC))
    difficulty = f"a number in [-{MAX_ABS_DIFFICULTY}, {MAX_ABS_DIFFICULTY}] (logit scale)"
    df[schema.DIFFICULTY] = _numeric(df, source, schema.DIFFICULTY, difficulty)
    bad = ~(df[schema.DIFFICULTY].abs() <= MAX_ABS_DIFFICULTY)
    if bad.any():
        _fail(source, schema.DIFFICULTY, difficulty, df.loc[bad, schema.DIFFICULTY])
    _fill_default(df, report, schema.DISCRIMINATION, 1.0)
    positive = f"a number in (0, {MAX_DISCRIMINATION}]"
    df[schema.DISCRIMINATION] = _numeric(df, source, schema.DISCRIMINATION, positive)
    bad = ~((df[schema.DISCRIMINATION] > 0) & (df[schema.DISCRIMINATION] <= MAX_DISCRIMINATION))
    if bad.any():
        _fail(source, schema.DISCRIMINATION, positive, df.loc[bad, schema.DISCRIMINATION])
    if schema.GUESSING in df.columns:
        df[schema.GUESSING] = _numeric(df, source, schema.GUESSING, "a number in [0, 1)")
        bad = df[schema.GUESSING].notna() & ~df[schema.GUESSING].between(0, 1, inclusive="left")
        if bad.any():
            _fail(source, schema.GUESSING, "a number in [0, 1)", df.loc[bad, schema.GUESSING])
    _fill_default(df, report, schema.DRIFT_FLAG, False)
    flags = _numeric(df, source, schema.DRIFT_FLAG, "a boolean")
    bad = ~flags.isin([0.0, 1.0])
    if bad.any():
        _fail(source, schema.DRIFT_FLAG, "a boolean", df.loc[bad, schema.DRIFT_FLAG])
    df[schema.DRIFT_FLAG] = flags.astype(bool)
    df = _drop_duplicates(df, report)
    dup_ids = df[schema.ITEM_ID].duplicated(keep=False)
    if dup_ids.any():
        _fail(source, schema.ITEM_ID, "unique (one row per item)", df.loc[dup_ids, schema.ITEM_ID])
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
            return ", ".join(_shown_value(v, 30) for v in values[:3]) + (
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
