"""Where the tracking store is, and the experiments our jobs log to.

The embedded store is ``sqlite:///<repo>/mlruns/mlflow.db`` with artifacts under
``<repo>/mlruns/artifacts``; ``MLFLOW_TRACKING_URI`` points everything at another store
(any MLflow tracking server). mlflow is imported inside the functions that need it, so that
``--help`` of every command stays instant.
"""

import os
from pathlib import Path

WARMSTART_EXPERIMENT = "skbandit-warmstart"
EVALUATION_EXPERIMENT = "skbandit-evaluation"
REPO_ROOT = Path(__file__).resolve().parent.parent


def embedded_tracking_uri() -> str:
    """The embedded store's URI: a SQLite registry inside the repo's ``mlruns/``."""
    return f"sqlite:///{REPO_ROOT / 'mlruns' / 'mlflow.db'}"


def configure_tracking() -> str:
    """Point mlflow at ``MLFLOW_TRACKING_URI`` or the embedded store; return the URI.

    Called once by each entry point (``main()`` of a job, the CLI callback).
    """
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or embedded_tracking_uri()
    db_path = sqlite_path(uri)
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None.

    >>> str(sqlite_path("sqlite:////tmp/store/mlflow.db"))
    '/tmp/store/mlflow.db'
    """
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def use_experiment(name: str) -> str:
    """Create (if needed) and activate an experiment; return its id.

    With a SQLite store, artifacts go next to the database (``<db dir>/artifacts``) rather
    than into the current directory, so a temporary store stays self-contained.
    """
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        db_path = sqlite_path(mlflow.get_tracking_uri())
        location = (db_path.parent / "artifacts").resolve().as_uri() if db_path else None
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
