"""The MLflow model behind the registry and ``mlflow models serve``: a thin skbandit adapter.

A version stores no pickled code: ``config.json`` (feature set and estimator parameters)
and ``state.npz`` (the LinUCB sufficient statistics) rebuild the pipeline.

REST request: one row per (student, candidate item) with ``user_id``, ``item_id`` and the
raw context columns ``skbandit.schema.MODEL_INPUT``. Optional ``params``: ``alpha``,
``top_k``, ``objective``, ``target``, ``exploration``, ``temperature``, ``seed``. Response:
one record per request row, in request order, with ``expected_reward``, ``uncertainty``,
``ucb``, ``rank`` (within the student), ``recommended`` (rank <= top_k),
``is_exploration``, ``propensity`` and ``model_version``.

Every bad request (a missing column, a wrong type, a null, an out-of-range value or
parameter, an empty frame, more than ``MAX_REQUEST_ROWS`` rows) is answered with HTTP 400
and a one-line message; nothing reaches the client as a stack trace.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST

from adapters.model_format import (
    CONFIG_ARTIFACT,
    STATE_ARTIFACT,
    load_pipeline_files,
    save_pipeline,
)
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import model_input_array
from skbandit.policy import SERVING_OBJECTIVE, rank_requests

MAX_REQUEST_ROWS = 10_000
"""Requests with more candidate rows than this are refused with HTTP 400."""

UNREGISTERED = "unregistered"
REGISTERED_META_FILE = "registered_model_meta"  # written by mlflow when it loads models:/ URIs

PROBABILITY_COLUMNS = (
    schema.MASTERY,
    schema.RECENT_ACCURACY,
    schema.RECENT_SPEED,
    schema.HELP_TENDENCY,
    schema.SKILL_GAP,
    schema.ITEM_ACCURACY,
)
"""Model inputs that are probabilities or normalised values: each must lie in [0, 1]."""
REQUEST_COLUMNS = (schema.USER_ID, schema.ITEM_ID, *schema.MODEL_INPUT)
_LOW = np.array(
    [
        0.0 if c in (*PROBABILITY_COLUMNS, schema.ITEM_ATTEMPTS) else -math.inf
        for c in schema.MODEL_INPUT
    ]
)
_HIGH = np.array([1.0 if c in PROBABILITY_COLUMNS else math.inf for c in schema.MODEL_INPUT])

_logger = logging.getLogger(__name__)


def default_params(pipeline) -> dict:
    """The request ``params`` and their defaults (alpha defaults to the trained model's)."""
    return {
        "alpha": float(pipeline[-1].alpha),
        "top_k": 5,
        "objective": SERVING_OBJECTIVE,
        "target": 0.7,
        "exploration": "greedy",
        "temperature": 0.05,
        "seed": 0,
    }


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
        """Score a request; any problem becomes an HTTP 400 with a one-line message."""
        try:
            return self.score(model_input, {**default_params(self.pipeline), **(params or {})})
        except SkbanditError as error:
            raise MlflowException(str(error), error_code=BAD_REQUEST) from None
        except Exception as error:  # never a stack trace for the client; keep it in the log
            _logger.exception("unexpected error while scoring a request")
            raise MlflowException(
                f"could not score the request ({type(error).__name__}: {error}); check it "
                f"against the schema in the README",
                error_code=BAD_REQUEST,
            ) from None

    def score(self, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
        """Rank each student's candidate rows; one output row per input row, in input order."""
        frame = check_request(frame)
        top_k, alpha, target, temperature, seed = check_params(params)
        scored = rank_requests(
            self.pipeline,
            frame,
            top_k=top_k,
            alpha=alpha,
            objective=params["objective"],
            target=target,
            exploration=params["exploration"],
            temperature=temperature,
            rng=np.random.default_rng(seed),
        )
        scored["model_version"] = self.model_version
        return scored


def check_request(frame) -> pd.DataFrame:
    """The request frame with string ids, or a SkbanditError saying what is wrong with it.

    The common case (mlflow has already converted the columns to the signature's types) is a
    few vectorised checks; only a failing request pays for finding the offending cell.
    """
    if not isinstance(frame, pd.DataFrame):
        raise SkbanditError(
            f"request must be a table (dataframe_split or dataframe_records), got "
            f"{type(frame).__name__}"
        )
    if len(frame) == 0:
        raise SkbanditError("request has no rows (expected one row per student and candidate item)")
    if len(frame) > MAX_REQUEST_ROWS:
        raise SkbanditError(
            f"request has {len(frame)} rows; at most {MAX_REQUEST_ROWS} candidate rows are "
            "accepted per request: split it"
        )
    missing = [column for column in REQUEST_COLUMNS if column not in frame.columns]
    if missing:
        raise SkbanditError(
            f"request is missing columns {missing} (expected {list(REQUEST_COLUMNS)})"
        )
    changed = {}
    for column in (schema.USER_ID, schema.ITEM_ID):
        ids = frame[column]
        _no_nulls(np.asarray(ids.array.isna()), column, "a string id")
        if not pd.api.types.is_string_dtype(ids):
            changed[column] = ids.astype(str)
    values = _numeric_values(frame)
    if not np.isfinite(values).all():
        _no_nulls(np.isnan(values), None, "a finite number")
        _first_bad(np.isinf(values), "must be a finite number", values)
    _first_bad((values < _LOW) | (values > _HIGH), "must lie in [{low}, {high}]", values)
    dtypes = frame.dtypes
    for j, column in enumerate(schema.MODEL_INPUT):
        if dtypes[column] != np.float64:
            changed[column] = values[:, j]
    return frame.assign(**changed) if changed else frame


def _numeric_values(frame: pd.DataFrame) -> np.ndarray:
    """The model inputs as a float array; a non-number is named with its column and row."""
    try:
        return model_input_array(frame)
    except (TypeError, ValueError):
        pass
    numeric = frame[list(schema.MODEL_INPUT)]
    for column in schema.MODEL_INPUT:
        coerced = pd.to_numeric(numeric[column], errors="coerce")
        not_numbers = (coerced.isna() & numeric[column].notna()).to_numpy()
        if not_numbers.any():
            row = int(np.flatnonzero(not_numbers)[0])
            raise SkbanditError(
                f"column {column!r} must be numeric; row {row} has {numeric[column].iloc[row]!r}"
            )
    raise SkbanditError(f"columns {list(schema.MODEL_INPUT)} must be numeric")


def _first_bad(bad: np.ndarray, problem: str, values: np.ndarray) -> None:
    if not bad.any():
        return
    row, j = (int(k[0]) for k in np.nonzero(bad))
    column = schema.MODEL_INPUT[j]
    problem = problem.format(low=_LOW[j], high=_HIGH[j])
    raise SkbanditError(f"column {column!r} {problem}; row {row} has {values[row, j]}")


def check_params(params: dict) -> tuple[int, float, float, float, int]:
    """``top_k, alpha, target, temperature, seed`` checked; SkbanditError names a bad one."""
    top_k, seed = params["top_k"], params["seed"]
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise SkbanditError(f"param top_k must be a positive integer, got {top_k!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SkbanditError(f"param seed must be a non-negative integer, got {seed!r}")
    alpha = _number(params, "alpha", 0.0, math.inf)
    target = _number(params, "target", 0.0, 1.0)
    temperature = _number(params, "temperature", 0.0, math.inf)
    if temperature == 0.0:
        raise SkbanditError("param temperature must be > 0, got 0")
    return int(top_k), alpha, target, temperature, int(seed)


def _number(params: dict, name: str, low: float, high: float) -> float:
    value = params[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SkbanditError(f"param {name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise SkbanditError(f"param {name} must lie in [{low}, {high}], got {value!r}")
    return number


def _no_nulls(nulls: np.ndarray, column: str | None, expected: str) -> None:
    """Refuse nulls; ``nulls`` is a mask of one column, or of the model inputs (2-D)."""
    if not nulls.any():
        return
    if nulls.ndim == 2:
        row, j = (int(k[0]) for k in np.nonzero(nulls))
        column = schema.MODEL_INPUT[j]
    else:
        row = int(np.flatnonzero(nulls)[0])
    raise SkbanditError(f"column {column!r} has a null in row {row} (expected {expected})")


def _registered_version(model_dir: Path) -> str:
    """``NAME/VERSION`` of the registry entry this model was loaded as, if any.

    mlflow writes ``registered_model_meta`` when it resolves a ``models:/`` URI (alias or
    version), so that file names exactly the version being served; otherwise the registry
    is asked for a version built from this model's run.
    """
    meta = _read_meta(model_dir / REGISTERED_META_FILE)
    if meta.get("model_name") and meta.get("model_version"):
        return f"{meta['model_name']}/{meta['model_version']}"
    try:
        run_id = mlflow.models.Model.load(model_dir).run_id
        versions = mlflow.MlflowClient().search_model_versions(f"run_id = '{run_id}'")
    except Exception:  # serving must not fail because the registry is out of reach
        return UNREGISTERED
    if not versions:
        return UNREGISTERED
    return f"{versions[0].name}/{versions[0].version}"


def _read_meta(path: Path) -> dict[str, str]:
    """The ``key: value`` lines of mlflow's small registered-model metadata file."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.partition(":") for line in lines)
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


__all__ = [
    "MAX_REQUEST_ROWS",
    "LinUCBModel",
    "check_params",
    "check_request",
    "default_params",
    "load_pipeline_files",
    "save_pipeline",
]
