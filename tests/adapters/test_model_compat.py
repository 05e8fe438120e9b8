"""Versions and clients from before ``guessing`` (the 3PL c) was a model input still work.

``tests/versions/before-guessing/`` holds a version as the code before the change
wrote it (its ``MLmodel`` signature has no ``guessing``) with a request and the answer that
code gave (its README says how it was made). Today's code must load it and give the same
answer: a request without ``guessing`` means c = 0, and with c = 0 every feature is the 2PL
one. A version trained today declares ``guessing`` optional in its signature, so a client
that never sends it is still served.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.model.format import load_model_dir
from adapters.model.pyfunc import LinUCBModel
from skbandit import schema

BEFORE = Path(__file__).parents[1] / "versions" / "before-guessing"
ANSWER = ["expected_reward", "uncertainty", "ucb", "rank"]
"""The stored answer's columns; its ``uncertainty`` was the UCB bonus, today's ``ucb_bonus``
(``uncertainty`` is now half the success interval, which the old answer did not have)."""
TODAY = ["expected_reward", "ucb_bonus", "ucb"]


def _request():
    body = json.loads((BEFORE / "request.json").read_text())
    split = body["dataframe_split"]
    return pd.DataFrame(split["data"], columns=split["columns"]), body["params"]


def _expected():
    return pd.DataFrame(json.loads((BEFORE / "expected.json").read_text()))


def _assert_same_answer(scored, expected):
    assert scored[schema.ITEM_ID].tolist() == expected[schema.ITEM_ID].tolist()
    np.testing.assert_allclose(
        scored[TODAY].to_numpy(np.float64),
        expected[ANSWER[:3]].to_numpy(np.float64),
        rtol=1e-12,
        atol=1e-14,
    )
    assert scored["rank"].tolist() == expected["rank"].tolist()


def test_the_fixture_is_a_version_from_before_guessing():
    mlmodel = (BEFORE / "model" / "MLmodel").read_text()
    assert '"name": "discrimination"' in mlmodel and "guessing" not in mlmodel
    frame, _ = _request()
    assert schema.GUESSING not in frame.columns


def test_an_old_version_served_by_mlflow_answers_as_it_did(monkeypatch):
    """Through ``mlflow.pyfunc`` with the old signature: without ``guessing`` the answer is the
    old one; a ``guessing`` column is dropped by MLflow (the signature does not name it), so
    an old version always ranks with c = 0."""
    import mlflow

    monkeypatch.setenv("SKBANDIT_DECISION_LOG", "off")
    served = mlflow.pyfunc.load_model(str(BEFORE / "model"))
    frame, params = _request()
    expected = _expected()
    _assert_same_answer(served.predict(frame, params), expected)
    _assert_same_answer(served.predict(frame.assign(guessing=0.35), params), expected)


def test_an_old_version_loads_and_ranks_with_guessing_0():
    pipeline = load_model_dir(BEFORE / "model" / "data" / "skbandit")
    model = LinUCBModel.from_model(pipeline)
    frame, params = _request()
    expected = _expected()
    _assert_same_answer(model.score(frame, params), expected)
    _assert_same_answer(model.score(frame.assign(guessing=0.0), params), expected)
    lifted = model.score(frame.assign(guessing=0.35), params)  # today's code reads c if given
    assert not np.allclose(lifted["expected_reward"], expected["expected_reward"])


@pytest.fixture
def registered(store_env):
    from adapters import registry, tracking

    tracking.configure_tracking()
    _, version = registry.load_model(registry.parse_model_ref("skbandit-linucb@champion"))
    return f"models:/{version.name}/{version.version}"


def test_a_new_version_declares_guessing_optional_and_serves_clients_without_it(
    registered, store_env, monkeypatch
):
    import mlflow

    monkeypatch.setenv("SKBANDIT_DECISION_LOG", "off")
    inputs = mlflow.models.get_model_info(registered).signature.inputs
    required = {spec.name: spec.required for spec in inputs.inputs}
    assert required.pop(schema.GUESSING) is False
    assert set(required) == {schema.USER_ID, schema.ITEM_ID, *schema.MODEL_INPUT} - {
        schema.GUESSING
    } and all(required.values())
    served = mlflow.pyfunc.load_model(registered)
    frame, params = _request()
    without = served.predict(frame, params)
    zero = served.predict(frame.assign(guessing=0.0), params)
    pd.testing.assert_frame_equal(
        without.drop(columns="decision_id"), zero.drop(columns="decision_id")
    )
    lifted = served.predict(frame.assign(guessing=0.35), params)
    assert (lifted["expected_reward"] != zero["expected_reward"]).any()
