"""Cleaning one column at a time: ids, numbers, timestamps, skills and flags coerced to the
canonical types of :mod:`skbandit.cleaning`, and the one-line errors for what cannot be.

Each function takes the frame (or the column) and the ``source`` named in its errors; the
latency and help rules count what they did in the table's
:class:`~skbandit.cleaning.CleaningReport`.
"""

import ast

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError

LATENCY_CAP_MS = 30 * 60 * 1000
"""Latencies above 30 minutes are clipped to 30 minutes (real logs reach 1e9 ms)."""
TIMESTAMP_RANGE = (pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2262-04-11", tz="UTC"))
"""Timestamps must lie in pandas' nanosecond range (about years 1678 to 2262)."""


def fail(source, column, expected, bad: pd.Series):
    """Raise the one-line error for ``bad`` (the offending values) in ``column``."""
    shown = ", ".join(show(v) for v in pd.unique(bad.to_numpy(dtype=object))[:3])
    raise SkbanditError(
        f"{source}: column '{column}' must be {expected}; found {shown} ({len(bad)} rows)"
    )


def show(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NaN"
    return repr(value) if isinstance(value, str) else str(value)


def require(df, source, columns, what):
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
        if float(value).is_integer() and abs(float(value)) < 2**63:
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


def as_str(values: pd.Series) -> pd.Series:
    """Strings with missing values kept missing (ints and floats become '123')."""
    return clean_ids(values)


def numeric(df, source, column, expected) -> pd.Series:
    raw = df[column]
    if raw.dtype == bool:
        return raw.astype(np.float64)
    values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    bad = raw.notna() & values.isna()
    if bad.any():
        fail(source, column, expected, raw[bad])
    return values


MAX_SKILL_TEXT = 10_000
"""A ``skill_ids`` text longer than this is refused (a list of skills is short; parsing a
100,000-character ``[---...-1]`` exhausted memory)."""


class BadSkills(ValueError):
    """A ``skill_ids`` value that is not a list of skill ids (reported by the caller)."""


def shown_value(value, limit: int = 40) -> str:
    """A value for an error message: ``repr``, cut to ``limit`` characters with its length."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def skill_list(value) -> list[str]:
    """``skill_ids`` as a list of str (from a list, array, number, JSON-ish or ';'/','-separated).

    >>> skill_list(280.0), skill_list("[1, 2]"), skill_list(np.array([3.0, 4.0]))
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
                raise BadSkills(value)
            try:
                value = ast.literal_eval(text)
            except (MemoryError, RecursionError):
                raise BadSkills(value) from None
            except (ValueError, SyntaxError):
                value = text.strip("[]").replace("'", "").replace('"', "").split(",")
        else:
            value = text.replace(";", ",").split(",")
    items = [clean_id(v) for v in list(value)]
    return [v for v in items if v]


def blank(values: pd.Series) -> np.ndarray:
    """Missing or whitespace-only entries (vectorised; only text columns can be blank)."""
    missing = values.isna().to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_string_dtype(values.dtype):  # ids repeat: strip each distinct value once
        blank = [v for v in pd.unique(values.to_numpy()) if isinstance(v, str) and not v.strip()]
        if blank:
            missing |= values.isin(blank).to_numpy(dtype=bool)
    return missing


def coerce_timestamp(df, source) -> pd.Series:
    raw = df[schema.TIMESTAMP]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        if raw.notna().any():
            fail(source, schema.TIMESTAMP, "a datetime or ISO-8601 string", raw[raw.notna()])
    try:
        ts = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
    except (TypeError, ValueError):
        ts = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    bad = raw.notna() & ts.isna()
    if bad.any():
        fail(source, schema.TIMESTAMP, "a datetime or ISO-8601 string", raw[bad])
    beyond = ts.notna() & ((ts < TIMESTAMP_RANGE[0]) | (ts > TIMESTAMP_RANGE[1]))
    if beyond.any():
        row = beyond.index[np.flatnonzero(beyond.to_numpy())[0]]
        raise SkbanditError(
            f"{source}: column '{schema.TIMESTAMP}' row {row} has {raw.loc[row]}, outside the "
            f"supported range {TIMESTAMP_RANGE[0].date()} to {TIMESTAMP_RANGE[1].date()} "
            f"({int(beyond.sum())} rows); fix or drop those rows"
        )
    return ts.astype("datetime64[ns, UTC]")


def coerce_correct(df, source) -> pd.Series:
    values = numeric(df, source, schema.CORRECT, "0 or 1")
    bad = ~values.isin([0.0, 1.0])
    if bad.any():
        fail(source, schema.CORRECT, "0 or 1", df.loc[bad, schema.CORRECT])
    return values.astype(np.int64)


def clean_latency(df, source, report) -> pd.Series:
    values = numeric(df, source, schema.LATENCY_MS, "a number of milliseconds")
    negative = values < 0
    report.latency_invalid = int(negative.sum())
    values = values.mask(negative)
    over = values > LATENCY_CAP_MS
    report.latency_clipped = int(over.sum())
    report.latency_missing = int(values.isna().sum())
    return values.clip(upper=LATENCY_CAP_MS)


def clean_help(df, source, report) -> pd.Series:
    raw = df[schema.HELP_REQUESTED]
    if raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):  # pandas 2 / pandas 3
        lowered = raw.astype(object).map(lambda v: v.strip().lower() if isinstance(v, str) else v)
        raw = lowered.replace({"true": 1.0, "false": 0.0, "": np.nan})
        raw = raw.infer_objects()
    values = numeric(
        df.assign(**{schema.HELP_REQUESTED: raw}),
        source,
        schema.HELP_REQUESTED,
        "a boolean (0/1, True/False)",
    )
    bad = values.notna() & ~values.isin([0.0, 1.0])
    if bad.any():
        fail(
            source,
            schema.HELP_REQUESTED,
            "a boolean (0/1, True/False)",
            df.loc[bad, schema.HELP_REQUESTED],
        )
    report.help_missing = int(values.isna().sum())
    return values


def check_propensity(df, source) -> pd.Series:
    values = numeric(df, source, schema.PROPENSITY, "a probability in (0, 1]")
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        fail(source, schema.PROPENSITY, "a probability in (0, 1]", values[bad])
    return values


def skill_lists(values: np.ndarray) -> list[list[str]]:
    """:func:`skill_list` of each value; a value object repeated over rows (an importer's
    per-item list) is parsed once and its result shared."""
    parsed: dict[int, list[str]] = {}
    out = []
    for value in values:
        key = id(value)  # every value is alive in ``values``, so ids do not repeat
        if key not in parsed:
            parsed[key] = skill_list(value)
        out.append(parsed[key])
    return out


def derive_topic(df, source) -> pd.DataFrame:
    if schema.TOPIC not in df.columns and schema.SKILL_IDS not in df.columns:
        require(df, source, (*schema.EVENT_REQUIRED, schema.TOPIC), "event")
    if schema.SKILL_IDS in df.columns:
        try:
            lists = skill_lists(df[schema.SKILL_IDS].to_numpy(dtype=object))
        except BadSkills as bad:
            raise SkbanditError(
                f"{source}: column '{schema.SKILL_IDS}' has {shown_value(bad.args[0])}, not a "
                f"list of skill ids (expected e.g. ['12', '7'] or 12;7, under "
                f"{MAX_SKILL_TEXT:,} characters); fix or drop that row"
            ) from None
        skills = pd.Series(lists, index=df.index, dtype=object)
        df[schema.SKILL_IDS] = skills
        derived = pd.Series([s[0] if s else None for s in lists], index=df.index, dtype=object)
        topic = df[schema.TOPIC] if schema.TOPIC in df.columns else derived
        df = df.assign(**{schema.TOPIC: topic.where(topic.notna(), derived)})
    return df


def refuse_nested(df: pd.DataFrame, source, allowed=()) -> None:
    """Raise a one-line error naming the first column holding dicts or lists (nested data)."""
    nested = (dict, list, tuple, set, np.ndarray)
    for column in df.columns:
        if column in allowed or df[column].dtype != object:
            continue
        for value in df[column].to_numpy(dtype=object):
            if isinstance(value, nested):
                raise SkbanditError(
                    f"{source}: column '{column}' holds nested values ({type(value).__name__}, "
                    f"e.g. {shown_value(value)}); expected one plain value per row: flatten "
                    "or drop that column"
                )
