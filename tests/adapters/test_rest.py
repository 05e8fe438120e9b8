"""End to end: ``mlflow models serve`` on 127.0.0.1 answers like the in-process pipeline.

The server is started once for the module against the temporary trained store and is always
stopped (its whole process group) when the module is done.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import requests

from adapters import registry, tracking
from adapters.data.datasets import load_school
from adapters.model.pyfunc import MAX_REQUEST_ROWS, LinUCBModel, default_params
from serve import recommend
from skbandit import schema
from skbandit.probability_calibration import success_probability
from tests.support.local_server import model_server

pytestmark = pytest.mark.slow

MODEL_URI = "models:/skbandit-linucb@champion"
REQUEST_COLUMNS = [schema.USER_ID, schema.ITEM_ID, *schema.MODEL_INPUT]


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory):
    """``mlflow models serve -m models:/skbandit-linucb@champion --env-manager local``."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with model_server(MODEL_URI, {**os.environ, **trained_store.env}, log) as url:
        yield url


@pytest.fixture(scope="module")
def pipeline(trained_store):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained_store.tracking_uri)
        tracking.configure_tracking()
        pipeline, _ = registry.load_model(registry.parse_model_ref(MODEL_URI))
    return pipeline


@pytest.fixture(scope="module")
def request_frame(trained_store) -> pd.DataFrame:
    """Candidate rows of two students (the demo student and a cold-start one), as sent."""
    school = trained_store.school
    events, items, _ = load_school(school.events_path, school.items_path)
    frames = []
    for student in ("ABC123", "NEWKID"):
        week = recommend.student_week(
            events, items, student, "7.RP.A.1", recommend.parse_week("2024-W01")
        )
        frames.append(week.candidates)
    frame = pd.concat(frames, ignore_index=True)[REQUEST_COLUMNS]
    return frame.astype({column: "float64" for column in schema.MODEL_INPUT})


def post(url: str, body) -> requests.Response:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return requests.post(
        f"{url}/invocations",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def split(frame: pd.DataFrame, params: dict | None = None) -> dict:
    """The frame as ``dataframe_split`` (values via Python floats: JSON keeps all 17 digits)."""
    data = frame.astype(object).to_numpy().tolist()
    body = {"dataframe_split": {"columns": list(frame.columns), "data": data}}
    return {**body, "params": params} if params else body


def records(frame: pd.DataFrame, params: dict | None = None) -> dict:
    body = {"dataframe_records": frame.astype(object).to_dict("records")}
    return {**body, "params": params} if params else body


def predictions(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.DataFrame(response.json()["predictions"])


def expected(pipeline, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    model = LinUCBModel.from_model(pipeline, "skbandit-linucb/1")
    return model.score(frame, {**default_params(pipeline), **(params or {})})


@pytest.mark.parametrize("encode", [split, records], ids=["dataframe_split", "dataframe_records"])
def test_answers_equal_the_in_process_pipeline(server, pipeline, request_frame, encode):
    seeded = {"seed": 3}  # unseeded requests draw from the server's own generator
    got = predictions(post(server, encode(request_frame, seeded)))
    assert len(got) == len(request_frame)
    assert list(got[schema.ITEM_ID]) == list(request_frame[schema.ITEM_ID])
    mean = success_probability(pipeline, pipeline.predict(request_frame))  # the calibrated map
    width = pipeline.estimator.predict_uncertainty(pipeline.features(request_frame))
    np.testing.assert_allclose(got[schema.EXPECTED_REWARD], mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[schema.UCB_BONUS], width, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[schema.UCB], mean + width, rtol=0, atol=1e-12)
    for column in (schema.SUCCESS_LOW, schema.SUCCESS_HIGH, schema.UNCERTAINTY):
        assert (got[column] > 0).all(), column
    assert (got[schema.SUCCESS_LOW] <= mean).all() and (mean <= got[schema.SUCCESS_HIGH]).all()
    want = expected(pipeline, request_frame, seeded)
    for column in (
        schema.RANK,
        schema.IS_EXPLORATION,
        "recommended",
        schema.PROPENSITY,
        "first_slot_propensity",
    ):
        assert list(got[column]) == list(want[column]), column
    assert set(got["model_version"]) == {"skbandit-linucb/1"}
    for _, rows in got.groupby(schema.USER_ID):  # ranks are 1..n within each student
        assert sorted(rows[schema.RANK]) == list(range(1, len(rows) + 1))


def test_params_alpha_and_top_k_are_honoured(server, pipeline, request_frame):
    base = predictions(post(server, split(request_frame)))
    wide = predictions(post(server, split(request_frame, {"alpha": 2.5, "top_k": 2})))
    np.testing.assert_allclose(wide[schema.UCB_BONUS], base[schema.UCB_BONUS] * 2.5, atol=1e-12)
    np.testing.assert_allclose(wide[schema.UNCERTAINTY], base[schema.UNCERTAINTY], atol=1e-12)
    assert (wide.groupby(schema.USER_ID)["recommended"].sum() == 2).all()
    greedy_flat = {"alpha": 0.0, "exploration": "greedy", "epsilon": 0.0}  # no random draws
    flat = predictions(post(server, split(request_frame, greedy_flat)))
    assert (flat[schema.UCB_BONUS] == 0).all() and not flat[schema.IS_EXPLORATION].any()
    params = {"exploration": "softmax", "temperature": 0.1, "seed": 7}
    soft = predictions(post(server, split(request_frame, params)))
    want = expected(pipeline, request_frame, params)
    assert list(soft[schema.RANK]) == list(want[schema.RANK])
    np.testing.assert_allclose(soft[schema.PROPENSITY], want[schema.PROPENSITY], atol=1e-12)
    assert soft[schema.PROPENSITY].between(0, 1, inclusive="right").all()


def _row(request_frame, **changes) -> dict:
    return {**request_frame.head(1).astype(object).to_dict("records")[0], **changes}


def bad_requests(request_frame) -> dict[str, tuple[object, str]]:
    """name -> (body, text the error message must contain)."""
    one = request_frame.head(1)
    no_column = one.drop(columns=[schema.ITEM_ACCURACY])
    too_many = request_frame.sample(MAX_REQUEST_ROWS + 1, replace=True, random_state=0)
    return {
        "missing column": (split(no_column), schema.ITEM_ACCURACY),
        "string in a numeric column": (
            {"dataframe_records": [_row(request_frame, mastery="high")]},
            "mastery",
        ),
        "null value": ({"dataframe_records": [_row(request_frame, mastery=None)]}, "mastery"),
        "null id": ({"dataframe_records": [_row(request_frame, user_id=None)]}, "user_id"),
        "out of range": (
            {"dataframe_records": [_row(request_frame, recent_accuracy=1.5)]},
            "recent_accuracy",
        ),
        "malformed JSON": ('{"dataframe_split": {"columns": [', "JSON"),
        "empty records": ({"dataframe_records": []}, "missing inputs"),
        "empty split": (split(one.iloc[:0]), "no rows"),
        "too many rows": (split(too_many), f"at most {MAX_REQUEST_ROWS}"),
        "top_k zero": (split(one, {"top_k": 0}), "top_k"),
        "negative alpha": (split(one, {"alpha": -1.0}), "alpha"),
        "negative seed": (split(one, {"seed": -5}), "seed"),
        "unknown exploration": (split(one, {"exploration": "boltzmann"}), "exploration"),
        "target outside [0, 1]": (split(one, {"target": 2.0}), "target"),
    }


def test_bad_requests_get_a_clear_4xx(server, request_frame):
    for name, (body, needle) in bad_requests(request_frame).items():
        response = post(server, body)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        answer = response.json()
        assert needle in answer["message"], (name, answer["message"])
        assert "stack_trace" not in answer, name
        assert "Traceback" not in response.text, name


def test_a_good_request_still_works_after_bad_ones(server, request_frame):
    assert len(predictions(post(server, split(request_frame.head(3))))) == 3
