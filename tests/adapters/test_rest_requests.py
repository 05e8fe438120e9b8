"""The served model's answers to bad and broken requests, in process (no server).

A request the client got wrong is an HTTP 400 with a one-line message; any other failure is
a bug on the server's side: logged with its traceback, answered with an HTTP 500 whose
message has no stack trace, no exception text and no file path.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from adapters.model import pyfunc as pyfunc_model
from adapters.model.pyfunc import INTERNAL_ERROR_MESSAGE, LinUCBModel
from adapters.model.requests import check_params, check_request, default_params
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.model import TrainedModel
from skbandit.ranking_settings import SERVING_SETTINGS


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 8
    return pd.DataFrame(
        {
            schema.USER_ID: np.repeat(["u1", "u2"], n // 2),
            schema.ITEM_ID: [f"i{j}" for j in range(n)],
            **{column: rng.uniform(0.1, 0.9, n) for column in schema.MODEL_INPUT},
        }
    )


@pytest.fixture(scope="module")
def model(frame) -> LinUCBModel:
    pipeline = TrainedModel().partial_fit(frame, np.tile([1.0, 0.0], 4))
    return LinUCBModel.from_model(pipeline, "skbandit-linucb/3")


def test_params_become_the_served_settings_and_a_seed(model):
    served, _ = check_params({})
    assert served.objective == SERVING_SETTINGS.objective
    settings, _ = check_params(default_params(model.model))
    assert settings == replace(served, alpha=model.model.estimator.alpha)
    settings, seed = check_params({"exploration": "softmax", "temperature": 0.2, "seed": 4})
    assert settings == replace(served, exploration="softmax", temperature=0.2)
    assert seed == 4


def test_a_bad_request_is_a_400_with_the_reason(model, frame):
    with pytest.raises(MlflowException) as caught:
        model.predict(None, frame, {"objective": "max_fun"})
    assert caught.value.get_http_status_code() == 400
    assert caught.value.message.startswith("unknown param objective 'max_fun'")


def test_an_unexpected_error_is_a_500_logged_on_the_server_not_shown(
    model, frame, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise KeyError("/srv/skbandit/secret/path.py: a bug")

    monkeypatch.setattr(pyfunc_model, "rank_request_rows", broken)
    with (
        caplog.at_level(logging.ERROR, logger=pyfunc_model.__name__),
        pytest.raises(MlflowException) as caught,
    ):
        model.predict(None, frame)
    error = caught.value
    assert error.get_http_status_code() == 500
    assert error.message == INTERNAL_ERROR_MESSAGE
    assert "secret" not in error.serialize_as_json() and "Traceback" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and isinstance(logged[0].exc_info[1], KeyError)


def test_a_good_request_after_a_broken_one_still_works(model, frame):
    out = model.predict(None, frame, {"top_k": 2})
    assert out["model_version"].unique().tolist() == ["skbandit-linucb/3"]
    assert out.groupby(schema.USER_ID)["recommended"].sum().tolist() == [2, 2]


# --- guessing (the 3PL c) is optional: absent or blank means 0 ----------------------------


def _scores(model, frame):
    params = {"exploration": "greedy", "epsilon": 0.0, "seed": 0}
    return model.score(frame, params).set_index(schema.ITEM_ID)


def test_a_request_without_guessing_is_scored_as_guessing_0(model, frame):
    without = frame.drop(columns=schema.GUESSING)
    assert check_request(without)[schema.GUESSING].tolist() == [0.0] * len(frame)
    blank = frame.assign(**{schema.GUESSING: [np.nan, None, *[0.0] * (len(frame) - 2)]})
    assert check_request(blank)[schema.GUESSING].tolist() == [0.0] * len(frame)
    zero = _scores(model, frame.assign(**{schema.GUESSING: 0.0}))
    for request in (without, blank):
        pd.testing.assert_frame_equal(_scores(model, request), zero)
    served = model.predict(None, without, {"top_k": 2})  # the whole served path
    assert len(served) == len(frame)


def test_a_request_with_guessing_is_scored_with_the_3pl(model, frame):

    lifted = frame.assign(**{schema.GUESSING: 0.4})
    checked = check_request(lifted)
    assert checked[schema.GUESSING].tolist() == [0.4] * len(frame)
    features = model.model.features(checked)
    zero = model.model.features(check_request(frame.assign(guessing=0.0)))
    p_irt = list(model.model.feature_names()).index("p_irt")
    np.testing.assert_allclose(features[:, p_irt], 0.4 + 0.6 * zero[:, p_irt])
    assert not _scores(model, lifted)["expected_reward"].equals(
        _scores(model, frame.assign(guessing=0.0))["expected_reward"]
    )


@pytest.mark.parametrize("value", [1.0, -0.01, 2.0])
def test_guessing_outside_0_1_is_refused(frame, value):
    bad = frame.assign(**{schema.GUESSING: [0.2, value, *[0.2] * (len(frame) - 2)]})
    with pytest.raises(SkbanditError, match=r"column 'guessing' must lie in \[0.0, 1.0\); row 1"):
        check_request(bad)
