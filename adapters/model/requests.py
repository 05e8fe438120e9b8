"""What a REST request to the served model may contain: its rows and its ``params``.

:func:`check_request` checks the table (one row per student and candidate item) and
:func:`check_params` turns the request's ``params`` into
:class:`~skbandit.ranking_settings.RankingSettings` and a seed. Both raise a one-line
:class:`~skbandit.exceptions.SkbanditError` for anything the client got wrong, which
:class:`adapters.model.pyfunc.LinUCBModel` answers with HTTP 400.

``guessing`` (the item's 3PL c) is the one optional model input: a request without the
column, or with a blank in it, means ``c = 0`` (the 2PL), so clients written before it was
added, stored input examples and versions whose signature lacks it keep working (MLflow
drops a column its signature does not name, and this module then fills in 0).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.cleaning import MAX_ABS_DIFFICULTY, MAX_DISCRIMINATION
from skbandit.exceptions import SkbanditError
from skbandit.features import model_input_array
from skbandit.ranking_settings import REST_SETTINGS, RankingSettings
from skbandit.uncertainty import INTERVAL_INPUTS

MAX_REQUEST_ROWS = 10_000
"""Requests with more candidate rows than this are refused with HTTP 400."""
NO_SEED = -1
"""The ``seed`` param's default: draw from the server's generator (seeded from OS entropy
once per process). A seed >= 0 reproduces a draw, and the decision is logged as seeded."""
PROBABILITY_COLUMNS = (
    schema.MASTERY,
    schema.RECENT_ACCURACY,
    schema.RECENT_SPEED,
    schema.HELP_TENDENCY,
    schema.SKILL_GAP,
    schema.ITEM_ACCURACY,
)
"""Model inputs that are probabilities or normalised values: each must lie in [0, 1]."""
OPTIONAL_INPUTS = {schema.GUESSING: 0.0}
"""Model inputs a request may leave out (or blank), with the value they then take."""
REQUEST_COLUMNS = (schema.USER_ID, schema.ITEM_ID, *schema.MODEL_INPUT)
"""Every column a request row can carry."""
REQUIRED_COLUMNS = tuple(c for c in REQUEST_COLUMNS if c not in OPTIONAL_INPUTS)
"""The columns a request must have."""
ID_COLUMNS = (schema.USER_ID, schema.ITEM_ID)
MAX_ITEM_ATTEMPTS = 1e9
"""``item_attempts`` must lie in [0, 1e9]."""
RANGES = {
    **{column: (0.0, 1.0) for column in PROBABILITY_COLUMNS},
    schema.DIFFICULTY: (-MAX_ABS_DIFFICULTY, MAX_ABS_DIFFICULTY),
    schema.DISCRIMINATION: (0.0, MAX_DISCRIMINATION),  # 0 itself excluded (_OPEN_LOW)
    schema.ITEM_ATTEMPTS: (0.0, MAX_ITEM_ATTEMPTS),
    schema.GUESSING: (0.0, 1.0),  # 1 itself excluded (_OPEN_HIGH)
}
"""The documented range of every model input (the items loader checks the same bounds)."""
_LOW = np.array([RANGES.get(c, (-math.inf, math.inf))[0] for c in schema.MODEL_INPUT])
_HIGH = np.array([RANGES.get(c, (-math.inf, math.inf))[1] for c in schema.MODEL_INPUT])
_OPEN_LOW = np.array([c == schema.DISCRIMINATION for c in schema.MODEL_INPUT])
_OPEN_HIGH = np.array([c == schema.GUESSING for c in schema.MODEL_INPUT])


def default_params(model) -> dict:
    """The request ``params`` and their defaults (alpha defaults to the trained model's).

    The served defaults are :data:`skbandit.ranking_settings.REST_SETTINGS` (softmax with
    an epsilon floor of 0.1); the names and types are the model signature's parameter
    schema. ``topic`` (optional) is recorded with the logged decision.
    """
    served = REST_SETTINGS
    return {
        "alpha": float(model.estimator.alpha),
        "top_k": served.top_k,
        "objective": served.objective.value,
        "target": served.target,
        "exploration": served.exploration.value,
        "temperature": served.temperature,
        "epsilon": served.epsilon,
        "seed": NO_SEED,
        "topic": "",
    }


def check_params(params: dict) -> tuple[RankingSettings, int | None]:
    """The ranking settings and seed (None: unseeded) a request asks for.

    Parameters missing from ``params`` take the served defaults; SkbanditError names a bad
    param.

    >>> settings, seed = check_params({"top_k": 3, "seed": 7})
    >>> settings.top_k, settings.objective.value, settings.epsilon, seed
    (3, 'target_band', 0.1, 7)
    >>> check_params({"seed": -1})[1] is None
    True
    """
    seed = params.get("seed", NO_SEED)
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or (seed < 0 and seed != NO_SEED)
    ):
        raise SkbanditError(
            f"param seed must be a non-negative integer (or {NO_SEED} for an "
            f"unseeded draw), got {seed!r}"
        )
    settings = RankingSettings.from_values(params, label="param {}", base=REST_SETTINGS)
    return settings, None if seed == NO_SEED else int(seed)


def check_topic(params: dict) -> str | None:
    """The request's optional ``topic`` param (None when absent or empty)."""
    topic = params.get("topic") or None
    if topic is not None and not isinstance(topic, str):
        raise SkbanditError(f"param topic must be a string, got {topic!r}")
    return topic


class CheckedRequest(NamedTuple):
    """A checked request as arrays: what ranking and the decision log read, built once."""

    user_ids: np.ndarray
    """Object array of ``str``, one per row."""
    item_ids: np.ndarray
    """Object array of ``str``, one per row."""
    inputs: np.ndarray
    """C-contiguous float64 of shape (n_rows, len(schema.MODEL_INPUT)), in that column order,
    with every optional input filled in (:data:`OPTIONAL_INPUTS`)."""
    frame_index: pd.Index | None = None
    """The request frame's index (None for a request read from JSON)."""


def request_interval_inputs(request: CheckedRequest) -> dict:
    """The columns of a checked request the success interval reads
    (:func:`skbandit.uncertainty.interval_of_columns`): views of its model-input array. A REST
    row carries no ``ability_sd``, so the version's typical ability error is used."""
    return {name: request.inputs[:, schema.MODEL_INPUT.index(name)] for name in INTERVAL_INPUTS}


def checked_request(frame) -> CheckedRequest:
    """The request table as arrays, or a SkbanditError saying what is wrong with it.

    The common case (mlflow has already converted the columns to the signature's types) is a
    few vectorised checks; only a failing request pays for finding the offending cell.
    """
    if not isinstance(frame, pd.DataFrame):
        raise SkbanditError(
            f"request must be a table (dataframe_split or dataframe_records), got "
            f"{type(frame).__name__}"
        )
    _check_row_count(len(frame))
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise SkbanditError(
            f"request is missing columns {missing} (expected {list(REQUIRED_COLUMNS)}, and "
            f"optionally {list(OPTIONAL_INPUTS)})"
        )
    frame = _with_optional_inputs(frame)
    ids = []
    for column in ID_COLUMNS:
        column_ids = frame[column]
        _no_nulls(np.asarray(column_ids.array.isna()), column, "a string id")
        if not pd.api.types.is_string_dtype(column_ids):
            column_ids = column_ids.astype(str)
        ids.append(column_ids.to_numpy(dtype=object))
    values = _numeric_values(frame)
    check_input_values(values)
    return CheckedRequest(ids[0], ids[1], values, frame.index)


def check_request(frame) -> pd.DataFrame:
    """The request frame with string ids, float inputs and the optional inputs filled in, or a
    SkbanditError saying what is wrong with it (the checks of :func:`checked_request`)."""
    checked = checked_request(frame)
    frame = _with_optional_inputs(frame)
    changed = {
        column: frame[column].astype(str)
        for column in ID_COLUMNS
        if not pd.api.types.is_string_dtype(frame[column])
    }
    dtypes = frame.dtypes
    for j, column in enumerate(schema.MODEL_INPUT):
        if dtypes[column] != np.float64:
            changed[column] = checked.inputs[:, j]
    return frame.assign(**changed) if changed else frame


def check_input_values(values: np.ndarray) -> None:
    """Refuse a null, an infinity or a value outside its documented range (:data:`RANGES`)
    in a model-input array, naming the first such cell."""
    if not np.isfinite(values).all():
        _no_nulls(np.isnan(values), None, "a finite number")
        _first_bad(np.isinf(values), "must be a finite number", values)
    outside = (
        (values < _LOW)
        | (values > _HIGH)
        | (_OPEN_LOW & (values == _LOW))
        | (_OPEN_HIGH & (values == _HIGH))
    )
    _first_bad(outside, "must lie in {interval}", values)


def _check_row_count(n_rows: int) -> None:
    if n_rows == 0:
        raise SkbanditError("request has no rows (expected one row per student and candidate item)")
    if n_rows > MAX_REQUEST_ROWS:
        raise SkbanditError(
            f"request has {n_rows} rows; at most {MAX_REQUEST_ROWS} candidate rows are "
            "accepted per request: split it"
        )


def _with_optional_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every :data:`OPTIONAL_INPUTS` column, its default where absent or blank
    (the frame itself when nothing is missing)."""
    filled = {}
    for column, default in OPTIONAL_INPUTS.items():
        if column not in frame.columns:
            filled[column] = default
        elif frame[column].isna().any():
            filled[column] = frame[column].where(frame[column].notna(), default)
    return frame.assign(**filled) if filled else frame


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
    interval = f"{'(' if _OPEN_LOW[j] else '['}{_LOW[j]}, {_HIGH[j]}{')' if _OPEN_HIGH[j] else ']'}"
    problem = problem.format(interval=interval)
    raise SkbanditError(f"column {column!r} {problem}; row {row} has {values[row, j]}")


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


PARAM_TYPES = {
    "alpha": float,
    "top_k": int,
    "objective": str,
    "target": float,
    "exploration": str,
    "temperature": float,
    "epsilon": float,
    "seed": int,
    "topic": str,
}
"""The request ``params`` and their JSON types (an int is accepted where a float is)."""
_NUMBER = (int, float)
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string"}


def check_request_json(payload, known_params=None) -> None:
    """Refuse a parsed JSON request whose rows or ``params`` are of the wrong kind.

    MLflow converts a request's values to the signature's types before the model sees them
    (``true`` becomes 1.0, ``["a"]`` the string ``"['a']"``) and drops ``params`` the
    signature does not name, so these checks run on the raw JSON (``skbandit serve``'s
    guard calls this before MLflow parses the body). ``known_params``: the param names the
    served version knows (default: :data:`PARAM_TYPES`).

    >>> check_request_json({"dataframe_records": [{"user_id": "a"}]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    skbandit.exceptions.SkbanditError: request is missing columns ['item_id', 'mastery', ...
    >>> check_request_json({"dataframe_split": {"columns": ["x"], "data": [[1]]},
    ...                     "params": {"topk": 3}})
    Traceback (most recent call last):
    ...
    skbandit.exceptions.SkbanditError: unknown param 'topk' (known: alpha, epsilon, \
exploration, objective, seed, target, temperature, top_k, topic)
    """
    if not isinstance(payload, dict):
        raise SkbanditError(
            f"request JSON must be an object with dataframe_split or "
            f"dataframe_records, got {type(payload).__name__}"
        )
    _check_params_json(payload.get("params"), known_params)
    if "dataframe_split" in payload:
        columns = _split_columns(payload["dataframe_split"])
    elif "dataframe_records" in payload:
        columns = _records_columns(payload["dataframe_records"])
    else:
        keys = ", ".join(sorted(map(str, payload))) or "none"
        raise SkbanditError(
            f"request JSON must have dataframe_split or dataframe_records (keys given: {keys})"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SkbanditError(
            f"request is missing columns {missing} (a request row has "
            f"{', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_INPUTS)})"
        )
    for column, types in columns.items():
        if column in ID_COLUMNS:
            bad = types - {str, int, type(None)}
            expected = "a string id"
        elif column in schema.MODEL_INPUT:
            bad = types - {int, float, type(None)}
            expected = "a number"
        else:
            continue
        if bad:
            raise SkbanditError(
                f"column {column!r} must hold {expected}, got a JSON "
                f"{_json_kind(sorted(bad, key=str)[0])}"
            )


def _check_params_json(params, known_params) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        raise SkbanditError(f"params must be a JSON object, got a JSON {_json_kind(type(params))}")
    known = set(PARAM_TYPES if known_params is None else known_params)
    for name, value in params.items():
        if name not in known:
            raise SkbanditError(f"unknown param {name!r} (known: {', '.join(sorted(known))})")
        wanted = PARAM_TYPES.get(name)
        if wanted is None:
            continue
        accepted = _NUMBER if wanted is float else (wanted,)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise SkbanditError(
                f"param {name} must be {_TYPE_NAMES[wanted]}, got a JSON "
                f"{_json_kind(type(value))} ({json_text(value)})"
            )


def _split_columns(split) -> dict:
    """{column: set of value types} of a ``dataframe_split`` object."""
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list):
        raise SkbanditError(
            "dataframe_split must be an object with a columns list and a data list of rows"
        )
    columns, data = split["columns"], split.get("data")
    if not all(isinstance(c, str) for c in columns):
        raise SkbanditError("dataframe_split columns must be strings")
    if not isinstance(data, list) or not all(type(row) is list for row in data):
        raise SkbanditError("dataframe_split data must be a list of rows (lists)")
    if any(len(row) != len(columns) for row in data):
        raise SkbanditError(
            f"every dataframe_split row must have {len(columns)} values (one per column)"
        )
    if not data:
        return {c: set() for c in columns}
    return {
        c: set(map(type, values))
        for c, values in zip(columns, zip(*data, strict=True), strict=True)
    }


def _records_columns(records) -> dict:
    """{column: set of value types} of a ``dataframe_records`` list."""
    if not isinstance(records, list) or not all(type(r) is dict for r in records):
        raise SkbanditError("dataframe_records must be a list of objects (one per row)")
    types: dict = {}
    for record in records:
        for column, value in record.items():
            types.setdefault(column, set()).add(type(value))
    return types


def _json_kind(kind) -> str:
    return {
        bool: "boolean",
        list: "list",
        dict: "object",
        str: "string",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(kind, kind.__name__)


def json_text(value) -> str:
    """A short JSON rendering of ``value`` for an error message."""
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
