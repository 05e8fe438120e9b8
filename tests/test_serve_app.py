"""The guard of ``skbandit serve`` in process: hosts, limits, one-line errors (no server).

``tests/test_serve.py`` runs the same checks against the real server.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from serve.app import Guard, json_depth, one_line
from serve.cli import app as cli


def call(guard: Guard, body: bytes = b"{}", host: str = "127.0.0.1:5001",
         content_type: str = "application/json"):
    """One POST through the guard; (status, decoded JSON or bytes, what the app received)."""
    sent, received = [], []
    headers = [(b"host", host.encode()), (b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    try:
        payload = json.loads(payload)
    except ValueError:
        pass
    return status, payload, received


def inner(status=200, body=b'{"predictions": []}', received=None):
    async def app(scope, receive, send):
        message = await receive()
        if received is not None:
            received.append(message["body"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def test_a_good_request_passes_through_unchanged():
    received = []
    status, payload, _ = call(Guard(inner(received=received)), b'{"a": [1, 2]}')
    assert status == 200 and payload == {"predictions": []}
    assert received == [b'{"a": [1, 2]}']


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:5001", "10.0.0.8"])
def test_an_unknown_host_is_refused(host):
    status, payload, _ = call(Guard(inner()), host=host)
    assert status == 403 and "is not allowed" in payload["message"]


@pytest.mark.parametrize("host", ["localhost:5001", "127.0.0.1", "[::1]:5001", "LOCALHOST"])
def test_loopback_names_are_allowed(host):
    assert call(Guard(inner()), host=host)[0] == 200


def test_size_and_depth_limits():
    guard = Guard(inner(), max_body_bytes=10_000, max_depth=8)
    status, payload, _ = call(guard, b"[" * 20_000)
    assert status == 413 and "larger than" in payload["message"]
    deep = b'{"a": ' * 50 + b"1" + b"}" * 50
    status, payload, _ = call(guard, deep)
    assert status == 400 and "nested more than 8" in payload["message"]
    assert call(guard, b'{"s": "[[[[[[[[[[[[[[[[[[[["}')[0] == 200  # brackets in strings


def test_mlflow_error_bodies_become_one_line():
    dump = json.dumps({"error_code": "BAD_REQUEST", "stack_trace": "Traceback ...",
                       "message": "Failed to predict data '   user_id\n0   u1'. \nError: "
                                  "column 'mastery' must be numeric; row 0 has 'high'"})
    status, payload, _ = call(Guard(inner(400, dump.encode())))
    assert status == 400
    assert payload == {"error_code": "BAD_REQUEST",
                       "message": "column 'mastery' must be numeric; row 0 has 'high'"}
    status, payload, _ = call(Guard(inner(415, b"This predictor only supports\nJSON")))
    assert status == 415 and payload["message"] == "This predictor only supports JSON"


def test_json_depth_and_one_line_helpers():
    assert json_depth(b"1") == 0 and json_depth(b"[[[]]]") == 3
    assert json_depth(b'["\\"[[["]') == 1  # an escaped quote does not end the string
    assert len(one_line("x" * 2000)) == 500


def test_serve_without_a_store_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "no-store" / "mlflow.db"
    result = CliRunner().invoke(cli, ["serve"], env={"MLFLOW_TRACKING_URI": f"sqlite:///{missing}"})
    assert result.exit_code == 1
    assert "no MLflow store at" in result.output and "Traceback" not in result.output
    assert not missing.parent.exists()
