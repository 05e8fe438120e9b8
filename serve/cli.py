"""The ``skbandit`` command line: recommendations from a registered model version.

Data: the default simulated school, or ``--events PATH --items PATH`` (parquet or CSV in the
canonical schema), or the environment variables ``SKBANDIT_EVENTS`` and ``SKBANDIT_ITEMS``.
Model: ``--model NAME@ALIAS`` or ``NAME/VERSION`` (default ``skbandit-linucb@champion``, or
``SKBANDIT_MODEL``) in the store that ``MLFLOW_TRACKING_URI`` names (default: ``mlruns/``).
Heavy imports (pandas, mlflow) happen inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="skbandit",
    help="Adaptive practice-item recommendations from a LinUCB contextual bandit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StudentOpt = Annotated[str, typer.Option("--student-id", help="The student's user_id.")]
TopicOpt = Annotated[str, typer.Option(help="Common Core topic code, e.g. 7.RP.A.1.")]
WindowOpt = Annotated[
    str | None, typer.Option(help="ISO week such as 2024-W01 (default: all history).")
]
ModelOpt = Annotated[
    str,
    typer.Option(envvar="SKBANDIT_MODEL", help="Registered model: NAME@ALIAS or NAME/VERSION."),
]
TopKOpt = Annotated[int, typer.Option(min=1, help="How many items to recommend.")]
EventsOpt = Annotated[
    Path | None, typer.Option(envvar="SKBANDIT_EVENTS", help="Events file (parquet or CSV).")
]
ItemsOpt = Annotated[
    Path | None, typer.Option(envvar="SKBANDIT_ITEMS", help="Items file (parquet or CSV).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
DEFAULT_MODEL = "skbandit-linucb@champion"


@contextmanager
def _one_line_errors():
    """Print a SkbanditError on one line and exit 1; never a traceback for bad input."""
    from skbandit.exceptions import SkbanditError

    try:
        yield
    except SkbanditError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def trace(
    student_id: StudentOpt,
    topic: TopicOpt,
    time_window: WindowOpt = None,
    use_rl: Annotated[bool, typer.Option("--use-rl", help="Recommend with the bandit.")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: TopKOpt = 5,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a student's attempts on a topic in a week, their context, and what comes next."""
    from serve import render
    from serve.recommend import rl_recommendations, rule_recommendations

    with _one_line_errors():
        week = _student_week(events, items, student_id, topic, time_window)
        if use_rl:
            pipeline, info = _load_model(model)
            recs = rl_recommendations(pipeline, week, top_k)
        else:
            recs, info = rule_recommendations(week, top_k), None
        if as_json:
            _print_json(render.trace_payload(week, recs, info))
        else:
            render.print_trace(week, recs, info)


@app.command("compare-recs")
def compare_recs(
    student_id: StudentOpt,
    topic: TopicOpt,
    time_window: WindowOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: TopKOpt = 5,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rule-based and LinUCB recommendations side by side, with their overlap."""
    from serve import render
    from serve.recommend import comparison, rl_recommendations, rule_recommendations

    with _one_line_errors():
        week = _student_week(events, items, student_id, topic, time_window)
        pipeline, info = _load_model(model)
        rule, rl = rule_recommendations(week, top_k), rl_recommendations(pipeline, week, top_k)
        compared = comparison(rule, rl)
        if as_json:
            _print_json(render.compare_payload(week, rule, rl, compared, info))
        else:
            render.print_comparison(week, rule, rl, compared, info)


@app.command()
def models(
    name: Annotated[str, typer.Option(help="Registered model name.")] = "skbandit-linucb",
    as_json: JsonOpt = False,
) -> None:
    """List the registered versions of a model with aliases, training size and metrics."""
    from serve import registry, render

    with _one_line_errors():
        registry.configure_tracking()
        versions = registry.list_versions(name)
        if as_json:
            _print_json(versions)
        else:
            render.print_versions(name, versions)


def _student_week(events, items, student_id, topic, time_window):
    from serve.datasets import load_school
    from serve.recommend import parse_week, student_week, whole_history

    event_table, item_table, _ = load_school(events, items)
    window = parse_week(time_window) if time_window else whole_history(event_table)
    return student_week(event_table, item_table, student_id, topic, window)


def _load_model(text: str):
    from serve import registry

    registry.configure_tracking()
    ref = registry.parse_model_ref(text)
    pipeline, version = registry.load_pipeline(ref)
    return pipeline, registry.version_info(version, ref, pipeline)


def _print_json(payload) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
