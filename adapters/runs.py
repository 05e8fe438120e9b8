"""MLflow runs for the jobs: start and end them, log parameters, metrics, figures, tables and
the training data.

The jobs in ``train/`` call these instead of mlflow; every function acts on the active run
(started by :func:`start_run` or :func:`tracked_run`) in the store that
:func:`adapters.tracking.configure_tracking` chose. mlflow is imported inside the functions,
so that ``--help`` of every command stays instant.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from skbandit.exceptions import SkbanditError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

FAILURE_REASON_TAG = "failure_reason"
DATASET_SCHEMA_ROWS = 1_000
"""Rows the logged dataset's schema is inferred from (mlflow scans every value otherwise:
about 40 s per million events)."""
METRICS_PER_CALL = 1_000
"""The tracking API takes at most this many metrics per ``log_batch`` call."""
_SCHEMA_HINT = "Hint: Inferred schema contains integer"


def start_run() -> str:
    """Start a run in the active experiment, tagged with its process (:func:`process_tags`);
    return its id (end it with :func:`end_run`)."""
    import mlflow

    return mlflow.start_run(tags=process_tags()).info.run_id


def end_run() -> None:
    """End the active run as ``FINISHED``."""
    import mlflow

    mlflow.end_run()


def end_failed_run(reason: str, status: str) -> None:
    """Tag the active run with why it failed and end it with ``status`` (``FAILED`` or
    ``KILLED``); never masks the original error."""
    import mlflow

    for step in (
        lambda: mlflow.set_tag(FAILURE_REASON_TAG, reason[:5000]),
        lambda: mlflow.end_run(status),
    ):
        try:
            step()
        except Exception:  # the store may be the problem: keep the first error
            pass


@contextmanager
def tracked_run(run_name: str | None = None) -> Iterator[str]:
    """A run around a block: yields its id; ``FAILED`` if the block raises, else ``FINISHED``."""
    import mlflow

    with mlflow.start_run(run_name=run_name, tags=process_tags()) as run:
        yield run.info.run_id


def active_run_id() -> str:
    """The id of the active run."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise SkbanditError("no active MLflow run (this step runs inside a job's run)")
    return run.info.run_id


def set_tag(key: str, value: str) -> None:
    import mlflow

    mlflow.set_tag(key, value)


def log_params(params: Mapping[str, object]) -> None:
    import mlflow

    mlflow.log_params(dict(params))


def log_metrics(metrics: Mapping[str, float]) -> None:
    import mlflow

    mlflow.log_metrics(dict(metrics))


def log_metric_history(rows: list[dict], step: str) -> None:
    """Log every non-null value of ``rows`` as a metric at step ``row[step]`` (one timestamp)."""
    import mlflow
    import pandas as pd
    from mlflow.entities import Metric

    client, run_id = mlflow.MlflowClient(), active_run_id()
    stamp = int(time.time() * 1000)
    stepped = [
        Metric(key, float(value), stamp, int(row[step]))
        for row in rows
        for key, value in row.items()
        if key != step and pd.notna(value)
    ]
    for start in range(0, len(stepped), METRICS_PER_CALL):
        client.log_batch(run_id, metrics=stepped[start : start + METRICS_PER_CALL])


def log_figure(figure: Figure, path: str) -> None:
    """Log a matplotlib figure as an image artifact at ``path`` (e.g. ``plots/x.png``)."""
    import mlflow

    mlflow.log_figure(figure, path)


def log_text(text: str, path: str) -> None:
    """Log ``text`` as an artifact file at ``path`` (e.g. ``tables/summary.csv``)."""
    import mlflow

    mlflow.log_text(text, path)


def log_training_events(events: pd.DataFrame, source: str, digest: str, target: str) -> None:
    """Log ``events`` as the run's training input (dataset ``events``, schema from its first
    ``DATASET_SCHEMA_ROWS`` rows)."""
    import mlflow

    # made at import time by mlflow.data.artifact_dataset_sources, so invisible to mypy
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]

    dataset = _events_dataset_class()(
        events,
        source=LocalArtifactDatasetSource(source),
        name="events",
        digest=digest,
        targets=target,
    )
    mlflow.log_input(dataset, context="training")


@functools.cache
def _events_dataset_class():
    """A PandasDataset whose schema is inferred from the first rows only (built lazily, so
    that importing this module does not import mlflow)."""
    import mlflow
    from mlflow.data.pandas_dataset import PandasDataset

    class EventsDataset(PandasDataset):
        @property
        def schema(self):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_SCHEMA_HINT)
                return mlflow.data.from_pandas(self.df.head(DATASET_SCHEMA_ROWS)).schema

    return EventsDataset


# --- runs that never ended ---------------------------------------------------------------------

HOST_TAG, PID_TAG = "skbandit.host", "skbandit.pid"
STALE_AFTER_HOURS = 24
"""A RUNNING run that names no process of this host is stale after this long."""


def process_tags() -> dict[str, str]:
    """The tags that say which process runs a run, so that a later run can tell it was killed
    (:func:`fail_stale_runs`). Every job passes them when it creates its run, so a run killed
    (SIGKILL) at any moment after it exists names its process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def tag_process() -> None:
    """Record which process runs the active run (for a run not started by :func:`start_run`
    or :func:`tracked_run`)."""
    import mlflow

    mlflow.set_tags(process_tags())


def fail_stale_runs(experiment_id: str) -> list[str]:
    """End as ``FAILED`` (with a ``failure_reason``) the RUNNING runs of ``experiment_id``
    whose process is gone: killed (SIGKILL) or the machine stopped. Returns their ids.

    A run is stale when it was started on this host by a process that no longer exists, or
    when it names no process of this host and started more than :data:`STALE_AFTER_HOURS`
    ago. The active run is never touched.
    """
    import mlflow

    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    found = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200
    )
    stale = []
    for run in found:
        if active is not None and run.info.run_id == active.info.run_id:
            continue
        reason = _stale_reason(run)
        if reason is None:
            continue
        try:
            client.set_tag(run.info.run_id, FAILURE_REASON_TAG, reason)
            client.set_terminated(run.info.run_id, "FAILED")
        except Exception:  # another job ended it first: fine
            continue
        stale.append(run.info.run_id)
    return stale


def run_is_running(run_id: str) -> bool:
    """Whether run ``run_id`` exists and is still RUNNING."""
    import mlflow

    try:
        return mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING"
    except Exception:
        return False


def _stale_reason(run) -> str | None:
    tags = run.data.tags
    host, pid = tags.get(HOST_TAG), tags.get(PID_TAG)
    if host == socket.gethostname() and pid and pid.isdigit():
        if _process_exists(int(pid)):
            return None
        return (
            f"stale: process {pid} on {host} ended without finishing the run (killed or "
            "crashed); marked FAILED by a later run"
        )
    age_hours = (time.time() * 1000 - run.info.start_time) / 3_600_000
    if age_hours > STALE_AFTER_HOURS:
        return (
            f"stale: still RUNNING {age_hours:.0f} h after it started and no live process "
            "of this host owns it; marked FAILED by a later run"
        )
    return None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
