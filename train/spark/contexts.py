"""Canonical events and their historical contexts on Spark (the Spark engine's first half).

:func:`clean_events` applies :mod:`skbandit.cleaning`'s event rules as Spark expressions
(a missing column, an unusable ``correct``/``help_requested``/``propensity`` raise; blank
keys and exact duplicate rows are dropped; latencies are capped) and :func:`check_events`
counts what they did. :func:`historical_contexts` computes, for every event, the same model
input as :func:`skbandit.context.historical_contexts`, with that module's own code run on
partitions that hold whole students, then whole items.

Window functions gave the same contexts but needed four sorts of twice as many rows as
events, which made the engine 4–5x slower than the local one on two cores; partitions of
whole students (or items) let the local engine's vectorised code count each at once.
The passes work on Arrow batches (``mapInArrow``), so text columns are never turned into
Python strings.

Casts are ``try_cast`` (Spark 4 runs in ANSI mode, where a bad value in a plain cast stops
the job with a long error): a value that is not a number becomes null and is reported by
:func:`check_events` in one line, as the local engine does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.data.spark import ROW_ORDER
from skbandit import schema
from skbandit.cleaning import LATENCY_CAP_MS, CleaningReport
from skbandit.context import (
    ITEM_PARAMETERS,
    completion_ns,
    item_counts,
    item_features,
    item_table,
    student_counts,
    student_features,
)
from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TS = "_ts"
"""Event time as int64 nanoseconds since the epoch (UTC)."""
CONTEXT_COLUMNS = (
    schema.USER_ID,
    schema.ITEM_ID,
    schema.TOPIC,
    TS,
    ROW_ORDER,
    schema.CORRECT,
    *schema.MODEL_INPUT,
    schema.N_PRIOR,
)
"""What :func:`historical_contexts` returns, one row per known event."""
_KEYS = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC)
EVENT_COLUMNS = (*_KEYS, TS, ROW_ORDER, schema.CORRECT, schema.LATENCY_MS, schema.HELP_REQUESTED)
"""The columns of :func:`clean_events`' result."""
_MISSING, _RAW_LATENCY = "_missing", "_raw_latency"
ROWS_PER_PARTITION = 500_000
"""Target partition size: a partition's rows are counted in one Arrow table."""
BUCKET = "_bucket"


IN_MEMORY_ROWS = 10_000_000
"""Up to this many events the engine caches its tables in memory, uncompressed (fastest);
beyond, on disk, compressed: held in memory they filled a 4 GB driver's heap at 50M events."""


def cache_for(spark, n_rows: int):
    """The storage level of the engine's persisted tables for ``n_rows`` events; also sets
    whether Spark compresses cached tables."""
    from pyspark import StorageLevel

    in_memory = n_rows <= IN_MEMORY_ROWS
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", str(not in_memory).lower())
    return StorageLevel.MEMORY_AND_DISK if in_memory else StorageLevel.DISK_ONLY


def partitions_for(spark, n_rows: int) -> int:
    """Partitions of about :data:`ROWS_PER_PARTITION` rows, at least one per core."""
    return max(spark.sparkContext.defaultParallelism, math.ceil(n_rows / ROWS_PER_PARTITION))


def clean_events(raw: DataFrame, source: str, partitions: int | None = None) -> DataFrame:
    """Coerce and clean raw events like :func:`skbandit.cleaning.validate_events` (lazily).

    Rows with a blank key are dropped, then exact duplicate rows (equal in every column
    but the timestamp's raw form and ``skill_ids``; the first in row order kept). Checks
    that need the data (``correct`` in {0, 1}, ...) run in :func:`check_events`. Only the
    columns the contexts need are kept (:data:`EVENT_COLUMNS`), in ``partitions``
    partitions (default: the session's parallelism) that each hold whole students:
    :func:`historical_contexts` counts every student's events within its partition.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    df = coerce_events(raw, source).where(F.col(_MISSING).isNull()).drop(_MISSING, _RAW_LATENCY)
    compared = [
        c
        for c in df.columns
        if c not in (ROW_ORDER, schema.SKILL_IDS, schema.TIMESTAMP)
        and not isinstance(
            df.schema[c].dataType, T.ArrayType | T.MapType | T.StructType | T.BinaryType
        )
    ]
    kept = df.select(*dict.fromkeys([*EVENT_COLUMNS, *compared]))
    out_schema = df.select(*EVENT_COLUMNS).schema

    def first_copies(batches):
        import pyarrow as pa

        table = whole_partition(batches, (ROW_ORDER,))
        if table is not None:
            rows = table.select(compared).append_column("_row", pa.array(np.arange(len(table))))
            first = rows.group_by(compared).aggregate([("_row", "min")])["_row_min"]
            yield from table.select(EVENT_COLUMNS).take(np.sort(first.to_numpy())).to_batches()

    n = partitions or df.sparkSession.sparkContext.defaultParallelism
    return kept.repartition(n, schema.USER_ID).mapInArrow(first_copies, out_schema)


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
                f"{', '.join(c for c in columns if c != ROW_ORDER)}"
            )
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


def check_events(
    raw: DataFrame, events: DataFrame, items: pd.DataFrame, source: str
) -> tuple[CleaningReport, int]:
    """Raise on unusable values; what cleaning did, and how many events name unknown items.

    Two passes: one over the raw rows (the checks and the counts of
    :class:`skbandit.cleaning.CleaningReport`), one over the cleaned ``events`` (rows kept,
    unknown items). The report's counts equal the local engine's.
    """
    from pyspark.sql import functions as F

    kept = F.col(_MISSING).isNull()
    checks = {
        schema.CORRECT: (
            "0 or 1",
            ~F.col(schema.CORRECT).isin(0.0, 1.0) | F.col(schema.CORRECT).isNull(),
        ),
        schema.HELP_REQUESTED: (
            "a boolean (0/1, True/False)",
            F.col(schema.HELP_REQUESTED).isNotNull() & ~F.col(schema.HELP_REQUESTED).isin(0.0, 1.0),
        ),
    }
    if schema.PROPENSITY in raw.columns:
        p = F.col(schema.PROPENSITY).try_cast("double")
        checks[schema.PROPENSITY] = ("a probability in (0, 1]", ~((p > 0) & (p <= 1)) | p.isNull())
    latency = F.col(_RAW_LATENCY)
    counts = {
        "rows_in": F.lit(True),
        **{f"missing_{k}": F.col(_MISSING) == k for k in (*_KEYS, schema.TIMESTAMP)},
    }
    if schema.LATENCY_MS in raw.columns:
        counts |= {
            "latency_invalid": kept & (latency < 0),
            "latency_clipped": kept & (latency > LATENCY_CAP_MS),
            "latency_missing": kept & F.col(schema.LATENCY_MS).isNull(),
        }
    if schema.HELP_REQUESTED in raw.columns:
        counts["help_missing"] = kept & F.col(schema.HELP_REQUESTED).isNull()
    aggs = [F.sum(when.cast("long")).alias(name) for name, when in counts.items()]
    for name, (_, bad) in checks.items():
        aggs += [
            F.sum((kept & bad).cast("long")).alias(f"bad_{name}"),
            F.first(
                F.when(kept & bad, F.coalesce(F.col(name).cast("string"), F.lit("NaN"))),
                ignorenulls=True,
            ).alias(f"example_{name}"),
        ]
    row = coerce_events(raw, source).agg(*aggs).first().asDict()
    for name, (expected, _) in checks.items():
        if row[f"bad_{name}"]:
            raise SkbanditError(
                f"{source}: column '{name}' must be {expected}; found "
                f"{row[f'example_{name}']} ({row[f'bad_{name}']} rows)"
            )
    ids = events.sparkSession.createDataFrame(items[[schema.ITEM_ID]].astype(str))
    flagged = events.join(F.broadcast(ids.withColumn("_known", F.lit(1))), schema.ITEM_ID, "left")
    out = flagged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col("_known").isNull().cast("long")).alias("unknown"),
    ).first()
    n = {k: int(v or 0) for k, v in row.items() if not k.startswith(("bad_", "example_"))}
    missing = {k: n[f"missing_{k}"] for k in (*_KEYS, schema.TIMESTAMP)}
    report = CleaningReport(
        source=source,
        n_rows_in=n["rows_in"],
        n_rows_out=int(out["rows"]),
        dropped_missing=missing,
        dropped_duplicates=n["rows_in"] - sum(missing.values()) - int(out["rows"]),
        **{
            k: n[k]
            for k in ("latency_invalid", "latency_clipped", "latency_missing", "help_missing")
            if k in n
        },
    )
    return report, int(out["unknown"] or 0)


def historical_contexts(
    events: DataFrame, items: pd.DataFrame, buckets=None, partitions: int | None = None
) -> DataFrame:
    """Every known event's model input from strictly earlier events (:data:`CONTEXT_COLUMNS`).

    ``events`` are :func:`clean_events`' result, whose partitions hold whole students. Two
    passes of :mod:`skbandit.context`'s own arithmetic, each partition put in time order
    (start, then row order) first, so that ties break as in the local engine: each
    partition of students counts its events' earlier events
    (:func:`~skbandit.context.student_counts`, :func:`~skbandit.context.student_features`);
    then, in ``partitions`` partitions of whole items (default: the session's
    parallelism), each counts its events' earlier attempts on their items
    (:func:`~skbandit.context.item_counts`). Events on items missing from ``items`` are
    skipped.

    With ``buckets = (bounds, labels)`` each row also gets ``_bucket``: the label of the
    time range ``bounds`` puts its start in (see :func:`train.spark.engine.time_buckets`).
    """
    from pyspark.sql import functions as F

    static = events.sparkSession.createDataFrame(
        item_table(items)[[schema.ITEM_ID, *ITEM_PARAMETERS]]
    )
    known = events.join(F.broadcast(static), schema.ITEM_ID)  # keeps the students' partitions
    student_columns = [*EVENT_COLUMNS, *ITEM_PARAMETERS, *schema.STUDENT_CONTEXT, schema.N_PRIOR]

    def students_counted(batches):
        table = whole_partition(batches)
        if table is not None:
            ts, done, correct = _times_and_outcomes(table)
            counts = student_counts(
                key_codes(table, schema.USER_ID),
                key_codes(table, schema.TOPIC),
                ts,
                done,
                correct,
                floats(table, schema.LATENCY_MS),
                floats(table, schema.HELP_REQUESTED),
                *(floats(table, name) for name in ITEM_PARAMETERS),
            )
            added = {**student_features(**counts), schema.N_PRIOR: counts["n"].astype(np.int64)}
            yield from _with_columns(table, added, student_columns).to_batches()

    columns = [*CONTEXT_COLUMNS, *([BUCKET] if buckets is not None else [])]

    def items_counted(batches):
        table = whole_partition(batches)
        if table is not None:
            ts, done, correct = _times_and_outcomes(table)
            added = item_features(*item_counts(key_codes(table, schema.ITEM_ID), ts, done, correct))
            if buckets is not None:
                bounds, labels = buckets
                added[BUCKET] = labels[np.searchsorted(bounds, ts, side="right")]
            yield from _with_columns(table, added, columns).to_batches()

    n = partitions or events.sparkSession.sparkContext.defaultParallelism
    students = known.mapInArrow(students_counted, _ddl(student_columns))
    return students.repartition(n, schema.ITEM_ID).mapInArrow(items_counted, _ddl(columns))


def whole_partition(batches, order=(TS, ROW_ORDER)):
    """A partition's Arrow record batches as one table sorted by ``order`` (None when empty).

    The passes work on Arrow (``mapInArrow``), not pandas: text columns then go through
    untouched instead of becoming Python strings and back, which cost more than the
    counting itself.
    """
    import pyarrow as pa

    batches = [batch for batch in batches if batch.num_rows]
    if not batches:
        return None
    table = pa.Table.from_batches(batches)
    return table.sort_by([(name, "ascending") for name in order]).combine_chunks()


def key_codes(table, name: str) -> np.ndarray:
    """A text column as integer codes (equal values, equal codes)."""
    return (
        table.column(name)
        .combine_chunks()
        .dictionary_encode()
        .indices.to_numpy(zero_copy_only=False)
    )


def floats(table, name: str) -> np.ndarray:
    """A numeric column as float64, NaN where it is null."""
    return table.column(name).to_numpy().astype(np.float64, copy=False)


def _with_columns(table, added: dict, columns):
    """``table`` with the ``added`` arrays as columns, keeping ``columns`` in order."""
    import pyarrow as pa

    for name, values in added.items():
        table = table.append_column(name, pa.array(values))
    return table.select(list(columns))


def _times_and_outcomes(table):
    """Start and completion times (ns) and ``correct`` of a partition's events."""
    ts = table.column(TS).to_numpy().astype(np.int64, copy=False)
    done = completion_ns(ts, floats(table, schema.LATENCY_MS))
    return ts, done, floats(table, schema.CORRECT)


def _ddl(columns) -> str:
    """A Spark schema string for context columns (keys text, times and counts long)."""
    kinds = {
        schema.USER_ID: "string",
        schema.ITEM_ID: "string",
        schema.TOPIC: "string",
        TS: "long",
        ROW_ORDER: "long",
        schema.N_PRIOR: "long",
        BUCKET: "long",
    }
    return ", ".join(f"{c} {kinds.get(c, 'double')}" for c in columns)


def _topic_column(raw: DataFrame, source: str):
    """``topic``, or the first of ``skill_ids`` (an array of strings) where it is missing."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    has_skills = schema.SKILL_IDS in raw.columns
    if has_skills and not isinstance(raw.schema[schema.SKILL_IDS].dataType, T.ArrayType):
        raise SkbanditError(
            f"{source}: column 'skill_ids' must be a list of strings on the Spark "
            f"engine; found {raw.schema[schema.SKILL_IDS].dataType.simpleString()}"
            "; write it as a parquet list column or give a 'topic' column"
        )
    derived = F.trim(F.element_at(schema.SKILL_IDS, 1).cast("string")) if has_skills else None
    if schema.TOPIC in raw.columns:
        topic = F.col(schema.TOPIC).cast("string")
        return F.coalesce(topic, derived) if derived is not None else topic
    if derived is None:
        raise SkbanditError(
            f"{source}: missing column 'topic' (expected the canonical event "
            "schema: user_id, item_id, timestamp, correct, topic or skill_ids); "
            f"found columns: {', '.join(c for c in raw.columns if c != ROW_ORDER)}"
        )
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
    raise SkbanditError(
        f"{source}: column 'timestamp' must be a parquet timestamp on the Spark "
        f"engine; found {kind.simpleString()}; write it as a timestamp (e.g. "
        "pandas datetime64) or use the local engine, which parses strings"
    )


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
        col = (
            F.when(text == "true", 1.0)
            .when(text == "false", 0.0)
            .when(text == "", None)
            .otherwise(text.try_cast("double"))
        )
    value = col.try_cast("double")
    return F.when(F.isnan(value), F.lit(None)).otherwise(value)
