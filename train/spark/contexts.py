"""Canonical events and their historical contexts on Spark (the Spark engine's first half).

:func:`cleaned_rows` applies :mod:`skbandit.cleaning`'s own row-by-row rules
(:func:`~skbandit.cleaning.clean_event_rows`) to every partition of the raw rows, and
:func:`clean_events` drops exact duplicates with :func:`~skbandit.cleaning.drop_duplicates`
in partitions that hold whole students, so both engines clean with the same functions.
:func:`check_events` runs the rules once more per partition, only to count what they did and
to raise the first partition's one-line error on the driver. :func:`historical_contexts`
computes, for every event, the same model input as
:func:`skbandit.context.historical_contexts`, with that module's own code run on partitions
that hold whole students, then whole items.

Window functions gave the same contexts but needed four sorts of twice as many rows as
events, which made the engine 4–5x slower than the local one on two cores; partitions of
whole students (or items) let the local engine's vectorised code count each at once.
The passes work on Arrow batches (``mapInArrow``); the cleaning passes turn a partition into
pandas for :mod:`skbandit.cleaning`, the counting passes never do.

Timestamps: a parquet timestamp, a date, or text the local engine parses; nanosecond
timestamps arrive as int64 nanoseconds (the session reads them so) and are taken as such.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.data.spark import ROW_ORDER
from skbandit import schema
from skbandit.cleaning import (
    STRING_COLUMNS,
    CleaningReport,
    clean_event_rows,
    drop_duplicates,
)
from skbandit.context_counts import completion_ns, item_counts, student_counts, utc_ns
from skbandit.context_features import item_features, student_features
from skbandit.exceptions import SkbanditError
from skbandit.item_table import ITEM_PARAMETERS, item_table

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
_COUNTED = ("latency_invalid", "latency_clipped", "latency_missing", "help_missing")
"""The :class:`~skbandit.cleaning.CleaningReport` counts that :func:`check_events` adds up."""
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

    :func:`cleaned_rows`, then in ``partitions`` partitions (default: the session's
    parallelism) that each hold whole students, exact duplicate rows dropped by
    :func:`skbandit.cleaning.drop_duplicates` (equal in every column but ``skill_ids`` and
    nested ones; the first in row order kept). Only the columns the contexts need are kept
    (:data:`EVENT_COLUMNS`): :func:`historical_contexts` counts every student's events
    within its partition. The checks that raise run in :func:`check_events`.
    """
    from pyspark.sql import types as T

    df = cleaned_rows(raw, source)
    compared = [
        c
        for c in df.columns
        if c not in (ROW_ORDER, schema.SKILL_IDS)
        and not isinstance(
            df.schema[c].dataType, T.ArrayType | T.MapType | T.StructType | T.BinaryType
        )
    ]
    kept = df.select(*dict.fromkeys([*EVENT_COLUMNS, *compared]))
    out_schema = df.select(*EVENT_COLUMNS).schema

    def first_copies(batches):
        table = whole_partition(batches, (ROW_ORDER,))
        if table is not None:
            frame = table.select(compared).to_pandas()
            first = drop_duplicates(frame, CleaningReport(source)).index.to_numpy()
            yield from table.select(EVENT_COLUMNS).take(first).to_batches()

    n = partitions or df.sparkSession.sparkContext.defaultParallelism
    return kept.repartition(n, schema.USER_ID).mapInArrow(first_copies, out_schema)


def cleaned_rows(raw: DataFrame, source: str) -> DataFrame:
    """Every raw row through :func:`skbandit.cleaning.clean_event_rows`, per partition (lazily).

    Rows with a blank key are dropped; the result has the raw columns (``topic`` added where
    only ``skill_ids`` gave it) with the local engine's cleaned values, and the event time
    as :data:`TS` (int64 ns, UTC) instead of ``timestamp``. Missing columns raise here, on
    the driver; a value that cannot be cleaned raises in the executor, so run
    :func:`check_events` first for its one-line error.
    """
    check_columns(raw, source)
    out_schema = _cleaned_schema(raw)

    def clean(batches):
        import pyarrow as pa

        table = whole_partition(batches, (ROW_ORDER,))
        if table is not None:
            frame = _cleaned_partition(table, source, CleaningReport(source))
            yield from pa.Table.from_pandas(
                frame[out_schema.fieldNames()], preserve_index=False
            ).to_batches()

    return raw.mapInArrow(clean, out_schema)


def check_columns(raw: DataFrame, source: str) -> None:
    """Raise the local engine's error for a missing column, from the columns alone."""
    columns = [c for c in raw.columns if c != ROW_ORDER]
    clean_event_rows(pd.DataFrame(columns=columns), source, CleaningReport(source))


def local_dtypes(head: pd.DataFrame, raw_columns: list[str]) -> pd.DataFrame:
    """Cleaned rows (:func:`cleaned_rows`) on the driver with the local engine's dtypes and
    columns."""
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

    Two passes: one over the raw rows' partitions, each cleaned by
    :func:`skbandit.cleaning.clean_event_rows` for its :class:`~skbandit.cleaning.CleaningReport`
    counts (added up) or its error (the partition earliest in row order raises it, with
    the values and the row count it found), one over the cleaned ``events`` (rows kept,
    unknown items). The report's counts equal the local engine's.
    """
    from pyspark.sql import functions as F

    check_columns(raw, source)
    keys = (*_KEYS, schema.TIMESTAMP)
    counts = ("rows_in", *(f"missing_{k}" for k in keys), *_COUNTED)

    def reports(batches):
        import pyarrow as pa

        table = whole_partition(batches, (ROW_ORDER,))
        if table is None:
            return
        report, error = CleaningReport(source, n_rows_in=table.num_rows), None
        try:
            _cleaned_partition(table, source, report)
        except SkbanditError as failure:
            error = str(failure)
        row = {
            "first_row": table.column(ROW_ORDER)[0].as_py(),
            "error": error,
            "rows_in": report.n_rows_in,
            **{f"missing_{k}": report.dropped_missing.get(k, 0) for k in keys},
            **{k: getattr(report, k) for k in _COUNTED},
        }
        yield pa.RecordBatch.from_pylist([row])

    ddl = "first_row long, error string, " + ", ".join(f"{c} long" for c in counts)
    parts = raw.mapInArrow(reports, ddl).collect()
    failed = sorted((p["first_row"], p["error"]) for p in parts if p["error"] is not None)
    if failed:
        raise SkbanditError(failed[0][1])
    n = {c: sum(int(p[c]) for p in parts) for c in counts}
    ids = events.sparkSession.createDataFrame(items[[schema.ITEM_ID]].astype(str))
    flagged = events.join(F.broadcast(ids.withColumn("_known", F.lit(1))), schema.ITEM_ID, "left")
    out = flagged.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.col("_known").isNull().cast("long")).alias("unknown"),
    ).first()
    missing = {k: n[f"missing_{k}"] for k in keys}
    report = CleaningReport(
        source=source,
        n_rows_in=n["rows_in"],
        n_rows_out=int(out["rows"]),
        dropped_missing=missing,
        dropped_duplicates=n["rows_in"] - sum(missing.values()) - int(out["rows"]),
        **{k: n[k] for k in _COUNTED},
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


def _cleaned_partition(table, source: str, report: CleaningReport) -> pd.DataFrame:
    """One partition of raw rows (Arrow, in row order) through ``clean_event_rows``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stamps = table.column(schema.TIMESTAMP)
    if pa.types.is_integer(stamps.type):  # nanosecond parquet timestamps, read as int64
        index = table.schema.get_field_index(schema.TIMESTAMP)
        table = table.set_column(
            index, schema.TIMESTAMP, pc.cast(stamps, pa.timestamp("ns", tz="UTC"))
        )
    frame = clean_event_rows(table.to_pandas(), source, report)
    frame[TS] = utc_ns(frame.pop(schema.TIMESTAMP))
    frame[schema.CORRECT] = frame[schema.CORRECT].astype(np.float64)
    return frame


def _cleaned_schema(raw: DataFrame):
    """The Spark schema of :func:`cleaned_rows`: raw columns with the canonical types."""
    from pyspark.sql import types as T

    kinds = {name: T.StringType() for name in STRING_COLUMNS}
    kinds |= {
        name: T.DoubleType()
        for name in (schema.CORRECT, schema.LATENCY_MS, schema.HELP_REQUESTED, schema.PROPENSITY)
    }
    kinds |= {schema.SKILL_IDS: T.ArrayType(T.StringType()), ROW_ORDER: T.LongType()}
    names = [c for c in raw.columns if c != schema.TIMESTAMP]
    if schema.TOPIC not in names:
        names.append(schema.TOPIC)
    fields = [T.StructField(c, kinds.get(c) or raw.schema[c].dataType) for c in names]
    return T.StructType([*fields, T.StructField(TS, T.LongType())])
