"""``python -m train.batch_score``: nightly top-k recommendations for a whole school, on Spark.

Every (student, topic) pair that occurs in the events is ranked with a registered version,
exactly as the in-process ranking does it for one student (``skbandit trace`` without a
window): the context at one second after the last event, counting the attempts finished by
then (:func:`skbandit.context.student_context`), the topic's items with their
attempt evidence, the student's last ``RECENT_ITEMS_EXCLUDED`` items left out, then
:func:`skbandit.policy.rank_linucb` with a generator seeded by ``--seed`` for every pair. The
ranking runs per student on the executors (``applyInPandas``), so the school never has to fit
on one machine. The output is a parquet directory, one row per shown item: ``user_id, topic,
rank, item_id, expected_reward, success_low, success_high, uncertainty, ucb_bonus, ucb,
is_exploration, propensity, reason,
model_version``.

Example::

    python -m train.batch_score --model models:/skbandit-linucb@champion \\
        --events events/ --items items.parquet --out recs/ --top-k 5

Without ``--events``/``--items`` (nor ``SKBANDIT_EVENTS``/``SKBANDIT_ITEMS``) the default
school is scored, as the CLI does. Items that are not the catalogue the version learned are
said in one line (:mod:`adapters.data.identity`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from adapters.registry import DEFAULT_CHAMPION
from skbandit.exceptions import SkbanditError
from skbandit.ranking_settings import Objective
from train._cli import one_line_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

RECENT_ITEMS_EXCLUDED = 10
"""As serving: items of the student's last this-many attempts are not recommended again."""
OUTPUT_SCHEMA = (
    "user_id string, topic string, rank long, item_id string, "
    "expected_reward double, success_low double, success_high double, "
    "uncertainty double, ucb_bonus double, ucb double, "
    "is_exploration boolean, propensity double, reason string, "
    "model_version string"
)


@dataclass(frozen=True)
class BatchResult:
    """What a batch-scoring run wrote."""

    out: str
    model: str
    rows: int
    students: int
    pairs: int
    warning: str | None = None
    notes: tuple[str, ...] = ()
    """One line each: given items disagreeing with the version's, items without difficulty."""


def score_school(
    session, model, model_version: str, events_path, items_path, settings, seed: int = 0, notes=None
):
    """The recommendations DataFrame (lazy): top-k per (student, topic), see the module doc.

    Items the items file gives no difficulty take the version's parameters
    (:func:`skbandit.version_items.items_for_model`); its lines are appended to ``notes``.
    """
    import numpy as np
    import pandas as pd
    from pyspark.sql import functions as F

    from adapters.data.spark import ROW_ORDER, read_parquet
    from skbandit import schema
    from skbandit.context import ABILITY_SD, candidate_frame, recent_item_ids, student_context
    from skbandit.policy import rank_linucb
    from skbandit.version_items import items_for_model
    from train.spark.contexts import TS, check_events, clean_events
    from train.spark.warmstart import read_items

    raw = read_parquet(session, events_path, "events")
    items, lines = items_for_model(
        read_items(session, items_path)[0], model.item_parameters, model_version
    )
    if notes is not None:
        notes.extend(lines)
    events = clean_events(raw, str(events_path))
    check_events(raw, events, items, str(events_path))
    last_ns = events.agg(F.max(TS)).first()[0]
    at_ns = None if last_ns is None else int(last_ns) + 1_000_000_000  # as recommend.whole_history
    at = None if at_ns is None else pd.Timestamp(at_ns, unit="ns", tz="UTC")
    items_ctx = _item_context(events, items, at_ns)
    columns = [
        schema.USER_ID,
        schema.ITEM_ID,
        schema.TOPIC,
        TS,
        ROW_ORDER,
        schema.CORRECT,
        schema.LATENCY_MS,
        schema.HELP_REQUESTED,
    ]

    def rank_student(mine: pd.DataFrame) -> pd.DataFrame:
        mine = mine.sort_values([TS, ROW_ORDER]).reset_index(drop=True)
        mine[schema.TIMESTAMP] = pd.to_datetime(mine[TS].to_numpy(np.int64), unit="ns", utc=True)
        user = mine[schema.USER_ID].iloc[0]
        recent = recent_item_ids(mine, user, n_last=RECENT_ITEMS_EXCLUDED)
        out = []
        for topic in pd.unique(mine[schema.TOPIC]):
            context = student_context(mine, user, topic, at=at, items=items)
            candidates = candidate_frame(context, items_ctx, topic, recent_item_ids=recent)
            candidates[ABILITY_SD] = context[ABILITY_SD]  # the student's own interval, as trace
            if candidates.empty:
                continue  # every item of the topic is drift-flagged or recent
            ranked = rank_linucb(model, candidates, settings, rng=np.random.default_rng(seed))
            out.append(ranked.assign(**{schema.USER_ID: user, schema.TOPIC: topic}))
        if not out:
            return pd.DataFrame({name: [] for name in _output_columns()})
        frame = pd.concat(out, ignore_index=True).assign(model_version=model_version)
        text = ["user_id", "topic", "item_id", "reason", "model_version"]
        return frame[_output_columns()].astype(dict.fromkeys(text, object))  # see below

    return (
        events.select(*columns)
        .groupBy(schema.USER_ID)
        .applyInPandas(rank_student, OUTPUT_SCHEMA)
        .withColumn("rank", F.col("rank").cast("long"))
    )


# pandas 3 builds Arrow-backed ``str`` columns, which pyspark 4.x cannot send back
# ("Cannot convert pyarrow.lib.ChunkedArray"): text goes back as ``object`` columns.


def _output_columns() -> list[str]:
    return [name.split()[0] for name in OUTPUT_SCHEMA.split(", ")]


def _item_context(events, items, at_ns):
    """:func:`skbandit.context.item_context` at ``at_ns`` (attempts completed before it, by
    :func:`skbandit.context.completion_ns`'s rule), counted on Spark."""
    from pyspark.sql import functions as F

    from skbandit import schema
    from skbandit.context import counted_items
    from train.spark.contexts import TS

    if at_ns is not None:
        latency = F.coalesce(F.col(schema.LATENCY_MS).cast("double"), F.lit(0.0))
        latency_ns = F.round(F.nanvl(latency, F.lit(0.0)) * 1e6)
        events = events.where(F.col(TS) + latency_ns.cast("long") < F.lit(at_ns))
    stats = (
        events.groupBy(schema.ITEM_ID)
        .agg(F.count(F.lit(1)).alias("n"), F.sum(schema.CORRECT).alias("c"))
        .toPandas()
        .set_index(schema.ITEM_ID)
    )
    return counted_items(items, stats["n"], stats["c"])


def run_batch_score(
    model: str,
    events,
    items,
    out,
    *,
    top_k: int = 5,
    objective: str | None = None,
    seed: int = 0,
    master: str = "local[*]",
    overwrite: bool = False,
) -> BatchResult:
    """Load the version, score the school on Spark and write the parquet directory."""
    from adapters import registry, tracking
    from adapters.data import spark
    from skbandit.ranking_settings import SERVING_SETTINGS, RankingSettings

    values = {"top_k": top_k} | ({} if objective is None else {"objective": objective})
    settings = RankingSettings.from_values(values, label="--{}", base=SERVING_SETTINGS)
    spark.check_spark_installed()
    target = Path(str(out))
    if target.exists() and not overwrite:
        raise SkbanditError(
            f"--out {out} already exists; pass --overwrite to replace it or "
            "choose another directory"
        )
    events, items = school_paths(events, items)
    tracking.configure_tracking()
    trained, version = registry.load_model(registry.parse_model_ref(model))
    label = f"{version.name}/{version.version}"
    warning = _data_warning(version, events, items)
    session = spark.start_session(master, app_name="skbandit-batch-score")
    notes: list[str] = []
    recs = score_school(session, trained, label, events, items, settings, seed, notes)
    written = spark.write_parquet(session, recs, out, overwrite)
    counts = written.selectExpr(
        "count(*) AS rows",
        "count(DISTINCT user_id) AS students",
        "count(DISTINCT user_id, topic) AS pairs",
    ).first()
    return BatchResult(
        str(out), label, counts["rows"], counts["students"], counts["pairs"], warning, tuple(notes)
    )


def school_paths(events, items) -> tuple[str, str]:
    """The events and items to score: both given, or the default school's cached files."""
    if (events is None) != (items is None):
        raise SkbanditError(
            "give --events and --items together (or neither, for the default "
            f"school); found only {'events' if events is not None else 'items'}"
        )
    if events is not None:
        return str(events), str(items)
    from adapters.data import datasets

    datasets.load_default_school()  # generated on first use, as for the CLI
    folder = datasets.default_school_dir()
    return str(folder / datasets.EVENTS_FILE), str(folder / datasets.ITEMS_FILE)


def _data_warning(version, events: str, items: str) -> str | None:
    """The one-line warning when ``items`` are not what the version learned (a file only:
    a Spark directory or URI is not read twice)."""
    from adapters.data import datasets
    from adapters.data import identity as data_identity

    if not Path(items).is_file():
        return None
    if Path(items).parent == datasets.default_school_dir():
        return data_identity.version_mismatch(version)
    return data_identity.version_mismatch(version, events, items)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="Output directory (parquet).")],
    events: Annotated[
        str | None,
        typer.Option(
            envvar="SKBANDIT_EVENTS",
            help="Events: a parquet file or directory; default: the simulated school (as the CLI).",
            show_default=False,
        ),
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(
            envvar="SKBANDIT_ITEMS",
            help="Items: a parquet file or directory (with --events).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(envvar="SKBANDIT_MODEL", help="Registered model: NAME@ALIAS or NAME/VERSION."),
    ] = DEFAULT_CHAMPION,
    top_k: Annotated[int, typer.Option(min=1, help="Items per student and topic.")] = 5,
    objective: Annotated[
        Objective | None,
        typer.Option(help="Ranking objective (default: the serving objective, target_band)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the tie-breaks, as in `skbandit trace`.")] = 0,
    spark_master: Annotated[
        str, typer.Option(help="Spark master URL: local[*], spark://HOST:7077, yarn, k8s://...")
    ] = "local[*]",
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Write the top-k items for every (student, topic) of a school with a registered version."""
    from rich.console import Console

    console = Console()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with one_line_errors():  # Spark or store errors too: one line, no traceback
        result = run_batch_score(
            model,
            events,
            items,
            out,
            top_k=top_k,
            objective=None if objective is None else objective.value,
            seed=seed,
            master=spark_master,
            overwrite=overwrite,
        )
    for line in (result.warning, *result.notes):
        if line:
            console.print(line, highlight=False, soft_wrap=True)
    console.print(
        f"wrote {result.rows:,} recommendations for {result.pairs:,} (student, topic) "
        f"pairs of {result.students:,} students with {result.model} to {result.out}",
        soft_wrap=True,
    )


if __name__ == "__main__":
    app()
