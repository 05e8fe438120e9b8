"""The guard of ``skbandit serve`` in process: hosts, limits, one-line errors (no server).

``tests/serve/test_serve.py`` runs the same checks against the real server.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from serve.app import Guard, json_depth, one_line
from serve.cli import app as cli
from skbandit import schema


def request_body(rows=None, params=None, **changes) -> bytes:
    """A valid dataframe_split request (one row), with ``changes`` to its values."""
    row = {
        schema.USER_ID: "S1",
        schema.ITEM_ID: "I1",
        **{column: 0.5 for column in schema.MODEL_INPUT},
        **changes,
    }
    split = {"columns": list(row), "data": [list(row.values())] * (rows or 1)}
    return json.dumps({"dataframe_split": split, **({"params": params} if params else {})}).encode()


GOOD = request_body()


def call(
    guard: Guard,
    body: bytes = GOOD,
    host: str = "127.0.0.1:5001",
    content_type: str | None = "application/json",
    path: str = "/invocations",
):
    """One POST through the guard; (status, decoded JSON or bytes, what the app received)."""
    sent, received = [], []
    headers = [(b"host", host.encode()), (b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

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
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def test_a_good_request_passes_through_unchanged():
    received = []
    status, payload, _ = call(Guard(inner(received=received)), GOOD)
    assert status == 200 and payload == {"predictions": []}
    assert received == [GOOD]


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
    brackets_in_a_string = request_body(user_id="[[[[[[[[[[[[[[[[[[[[")
    assert call(Guard(inner(), max_depth=8), brackets_in_a_string)[0] == 200


def test_mlflow_error_bodies_become_one_line():
    dump = json.dumps(
        {
            "error_code": "BAD_REQUEST",
            "stack_trace": "Traceback ...",
            "message": "Failed to predict data '   user_id\n0   u1'. \nError: "
            "column 'mastery' must be numeric; row 0 has 'high'",
        }
    )
    status, payload, _ = call(Guard(inner(400, dump.encode())))
    assert status == 400
    assert payload == {
        "error_code": "BAD_REQUEST",
        "message": "column 'mastery' must be numeric; row 0 has 'high'",
    }
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


# --- issue 22: no stall, bounded bodies, strict requests -------------------------------

ESCAPED_QUOTES = b'\\"' * 131_072  # 256 KB; the quadratic guard took minutes on this


def reference_depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


def test_json_depth_agrees_with_a_parser_on_tricky_strings():
    rng = np.random.default_rng(3)
    pieces = ['"', "\\", "[", "]", "{", "}", "a", "\\\\", '\\"']

    def value(level):
        kind = rng.integers(4 if level < 6 else 2)
        if kind == 0:
            return "".join(rng.choice(pieces, rng.integers(6)))
        if kind == 1:
            return int(rng.integers(100))
        if kind == 2:
            return [value(level + 1) for _ in range(rng.integers(3))]
        return {"".join(rng.choice(pieces, 3)): value(level + 1) for _ in range(rng.integers(3))}

    for _ in range(300):
        tree = value(0)
        assert json_depth(json.dumps(tree).encode()) == reference_depth(tree)
    assert json_depth(ESCAPED_QUOTES) == 0 and json_depth(b'["' + b"[" * 50) == 1


def test_a_body_of_escaped_quotes_does_not_stall_ping():
    """/ping answers while a 256 KB body of escaped quotes is checked (the quadratic guard
    held uvicorn's event loop for minutes; the linear one takes milliseconds, off the loop)."""
    import threading

    import requests
    import uvicorn

    from adapters.serving.local_server import free_port

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"\n"})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Guard(app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        posted = threading.Thread(
            target=lambda: requests.post(
                f"{url}/invocations",
                data=ESCAPED_QUOTES,
                timeout=600,
                headers={"Content-Type": "application/json"},
            ),
            daemon=True,
        )
        posted.start()
        threading.Event().wait(0.2)
        assert requests.get(f"{url}/ping", timeout=30).status_code == 200
    finally:
        server.should_exit = True
    thread.join(timeout=30)


def test_a_parquet_bomb_is_refused_from_its_metadata():
    """3,000,000 rows in a small file: refused before anything is decoded (MLflow decoded it
    whole, growing the server by hundreds of MB)."""
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame({schema.MASTERY: np.zeros(3_000_000, dtype=np.int8)}).to_parquet(buffer)
    assert len(buffer.getvalue()) < 200_000
    received = []
    status, payload, _ = call(
        Guard(inner(received=received)),
        buffer.getvalue(),
        content_type="application/vnd.apache.parquet",
    )
    assert status == 400 and "3000000 rows" in payload["message"] and received == []
    status, payload, _ = call(
        Guard(inner()), b"PAR1 not parquet", content_type="application/vnd.apache.parquet"
    )
    assert status == 400 and "not a readable parquet" in payload["message"]


def test_a_trickled_body_times_out():
    sent = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json")],
    }

    async def receive():
        await asyncio.sleep(0.01)
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def send(message):
        sent.append(message)

    asyncio.run(Guard(inner(), body_timeout=0.3)(scope, receive, send))
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["error_code"] == "REQUEST_TIMEOUT"


def test_no_or_an_unknown_content_type_is_a_415_with_its_own_code():
    for content_type in (None, "text/plain"):
        status, payload, _ = call(Guard(inner()), content_type=content_type)
        assert status == 415 and payload["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert "application/json" in payload["message"]
    status, payload, _ = call(Guard(inner(415, b"The scoring server only supports UTF-8")))
    assert (status, payload["error_code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"mastery": True}, "column 'mastery' must hold a number, got a JSON boolean"),
        ({"user_id": ["a"]}, "column 'user_id' must hold a string id, got a JSON list"),
        ({"difficulty": {"a": 1}}, "column 'difficulty' must hold a number, got a JSON object"),
        ({"params": {"topk": 3}}, "unknown param 'topk' (known: alpha, epsilon, exploration, "),
        ({"params": {"top_k": True}}, "param top_k must be an integer, got a JSON boolean"),
        ({"params": {"alpha": [1]}}, "param alpha must be a number, got a JSON list"),
    ],
)
def test_wrong_kinds_of_values_and_unknown_params_are_a_400(changes, words):
    params = changes.pop("params", None)
    status, payload, _ = call(Guard(inner()), request_body(params=params, **changes))
    assert status == 400 and payload["error_code"] == "BAD_REQUEST"
    assert words in payload["message"]


def test_known_params_come_from_the_version():
    body = request_body(params={"topic": "t"})
    assert call(Guard(inner(), known_params=["top_k"]), body)[1]["message"] == (
        "unknown param 'topic' (known: top_k)"
    )
    assert call(Guard(inner()), body)[0] == 200


def test_the_missing_column_is_named_first():
    row = json.loads(GOOD)
    split = row["dataframe_split"]
    k = split["columns"].index(schema.DISCRIMINATION)
    del split["columns"][k], split["data"][0][k]
    status, payload, _ = call(Guard(inner()), json.dumps(row).encode())
    assert status == 400
    assert payload["message"].startswith("request is missing columns ['discrimination']")


@pytest.mark.parametrize(
    "host", ["localhost:1@evil.com", "localhost@evil.com", "127.0.0.1:80/x", "localhost:5001:1"]
)
def test_a_host_header_that_is_not_a_name_and_port_is_refused(host):
    assert call(Guard(inner()), host=host)[0] == 403


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/"])
def test_only_the_scoring_paths_are_served(path):
    status, payload, _ = call(Guard(inner()), path=path)
    assert status == 404 and payload["error_code"] == "NOT_FOUND"
