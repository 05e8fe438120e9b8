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

import json
import os
import re

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (10,000 candidate rows as JSON records take about 4 MB)."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted (a ``dataframe_split`` request is 4 levels deep)."""
MAX_MESSAGE_CHARS = 500
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
ENV_MODEL_PATH = "SKBANDIT_SERVE_MODEL_PATH"
ENV_ALLOWED_HOSTS = "SKBANDIT_SERVE_ALLOWED_HOSTS"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(body: bytes) -> int:
    """The deepest nesting of brackets in a JSON text (brackets inside strings ignored).

    >>> json_depth(b'{"a": [[1, 2], {"b": "[[["}]}')
    3
    """
    import numpy as np

    bare = np.frombuffer(_STRING.sub(b'""', body), dtype=np.uint8)
    opens = (bare == ord("[")) | (bare == ord("{"))
    closes = (bare == ord("]")) | (bare == ord("}"))
    if not opens.any():
        return 0
    return int(np.cumsum(opens.astype(np.int64) - closes).max())


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
    """ASGI middleware: trusted hosts, body size and depth limits, one-line error bodies."""

    def __init__(self, app, allowed_hosts=LOOPBACK_HOSTS, max_body_bytes=MAX_BODY_BYTES,
                 max_depth=MAX_JSON_DEPTH):
        self.app = app
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        host = _host_name(headers.get("host", ""))
        if host not in self.allowed_hosts:
            return await _error(send, 403, "FORBIDDEN",
                                f"host {host or '(none)'!r} is not allowed (allowed: "
                                f"{', '.join(sorted(self.allowed_hosts))}); start skbandit "
                                "serve with --allowed-host NAME to serve under another name")
        body, problem = await self._body(receive, headers)
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
        too_large = (413, "REQUEST_TOO_LARGE", f"request body is larger than the "
                     f"{self.max_body_bytes} bytes accepted; split the request")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return b"", too_large
        chunks, size = [], 0
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
        body = b"".join(chunks)
        if "json" in headers.get("content-type", "") and json_depth(body) > self.max_depth:
            return body, (400, "BAD_REQUEST", f"request JSON is nested more than "
                          f"{self.max_depth} levels deep (a dataframe_split request is 4)")
        return body, None


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
        return str(answer.get("error_code", status)), one_line(str(answer["message"]))
    return ("BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"), one_line(text or str(status))


async def _error(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _host_name(host: str) -> str:
    """``Host`` header without its port: ``[::1]:5001`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def build_app(model, allowed_hosts=LOOPBACK_HOSTS):
    """MLflow's scoring app for a loaded pyfunc ``model``, behind :class:`Guard`."""
    from adapters.serving.scoring_app import scoring_app

    return Guard(scoring_app(model), allowed_hosts)


def create_app():
    """The app factory each uvicorn worker calls: the model at ``$SKBANDIT_SERVE_MODEL_PATH``."""
    from adapters.serving.scoring_app import load_served_model

    model = load_served_model(os.environ[ENV_MODEL_PATH])
    hosts = [h for h in os.environ.get(ENV_ALLOWED_HOSTS, "").split(",") if h]
    return build_app(model, hosts or LOOPBACK_HOSTS)


def run(model: str, host: str, port: int, workers: int, allowed_hosts=(), echo=print) -> None:
    """Serve the registered version ``model`` names until interrupted (``skbandit serve``)."""
    import tempfile

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
    with tempfile.TemporaryDirectory(prefix="skbandit-serve-") as folder:
        # checksums are verified before mlflow reads the stored MLmodel
        os.environ[ENV_MODEL_PATH] = registry.download_verified(version, folder)
        app = create_app()  # load once here: a broken version fails before any worker starts
        where = tracking.redact_uri(log_url) if log_url else "nowhere (SKBANDIT_DECISION_LOG=off)"
        echo(f"serving {ref.name} version {version.version} on http://{host}:{port} with "
             f"{workers} worker(s); decisions logged to {where}")
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="info")
        else:
            uvicorn.run("serve.app:create_app", factory=True, host=host, port=port,
                        workers=workers, log_level="info")
