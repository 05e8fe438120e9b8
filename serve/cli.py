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
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from adapters import registry
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
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of tables.")]
DEFAULT_MODEL = registry.DEFAULT_CHAMPION


ExplorationOpt = Annotated[
    Exploration,
    typer.Option(
        help="greedy: the k best scores (score = the --objective plus the uncertainty bonus); "
        "softmax: draw the k items from softmax(score / T)."
    ),
]
TemperatureOpt = Annotated[
    float,
    typer.Option(
        help="Softmax temperature T, at least 0.01 (used only with --exploration softmax)."
    ),
]
ObjectiveOpt = Annotated[
    Objective | None,
    typer.Option(
        help="target_band: success nearest --target (the serving default, see "
        "docs/evidence.md); learning_progress: success nearest the target the model "
        "learned from its training events; max_success: highest expected success.",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Target success of --objective target_band.")
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Seed of tie-breaks and draws, to reproduce a ranking "
        "(default: unseeded, from OS entropy).",
        show_default=False,
    ),
]


@contextmanager
def _one_line_errors():
    """Every error on one line (:func:`adapters.errors.one_line`: redacted, control bytes
    escaped) and exit 1; never a traceback for bad input. As :func:`train._cli.one_line_errors`,
    which serve/ cannot import."""
    import click

    from adapters import errors

    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, KeyboardInterrupt):
        raise
    except Exception as error:  # a SkbanditError, an unreachable tracking server, a bug
        if errors.debugging() and not isinstance(error, errors.SkbanditError):
            raise
        _fail(errors.one_line(error))


def _fail(message: str) -> None:
    """One line on stderr (flattened, so it never wraps into a block) and exit code 1."""
    from adapters.errors import for_terminal

    typer.echo(f"error: {for_terminal(message)}", err=True)
    raise typer.Exit(1)


@app.command()
def trace(
    ctx: typer.Context,
    student_id: StudentOpt,
    topic: TopicOpt,
    time_window: WindowOpt = None,
    use_rl: Annotated[
        bool,
        typer.Option("--use-rl", metavar="", help="Recommend with the bandit (else the rule)."),
    ] = False,
    model: ModelOpt = DEFAULT_MODEL,
    top_k: TopKOpt = 5,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    exploration: ExplorationOpt = Exploration.greedy,
    temperature: TemperatureOpt = 0.05,
    objective: ObjectiveOpt = None,
    target: TargetOpt = 0.7,
    seed: SeedOpt = None,
    log_decision: Annotated[
        bool,
        typer.Option(
            "--log-decision",
            metavar="",
            help="With --use-rl: record the decision in the decision log "
            "(SKBANDIT_DECISION_LOG, default mlruns/decisions.db).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a student's attempts on a topic in a week, their context, and what comes next."""
    with _one_line_errors():
        from serve import render
        from serve.recommend import rl_recommendations, rule_recommendations

        settings = _settings(exploration, temperature, objective, target, top_k, seed)
        if not use_rl:
            _warn_unused(ctx, "model", "exploration", "temperature", "objective", "target", "seed")
        trained, info = _load_model(model, (events, items)) if use_rl else (None, None)
        week = _student_week(events, items, student_id, topic, time_window, trained, info)
        if use_rl:
            settings = settings.for_model(trained)  # learning_progress: the learned target
            recs = rl_recommendations(trained, week, settings)
        else:
            recs, settings = rule_recommendations(week, top_k), None
        decision_id = _log_decision(log_decision, use_rl, trained, week, recs, settings, info)
        if as_json:
            payload = render.trace_payload(week, recs, info, settings)
            _print_json(payload if decision_id is None else {**payload, "decision_id": decision_id})
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
    seed: SeedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rule-based and LinUCB recommendations side by side, with their overlap."""
    with _one_line_errors():
        from serve import render
        from serve.recommend import comparison, rl_recommendations, rule_recommendations

        settings = _settings(exploration, temperature, objective, target, top_k, seed)
        trained, info = _load_model(model, (events, items))
        week = _student_week(events, items, student_id, topic, time_window, trained, info)
        settings = settings.for_model(trained)
        rule = rule_recommendations(week, top_k)
        rl = rl_recommendations(trained, week, settings)
        compared = comparison(rule, rl, settings)
        if as_json:
            _print_json(render.compare_payload(week, rule, rl, compared, info, settings))
        else:
            render.print_comparison(week, rule, rl, compared, info, settings)


@app.command()
def models(
    name: Annotated[str, typer.Option(help="Registered model name.")] = registry.DEFAULT_MODEL_NAME,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            metavar="",
            help="All columns (time, updates, feature set, Brier, run id); needs ~140 columns.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the registered versions of a model with aliases, training size and metrics."""
    with _one_line_errors():
        from serve import render

        _configure_tracking()
        versions = registry.list_versions(name)
        if as_json:
            _print_json(versions)
        else:
            render.print_versions(name, versions, wide=wide)


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            envvar="SKBANDIT_MODEL",
            help="Registered model: models:/NAME@ALIAS, NAME@ALIAS or NAME/VERSION.",
        ),
    ] = f"models:/{DEFAULT_MODEL}",
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Another Host name clients may use (repeatable); localhost, "
            "127.0.0.1 and ::1 are always allowed."
        ),
    ] = None,
) -> None:
    """Serve a registered version over REST (POST /invocations), logging every decision."""
    with _one_line_errors():
        import logging

        from serve.app import run

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        run(model, host, port, workers, allowed_host or (), echo=lambda m: typer.echo(m, err=True))


@app.command("verify-model")
def verify_model(
    model: Annotated[
        str, typer.Argument(help="models:/NAME@ALIAS, NAME@ALIAS or NAME/VERSION.")
    ] = f"models:/{DEFAULT_MODEL}",
) -> None:
    """Check a version before plain `mlflow models serve`: checksums, no stored code, the
    installed loader. Prints the version number to serve."""
    with _one_line_errors():
        from adapters.model.check import verify_version

        _configure_tracking()
        version = verify_version(registry.parse_model_ref(model))
        typer.echo(
            f"{version.name} version {version.version} verified: checksums match, no "
            "stored code, skbandit's own loader; serve "
            f"models:/{version.name}/{version.version}"
        )


@app.command("verify-log")
def verify_log(
    where: Annotated[
        str,
        typer.Argument(
            help="Decision log URL, SQLite file or parquet export folder (default: the served log)."
        ),
    ] = "",
) -> None:
    """Check a decision log's hash chains; name the first rewritten or deleted decision."""
    with _one_line_errors():
        from adapters.decision_log import DecisionLog, read_source
        from adapters.decision_log.chain import verify

        decisions, candidates, source = read_source(where or DecisionLog().url)
        result = verify(decisions, candidates)
        if not result.ok:
            _fail(f"decision log {source} fails verification: {result.broken}")
        typer.echo(
            f"decision log {source} is intact: {result.n_decisions} decisions in "
            f"{result.n_chains} chain(s); chain heads (record them to detect a later "
            "rewrite of a whole chain tail):"
        )
        for chain, (seq, head) in result.heads.items():
            typer.echo(f"  {chain} link {seq} {head}")


def _log_decision(asked, use_rl, pipeline, week, recs, settings, info):
    """Record ``trace``'s LinUCB decision when ``--log-decision`` asks; its id, else None."""
    from skbandit.exceptions import SkbanditError

    if not asked:
        return None
    if not use_rl:
        raise SkbanditError("--log-decision records a bandit decision: add --use-rl")
    from serve.decisions import log_decision

    decision_id = log_decision(pipeline, week, recs, settings, info)
    typer.echo(f"decision {decision_id} logged", err=True)
    return decision_id


def _settings(exploration, temperature, objective, target, top_k, seed):
    """The options as checked settings; a bad one is named as its option (``--temperature``)."""
    from serve.recommend import PolicySettings
    from skbandit.ranking_settings import SERVING_SETTINGS, RankingSettings

    options = {
        "exploration": exploration,
        "temperature": temperature,
        "target": target,
        "top_k": top_k,
    }
    if objective is not None:
        options["objective"] = objective
    ranking = RankingSettings.from_values(options, label="--{}", base=SERVING_SETTINGS)
    return PolicySettings(ranking, seed)


def _warn_unused(ctx: typer.Context, *names: str) -> None:
    """Warn (stderr) about bandit options given on the command line without ``--use-rl``."""
    sources = {name: ctx.get_parameter_source(name) for name in names}
    # by name: typer may bring its own copy of click's ParameterSource enum
    given = [
        f"--{name.replace('_', '-')}"
        for name, source in sources.items()
        if getattr(source, "name", None) == "COMMANDLINE"
    ]
    if given:
        verb = "is" if len(given) == 1 else "are"
        typer.echo(
            f"warning: {', '.join(given)} {verb} only used with --use-rl; showing the "
            "rule-based list",
            err=True,
        )


def _student_week(events, items, student_id, topic, time_window, model=None, info=None):
    """The student's week; with a loaded ``model`` the items the items file gives no
    difficulty take the version's parameters (issue 21), and the lines about the items
    (disagreeing with the version's, still without difficulty) go to stderr."""
    from adapters.data.datasets import load_school_reports
    from serve.recommend import check_window, parse_week, student_week, whole_history
    from skbandit.version_items import items_for_model

    loaded = load_school_reports(events, items)
    for report in (loaded.event_report, loaded.item_report):  # nothing dropped silently
        if report is not None and report.summary().count(";"):
            typer.echo(f"data: {report.summary()}", err=True)
    label = "the model" if info is None else f"{info['name']} v{info['version']}"
    stored = None if model is None else model.item_parameters
    item_table, lines = items_for_model(loaded.items, stored, label)
    for line in lines:
        typer.echo(line, err=True)
    event_table = loaded.events
    window = parse_week(time_window) if time_window else whole_history(event_table)
    if time_window:
        check_window(event_table, window)
    return student_week(event_table, item_table, student_id, topic, window)


def _configure_tracking() -> None:
    """Point mlflow at the store; refuse a SQLite store that does not exist (yet)."""
    import logging

    from adapters import tracking
    from skbandit.exceptions import SkbanditError

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO chatter on the CLI
    uri = tracking.configure_tracking(create=False)  # read-only: create no folder or database
    database = tracking.sqlite_path(uri)
    if database is not None and not database.is_file():
        raise SkbanditError(f"no MLflow store at {database}; {registry.TRAIN_HINT}")


def _load_model(text: str, data: tuple | None = None):
    """The version's TrainedModel and info; with ``data`` (``events, items``) say in one line
    when those are not the data the version was trained on (issue 23)."""
    from adapters.data import identity as data_identity

    _configure_tracking()
    ref = registry.parse_model_ref(text)
    trained, version = registry.load_model(ref)
    if data is not None:
        warning = data_identity.version_mismatch(version, *data)
        if warning:
            typer.echo(warning, err=True)
    return trained, registry.version_info(version, ref, trained)


def _print_json(payload) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
