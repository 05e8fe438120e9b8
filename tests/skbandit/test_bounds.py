"""Bounded inputs (issue 11): every numeric input has a documented range, no NaN or infinity
reaches a ranking, a shown item never carries propensity 0, timestamps name their row."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from adapters.model.requests import check_params, check_request
from skbandit import schema
from skbandit.cleaning import validate_events, validate_items
from skbandit.exceptions import SkbanditError
from skbandit.model import TrainedModel
from skbandit.policy import rank_linucb
from skbandit.ranking_settings import MIN_TEMPERATURE, RankingSettings
from skbandit.request_ranking import rank_requests


def _items(**changes) -> pd.DataFrame:
    base = {"item_id": ["a", "b"], "topic": ["t", "t"], "difficulty": [0.1, -0.3]}
    return pd.DataFrame({**base, **changes})


@pytest.mark.parametrize(
    ("changes", "column"),
    [
        ({"difficulty": [0.1, 1e308]}, "difficulty"),
        ({"difficulty": [-10.5, 0.0]}, "difficulty"),
        ({"discrimination": [1.0, 1e308]}, "discrimination"),
        ({"discrimination": [0.0, 1.0]}, "discrimination"),
        ({"guessing": [0.2, 1.0]}, "guessing"),
    ],
)
def test_item_values_outside_their_range_are_refused(changes, column):
    with pytest.raises(
        SkbanditError, match=rf"^items.csv: column '{column}' must be a number in"
    ) as caught:
        validate_items(_items(**changes), "items.csv")
    assert "\n" not in str(caught.value)


def test_item_values_at_the_documented_bounds_are_accepted():
    items, _ = validate_items(_items(difficulty=[-10.0, 10.0], discrimination=[10.0, 0.01]))
    assert items["difficulty"].tolist() == [-10.0, 10.0]


def test_a_timestamp_beyond_pandas_range_names_file_column_and_row():
    events = pd.DataFrame(
        {
            "user_id": ["u", "u", "v"],
            "item_id": ["a", "b", "a"],
            "topic": ["t"] * 3,
            "timestamp": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "9999-12-31T23:59:59Z"],
            "correct": [1, 0, 1],
        }
    )
    with pytest.raises(SkbanditError) as caught:
        validate_events(events, "events.csv")
    message = str(caught.value)
    assert message.startswith("events.csv: column 'timestamp' row 2 has 9999-12-31T23:59:59Z")
    assert "OutOfBounds" not in message and "\n" not in message


@pytest.fixture
def request_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 12
    frame = pd.DataFrame({column: rng.uniform(0.1, 0.9, n) for column in schema.MODEL_INPUT})
    frame[schema.DIFFICULTY] = rng.uniform(-3, 3, n)
    frame[schema.DISCRIMINATION] = rng.uniform(0.5, 2, n)
    frame[schema.ITEM_ATTEMPTS] = rng.integers(0, 50, n).astype(float)
    frame.insert(0, schema.ITEM_ID, [f"i{k}" for k in range(n)])
    frame.insert(0, schema.USER_ID, "u1")
    return frame


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        (schema.DIFFICULTY, 1e308, r"\[-10.0, 10.0\]"),
        (schema.DISCRIMINATION, 1e308, r"\(0.0, 10.0\]"),
        (schema.DISCRIMINATION, 0.0, r"\(0.0, 10.0\]"),
        (schema.ITEM_ATTEMPTS, 1e300, r"\[0.0, 1000000000.0\]"),
    ],
)
def test_rest_requests_outside_the_ranges_are_refused(request_frame, column, value, shown):
    request_frame.loc[3, column] = value
    with pytest.raises(SkbanditError, match=rf"column '{column}' must lie in {shown}; row 3"):
        check_request(request_frame)


@pytest.fixture(scope="module")
def pipeline():
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({column: rng.uniform(0.1, 0.9, 300) for column in schema.MODEL_INPUT})
    rows[schema.DIFFICULTY] = rng.uniform(-3, 3, 300)
    return TrainedModel().partial_fit(rows, rng.integers(0, 2, 300).astype(float))


def test_no_infinity_or_nan_reaches_a_ranking(pipeline, request_frame):
    request_frame.loc[5, schema.DIFFICULTY] = 1e308  # past the request checks, e.g. a caller
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # refused cleanly, no numpy warning
        with pytest.raises(SkbanditError, match=r"cannot rank: candidate 'i5' scores"):
            rank_linucb(pipeline, request_frame, RankingSettings())
        with pytest.raises(SkbanditError, match=r"cannot rank: candidate 'i5'"):
            rank_requests(pipeline, request_frame, RankingSettings())


@pytest.mark.parametrize("temperature", [1e-5, 1e-300, 0.0099])
def test_temperatures_below_the_floor_are_refused(temperature):
    with pytest.raises(SkbanditError, match=r"--temperature must be at least 0.01"):
        RankingSettings.from_values({"temperature": temperature}, label="--{}")
    with pytest.raises(SkbanditError, match=r"param temperature must be at least 0.01"):
        check_params({"exploration": "softmax", "temperature": temperature})


@pytest.mark.parametrize("alpha", [0.0, 1.0, 100.0])
def test_a_shown_item_never_carries_propensity_zero(pipeline, request_frame, alpha):
    settings = RankingSettings(
        exploration="softmax", temperature=MIN_TEMPERATURE, alpha=alpha, top_k=5
    )
    for seed in range(20):
        rng = np.random.default_rng(seed)
        try:
            shown = rank_requests(pipeline, request_frame, settings, rng=rng)
        except SkbanditError as error:  # refused outright is allowed; recording 0 is not
            assert "raise the temperature" in str(error)
            continue
        shown = shown[shown["recommended"]]
        assert len(shown) == 5 and (shown[schema.PROPENSITY] > 0).all()
        assert np.isfinite(shown[[schema.EXPECTED_REWARD, schema.UNCERTAINTY]]).all().all()
