"""Log a fitted pipeline as an MLflow model and register it as a new version."""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path

from adapters import tracking
from skbandit import schema
from skbandit.features import feature_set_of

TRAINED_UNTIL_TAG = "trained_until"
RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")
EXAMPLE_ROWS = 5


def pip_requirements() -> list[str]:
    """The serving environment: the packages the adapter imports, pinned to this install."""
    return [f"{name}=={installed_version(name)}" for name in RUNTIME_PACKAGES]


def git_commit() -> str:
    """The code's commit, or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=tracking.REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def request_example(history):
    """A few candidate rows in the REST request schema, taken from the replayed history."""
    rows = history.contexts.head(EXAMPLE_ROWS).astype("float64")
    ids = history.events.head(EXAMPLE_ROWS)[[schema.USER_ID, schema.ITEM_ID]].astype(str)
    return ids.join(rows[list(schema.MODEL_INPUT)])


def log_pipeline(pipeline, history):
    """Log ``pipeline`` to the active run as a models-from-code pyfunc model; return its info.

    The model is ``adapters/model_code.py`` (no pickled code) with the pipeline's ``config.json``
    and ``state.npz`` as artifacts, the ``skbandit`` and ``adapters`` packages as code, pinned
    pip requirements, a signature and a small input example taken from ``history``.
    """
    import mlflow
    from mlflow.models import infer_signature

    from adapters.pyfunc_model import LinUCBModel, default_params, save_pipeline

    example = request_example(history)
    params = default_params(pipeline)
    adapter = LinUCBModel.from_pipeline(pipeline)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # mlflow hints that integer columns cannot hold missing values: the output's rank never does
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, adapter.score(example, params), params=params)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(tracking.REPO_ROOT / "adapters" / "model_code.py"),
            artifacts=save_pipeline(pipeline, Path(tmp)),
            code_paths=[str(tracking.REPO_ROOT / "skbandit"), str(tracking.REPO_ROOT / "adapters")],
            pip_requirements=pip_requirements(),
            signature=signature,
            input_example=(example, params),
        )


def version_tags(pipeline, history, run_id: str, metrics: dict) -> dict[str, str]:
    """What a registered version says about itself (data, code, state, run, final metrics)."""
    return {
        "data_hash": history.data_hash,
        "git_commit": git_commit(),
        "n_updates": str(int(pipeline[-1].n_updates_)),
        "events_trained": str(len(history.events)),
        "run_id": run_id,
        "feature_set": feature_set_of(pipeline),
        TRAINED_UNTIL_TAG: history.events[schema.TIMESTAMP].max().isoformat(),
        **{f"metric.{key}": f"{value:.6f}" for key, value in metrics.items()},
    }


def register_version(model_uri: str, name: str, alias: str, tags: dict[str, str]):
    """Register ``model_uri`` as a new version of ``name``, tag it and point ``alias`` at it.

    All or nothing: the tags are created with the version, and if setting the alias fails
    (or is interrupted) the new version is deleted again before the error propagates, so no
    version without its alias is left behind and the alias never points at a half-made one.
    """
    import mlflow

    client = mlflow.MlflowClient()
    created = mlflow.register_model(model_uri, name, tags=tags)  # tags in the same request
    try:
        version = client.get_model_version(name, created.version)
        client.set_registered_model_alias(name, alias, created.version)  # the last step
    except BaseException:
        client.delete_model_version(name, created.version)
        raise
    return version


def log_and_register(pipeline, history, name: str, alias: str, metrics: dict):
    """:func:`log_pipeline` then :func:`register_version` (the active run's model)."""
    import mlflow

    info = log_pipeline(pipeline, history)
    tags = version_tags(pipeline, history, mlflow.active_run().info.run_id, metrics)
    return register_version(info.model_uri, name, alias, tags)
