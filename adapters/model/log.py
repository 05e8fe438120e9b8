"""Log a trained model (:class:`skbandit.model.TrainedModel`) to MLflow: its files, its
signature, its run details and the tags that identify its version (registering it:
:mod:`adapters.registry.register`)."""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path

import skbandit
from adapters import paths
from adapters.model.format import DATA_FOLDER, STATE_FORMAT, save_model
from skbandit import schema

TRAINED_UNTIL_TAG = "trained_until"
RUNTIME_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")
EXAMPLE_ROWS = 5


def pip_requirements() -> list[str]:
    """The serving environment: the packages the adapter imports, pinned to this install."""
    return [f"{name}=={installed_version(name)}" for name in RUNTIME_PACKAGES]


def git_commit() -> str:
    """The code's commit, or ``unknown`` for an installed package or outside a git checkout."""
    checkout = paths.source_checkout()
    if checkout is None:  # git would name the commit of whatever repo holds site-packages
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=checkout,
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


def optional_inputs(inputs):
    """The inferred input schema with :data:`adapters.model.requests.OPTIONAL_INPUTS` optional.

    A request may leave ``guessing`` out (it then means 0), so the signature must not make
    MLflow refuse such a request before the model sees it.
    """
    from mlflow.types import ColSpec, Schema

    from adapters.model.requests import OPTIONAL_INPUTS

    return Schema(
        [
            ColSpec(spec.type, spec.name, required=spec.name not in OPTIONAL_INPUTS)
            for spec in inputs.inputs
        ]
    )


def log_trained_model(model, history):
    """Log ``model`` to the active run as data read by installed code; return its info.

    The model's ``MLmodel`` names the loader :mod:`adapters.model.flavor` and ``data/skbandit/``
    holds ``config.json`` and ``state.npz``; no Python file, pickle or local path is stored.
    Pinned pip requirements, a signature (``guessing`` optional) and a small input example
    (from ``history``) come with it.
    """
    import mlflow
    from mlflow.models import infer_signature

    from adapters.model.flavor import LOADER_MODULE
    from adapters.model.pyfunc import LinUCBModel, decisions_not_logged, default_params

    example = request_example(history)
    params = default_params(model)
    adapter = LinUCBModel.from_model(model)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), decisions_not_logged():
        # mlflow hints that integer columns cannot hold missing values: the output's rank never does
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(example, adapter.score(example, params), params=params)
        signature.inputs = optional_inputs(signature.inputs)
        log_run_details(model, history)
        return mlflow.pyfunc.log_model(
            name="model",
            loader_module=LOADER_MODULE,
            data_path=str(save_model(model, Path(tmp) / DATA_FOLDER)),
            pip_requirements=pip_requirements(),
            signature=signature,
            input_example=(example, params),
        )


def version_tags(history) -> dict:
    """The tags that identify a registered version: the data it learned (``data_hash``;
    the job adds :func:`adapters.data.identity.identity_tags`) and until when it learned
    (:data:`TRAINED_UNTIL_TAG`); the gate adds its verdict. Everything else about the
    version (code, state format, update and event counts, metrics) is on its run
    (:func:`log_run_details`, ``final_*``), where the registry UI does not cut it off; the
    version records its run itself (``version.run_id``)."""
    return {
        "data_hash": history.data_hash,
        TRAINED_UNTIL_TAG: history.trained_until.isoformat(),
    }


RUN_DETAIL_PARAMS = ("git_commit", "skbandit_version", "state_format")
RUN_DETAIL_METRICS = ("n_updates", "events_trained")
"""What a version's run says about it beyond its tags (versions registered before the
move carry these as version tags; :func:`adapters.registry.version_details` reads both)."""


def log_run_details(model, history) -> None:
    """The code, state format and counts of the model being logged, on the active run."""
    from adapters import runs

    runs.log_params(
        {
            "git_commit": git_commit(),
            "skbandit_version": skbandit.__version__,
            "state_format": str(STATE_FORMAT),
        }
    )
    runs.log_metrics(
        {"n_updates": int(model.estimator.n_updates_), "events_trained": int(history.n_events)}
    )
