"""Canonical events and their historical contexts on Spark (the Spark engine's first half).

:func:`clean_events` applies :mod:`skbandit.cleaning`'s event rules as Spark expressions
(a missing column, an unusable ``correct``/``help_requested``/``propensity`` raise; blank
keys and exact duplicate rows are dropped; latencies are capped) and :func:`check_events`
counts what they did. :func:`historical_contexts` computes, for every event, the same model
input as :func:`skbandit.context.historical_contexts`: window functions find each event's
earlier events (those *completed* strictly before it started, see :func:`window_counts`),
counted per student, per student and topic, and per item, and its student's latest
``RECENT_WINDOW`` completed events. The arithmetic on those counts (smoothing, cold start,
the latency median, skill gap) is the local engine's own code, run per partition.

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
from skbandit.context import RECENT_WINDOW, student_features
from skbandit.exceptions import SkbanditError
from skbandit.irt import guessing_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TS = "_ts"
"""Event time as int64 nanoseconds since the epoch (UTC)."""
LAGS = tuple(f"_lag{k}" for k in range(RECENT_WINDOW, 0, -1))
"""Latency of the k-th latest earlier event (oldest first, like the local lag matrix)."""
COUNTS = ("_n", "_n_correct", "_n_topic", "_n_topic_correct", "_recent_correct", "_help_sum",
          "_help_known", "_attempts", "_item_correct")
CONTEXT_COLUMNS = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC, TS, ROW_ORDER, schema.CORRECT,
                   *schema.MODEL_INPUT, schema.N_PRIOR)
"""What :func:`historical_contexts` returns, one row per known event."""
ITEM_PARAMETERS = (schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING)
"""The item table's IRT parameters, joined to every event."""
_KEYS = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC)
EVENT_COLUMNS = (*_KEYS, TS, ROW_ORDER, schema.CORRECT, schema.LATENCY_MS, schema.HELP_REQUESTED)
"""The columns of :func:`clean_events`' result."""
_MISSING, _RAW_LATENCY = "_missing", "_raw_latency"
_DONE, _KEY, _KIND = "_done", "_key", "_kind"
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


def historical_contexts(events: DataFrame, items: pd.DataFrame, buckets=None) -> DataFrame:
    """Every known event's model input from strictly earlier events (:data:`CONTEXT_COLUMNS`).

    With ``buckets = (bounds, labels)`` each row also gets ``_bucket``: the label of the
    time range ``bounds`` puts its start in (see :func:`train.spark_engine.time_buckets`).
    """
    types = {schema.USER_ID: "string", schema.ITEM_ID: "string", schema.TOPIC: "string",
             TS: "long", ROW_ORDER: "long",
             schema.N_PRIOR: "long", BUCKET: "long"}
    columns = [*CONTEXT_COLUMNS, *([BUCKET] if buckets is not None else [])]
    out_schema = ", ".join(f"{c} {types.get(c, 'double')}" for c in columns)

    def contexts_of_batches(batches):
        for counts in batches:
            keys = (schema.USER_ID, schema.ITEM_ID, schema.TOPIC)
            out = counts[[*keys, TS, ROW_ORDER]].astype(dict.fromkeys(keys, object))
            out[schema.CORRECT] = counts[schema.CORRECT].to_numpy(dtype=np.float64)
            out = pd.concat([out, model_input(counts)], axis=1)
            if buckets is not None:
                bounds, labels = buckets
                out[BUCKET] = labels[np.searchsorted(bounds, out[TS].to_numpy(), side="right")]
            yield out

    return window_counts(events, items).mapInPandas(contexts_of_batches, out_schema)


def window_counts(events: DataFrame, items: pd.DataFrame) -> DataFrame:
    """Each known event's earlier-event counts (:data:`COUNTS`) and latency lags (:data:`LAGS`).

    An event counts for a decision at time ``t`` when it was *completed* before ``t``
    (``done = timestamp + latency``, :mod:`skbandit.context`). Every event is put in twice:
    as a decision at its start (``_kind = 0``) and as a completion at ``done``
    (``_kind = 1``), ordered by time with decisions first on a tie (``done < t`` is strict).
    Running sums over completions, up to a decision row, are then its earlier-event counts,
    per student, per student and topic, and per item; the latest ``RECENT_WINDOW``
    completions (ordered by ``done``, ties by start time and row order, as the local sort)
    come from the last completion row before the decision.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    static = events.sparkSession.createDataFrame(items[[
        schema.ITEM_ID, schema.DIFFICULTY, schema.DISCRIMINATION]].astype(
        {schema.DIFFICULTY: "float64", schema.DISCRIMINATION: "float64"}).assign(
        **{schema.GUESSING: guessing_of(items)}))  # blank or absent: 0, as the local engine
    df = events.join(F.broadcast(static), schema.ITEM_ID)  # unknown items are skipped
    latency_ns = F.rint(F.coalesce(F.col(schema.LATENCY_MS), F.lit(0.0)) * 1e6).cast("long")
    df = df.withColumn(_DONE, F.col(TS) + latency_ns)
    order = (_KEY, _KIND, TS, ROW_ORDER)
    recent = Window.partitionBy(schema.USER_ID).orderBy(_DONE, TS, ROW_ORDER).rowsBetween(
        -(RECENT_WINDOW - 1), Window.currentRow)
    done = df.select(
        *df.columns, F.col(_DONE).alias(_KEY), F.lit(1).alias(_KIND),
        F.collect_list(schema.CORRECT).over(recent).alias("_recent"),
        F.collect_list(schema.LATENCY_MS).over(recent).alias("_latencies"))  # nulls dropped
    started = df.select(*df.columns, F.col(TS).alias(_KEY), F.lit(0).alias(_KIND),
                        F.lit(None).cast("array<double>").alias("_recent"),
                        F.lit(None).cast("array<double>").alias("_latencies"))
    both = started.unionByName(done)
    running = (Window.unboundedPreceding, Window.currentRow)
    user = Window.partitionBy(schema.USER_ID).orderBy(*order).rowsBetween(*running)
    topic = Window.partitionBy(schema.USER_ID, schema.TOPIC).orderBy(*order).rowsBetween(*running)
    item = Window.partitionBy(schema.ITEM_ID).orderBy(*order).rowsBetween(*running)
    kind = F.col(_KIND)
    correct = kind * F.col(schema.CORRECT)
    help_ = F.col(schema.HELP_REQUESTED)
    both = both.select(
        *[c for c in both.columns if c not in ("_recent", "_latencies")],
        F.sum(kind).over(user).alias("_n"),
        F.sum(correct).over(user).alias("_n_correct"),
        F.sum(kind * F.coalesce(help_, F.lit(0.0))).over(user).alias("_help_sum"),
        F.sum(kind * help_.isNotNull().cast("int")).over(user).alias("_help_known"),
        F.last("_recent", ignorenulls=True).over(user).alias("_recent"),
        F.last("_latencies", ignorenulls=True).over(user).alias("_latencies"),
        F.sum(kind).over(topic).alias("_n_topic"),
        F.sum(correct).over(topic).alias("_n_topic_correct"),
    )
    both = both.select(*both.columns, F.sum(kind).over(item).alias("_attempts"),
                       F.sum(correct).over(item).alias("_item_correct"))
    zero = F.lit(0.0)
    recent_correct = F.aggregate(F.coalesce("_recent", F.array().cast("array<double>")), zero,
                                 lambda acc, x: acc + x)
    lags = [F.try_element_at("_latencies", F.lit(-k)).alias(f"_lag{k}")
            for k in range(1, RECENT_WINDOW + 1)]
    out = both.where(kind == 0).select(
        schema.USER_ID, schema.ITEM_ID, schema.TOPIC, TS, ROW_ORDER, schema.CORRECT,
        *[F.col(c).cast("double").alias(c) for c in COUNTS if c != "_recent_correct"],
        recent_correct.alias("_recent_correct"), *lags, *ITEM_PARAMETERS)
    return out.select(schema.USER_ID, schema.ITEM_ID, schema.TOPIC, TS, ROW_ORDER,
                      schema.CORRECT, *COUNTS,
                      *LAGS, *ITEM_PARAMETERS)


def model_input(counts: pd.DataFrame) -> pd.DataFrame:
    """Model input (``schema.MODEL_INPUT`` and ``n_prior_events``) from window counts.

    The same arithmetic as :func:`skbandit.context.historical_contexts` (its
    :func:`~skbandit.context.student_features` on the same counts and lag matrix, and the
    item accuracy smoothing).
    """
    f = {c: counts[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in (*COUNTS, *LAGS)}
    values = student_features(
        n=f["_n"], n_correct=f["_n_correct"], n_topic=f["_n_topic"],
        n_topic_correct=f["_n_topic_correct"], recent_correct=f["_recent_correct"],
        latency_lags=np.column_stack([f[c] for c in LAGS]) if len(counts)
        else np.empty((0, RECENT_WINDOW)),
        help_sum=f["_help_sum"], help_known=f["_help_known"])
    out = pd.DataFrame(values, index=counts.index)
    for name in ITEM_PARAMETERS:
        out[name] = counts[name].to_numpy(dtype=np.float64)
    out[schema.ITEM_ATTEMPTS] = f["_attempts"]
    out[schema.ITEM_ACCURACY] = (f["_item_correct"] + 1.0) / (f["_attempts"] + 2.0)
    out[schema.N_PRIOR] = f["_n"].astype(np.int64)
    return out[[*schema.MODEL_INPUT, schema.N_PRIOR]]


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
