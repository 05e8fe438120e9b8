"""``skbandit serve``: MLflow's scoring app behind a guard, under uvicorn.

The app is MLflow's own (``mlflow.pyfunc.scoring_server.init(model)``: ``/invocations``,
``/ping``, ``/health``, ``/version``) wrapped in :class:`Guard`, which adds what ``mlflow
models serve`` lacks:

- a trusted-host check: a ``Host`` header other than the allowed names (``localhost``,
  ``127.0.0.1``, ``::1`` and the bound address, plus ``--allowed-host``) is answered 403, so
  a web page cannot reach a loopback server through DNS rebinding;
- a request size limit (:data:`MAX_BODY_BYTES`, 413) and a JSON nesting limit
  (:data:`MAX_JSON_DEPTH`, 400): a 100,000-level nested body gets a short 400, not a 500;
- clean error bodies: every 4xx/5xx answer is ``{"error_code": ..., "message": ...}`` with
  a one-line message (MLflow prefixes messages with a dump of the request frame and may
  attach a stack trace; both are dropped).

:func:`run` resolves the model version once (so every worker serves the same version),
downloads it to a temporary folder and starts uvicorn with :func:`create_app` as the
factory of each worker. Decisions are logged by the model itself
(:mod:`adapters.model.pyfunc`) to the log that ``$SKBANDIT_DECISION_LOG`` names, by default
``decisions.db`` beside the MLflow store.
"""

from __future__ import annotations

import asyncio
import json
import os
import re

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (10,000 candidate rows as JSON records take about 4 MB)."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted (a ``dataframe_split`` request is 4 levels deep)."""
BODY_TIMEOUT_S = 10.0
"""Seconds a client has to send the whole request body (then 408): a client trickling bytes
cannot hold a connection longer than this."""
KEEP_ALIVE_S = 5
"""uvicorn's ``timeout_keep_alive``: an idle kept-alive connection is closed after this."""
MAX_CONNECTIONS = 512
"""uvicorn's ``limit_concurrency`` per worker: beyond this many open connections and tasks a
new request is answered 503 at once instead of queueing."""
MAX_PARQUET_BYTES = 64 * 1024 * 1024
"""Largest uncompressed size a parquet body may declare in its metadata."""
OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this are checked in a worker thread, off the event loop."""
MAX_MESSAGE_CHARS = 500
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
PATHS = ("/invocations", "/ping", "/health", "/version")
"""The paths served; any other (FastAPI's ``/docs``, ``/redoc``, ``/openapi.json``) is 404."""
JSON, CSV, PARQUET = "application/json", "text/csv", "application/vnd.apache.parquet"
CONTENT_TYPES = (JSON, CSV, PARQUET)
ENV_MODEL_PATH = "SKBANDIT_SERVE_MODEL_PATH"
ENV_ALLOWED_HOSTS = "SKBANDIT_SERVE_ALLOWED_HOSTS"
ERROR_CODES = {
    400: "BAD_REQUEST",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
}
"""The ``error_code`` of an error answer without one of its own, by HTTP status."""
_STRING = re.compile(rb'"(?>[^"\\]*+(?:\\.[^"\\]*+)*+)(?:"|\\?\Z)', re.DOTALL)
"""A JSON string, or an unterminated one running to the end: a match never fails once
started at a quote, so :func:`json_depth` is one linear pass (no retry from each quote)."""
_HOST = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::[0-9]{1,5})?")


def json_depth(body: bytes) -> int:
    """The deepest nesting of brackets in a JSON text (brackets inside strings ignored).

    One pass over ``body``: strings are dropped by a regular expression that cannot fail
    once it has started (an unterminated string runs to the end), then the brackets left are
    counted.

    >>> json_depth(b'{"a": [[1, 2], {"b": "[[["}]}')
    3
    >>> json_depth(b'["a\\\\\\\\", ["b\\\\"]"]]')
    2
    """
    import numpy as np

    bare = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if bare.count(b"[") + bare.count(b"{") <= 1:
        return bare.count(b"[") + bare.count(b"{")
    steps = np.frombuffer(bare.translate(_STEPS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max())


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[]{}", bytes([1, 255, 1, 255]))


def one_line(message: str) -> str:
    """An MLflow error message as one short line (the request dump and stack trace dropped).

    >>> one_line("Failed to predict data '   a\\n0  1'. \\nError: column 'x' is missing")
    "column 'x' is missing"
    >>> one_line("Ensure that input is a valid JSON formatted string. Error: 'bad'\\nInput: \\n{")
    "Ensure that input is a valid JSON formatted string. Error: 'bad'"
    """
    if message.startswith("Failed to predict data") and "\nError: " in message:
        message = message.rsplit("\nError: ", 1)[1]
    else:
        message = message.split("\nInput:", 1)[0]
    flat = " ".join(message.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 3] + "..."


class Guard:
    """ASGI middleware: trusted hosts, served paths, content types, body size, time and depth
    limits, strict request values, one-line error bodies.

    ``known_params``: the request params the served version knows (None: not checked).
    """

    def __init__(
        self,
        app,
        allowed_hosts=LOOPBACK_HOSTS,
        max_body_bytes=MAX_BODY_BYTES,
        max_depth=MAX_JSON_DEPTH,
        body_timeout=BODY_TIMEOUT_S,
        known_params=None,
    ):
        self.app = app
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.body_timeout = body_timeout
        self.known_params = known_params
        import adapters.model.requests  # noqa: F401 - imported now, not on the first request's loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        host = _host_name(headers.get("host", ""))
        if host not in self.allowed_hosts:
            return await _error(
                send,
                403,
                "FORBIDDEN",
                f"host {host or '(none)'!r} is not allowed (allowed: "
                f"{', '.join(sorted(self.allowed_hosts))}); start skbandit "
                "serve with --allowed-host NAME to serve under another name",
            )
        path = scope.get("path", "")
        if path not in PATHS:
            return await _error(
                send, 404, "NOT_FOUND", f"no such path {path[:80]!r} (served: {', '.join(PATHS)})"
            )
        mime = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if path == "/invocations" and mime not in CONTENT_TYPES:
            given = f"Content-Type {mime[:80]!r}" if mime else "no Content-Type"
            return await _error(
                send,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"request has {given}; send {JSON} (dataframe_split or "
                f"dataframe_records), {CSV} or {PARQUET}",
            )
        body, problem = await self._body(receive, headers)
        if problem is None and path == "/invocations":
            problem = await self._check(body, mime)
        if problem is not None:
            return await _error(send, *problem)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, _CleanErrors(send))

    async def _body(self, receive, headers):
        """The whole request body, or (status, code, message) for one over the limits."""
        too_large = (
            413,
            "REQUEST_TOO_LARGE",
            f"request body is larger than the "
            f"{self.max_body_bytes} bytes accepted; split the request",
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return b"", too_large
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return b"", too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return b"", (
                408,
                "REQUEST_TIMEOUT",
                f"request body not received within {self.body_timeout:g} s",
            )
        return b"".join(chunks), None

    async def _check(self, body: bytes, mime: str):
        """None for a body the model may parse, else (status, code, message)."""
        if len(body) > OFF_LOOP_BYTES:  # linear, but a few 100 ms at 8 MB: not on the loop
            return await asyncio.to_thread(self.check_body, body, mime)
        return self.check_body(body, mime)

    def check_body(self, body: bytes, mime: str):
        """None for a body the model may parse, else (status, code, message)."""
        from adapters.model.requests import MAX_REQUEST_ROWS, check_request_json
        from skbandit.exceptions import SkbanditError

        if mime == JSON:
            if json_depth(body) > self.max_depth:
                return (
                    400,
                    "BAD_REQUEST",
                    f"request JSON is nested more than "
                    f"{self.max_depth} levels deep (a dataframe_split request is 4)",
                )
            try:
                payload = json.loads(body)
            except ValueError as error:
                return 400, "BAD_REQUEST", f"request is not valid JSON: {error}"
            try:
                check_request_json(payload, self.known_params)
            except SkbanditError as error:
                return 400, "BAD_REQUEST", str(error)
        elif mime == CSV:
            if body.count(b"\n") > MAX_REQUEST_ROWS + 1:
                return (
                    400,
                    "BAD_REQUEST",
                    f"CSV request has more than {MAX_REQUEST_ROWS} "
                    "lines; at most that many candidate rows are accepted: split it",
                )
        elif mime == PARQUET:
            return parquet_problem(body, MAX_REQUEST_ROWS)
        return None


def parquet_problem(body: bytes, max_rows: int):
    """None for a parquet body within the row and size bounds, judged from its metadata
    alone (nothing decoded), else (status, code, message)."""
    import io

    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(body)).metadata
    except Exception as error:
        return 400, "BAD_REQUEST", f"request is not a readable parquet file: {error}"
    if meta.num_rows > max_rows:
        return (
            400,
            "BAD_REQUEST",
            f"parquet request has {meta.num_rows} rows; at most "
            f"{max_rows} candidate rows are accepted per request: split it",
        )
    size = sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )
    if size > MAX_PARQUET_BYTES:
        return (
            413,
            "REQUEST_TOO_LARGE",
            f"parquet request declares {size} bytes "
            f"uncompressed; at most {MAX_PARQUET_BYTES} are accepted",
        )
    return None


class _CleanErrors:
    """Wraps ``send``: an error response's body becomes ``{"error_code", "message"}``."""

    def __init__(self, send):
        self.send = send
        self.start = None
        self.chunks = []

    async def __call__(self, message):
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = self.start["status"]
        code, text = _parse_error(b"".join(self.chunks), status)
        await _error(self.send, status, code, text)


def _parse_error(body: bytes, status: int) -> tuple[str, str]:
    text = body.decode("utf-8", errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "message" in answer:
        code = str(answer.get("error_code", ERROR_CODES.get(status, status)))
        if code == "BAD_REQUEST" and status in ERROR_CODES:
            code = ERROR_CODES[status]
        return code, one_line(str(answer["message"]))
    code = ERROR_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    if isinstance(answer, dict) and "detail" in answer:  # FastAPI's own errors
        return code, one_line(str(answer["detail"]))
    return code, one_line(text or str(status))


async def _error(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _host_name(host: str) -> str:
    """``Host`` header without its port: ``[::1]:5001`` -> ``::1``; a header that is not a
    name or address with an optional port (``localhost:1@evil.com``) is returned whole, so
    it matches no allowed name."""
    host = host.strip().lower()
    if not _HOST.fullmatch(host):
        return host
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def build_app(model, allowed_hosts=LOOPBACK_HOSTS):
    """MLflow's scoring app for a loaded pyfunc ``model``, behind :class:`Guard`."""
    from adapters.serving.scoring_app import param_names, scoring_app

    return Guard(scoring_app(model), allowed_hosts, known_params=param_names(model))


def create_app():
    """The app factory each uvicorn worker calls: the model at ``$SKBANDIT_SERVE_MODEL_PATH``."""
    from adapters.serving.scoring_app import load_served_model

    model = load_served_model(os.environ[ENV_MODEL_PATH])
    hosts = [h for h in os.environ.get(ENV_ALLOWED_HOSTS, "").split(",") if h]
    return build_app(model, hosts or LOOPBACK_HOSTS)


def run(model: str, host: str, port: int, workers: int, allowed_hosts=(), echo=print) -> None:
    """Serve the registered version ``model`` names until interrupted (``skbandit serve``)."""
    import uvicorn

    from adapters import registry, tracking
    from adapters.decision_log import ENV_VAR, DecisionLog
    from skbandit.exceptions import SkbanditError

    uri = tracking.configure_tracking(create=False)
    database = tracking.sqlite_path(uri)
    if database is not None and not database.is_file():
        raise SkbanditError(f"no MLflow store at {database}; {registry.TRAIN_HINT}")
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the workers' loader checks the registry too
    ref = registry.parse_model_ref(model)
    version = registry.resolve_version(ref)
    hosts = [*LOOPBACK_HOSTS, *allowed_hosts]
    if host not in ("0.0.0.0", "::", ""):
        hosts.append(host)
    os.environ[ENV_ALLOWED_HOSTS] = ",".join(hosts)
    logging_off = os.environ.get(ENV_VAR, "").strip().lower() == "off"
    log_url = None if logging_off else DecisionLog().url
    if log_url is not None:
        os.environ[ENV_VAR] = log_url  # every worker writes to the same log
    # checksums are verified before mlflow reads the stored MLmodel
    with registry.verified_download(version, prefix="skbandit-serve-") as folder:
        os.environ[ENV_MODEL_PATH] = folder
        app = create_app()  # load once here: a broken version fails before any worker starts
        where = tracking.redact_uri(log_url) if log_url else "nowhere (SKBANDIT_DECISION_LOG=off)"
        echo(
            f"serving {ref.name} version {version.version} on http://{host}:{port} with "
            f"{workers} worker(s); decisions logged to {where}"
        )
        limits = {"timeout_keep_alive": KEEP_ALIVE_S, "limit_concurrency": MAX_CONNECTIONS}
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="info", **limits)
        else:
            uvicorn.run(
                "serve.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="info",
                **limits,
            )
