"""The MLflow model behind the registry and ``mlflow models serve``: a thin skbandit adapter.

A version stores no pickled code: ``config.json`` (feature set and estimator parameters)
and ``state.npz`` (the LinUCB sufficient statistics) rebuild the pipeline.

REST request: one row per (student, candidate item) with ``user_id``, ``item_id`` and the
raw context columns ``skbandit.schema.MODEL_INPUT``. Optional ``params``: ``alpha``,
``top_k``, ``objective``, ``target``, ``exploration``, ``temperature``, ``seed``. Response:
one record per request row, in request order, with ``expected_reward``, ``uncertainty``,
``ucb``, ``rank`` (within the student), ``recommended`` (rank <= top_k),
``is_exploration``, ``propensity`` and ``model_version``.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from skbandit.policy import rank_requests

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import feature_set_of, make_pipeline
from skbandit.linucb import LinUCB

MAX_REQUEST_ROWS = 10_000
"""Requests with more candidate rows than this are refused with HTTP 400."""

CONFIG_ARTIFACT, STATE_ARTIFACT = "config", "state"
UNREGISTERED = "unregistered"


def default_params(pipeline) -> dict:
    """The request ``params`` and their defaults (alpha defaults to the trained model's)."""
    return {
        "alpha": float(pipeline[-1].alpha),
        "top_k": 5,
        "objective": "max_success",
        "target": 0.7,
        "exploration": "greedy",
        "temperature": 0.05,
        "seed": 0,
    }


def save_pipeline(pipeline, directory: Path) -> dict[str, str]:
    """Write the pipeline's config and state into ``directory``; return the artifact paths."""
    estimator = pipeline[-1]
    config = {"feature_set": feature_set_of(pipeline), "params": estimator.get_params()}
    config_path, state_path = directory / "config.json", directory / "state.npz"
    config_path.write_text(json.dumps(config, indent=2))
    np.savez(state_path, **estimator.get_state())
    return {CONFIG_ARTIFACT: str(config_path), STATE_ARTIFACT: str(state_path)}


def load_pipeline_files(config_path: str, state_path: str):
    """Rebuild a fitted pipeline from the files :func:`save_pipeline` wrote."""
    config = json.loads(Path(config_path).read_text())
    pipeline = make_pipeline(config["feature_set"])
    pipeline.steps[-1] = ("linucb", LinUCB(**config["params"]))
    with np.load(state_path) as state:
        pipeline[-1].set_state({key: state[key] for key in state.files})
    example = pd.DataFrame({column: [0.5] for column in schema.MODEL_INPUT})
    pipeline[0].fit(example)  # the feature maps are stateless; fitting fixes the columns
    return pipeline


class LinUCBModel(mlflow.pyfunc.PythonModel):
    """Scores candidate items for students with a registered LinUCB pipeline."""

    pipeline = None
    model_version = UNREGISTERED

    @classmethod
    def from_pipeline(cls, pipeline, model_version: str = UNREGISTERED) -> LinUCBModel:
        """An adapter around an in-memory pipeline (used to infer the signature)."""
        model = cls()
        model.pipeline, model.model_version = pipeline, model_version
        return model

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        self.pipeline = load_pipeline_files(artifacts[CONFIG_ARTIFACT], artifacts[STATE_ARTIFACT])
        self.model_version = _registered_version(Path(artifacts[CONFIG_ARTIFACT]).parent.parent)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        try:
            return self.score(model_input, {**default_params(self.pipeline), **(params or {})})
        except SkbanditError as error:
            raise MlflowException(str(error), error_code=BAD_REQUEST) from None

    def score(self, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
        """Rank each student's candidate rows; one output row per input row, in input order."""
        if len(frame) > MAX_REQUEST_ROWS:
            raise SkbanditError(
                f"request has {len(frame)} rows; at most {MAX_REQUEST_ROWS} candidate rows are "
                "accepted per request: split it"
            )
        scored = rank_requests(
            self.pipeline,
            frame,
            top_k=int(params["top_k"]),
            alpha=float(params["alpha"]),
            objective=params["objective"],
            target=float(params["target"]),
            exploration=params["exploration"],
            temperature=float(params["temperature"]),
            rng=np.random.default_rng(int(params["seed"])),
        )
        scored["model_version"] = self.model_version
        return scored


def _registered_version(model_dir: Path) -> str:
    """``NAME/VERSION`` of the registry entry built from this model's run, if any."""
    try:
        run_id = mlflow.models.Model.load(model_dir).run_id
        versions = mlflow.MlflowClient().search_model_versions(f"run_id = '{run_id}'")
    except Exception:  # serving must not fail because the registry is out of reach
        return UNREGISTERED
    if not versions:
        return UNREGISTERED
    return f"{versions[0].name}/{versions[0].version}"
