"""The warm-start job: load, replay with progressive validation, log to MLflow, register.

Everything after the tracking store is configured happens inside one MLflow run. The run
ends ``FINISHED`` only after the new version is registered and the alias points at it; any
error ends it ``FAILED`` (an interruption ``KILLED``) with a ``failure_reason`` tag, and
nothing is registered and no alias moves (see :func:`adapters.registry.register.register_version`).

Continuing a version (``--from``): the continued model's version carries the timestamp of
the last event it learned (``trained_until``). The events file is replayed in time order;
events at or before that time are *context only* (they shape later students' and items'
contexts but are not learned again), later events are learned. So training on A and then
continuing on an events file holding A and B gives the same model as training on A∪B.
When the file holds only B (no event at or before ``trained_until``), the contexts are
computed from B alone: students and items look new at B's start, the model still adds B's
evidence to A's, but it is not the A∪B model; the job says so and records
``context_only_events = 0``.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from adapters import registry, runs, tracking
from adapters.data import datasets
from adapters.data import identity as data_identity
from adapters.errors import first_line
from adapters.model.log import TRAINED_UNTIL_TAG, log_trained_model, version_tags
from adapters.registry import CHAMPION_ALIAS
from adapters.registry.register import (
    alias_holder,
    aliases_for_new_version,
    register_version,
    remove_pending_versions,
    signals_ignored,
)
from skbandit import schema
from skbandit.calibration import CALIBRATION_FRACTION, METHODS
from skbandit.exceptions import SkbanditError
from skbandit.features import FEATURE_SETS
from skbandit.learning_progress import progress_bands
from skbandit.model import TrainedModel
from skbandit.progressive import ReplayResult, model_features, replay_history
from skbandit.uncertainty import learn_success_interval
from skbandit.version_items import trained_item_parameters
from train.warmstart import data as training_data
from train.warmstart import report as warmstart_report
from train.warmstart.history import History, prepare_history

if TYPE_CHECKING:
    from rich.console import Console

FAILURE_REASON_TAG = runs.FAILURE_REASON_TAG
LOADING_MESSAGE = (
    "loading the default school (the first run generates it: about a minute, then it is cached)"
)
REGISTERED_VERSION_TAG = "registered_version"
"""Run tag naming the model version the run produced (``skbandit-linucb v3``)."""
_ALIAS = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class WarmstartOptions:
    """Everything the job was asked to do (logged as run parameters)."""

    events: str | Path | None = None
    """A path, or text kept as given (a Spark URL such as ``s3a://b/x`` loses a slash as a Path)."""
    items: str | Path | None = None
    model_name: str | None = registry.DEFAULT_MODEL_NAME
    """None: chosen from the data (:func:`adapters.data.identity.model_name_for`)."""
    alias: str = registry.CHALLENGER_ALIAS
    """Alias of the new version; the model's first version also becomes ``champion``."""
    from_model: str | None = None
    alpha: float | None = None
    l2: float | None = None
    feature_set: str | None = None
    batch_size: int = 10_000
    max_events: int | None = None
    seed: int | None = None
    engine: str = "local"
    """``local`` (pandas, one machine) or ``spark`` (:mod:`train.spark.warmstart`)."""
    spark_master: str | None = None
    calibrate: str | None = None
    """``rasch`` or ``2pl``: re-estimate item difficulties from the events (None: as given)."""
    calibration_fraction: float = CALIBRATION_FRACTION


@dataclass
class Continued:
    """A registered version that training continues from."""

    model: TrainedModel
    version: object  # mlflow ModelVersion
    learned_until: pd.Timestamp | None


@dataclass
class StageTimer:
    """Wall-clock seconds per named stage of the job (for the summary and the benchmark)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed


@dataclass
class WarmstartResult:
    """What a finished job produced."""

    version: object  # mlflow ModelVersion
    run_id: str
    tracking_uri: str
    history: History
    replay: ReplayResult
    seconds: dict[str, float]
    alias_holder: str | None = None
    """The version the alias points at when the job ends (another run may have moved it)."""
    experiment_id: str = ""


def run_warmstart(options: WarmstartOptions, console: Console, train_step=None) -> WarmstartResult:
    """Run the whole job and return what it registered.

    ``train_step`` replaces :func:`_train_and_register` (same arguments and result): the
    Spark engine passes its own (:func:`train.spark.warmstart.run_spark_warmstart`).

    Raises
    ------
    SkbanditError
        On bad options or bad data (one line: what, expected, found, what to do). The run is
        then marked FAILED and nothing is registered.
    """
    check_options(options)
    timer = StageTimer()
    with timer("tracking"):
        tracking_uri = tracking.configure_tracking()
        experiment_id = tracking.use_experiment(tracking.WARMSTART_EXPERIMENT)
        if options.model_name is None:
            name, why = data_identity.model_name_for(options.events, options.items)
            options = dataclasses.replace(options, model_name=name)
            if why:
                console.print(why, soft_wrap=True, highlight=False)
        run_id = runs.start_run()
    with sigterm_as_interrupt():
        try:
            _clean_up_after_killed_runs(experiment_id, options.model_name, console)
            train = _train_and_register if train_step is None else train_step
            version, history, result = train(options, console, timer)
        except KeyboardInterrupt:
            runs.end_failed_run(
                "interrupted (SIGINT or SIGTERM) before the model was "
                "registered; nothing was registered",
                "KILLED",
            )
            raise
        except BaseException as error:
            runs.end_failed_run(first_line(error), "FAILED")
            raise
        with signals_ignored():  # registered: an interrupt now must not contradict that
            runs.end_run()
    outcome = WarmstartResult(
        version,
        run_id,
        tracking_uri,
        history,
        result,
        timer.seconds,
        alias_holder(options.model_name, options.alias),
        experiment_id=experiment_id,
    )
    warmstart_report.print_summary(console, options.alias, outcome)
    return outcome


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt like SIGINT (main thread only), so
    ``kill`` cleans up exactly as Ctrl-C does: no version left, the run ended KILLED."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _clean_up_after_killed_runs(experiment_id: str, model_name: str, console: Console) -> None:
    """End runs of this job whose process was killed, and remove the versions they left
    half-registered (tagged ``pending``)."""
    stale = runs.fail_stale_runs(experiment_id)
    if stale:
        console.print(
            f"[yellow]marked {len(stale)} earlier warm-start run(s) FAILED: their "
            "process ended without finishing them (killed)[/yellow]"
        )
    removed = remove_pending_versions(model_name, runs.run_is_running)
    if removed:
        console.print(
            f"[yellow]removed {model_name} version(s) {', '.join(removed)}: their "
            "registration was interrupted (tag pending); aliases restored[/yellow]"
        )


def check_options(options: WarmstartOptions) -> None:
    """Refuse options that would only fail after training (before any run is started)."""
    if options.feature_set is not None and options.feature_set not in FEATURE_SETS:
        raise SkbanditError(
            f"unknown --feature-set {options.feature_set!r} (expected one of "
            f"{', '.join(FEATURE_SETS)}); pass --feature-set default or --feature-set seed"
        )
    if (
        not _ALIAS.match(options.alias)
        or options.alias == "latest"
        or re.fullmatch(r"[vV]\d+", options.alias)
    ):
        raise SkbanditError(
            f"--alias {options.alias!r} is not a usable alias (expected letters, digits, '_' "
            "or '-', not 'latest' or v<number>); pass for example --alias challenger"
        )
    if options.alias == CHAMPION_ALIAS:
        raise SkbanditError(
            "--alias champion is refused: champion moves only through the gate (python -m "
            "train.evaluate compare --promote), and a model's first version gets it "
            "automatically; pass --alias challenger (the default) or another name"
        )
    if options.calibrate is not None and options.calibrate not in METHODS:
        raise SkbanditError(
            f"unknown --calibrate {options.calibrate!r} (expected one of {', '.join(METHODS)}); "
            "pass --calibrate rasch or --calibrate 2pl"
        )
    if options.model_name is not None and (
        not options.model_name.strip() or any(c in options.model_name for c in "@/:")
    ):
        raise SkbanditError(
            f"--model-name {options.model_name!r} is not a usable model name (expected a "
            "non-empty name without '@', '/' or ':'); pass for example --model-name "
            f"{registry.DEFAULT_MODEL_NAME}"
        )


def _train_and_register(options: WarmstartOptions, console: Console, timer: StageTimer):
    with timer("load"):
        continued, model = start(options)
        with console.status(LOADING_MESSAGE if options.events is None else "reading the data"):
            data = training_data.load_training_data(
                options.events,
                options.items,
                options.seed,
                calibrate_method=options.calibrate,
                fraction=options.calibration_fraction,
                max_events=options.max_events,
            )
        events, items, source = data.events, data.items, data.source
    with timer("contexts"):
        history = _prepare(events, items, options, continued, source, console)
        unscored = training_data.scored_from(history.events, data.calibrated_until)
        training_data.print_data_report(console, data, unscored)
    with timer("params"):
        warmstart_report.log_params(options, model, history, source)
        runs.log_params(training_data.run_params(data, unscored))
    with timer("features"):
        features = model_features(model, history.contexts)
    with timer("replay"):
        result = _replay_with_progress(
            model, history, features, options.batch_size, console, score_from=unscored
        )
    model.calibration = result.calibration  # learned from progressive forecasts
    model.item_parameters = trained_item_parameters(items)
    with timer("interval"):  # the scales of the success interval, from the same forecasts
        model.success_interval = learn_success_interval(
            history.events, items, history.contexts, result.predictions
        )
    with timer("progress"):
        keep_progress_bands(
            model, progress_bands(history.events, history.contexts, model.progress_bands)
        )
    version = log_and_register(
        options,
        model,
        history,
        data,
        result,
        timer,
        console,
        log_dataset=lambda: runs.log_training_events(
            history.events, source, digest=history.data_hash[:16], target=schema.CORRECT
        ),
    )
    return version, history, result


def log_and_register(
    options: WarmstartOptions,
    model,
    history: History,
    data,
    result: ReplayResult,
    timer: StageTimer,
    console: Console,
    log_dataset,
):
    """The stages after the replay, the same for the local and the Spark engine: metrics,
    plots, the training events (``log_dataset()``, engine-specific), the model, its
    registration and the run's :data:`REGISTERED_VERSION_TAG`; returns the registered
    version."""
    with timer("metrics"):
        warmstart_report.log_metrics(result)
        runs.log_metrics(training_data.run_metrics(data, result))
        training_data.print_caveats(console, result)
    with timer("plots"):
        warmstart_report.log_plots(result, model)
    with timer("dataset"):
        log_dataset()
    with timer("model"):
        info = log_trained_model(model, history)
    with timer("register"):
        tags = {
            **version_tags(history),
            **data_identity.identity_tags(data.items, data.source),
        }
        aliases = aliases_for_new_version(options.model_name, options.alias)
        version = register_version(info.model_uri, options.model_name, aliases, tags)
    runs.set_tag(REGISTERED_VERSION_TAG, f"{version.name} v{version.version}")
    return version


def keep_progress_bands(model: TrainedModel, bands) -> None:
    """Store with the version the learning-progress bands of its training events (which
    target success taught most: the ``learning_progress`` objective's target, computed
    from the continued version's bands when there is one) and log ``learned_target``."""
    model.progress_bands = bands
    if bands.count.any():
        runs.log_metrics({"learned_target": bands.best_target()})


def start(options: WarmstartOptions) -> tuple[Continued | None, object]:
    """The version to continue (``--from``, None without it) and the model to train."""
    continued = _load_continued(options.from_model, options.feature_set)
    return continued, _starting_model(options, continued)


def _load_continued(from_model: str | None, feature_set: str | None) -> Continued | None:
    if from_model is None:
        return None
    model, version = registry.load_model(registry.parse_model_ref(from_model))
    source_set = model.feature_set
    if feature_set is not None and feature_set != source_set:
        raise SkbanditError(
            f"--from {from_model} uses feature set {source_set!r} but --feature-set "
            f"{feature_set!r} was requested; drop --feature-set to continue it, or drop "
            "--from to train a fresh model"
        )
    until = version.tags.get(TRAINED_UNTIL_TAG)
    return Continued(model, version, pd.Timestamp(until) if until else None)


PRIOR_L2 = 3_000.0
"""Default ridge strength of a feature set with an IRT prior mean (``"default"``): the prior
``theta0`` (the IRT probability) counts as about this many events per feature direction, so
the model moves away from IRT only once the evidence of thousands of events supports it. On
ten real DataShop exports (100-10,000 events) ``l2 = 1`` let 100-event batches of noisy
features pull the model off IRT; with the logistic calibration link, mean progressive
log-loss is 0.5725 at 1,000, 0.5692 at 3,000 and 0.5682 at 10,000 (IRT 0.5766); 3,000 keeps
most of that gain while the 200,000-event default school can still learn (docs/benchmarks.md)."""


def default_l2(feature_set: str) -> float:
    """``PRIOR_L2`` for a feature set whose LinUCB starts from IRT, else 1.0 (shrink to 0)."""
    from skbandit.features import irt_prior_mean

    return PRIOR_L2 if irt_prior_mean(feature_set) is not None else 1.0


def _starting_model(options: WarmstartOptions, continued: Continued | None):
    if continued is None:
        feature_set = options.feature_set or "default"
        return TrainedModel(
            feature_set,
            alpha=1.0 if options.alpha is None else options.alpha,
            l2=default_l2(feature_set) if options.l2 is None else options.l2,
        )
    estimator = continued.model.estimator
    if options.alpha is not None:
        estimator.set_params(alpha=options.alpha)
    if options.l2 is not None and options.l2 != estimator.l2:
        raise SkbanditError(
            f"--l2 {options.l2} differs from the continued model's ridge strength "
            f"{estimator.l2}; the ridge is part of the learned state, so train a fresh model"
        )
    return continued.model


def _prepare(events, items, options, continued, source: str, console: Console) -> History:
    if options.events is None and source.startswith("default-school"):
        folder = datasets.default_school_dir(options.seed)
        console.print(f"data: {source}, cached in {folder}", soft_wrap=True)
    else:
        console.print(f"data: {source}", soft_wrap=True)
    history = prepare_history(
        events,
        items,
        max_events=options.max_events,
        learned_until=continued.learned_until if continued else None,
    )
    if history.n_unknown_items:
        console.print(
            f"[yellow]skipped {history.n_unknown_items:,} events whose item is not in the "
            "items table (they cannot be featurised)[/yellow]"
        )
    if continued is not None and continued.learned_until is not None:
        if history.n_context_only:
            console.print(
                f"continuing {continued.version.name} v{continued.version.version}: "
                f"{history.n_context_only:,} events up to {continued.learned_until.isoformat()} "
                "used as context only"
            )
        else:
            console.print(
                f"[yellow]continuing {continued.version.name} v{continued.version.version}: "
                f"the events start after {continued.learned_until.isoformat()}, so contexts "
                "are computed from these events only (students and items look new); pass the "
                "full history to get the same model as training on all of it[/yellow]"
            )
    return history


def _replay_with_progress(
    model, history: History, features, batch_size: int, console, score_from: int = 0
):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("replaying events", total=len(history.events))
        return replay_history(
            model,
            history.contexts,
            history.events[schema.CORRECT].to_numpy(),
            batch_size=batch_size,
            on_batch=lambda n: progress.advance(task, n),
            features=features,
            score_from=score_from,
        )
