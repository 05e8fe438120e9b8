"""``/invocations`` for a JSON table, answered without pandas: ``skbandit serve``'s fast path.

MLflow's scoring app turns a JSON request into a DataFrame, converts it to the signature's
types, enforces the signature again inside ``PyFuncModel.predict``, calls the model, turns
its answer into records and writes them with the pure-Python JSON encoder. For a plain
``dataframe_split`` or ``dataframe_records`` table of strings and numbers :class:`FastJSON`
does the same work once, on arrays: it reads the rows into a
:class:`~adapters.model.requests.CheckedRequest` (columns the signature does not name are
dropped and params get the signature's defaults and types, as MLflow does), calls
:meth:`adapters.model.pyfunc.LinUCBModel.serve_request` (the checks, ranking and decision
log of ``predict``) and writes ``{"predictions": [...]}`` byte for byte as MLflow would.

Anything else goes to MLflow's app unchanged: other paths and content types, a request of
another shape, and every request the checks refuse (so a bad request gets MLflow's answer,
the one the tests pin). Errors raised while serving (a bad param, a decision log that cannot
be written) are answered as MLflow answers them: ``{"error_code", "message"}`` with the
exception's HTTP status.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np

from adapters.model.requests import (
    ID_COLUMNS,
    MAX_REQUEST_ROWS,
    OPTIONAL_INPUTS,
    REQUIRED_COLUMNS,
    CheckedRequest,
    check_input_values,
)
from skbandit import schema
from skbandit.exceptions import SkbanditError

FORMATS = ("dataframe_split", "dataframe_records")
_NUMBER_TYPES = frozenset({int, float, type(None)})
_ID_TYPES = frozenset({str, int})


class FastJSON:
    """ASGI app: a JSON table to ``/invocations`` scored through ``serve_request``, anything
    else passed to ``fallback`` (MLflow's scoring app for the same loaded model)."""

    def __init__(self, fallback, served, input_schema, param_specs, timeout: float):
        self.fallback = fallback
        self.served = served
        self.input_names = frozenset(input_schema.input_names())
        self.required = frozenset(input_schema.required_input_names()) | set(REQUIRED_COLUMNS)
        self.param_specs = param_specs
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope.get("path") != "/invocations"
            or scope.get("method") != "POST"
            or not _plain_json(scope)
        ):
            return await self.fallback(scope, receive, send)
        body = await _read_body(receive)
        try:  # off the event loop, as MLflow's app scores
            answered = await asyncio.wait_for(asyncio.to_thread(self.handle, body), self.timeout)
        except TimeoutError:  # as MLflow's timeout middleware answers
            answered = 504, b"Request processing time exceeded limit"
        if answered is None:
            return await self.fallback(scope, _replay(body, receive), send)
        await _respond(send, *answered)

    def handle(self, body: bytes) -> tuple[int, bytes] | None:
        """The HTTP status and body for a request body, None to leave it to MLflow's app."""
        request, params = self.parse(body)
        return None if request is None else self.answer(request, params)

    def parse(self, body: bytes):
        """``(CheckedRequest, params)`` of a plain, valid JSON table, else ``(None, None)``."""
        from mlflow.exceptions import MlflowException

        try:
            payload = json.loads(body)
            if not isinstance(payload, dict) or set(payload) - {*FORMATS, "params"}:
                return None, None
            params = self._params(payload.get("params"))
            formats = [f for f in FORMATS if f in payload]
            if params is None or len(formats) != 1:
                return None, None
            columns = _table_columns(payload[formats[0]], formats[0])
            return (None, None) if columns is None else (self._request(columns), params)
        except (
            MlflowException,
            SkbanditError,
            TypeError,
            ValueError,
            OverflowError,
            RecursionError,
        ):
            return None, None  # a param MLflow refuses, a bad value: MLflow's app answers

    def answer(self, request: CheckedRequest, params: dict) -> tuple[int, bytes]:
        """The HTTP status and body of a parsed request, as MLflow's app would give them."""
        from mlflow.exceptions import MlflowException

        try:
            columns = self.served.serve_request(request, params)
        except MlflowException as error:
            return error.get_http_status_code(), error.serialize_as_json().encode()
        names = list(columns)
        values = [_listed(columns[name]) for name in names]
        records = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        return 200, json.dumps({"predictions": records}).encode()

    def _params(self, given):
        """The params as MLflow's schema enforcement gives them (None: leave it to MLflow)."""
        from mlflow.types.schema import ParamSpec

        given = {} if given is None else given
        if not isinstance(given, dict) or set(given) - {spec.name for spec in self.param_specs}:
            return None
        return {
            spec.name: ParamSpec.validate_param_spec(given[spec.name], spec)
            if spec.name in given
            else spec.default
            for spec in self.param_specs
        }

    def _request(self, columns: dict) -> CheckedRequest:
        """The checked request of a table's columns (lists of JSON values)."""
        columns = {name: values for name, values in columns.items() if name in self.input_names}
        if any(name not in columns for name in self.required):
            raise SkbanditError("missing columns")
        n_rows = len(columns[schema.USER_ID])
        if not 0 < n_rows <= MAX_REQUEST_ROWS:
            raise SkbanditError("row count")
        ids = []
        for name in ID_COLUMNS:
            values = columns[name]
            kinds = set(map(type, values))
            if not kinds <= _ID_TYPES:
                raise SkbanditError("ids")
            ids.append(np.array(values if kinds == {str} else list(map(str, values)), object))
        inputs = np.empty((n_rows, len(schema.MODEL_INPUT)))
        for j, name in enumerate(schema.MODEL_INPUT):
            values = columns.get(name)
            if values is None:
                inputs[:, j] = OPTIONAL_INPUTS[name]
                continue
            if not set(map(type, values)) <= _NUMBER_TYPES:
                raise SkbanditError("numbers")
            inputs[:, j] = np.array(values, dtype=np.float64)
            if name in OPTIONAL_INPUTS:
                inputs[np.isnan(inputs[:, j]), j] = OPTIONAL_INPUTS[name]
        check_input_values(inputs)
        return CheckedRequest(ids[0], ids[1], inputs)


def fast_json_app(fallback, model):
    """:class:`FastJSON` in front of ``fallback`` when ``model`` (a loaded pyfunc) is
    skbandit's with an input and a params signature, else ``fallback`` itself."""
    from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT

    raw = model.get_raw_model() if hasattr(model, "get_raw_model") else None
    metadata = model.metadata
    inputs = metadata.get_input_schema() if metadata else None
    params = metadata.get_params_schema() if metadata else None
    if not hasattr(raw, "serve_request") or inputs is None or params is None:
        return fallback
    timeout = MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.get()
    return FastJSON(fallback, raw, inputs, params.params, timeout)


def _table_columns(table, orient: str) -> dict | None:
    """{column: list of values} of a ``dataframe_split`` or ``dataframe_records`` table
    (None: not a plain table; a missing record key is a null, as in pandas)."""
    if orient == "dataframe_split":
        if not isinstance(table, dict) or set(table) != {"columns", "data"}:
            return None
        names, rows = table["columns"], table["data"]
        if (
            not isinstance(names, list)
            or not all(type(name) is str for name in names)
            or len(set(names)) != len(names)
            or not isinstance(rows, list)
            or not all(type(row) is list and len(row) == len(names) for row in rows)
        ):
            return None
        if not rows:
            return {name: [] for name in names}
        return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    if not isinstance(table, list) or not all(type(record) is dict for record in table):
        return None
    names = list(dict.fromkeys(name for record in table for name in record))
    return {name: [record.get(name) for record in table] for name in names}


def _listed(values) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _plain_json(scope) -> bool:
    """A ``Content-Type`` of ``application/json``, with at most ``charset=utf-8``."""
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            parts = [part.strip().lower() for part in value.decode("latin-1").split(";")]
            return parts[0] == "application/json" and all(
                part.replace(" ", "") == "charset=utf-8" for part in parts[1:]
            )
    return False


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
