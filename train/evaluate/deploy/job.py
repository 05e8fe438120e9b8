"""``python -m train.evaluate deploy``: a simulated deployment of the closed loop.

A simulated school (:mod:`train.evaluate.deploy.school`) is first practised for ``--history-days``
school days under the rule+epsilon logging policy; warm-start learns that history and
registers the model's first version, which becomes ``champion`` (first-run rule). Then,
for each of ``--days`` school days:

- **day**: the students are served by the current champion through the REST code path
  (:mod:`adapters.serving.client`: ``LinUCBModel.predict`` in process, or a real ``skbandit
  serve`` on 127.0.0.1 with ``--via rest``, restarted after a promotion); every decision goes
  to the deployment's decision log and every outcome comes back as an event carrying its
  ``decision_id``;
- **night** (:mod:`train.evaluate.deploy.night`): the outcomes are joined to the log, the challenger
  trained the night before is evaluated on the day's served log (IPS, SNIPS, DR beside the
  simulator's truth) and the gate decides (``compare --promote``); warm-start continues from
  the champion and registers the next challenger.

The per-day figures are printed (:mod:`train.evaluate.deploy.report`) and logged as one run of the
``skbandit-deploy`` experiment (step = day). The deployment uses its own registered model
(``--model-name``, default ``skbandit-deploy``) and its own decision log, so it never moves
the served ``skbandit-linucb`` champion nor writes to the production ``decisions.db``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from contextlib import ExitStack
from dataclasses import replace

import pandas as pd
from rich.console import Console

from adapters import tracking
from adapters.data.deployment_files import (
    DeploymentFolder,
    check_decision_log,
    default_decision_log_url,
)
from adapters.registry import CHAMPION_ALIAS
from adapters.registry.register import alias_holder
from adapters.serving.client import serving_champion
from skbandit.exceptions import SkbanditError
from skbandit.sim.world import SchoolConfig
from train._cli import one_line_errors
from train.evaluate.compare.options import Reward
from train.evaluate.deploy import night as deploy_night
from train.evaluate.deploy import report as deploy_report
from train.evaluate.deploy.options import (
    DEFAULT_MODEL_NAME,
    MIN_STUDENTS,
    PRODUCTION_MODEL_NAME,
    DayResult,
    DeployOptions,
    DeployResult,
    Via,
)
from train.evaluate.deploy.school import DeploySchool, request_seeds


def main(
    *,
    days,
    students,
    seed,
    history_days,
    via,
    model_name,
    decision_log,
    out,
    gate_reward,
) -> None:
    """What ``deploy`` does with its options (:mod:`train.evaluate.deploy.cli`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO lines in the terminal
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # also if mlflow is imported already
    console = Console()
    options = DeployOptions(
        days=days,
        students=students,
        seed=seed,
        history_days=history_days,
        via=via.value,
        model_name=model_name,
        decision_log=decision_log,
        out=out,
        gate_reward=gate_reward.value,
    )
    kept = (
        "the days served so far are logged (run KILLED); versions registered so far stay "
        "in the deployment's model"
    )
    with one_line_errors(interrupted=lambda _: kept):
        run_deploy(options, console)


def check_options(options: DeployOptions) -> None:
    """Refuse bad options before anything is created (one-line SkbanditError)."""
    for name, value, low in (
        ("--days", options.days, 1),
        ("--history-days", options.history_days, 1),
        ("--students", options.students, MIN_STUDENTS),
    ):
        if value < low:
            why = " (the gate resamples students)" if name == "--students" else ""
            raise SkbanditError(f"{name} must be at least {low}{why}; got {value}")
    if options.seed is not None and options.seed < 0:
        raise SkbanditError(f"--seed must be a non-negative integer; got {options.seed}")
    if options.via not in tuple(Via):
        raise SkbanditError(f"unknown --via {options.via!r} (expected in-process or rest)")
    if options.gate_reward not in tuple(Reward):
        raise SkbanditError(
            f"unknown --gate-reward {options.gate_reward!r} (expected one of {', '.join(Reward)})"
        )
    if options.model_name is None:
        return
    if options.model_name == PRODUCTION_MODEL_NAME:
        raise SkbanditError(
            f"--model-name {PRODUCTION_MODEL_NAME} is the served model; a "
            "simulated deployment must not move its champion: pass another "
            f"name (default {DEFAULT_MODEL_NAME})"
        )
    if not options.model_name.strip() or any(c in options.model_name for c in "@/: "):
        raise SkbanditError(
            f"--model-name {options.model_name!r} is not a usable model name "
            "(expected letters, digits, '-' or '_')"
        )


def run_deploy(options: DeployOptions, console: Console) -> DeployResult:
    """Run the deployment; print and log the per-day figures (see the module docstring).

    Raises a one-line SkbanditError for bad options, an existing model of that name or an
    unreachable decision log, before anything is registered.
    """
    started = time.perf_counter()
    check_options(options)
    tracking.configure_tracking()
    if options.model_name is None:
        options = replace(options, model_name=_free_model_name())
    else:
        _require_new_model(options.model_name)
    log_url = options.decision_log or default_decision_log_url(options.model_name)
    shown = check_decision_log(log_url)
    folder = DeploymentFolder(options.out)
    days: list[DayResult] = []
    try:
        try:
            result = _deploy(options, console, log_url, shown, folder, days)
        except BaseException as error:
            deploy_report.log_run(options, days, failed=error)
            raise
        result.run_id = deploy_report.log_run(options, days)
    finally:
        folder.close()
    result.seconds = time.perf_counter() - started
    deploy_report.print_result(console, result)
    return result


def _deploy(
    options: DeployOptions,
    console: Console,
    log_url: str,
    shown: str,
    folder,
    days: list[DayResult],
) -> DeployResult:
    school = DeploySchool(SchoolConfig(n_students=options.students, seed=options.seed or 0))
    with console.status(
        f"day 0: {options.history_days} school days under the logging "
        "policy, then the first warm-start"
    ):
        n_history = school.log_history(options.history_days)
        events_path = folder.write_history(school.events(), school.items)
        first = deploy_night.train_challenger(
            options.model_name, events_path, folder.items_path, first=True
        )
    console.print(
        f"day 0: {n_history:,} attempts under the rule+epsilon policy -> "
        f"{options.model_name} v{first} (champion, first run); decisions go to "
        f"{shown}",
        highlight=False,
        soft_wrap=True,
    )
    result = DeployResult(options, n_history, first, shown, days)
    seeds = request_seeds(options.seed)
    with ExitStack() as serving:
        champion = None
        for day in range(1, options.days + 1):
            begun = time.perf_counter()
            if champion is None:
                champion = serving.enter_context(
                    serving_champion(
                        options.via, options.model_name, log_url, folder.server_log(day)
                    )
                )
            since = _now()
            with console.status(f"day {day}: serving {options.model_name} v{champion.version}"):
                served = school.serve_day(champion, seeds)
            with console.status(f"night {day}: join, gate, warm-start"):
                files = folder.write_night(day, school.events(), served.outcomes(), served.truth)
                night = deploy_night.run_night(
                    model_name=options.model_name,
                    decision_log=log_url,
                    day=served,
                    since=since,
                    files=files,
                    seed=options.seed or 0,
                    n_bootstrap=options.n_bootstrap,
                    reward=options.gate_reward,
                )
            days.append(DayResult(day, served, night, time.perf_counter() - begun))
            deploy_report.print_day(console, days[-1])
            if night.champion != champion.version:
                serving.close()  # the promoted version serves from tomorrow
                champion = None
    return result


def _now():
    return pd.Timestamp.now(tz="UTC")


def _free_model_name() -> str:
    """The first of ``skbandit-deploy``, ``skbandit-deploy-2``, ... without a champion, so
    that the documented command can be run again."""
    for number in itertools.count(1):
        name = DEFAULT_MODEL_NAME if number == 1 else f"{DEFAULT_MODEL_NAME}-{number}"
        if alias_holder(name, CHAMPION_ALIAS) is None:
            return name
    raise AssertionError("unreachable")


def _require_new_model(name: str) -> None:
    holder = alias_holder(name, CHAMPION_ALIAS)
    if holder is not None:
        raise SkbanditError(
            f"model {name} already has a champion (v{holder}), so day 0 would "
            "not start from the school's own history; pass a new --model-name "
            f"(e.g. {name}-2)"
        )
