"""Canonical events and their historical contexts on Spark (the Spark engine's first half).

:func:`clean_events` applies :mod:`skbandit.cleaning`'s event rules as Spark expressions
(a missing column, an unusable ``correct``/``help_requested``/``propensity`` raise; blank
keys and exact duplicate rows are dropped; latencies are capped) and :func:`check_events`
counts what they did. :func:`historical_contexts` computes, for every event, the same model
input as :func:`skbandit.context.historical_contexts`, with that module's own code run on
partitions that hold whole items, then whole students.

Casts are ``try_cast`` (Spark 4 runs in ANSI mode, where a bad value in a plain cast stops
the job with a long error): a value that is not a number becomes null and is reported by
:func:`check_events` in one line, as the local engine does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.spark import ROW_ORDER
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS, CleaningReport
from skbandit.context import (
    ITEM_PARAMETERS,
    completion_ns,
    item_counts,
    item_table,
    model_input,
    student_counts,
)
from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TS = "_ts"
"""Event time as int64 nanoseconds since the epoch (UTC)."""
CONTEXT_COLUMNS = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC, TS, ROW_ORDER, schema.CORRECT,
                   *schema.MODEL_INPUT, schema.N_PRIOR)
"""What :func:`historical_contexts` returns, one row per known event."""
_KEYS = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC)
EVENT_COLUMNS = (*_KEYS, TS, ROW_ORDER, schema.CORRECT, schema.LATENCY_MS, schema.HELP_REQUESTED)
"""The columns of :func:`clean_events`' result."""
_MISSING, _RAW_LATENCY = "_missing", "_raw_latency"
_ITEM_COUNTS = ("_attempts", "_item_correct")
BUCKET = "_bucket"


def clean_events(raw: DataFrame, source: str) -> DataFrame:
    """Coerce and clean raw events like :func:`skbandit.cleaning.validate_events` (lazily).

    Rows with a blank key are dropped, then exact duplicate rows (the first kept); checks
    that need the data (``correct`` in {0, 1}, ...) run in :func:`check_events`. Only the
    columns the contexts need are kept (:data:`EVENT_COLUMNS`), partitioned by student.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    df = coerce_events(raw, source).where(F.col(_MISSING).isNull()).drop(_MISSING, _RAW_LATENCY)
    df = df.repartition(schema.USER_ID)  # the dedup and the per-student windows reuse it
    kinds = dict(df.dtypes)
    simple = [c for c in df.columns if c not in (ROW_ORDER, schema.SKILL_IDS, schema.TIMESTAMP)
              and not isinstance(df.schema[c].dataType, T.ArrayType | T.MapType | T.StructType)
              and kinds[c] != "binary"]
    first = df.groupBy(*simple).agg(F.min(ROW_ORDER).alias(ROW_ORDER))  # the first copy's row
    return first.select(*EVENT_COLUMNS)


def coerce_events(raw: DataFrame, source: str) -> DataFrame:
    """Every raw row with the canonical types, latency cleaned (lazily).

    ``_missing`` names the first blank key of a row (the local engine drops such rows and
    counts them by that key), ``_raw_latency`` keeps the latency before cleaning.
    """
    from pyspark.sql import functions as F

    columns = raw.columns
    for name in schema.EVENT_REQUIRED:
        if name not in columns:
            raise SkbanditError(
                f"{source}: missing column '{name}' (expected the canonical event schema: "
                f"{', '.join(schema.EVENT_REQUIRED)}, topic); found columns: "
                f"{', '.join(c for c in columns if c != ROW_ORDER)}")
    df = raw.withColumn(schema.TOPIC, _topic_column(raw, source))
    df = df.withColumn(TS, _nanoseconds(df, source))
    missing = F.lit(None).cast("string")
    for name in reversed(_KEYS):
        df = df.withColumn(name, F.col(name).cast("string"))
        blank = F.col(name).isNull() | F.col(name).rlike(r"^\s*$")
        missing = F.when(blank, name).otherwise(missing)
    missing = F.when(F.col(TS).isNull() & missing.isNull(), schema.TIMESTAMP).otherwise(missing)
    df = df.withColumn(_MISSING, missing)
    df = df.withColumn(schema.CORRECT, F.col(schema.CORRECT).try_cast("double"))
    df = df.withColumn(_RAW_LATENCY, _raw_latency(df))
    df = df.withColumn(schema.LATENCY_MS, _latency(F.col(_RAW_LATENCY)))
    return df.withColumn(schema.HELP_REQUESTED, _help(df))


def local_dtypes(head: pd.DataFrame, raw_columns: list[str]) -> pd.DataFrame:
    """Coerced events brought to the driver with the local engine's dtypes and columns."""
    from skbandit.cleaning import STRING_COLUMNS

    order = [c for c in raw_columns if c != ROW_ORDER]
    if schema.TOPIC not in order:
        order.append(schema.TOPIC)
    out = head.sort_values([TS, ROW_ORDER]).reset_index(drop=True)
    out[schema.TIMESTAMP] = pd.to_datetime(out[TS].to_numpy(np.int64), unit="ns", utc=True)
    out[schema.CORRECT] = out[schema.CORRECT].astype(np.int64)
    for name in STRING_COLUMNS:
        if name in out.columns:
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    for name in (schema.LATENCY_MS, schema.HELP_REQUESTED, schema.PROPENSITY):
        if name in out.columns:
            out[name] = out[name].astype(np.float64)
    return out[order]


def check_events(raw: DataFrame, events: DataFrame, items: pd.DataFrame,
                 source: str) -> tuple[CleaningReport, int]:
    """Raise on unusable values; what cleaning did, and how many events name unknown items.

    Two passes: one over the raw rows (the checks and the counts of
    :class:`skbandit.cleaning.CleaningReport`), one over the cleaned ``events`` (rows kept,
    unknown items). The report's counts equal the local engine's.
    """
    from pyspark.sql import functions as F

    kept = F.col(_MISSING).isNull()
    checks = {
        schema.CORRECT: ("0 or 1", ~F.col(schema.CORRECT).isin(0.0, 1.0)
                         | F.col(schema.CORRECT).isNull()),
        schema.HELP_REQUESTED: ("a boolean (0/1, True/False)",
                                F.col(schema.HELP_REQUESTED).isNotNull()
                                & ~F.col(schema.HELP_REQUESTED).isin(0.0, 1.0)),
    }
    if schema.PROPENSITY in raw.columns:
        p = F.col(schema.PROPENSITY).try_cast("double")
        checks[schema.PROPENSITY] = ("a probability in (0, 1]", ~((p > 0) & (p <= 1)) | p.isNull())
    latency = F.col(_RAW_LATENCY)
    counts = {"rows_in": F.lit(True),
              **{f"missing_{k}": F.col(_MISSING) == k for k in (*_KEYS, schema.TIMESTAMP)}}
    if schema.LATENCY_MS in raw.columns:
        counts |= {"latency_invalid": kept & (latency < 0),
                   "latency_clipped": kept & (latency > LATENCY_CAP_MS),
                   "latency_missing": kept & F.col(schema.LATENCY_MS).isNull()}
    if schema.HELP_REQUESTED in raw.columns:
        counts["help_missing"] = kept & F.col(schema.HELP_REQUESTED).isNull()
    aggs = [F.sum(when.cast("long")).alias(name) for name, when in counts.items()]
    for name, (_, bad) in checks.items():
        aggs += [F.sum((kept & bad).cast("long")).alias(f"bad_{name}"),
                 F.first(F.when(kept & bad, F.coalesce(F.col(name).cast("string"),
                                                       F.lit("NaN"))),
                         ignorenulls=True).alias(f"example_{name}")]
    row = coerce_events(raw, source).agg(*aggs).first().asDict()
    for name, (expected, _) in checks.items():
        if row[f"bad_{name}"]:
            raise SkbanditError(f"{source}: column '{name}' must be {expected}; found "
                                f"{row[f'example_{name}']} ({row[f'bad_{name}']} rows)")
    ids = events.sparkSession.createDataFrame(items[[schema.ITEM_ID]].astype(str))
    flagged = events.join(F.broadcast(ids.withColumn("_known", F.lit(1))), schema.ITEM_ID, "left")
    out = flagged.agg(F.count(F.lit(1)).alias("rows"),
                      F.sum(F.col("_known").isNull().cast("long")).alias("unknown")).first()
    n = {k: int(v or 0) for k, v in row.items() if not k.startswith(("bad_", "example_"))}
    missing = {k: n[f"missing_{k}"] for k in (*_KEYS, schema.TIMESTAMP)}
    report = CleaningReport(
        source=source, n_rows_in=n["rows_in"], n_rows_out=int(out["rows"]),
        dropped_missing=missing,
        dropped_duplicates=n["rows_in"] - sum(missing.values()) - int(out["rows"]),
        **{k: n[k] for k in ("latency_invalid", "latency_clipped", "latency_missing",
                             "help_missing") if k in n})
    return report, int(out["unknown"] or 0)


def historical_contexts(events: DataFrame, items: pd.DataFrame, buckets=None,
                        partitions: int | None = None) -> DataFrame:
    """Every known event's model input from strictly earlier events (:data:`CONTEXT_COLUMNS`).

    Two passes of :mod:`skbandit.context`'s own arithmetic over ``partitions`` partitions
    (default: the session's parallelism): partitioned by item, each partition counts its
    events' earlier attempts on their items (:func:`~skbandit.context.item_counts`); then
    partitioned by student, each partition counts its students' earlier events
    (:func:`~skbandit.context.student_counts`) and turns both counts into the model input
    (:func:`~skbandit.context.model_input`). A partition holds whole items, then whole
    students, and is put in time order (start, then row order) before counting, so ties
    break as in the local engine. Events on items missing from ``items`` are skipped.

    With ``buckets = (bounds, labels)`` each row also gets ``_bucket``: the label of the
    time range ``bounds`` puts its start in (see :func:`train.spark_engine.time_buckets`).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    n = partitions or events.sparkSession.sparkContext.defaultParallelism
    static = events.sparkSession.createDataFrame(item_table(items)[[schema.ITEM_ID,
                                                                    *ITEM_PARAMETERS]])
    known = events.join(F.broadcast(static), schema.ITEM_ID)
    counted_schema = T.StructType([*known.schema.fields,
                                   *(T.StructField(c, T.DoubleType()) for c in _ITEM_COUNTS)])

    def with_item_counts(batches):
        frame = _in_time_order(batches)
        if frame is not None:
            ts, done, correct = _times_and_outcomes(frame)
            counts = item_counts(frame[schema.ITEM_ID].to_numpy(), ts, done, correct)
            yield frame.assign(**dict(zip(_ITEM_COUNTS, counts, strict=True)))

    types = {schema.USER_ID: "string", schema.ITEM_ID: "string", schema.TOPIC: "string",
             TS: "long", ROW_ORDER: "long", schema.N_PRIOR: "long", BUCKET: "long"}
    columns = [*CONTEXT_COLUMNS, *([BUCKET] if buckets is not None else [])]
    out_schema = ", ".join(f"{c} {types.get(c, 'double')}" for c in columns)

    def contexts_of_students(batches):
        frame = _in_time_order(batches)
        if frame is None:
            return
        ts, done, correct = _times_and_outcomes(frame)
        counts = student_counts(frame[schema.USER_ID].to_numpy(), frame[schema.TOPIC].to_numpy(),
                                ts, done, correct, _floats(frame, schema.LATENCY_MS),
                                _floats(frame, schema.HELP_REQUESTED))
        keys = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC)
        out = frame[[*keys, TS, ROW_ORDER]].astype(dict.fromkeys(keys, object))
        out[schema.CORRECT] = correct
        attempts, item_correct = (frame[c].to_numpy(np.float64) for c in _ITEM_COUNTS)
        out = pd.concat([out, model_input(counts, attempts, item_correct, frame)], axis=1)
        if buckets is not None:
            bounds, labels = buckets
            out[BUCKET] = labels[np.searchsorted(bounds, ts, side="right")]
        yield out

    by_item = known.repartition(n, schema.ITEM_ID).mapInPandas(with_item_counts, counted_schema)
    return by_item.repartition(n, schema.USER_ID).mapInPandas(contexts_of_students, out_schema)


def _in_time_order(batches) -> pd.DataFrame | None:
    """A partition's rows as one frame in time order (None for an empty partition)."""
    frames = [frame for frame in batches if len(frame)]
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    order = np.lexsort((frame[ROW_ORDER].to_numpy(), frame[TS].to_numpy()))
    return frame.take(order).reset_index(drop=True)


def _times_and_outcomes(frame: pd.DataFrame):
    """Start and completion times (ns) and ``correct`` of events in a partition."""
    ts = frame[TS].to_numpy(np.int64)
    return ts, completion_ns(ts, _floats(frame, schema.LATENCY_MS)), _floats(frame, schema.CORRECT)


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _topic_column(raw: DataFrame, source: str):
    """``topic``, or the first of ``skill_ids`` (an array of strings) where it is missing."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    has_skills = schema.SKILL_IDS in raw.columns
    if has_skills and not isinstance(raw.schema[schema.SKILL_IDS].dataType, T.ArrayType):
        raise SkbanditError(f"{source}: column 'skill_ids' must be a list of strings on the Spark "
                            f"engine; found {raw.schema[schema.SKILL_IDS].dataType.simpleString()}"
                            "; write it as a parquet list column or give a 'topic' column")
    derived = F.trim(F.element_at(schema.SKILL_IDS, 1).cast("string")) if has_skills else None
    if schema.TOPIC in raw.columns:
        topic = F.col(schema.TOPIC).cast("string")
        return F.coalesce(topic, derived) if derived is not None else topic
    if derived is None:
        raise SkbanditError(f"{source}: missing column 'topic' (expected the canonical event "
                            "schema: user_id, item_id, timestamp, correct, topic or skill_ids); "
                            f"found columns: {', '.join(c for c in raw.columns if c != ROW_ORDER)}")
    return derived


def _nanoseconds(df: DataFrame, source: str):
    """Event time as int64 ns (nanosecond parquet timestamps arrive as int64 already)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kind = df.schema[schema.TIMESTAMP].dataType
    if isinstance(kind, T.LongType):
        return F.col(schema.TIMESTAMP)
    if isinstance(kind, T.TimestampType | T.TimestampNTZType):  # naive times are UTC (session)
        return F.unix_micros(F.col(schema.TIMESTAMP).cast("timestamp")) * F.lit(1000)
    if isinstance(kind, T.DateType):
        return F.unix_micros(F.col(schema.TIMESTAMP).cast("timestamp")) * F.lit(1000)
    raise SkbanditError(f"{source}: column 'timestamp' must be a parquet timestamp on the Spark "
                        f"engine; found {kind.simpleString()}; write it as a timestamp (e.g. "
                        "pandas datetime64) or use the local engine, which parses strings")


def _raw_latency(df: DataFrame):
    from pyspark.sql import functions as F

    if schema.LATENCY_MS not in df.columns:
        return F.lit(None).cast("double")
    value = F.col(schema.LATENCY_MS).try_cast("double")
    return F.when(F.isnan(value), F.lit(None)).otherwise(value)


def _latency(raw):
    """Negative latencies become missing, latencies above the cap the cap."""
    from pyspark.sql import functions as F

    cap = F.lit(float(LATENCY_CAP_MS))
    value = F.when(raw < 0, F.lit(None)).otherwise(raw)
    return F.when(value > cap, cap).otherwise(value)  # least() would turn null into the cap


def _help(df: DataFrame):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if schema.HELP_REQUESTED not in df.columns:
        return F.lit(None).cast("double")
    col = F.col(schema.HELP_REQUESTED)
    if isinstance(df.schema[schema.HELP_REQUESTED].dataType, T.StringType):
        text = F.lower(F.trim(col))
        col = (F.when(text == "true", 1.0).when(text == "false", 0.0).when(text == "", None)
               .otherwise(text.try_cast("double")))
    value = col.try_cast("double")
    return F.when(F.isnan(value), F.lit(None)).otherwise(value)
