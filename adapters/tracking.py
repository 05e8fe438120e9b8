"""Where the tracking store is, and the experiments our jobs log to.

``MLFLOW_TRACKING_URI`` if set (any MLflow tracking server or database); otherwise the
embedded store ``sqlite:///<project folder>/mlruns/mlflow.db`` with artifacts under
``<project folder>/mlruns/artifacts``. The project folder is the skbandit checkout you work in,
else ``~/.skbandit`` (the one rule, in :mod:`adapters.paths`): the store is never written
inside an installed package. mlflow is imported inside the functions that need it, so that
``--help`` of every command stays instant.

Safety rules every entry point gets from :func:`configure_tracking`:

- a tracking server that does not answer fails fast: each HTTP request times out after
  :data:`HTTP_TIMEOUT_SECONDS` and is retried :data:`HTTP_MAX_RETRIES` times (MLflow's own
  defaults, 120 s and 7 retries, hang for minutes), unless ``MLFLOW_HTTP_REQUEST_TIMEOUT`` /
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` are set; the error then says
  ``cannot reach the tracking server at URI``;
- a URI is only ever printed through :func:`redact_uri` (no ``user:password@``), and MLflow's
  own "View run at URL" line is switched off (``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT``);
- read-only commands pass ``create=False`` and create no folder or database;
- a new SQLite store is created under a file lock beside the database, so that two jobs
  started at once on a new store both succeed.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from adapters import paths
from skbandit.exceptions import SkbanditError

WARMSTART_EXPERIMENT = "skbandit-warmstart"
EVALUATION_EXPERIMENT = "skbandit-evaluation"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
"""Marks our experiments as classic model training (not a GenAI app) in the MLflow UI."""
UI_URL = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` listens by default."""


def runs_page_hint(experiment_id: str, base_url: str = UI_URL) -> str:
    """The UI address of an experiment's training runs.

    MLflow 3.17's UI picks its GenAI or model-training view from ``workflowType`` in the
    address (remembered by the browser afterwards), not from the experiment's kind tag, so
    the address names it.

    >>> runs_page_hint("1")
    'http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning'
    """
    return f"{base_url}/#/experiments/{experiment_id}?workflowType=machine_learning"


HTTP_TIMEOUT_SECONDS = 20
HTTP_MAX_RETRIES = 2
_ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": str(HTTP_TIMEOUT_SECONDS),
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(HTTP_MAX_RETRIES),
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def embedded_tracking_uri() -> str:
    """The embedded store's URI: a SQLite registry in the project folder's ``mlruns/``."""
    return f"sqlite:///{paths.project_dir() / 'mlruns' / 'mlflow.db'}"


def configure_tracking(create: bool = True) -> str:
    """Point mlflow at ``MLFLOW_TRACKING_URI`` or the embedded store; return the URI.

    Called once by each entry point (``main()`` of a job, the CLI callback). With
    ``create=True`` (jobs that write) a SQLite store's folder and tables are created under a
    lock; with ``create=False`` (read-only commands) nothing is created.
    """
    import mlflow

    for name, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or embedded_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    db_path = sqlite_path(uri)
    if create and db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(db_path):
            _open_stores()
    return uri


@contextmanager
def store_lock(db_path: Path) -> Iterator[None]:
    """An exclusive lock on ``<db>.lock`` beside a SQLite database (released on exit)."""
    with open(db_path.with_name(db_path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_stores() -> None:
    """Build the tracking and registry stores (creating a new database's tables)."""
    import mlflow

    client = mlflow.MlflowClient()
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None.

    >>> str(sqlite_path("sqlite:////tmp/store/mlflow.db"))
    '/tmp/store/mlflow.db'
    """
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def redact_uri(uri: str) -> str:
    """``uri`` without the password (and user) of its ``user:password@`` part.

    >>> redact_uri("https://alice:s3cret@mlflow.example.com:5000/path?x=1")
    'https://***@mlflow.example.com:5000/path?x=1'
    >>> redact_uri("sqlite:////tmp/mlflow.db")
    'sqlite:////tmp/mlflow.db'
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URI in it replaced by ``***@``.

    >>> redact_text("API request to http://bob:pw@host:5000/api failed")
    'API request to http://***@host:5000/api failed'
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)


def raise_if_unreachable(error: BaseException) -> None:
    """Raise a one-line SkbanditError if ``error`` means the tracking server did not answer."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return
    text = str(error)
    if isinstance(error, OSError) or ("API request to" in text and "failed with exception" in text):
        raise SkbanditError(
            f"cannot reach the tracking server at {redact_uri(uri)} (no answer after "
            f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', HTTP_MAX_RETRIES)} retries); "
            "check that it is running and that MLFLOW_TRACKING_URI is right"
        ) from None


def use_experiment(name: str) -> str:
    """Create (if needed) and activate an experiment; return its id.

    With a SQLite store, artifacts go next to the database (``<db dir>/artifacts``) rather
    than into the current directory, so a temporary store stays self-contained. Another job
    creating the same experiment at the same moment is fine.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        db_path = sqlite_path(mlflow.get_tracking_uri())
        location = (db_path.parent / "artifacts").resolve().as_uri() if db_path else None
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by a concurrent job in between
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    if experiment is None or EXPERIMENT_KIND_TAG not in experiment.tags:
        mlflow.MlflowClient().set_experiment_tag(
            experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
        )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
