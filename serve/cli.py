"""The ``skbandit`` command line: recommendations from a registered model version.

Data: the default simulated school, or ``--events PATH --items PATH`` (parquet or CSV in the
canonical schema), or the environment variables ``SKBANDIT_EVENTS`` and ``SKBANDIT_ITEMS``.
Model: ``--model NAME@ALIAS`` or ``NAME/VERSION`` (default ``skbandit-linucb@champion``, or
``SKBANDIT_MODEL``) in the store that ``MLFLOW_TRACKING_URI`` names (default: ``mlruns/``).
Heavy imports (pandas, mlflow) happen inside the commands so that ``--help`` is instant.
Every error is one line on stderr and exit code 1 (``SKBANDIT_DEBUG=1`` shows tracebacks of
unexpected errors).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from skbandit.ranking_settings import Exploration, Objective

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


ExplorationOpt = Annotated[
    Exploration,
    typer.Option(help="greedy: top-k by UCB; softmax: draw the k items from softmax(score/T)."),
]
TemperatureOpt = Annotated[
    float, typer.Option(min=0.0, help="Softmax temperature T (> 0; with --exploration softmax).")
]
ObjectiveOpt = Annotated[
    Objective | None,
    typer.Option(
        help="target_band: success nearest --target (the serving default, see the README's "
        "simulation study); max_success: highest expected success.",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Target success of --objective target_band.")
]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed of tie-breaks and softmax draws.")]


@contextmanager
def _one_line_errors():
    """Print a SkbanditError on one line and exit 1; never a traceback for bad input."""
    from skbandit.exceptions import SkbanditError

    try:
        yield
    except SkbanditError as error:
        _fail(str(error))
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:  # e.g. an unreachable tracking server: still one line
        if os.environ.get("SKBANDIT_DEBUG"):
            raise
        first_line = (str(error).strip().splitlines() or [""])[0]
        _fail(
            f"unexpected {type(error).__name__}: {first_line} "
            "(set SKBANDIT_DEBUG=1 to see the traceback)"
        )


def _fail(message: str) -> None:
    """One line on stderr (flattened, so it never wraps into a block) and exit code 1."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(1)


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
    exploration: ExplorationOpt = Exploration.greedy,
    temperature: TemperatureOpt = 0.05,
    objective: ObjectiveOpt = None,
    target: TargetOpt = 0.7,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Show a student's attempts on a topic in a week, their context, and what comes next."""
    with _one_line_errors():
        from serve import render
        from serve.recommend import rl_recommendations, rule_recommendations

        settings = _settings(exploration, temperature, objective, target, seed)
        week = _student_week(events, items, student_id, topic, time_window)
        if use_rl:
            pipeline, info = _load_model(model)
            recs = rl_recommendations(pipeline, week, top_k, settings)
        else:
            recs, info, settings = rule_recommendations(week, top_k), None, None
        if as_json:
            _print_json(render.trace_payload(week, recs, info, settings))
        else:
            render.print_trace(week, recs, info, settings)


@app.command("compare-recs")
def compare_recs(
    student_id: StudentOpt,
    topic: TopicOpt,
    time_window: WindowOpt = None,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: TopKOpt = 5,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    exploration: ExplorationOpt = Exploration.greedy,
    temperature: TemperatureOpt = 0.05,
    objective: ObjectiveOpt = None,
    target: TargetOpt = 0.7,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Rule-based and LinUCB recommendations side by side, with their overlap."""
    with _one_line_errors():
        from serve import render
        from serve.recommend import comparison, rl_recommendations, rule_recommendations

        settings = _settings(exploration, temperature, objective, target, seed)
        week = _student_week(events, items, student_id, topic, time_window)
        pipeline, info = _load_model(model)
        rule = rule_recommendations(week, top_k)
        rl = rl_recommendations(pipeline, week, top_k, settings)
        compared = comparison(rule, rl, settings)
        if as_json:
            _print_json(render.compare_payload(week, rule, rl, compared, info, settings))
        else:
            render.print_comparison(week, rule, rl, compared, info, settings)


@app.command()
def models(
    name: Annotated[str, typer.Option(help="Registered model name.")] = "skbandit-linucb",
    as_json: JsonOpt = False,
) -> None:
    """List the registered versions of a model with aliases, training size and metrics."""
    with _one_line_errors():
        from adapters import registry
        from serve import render

        _configure_tracking()
        versions = registry.list_versions(name)
        if as_json:
            _print_json(versions)
        else:
            render.print_versions(name, versions)


def _settings(exploration, temperature, objective, target, seed):
    from serve.recommend import PolicySettings
    from skbandit.exceptions import SkbanditError

    if exploration is Exploration.softmax and not temperature > 0:
        raise SkbanditError(
            f"--temperature must be > 0 with --exploration softmax, got {temperature:g}"
        )
    objective = PolicySettings.objective if objective is None else objective.value
    return PolicySettings(exploration.value, temperature, objective, target, seed)


def _student_week(events, items, student_id, topic, time_window):
    from adapters.datasets import load_school
    from serve.recommend import parse_week, student_week, whole_history

    event_table, item_table, _ = load_school(events, items)
    window = parse_week(time_window) if time_window else whole_history(event_table)
    return student_week(event_table, item_table, student_id, topic, window)


def _configure_tracking() -> None:
    """Point mlflow at the store; refuse a SQLite store that does not exist (yet)."""
    import logging

    from adapters import registry, tracking
    from skbandit.exceptions import SkbanditError

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO chatter on the CLI
    uri = tracking.configure_tracking()
    database = tracking.sqlite_path(uri)
    if database is not None and not database.is_file():
        raise SkbanditError(f"no MLflow store at {database}; {registry.TRAIN_HINT}")


def _load_model(text: str):
    from adapters import registry

    _configure_tracking()
    ref = registry.parse_model_ref(text)
    pipeline, version = registry.load_pipeline(ref)
    return pipeline, registry.version_info(version, ref, pipeline)


def _print_json(payload) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
