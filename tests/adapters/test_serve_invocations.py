"""``skbandit serve``'s JSON fast path gives MLflow's answer (in process, no server).

:mod:`adapters.serving.invocations` answers a JSON table without MLflow's DataFrame round
trips; every answer here is compared with the one MLflow's own scoring app gives for the
same loaded version and body (the draw seeded, so both rank alike; decision ids differ).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from skbandit import schema

MODEL_URI = "models:/skbandit-linucb@champion"
ROW = {
    schema.USER_ID: "S1",
    schema.ITEM_ID: "I1",
    **{column: 0.5 for column in schema.MODEL_INPUT},
    schema.DIFFICULTY: 0.3,
    schema.ITEM_ATTEMPTS: 12,
}


@pytest.fixture(scope="module")
def apps(trained_store, tmp_path_factory):
    """(fast app, MLflow's app, calls that reached MLflow's app through the fast one)."""
    import mlflow
    from mlflow.pyfunc import scoring_server

    from adapters import registry, tracking
    from adapters.serving.scoring_app import scoring_app
    from serve.app import Guard

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained_store.tracking_uri)
        tracking.configure_tracking(create=False)
        version = registry.resolve_version(registry.parse_model_ref(MODEL_URI))
        folder = tmp_path_factory.mktemp("served")
        model = mlflow.pyfunc.load_model(registry.download_verified(version, str(folder)))
    fast = scoring_app(model)
    assert type(fast).__name__ == "FastJSON"
    fallbacks = []
    mlflow_app = fast.fallback

    async def counted(scope, receive, send):
        fallbacks.append(scope["path"])
        await mlflow_app(scope, receive, send)

    fast.fallback = counted
    plain = scoring_server.init(model)
    return Guard(fast), Guard(plain), fallbacks


def call(app, body: bytes, content_type: str = "application/json"):
    sent = []
    headers = [(b"host", b"127.0.0.1"), (b"content-type", content_type.encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("127.0.0.1", 5001),
        "client": ("127.0.0.1", 40000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def split(rows, params=None) -> bytes:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    data = [[row.get(c) for c in columns] for row in rows]
    body = {"dataframe_split": {"columns": columns, "data": data}}
    return json.dumps({**body, **({"params": params} if params else {})}).encode()


def records(rows, params=None) -> bytes:
    body = {"dataframe_records": rows}
    return json.dumps({**body, **({"params": params} if params else {})}).encode()


def candidates(n: int, user="S1", **changes) -> list[dict]:
    return [
        {**ROW, schema.ITEM_ID: f"I{k}", schema.MASTERY: 0.1 + 0.8 * k / n, **changes}
        for k in range(n)
    ]


def without_ids(answer):
    predictions = answer["predictions"]
    assert all(len(p.pop("decision_id")) == 32 for p in predictions)
    return predictions


GOOD = {
    "one row": split(candidates(1), {"seed": 3}),
    "100 rows, records": records(candidates(100), {"seed": 4, "top_k": 3}),
    "int ids and ints for numbers": split(
        candidates(5, **{schema.USER_ID: 7, schema.RECENT_SPEED: 1}), {"seed": 5}
    ),
    "no guessing column": split(
        [{k: v for k, v in row.items() if k != schema.GUESSING} for row in candidates(4)],
        {"seed": 6},
    ),
    "blank guessing, an extra column": split(
        candidates(4, **{schema.GUESSING: None, "extra": "x"}), {"seed": 7, "alpha": 1}
    ),
    "two students, greedy": split(
        candidates(3) + candidates(3, **{schema.USER_ID: "S2"}),
        {"seed": 8, "exploration": "greedy", "objective": "max_success"},
    ),
}


@pytest.mark.parametrize("body", GOOD.values(), ids=GOOD.keys())
def test_a_json_table_gets_mlflows_answer_without_mlflows_parsing(apps, body):
    fast, plain, fallbacks = apps
    before = len(fallbacks)
    fast_status, fast_answer = call(fast, body)
    plain_status, plain_answer = call(plain, body)
    assert fast_status == plain_status == 200, (fast_answer, plain_answer)
    assert len(fallbacks) == before  # answered by the fast path
    assert without_ids(fast_answer) == without_ids(plain_answer)


BAD = {
    "a null mastery": split(candidates(2, **{schema.MASTERY: None}), {"seed": 1}),
    "mastery above 1": split(candidates(2, **{schema.MASTERY: 1.5}), {"seed": 1}),
    "a null user id": records(candidates(2, **{schema.USER_ID: None})),
    "a bad param value": split(candidates(2), {"temperature": 0}),
    "no rows": split([]),
    "an index key": json.dumps(
        {"dataframe_split": {"columns": ["a"], "data": [[1]], "index": [0]}}
    ).encode(),
}


@pytest.mark.parametrize("body", BAD.values(), ids=BAD.keys())
def test_a_refused_request_gets_mlflows_answer(apps, body):
    fast, plain, _ = apps
    assert call(fast, body) == call(plain, body)
    status, answer = call(fast, body)
    assert status == 400 and answer["error_code"] == "BAD_REQUEST", answer


def test_csv_goes_to_mlflows_app(apps):
    fast, _, fallbacks = apps
    columns = list(ROW)
    body = (",".join(columns) + "\n" + ",".join(str(ROW[c]) for c in columns) + "\n").encode()
    before = len(fallbacks)
    status, answer = call(fast, body, "text/csv")
    assert status == 200 and len(answer["predictions"]) == 1, answer
    assert len(fallbacks) == before + 1
