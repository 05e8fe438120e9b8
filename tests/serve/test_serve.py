"""End to end: ``skbandit serve`` explores honestly, logs every decision, refuses bad requests.

One server (two workers, each with its own entropy-seeded generator) is started for the
module against the temporary trained store, with the decision log in a temporary folder.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import requests
from scipy import stats

from adapters.decision_log import DecisionLog
from skbandit import schema
from tests.support.local_server import skbandit_server

pytestmark = pytest.mark.slow

MODEL_URI = "models:/skbandit-linucb@champion"
N_IDENTICAL = 500


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    return tmp_path_factory.mktemp("decision-log") / "decisions.db"


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory, log_path):
    env = {**os.environ, **trained_store.env, "SKBANDIT_DECISION_LOG": str(log_path)}
    log = tmp_path_factory.mktemp("server") / "server.log"
    with skbandit_server(MODEL_URI, env, log, workers=2) as (url, process):
        yield url, process


def frame(n_items=6, user="S1", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = {column: rng.uniform(0.2, 0.8, n_items) for column in schema.MODEL_INPUT}
    values[schema.DIFFICULTY] = np.linspace(-2, 2, n_items)
    values[schema.ITEM_ATTEMPTS] = np.arange(n_items) * 10.0
    return pd.DataFrame(
        {schema.USER_ID: user, schema.ITEM_ID: [f"I{k}" for k in range(n_items)], **values}
    )


def body(rows: pd.DataFrame, params: dict | None = None) -> str:
    split = {"columns": list(rows.columns), "data": rows.astype(object).to_numpy().tolist()}
    return json.dumps({"dataframe_split": split, **({"params": params} if params else {})})


def post(url, data, headers=None, session=requests):
    return session.post(
        f"{url}/invocations",
        data=data,
        timeout=60,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def test_first_slot_frequencies_match_the_logged_propensities(server, log_path):
    url, _ = server
    data = body(frame(), {"temperature": 0.05})
    session = requests.Session()
    answers = [post(url, data, session=session) for _ in range(N_IDENTICAL)]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    tables = [pd.DataFrame(a.json()["predictions"]) for a in answers]
    firsts = pd.Series([t.loc[t[schema.RANK] == 1, schema.ITEM_ID].iloc[0] for t in tables])
    probs = tables[0].set_index(schema.ITEM_ID)["first_slot_propensity"]
    assert (probs >= 0.1 / len(probs) - 1e-12).all()  # the documented floor
    decision_ids = [t["decision_id"].iloc[0] for t in tables]
    assert len(set(decision_ids)) == N_IDENTICAL
    decisions, candidates = DecisionLog(str(log_path)).read()
    logged = candidates[candidates["decision_id"].isin(decision_ids)]
    assert logged["decision_id"].nunique() == N_IDENTICAL  # every decision was logged
    spread = logged.groupby(schema.ITEM_ID)["propensity"].agg(["min", "max"])
    np.testing.assert_allclose(spread["min"], spread["max"], rtol=1e-12)  # same request
    np.testing.assert_allclose(spread["min"].loc[probs.index], probs, rtol=1e-12)
    served = decisions.set_index("decision_id").loc[decision_ids, "served_item_id"]
    assert served.tolist() == firsts.tolist()
    assert not decisions.set_index("decision_id").loc[decision_ids, "seeded"].any()
    observed = firsts.value_counts().reindex(probs.index, fill_value=0)
    result = stats.chisquare(observed.to_numpy(), probs.to_numpy() * N_IDENTICAL)
    assert result.pvalue > 1e-3, (observed.to_dict(), probs.to_dict())
    assert (observed > 0).sum() == len(probs)  # the floor really reaches every item


def test_a_seed_reproduces_the_draw_and_is_logged_as_seeded(server, log_path):
    url, _ = server
    data = body(frame(seed=1), {"seed": 11})
    first, second = (pd.DataFrame(post(url, data).json()["predictions"]) for _ in range(2))
    assert first[schema.RANK].tolist() == second[schema.RANK].tolist()
    decisions, _ = DecisionLog(str(log_path)).read()
    mine = decisions[decisions["decision_id"].isin([*first["decision_id"], *second["decision_id"]])]
    assert len(mine) == 2 and mine["seeded"].all()


BAD = {
    "deep nesting": ('{"a": ' * 100_000 + "1" + "}" * 100_000, {}, 400, "nested"),
    "evil host": (None, {"Host": "evil.example.com"}, 403, "not allowed"),
    "too large": ("x" * (9 * 1024 * 1024), {}, 413, "larger than"),
    "out of range": ("RANGE", {}, 400, "recent_accuracy"),
    "malformed JSON": ('{"dataframe_split": {"columns": [', {}, 400, "JSON"),
    "no content type": (None, {"Content-Type": None}, 415, "no Content-Type"),
    "host with userinfo": (None, {"Host": "localhost:1@evil.com"}, 403, "not allowed"),
    "boolean mastery": ("BOOL", {}, 400, "column 'mastery' must hold a number"),
    "unknown param": ("TOPK", {}, 400, "unknown param 'topk' (known: "),
    "docs": ("DOCS", {}, 404, "no such path"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_requests_get_a_short_one_line_4xx(server, name):
    url, _ = server
    data, headers, status, needle = BAD[name]
    if data is None:
        data = body(frame())
    elif data == "RANGE":
        data = body(frame().assign(recent_accuracy=1.5))
    elif data == "BOOL":
        data = body(frame().assign(mastery=True))
    elif data == "TOPK":
        data = body(frame(), {"topk": 3})
    if data == "DOCS":
        answer = requests.get(f"{url}/docs", timeout=60)
    else:
        answer = post(url, data, headers)
    assert answer.status_code == status, answer.text[:300]
    payload = answer.json()
    assert needle in payload["message"]
    assert "\n" not in payload["message"] and len(answer.content) < 700
    assert set(payload) == {"error_code", "message"}


def test_kill_9_after_the_responses_loses_no_decision(server, log_path):
    url, process = server  # runs last in this module: it ends the server
    ids = []
    for k in range(20):
        answer = post(url, body(frame(user=f"K{k}", seed=k)))
        assert answer.status_code == 200
        ids.append(answer.json()["predictions"][0]["decision_id"])
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    decisions, candidates = DecisionLog(str(log_path)).read()
    assert set(ids) <= set(decisions["decision_id"])
    assert (
        candidates[candidates["decision_id"].isin(ids)].groupby("decision_id").size() == 6
    ).all()
