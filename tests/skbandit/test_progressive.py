"""Progressive validation: predict each batch before learning it; metrics equal sklearn's."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from skbandit import progressive, schema
from skbandit.irt import mastery_to_logit, p_correct_2pl
from skbandit.model import TrainedModel
from skbandit.probability_calibration import FLOOR, fit_calibration
from skbandit.progressive import (
    PREDICTORS,
    PROBABILITY_FLOOR,
    batch_slices,
    irt_prediction,
    model_features,
    prediction_metrics,
    replay_history,
)


def contexts(n, seed=0):
    """Random raw model input and rewards that depend on mastery - difficulty."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            schema.MASTERY: rng.uniform(0.05, 0.95, n),
            schema.RECENT_ACCURACY: rng.uniform(0, 1, n),
            schema.RECENT_SPEED: rng.uniform(0, 1, n),
            schema.HELP_TENDENCY: rng.uniform(0, 0.5, n),
            schema.SKILL_GAP: 0.0,
            schema.DIFFICULTY: rng.normal(0, 1, n),
            schema.DISCRIMINATION: rng.uniform(0.5, 2, n),
            schema.GUESSING: 0.0,
            schema.ITEM_ATTEMPTS: rng.integers(0, 50, n).astype(float),
            schema.ITEM_ACCURACY: rng.uniform(0.1, 0.9, n),
        }
    )
    frame[schema.SKILL_GAP] = np.maximum(0, 0.8 - frame[schema.MASTERY])
    p = p_correct_2pl(
        mastery_to_logit(frame[schema.MASTERY].to_numpy()), frame[schema.DIFFICULTY].to_numpy()
    )
    return frame, (rng.uniform(size=n) < p).astype(float)


def test_batches_double_up_to_batch_size_and_cover_everything():
    slices = batch_slices(1_000, 300, first=100)
    assert [(s.start, s.stop) for s in slices] == [
        (0, 100),
        (100, 300),
        (300, 600),
        (600, 900),
        (900, 1000),
    ]
    assert batch_slices(0, 10) == []
    assert [(s.start, s.stop) for s in batch_slices(5, 2, first=100)] == [(0, 2), (2, 4), (4, 5)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn_metrics(seed):
    rng = np.random.default_rng(seed)
    n = 2_000
    frame = pd.DataFrame(
        {
            "reward": rng.integers(0, 2, n).astype(float),
            "uncertainty": rng.uniform(0, 1, n),
            "bandit": rng.normal(0.5, 0.6, n),  # leaves [0, 1]: clipped
            "global_rate": np.round(rng.uniform(size=n), 1),  # many ties
            "irt": rng.uniform(size=n),
        }
    )
    metrics = prediction_metrics(frame)
    outcome = frame["reward"].to_numpy().astype(int)
    for name in PREDICTORS:
        p = np.clip(frame[name].to_numpy(), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        assert metrics[f"{name}_log_loss"] == pytest.approx(log_loss(outcome, p), abs=1e-12)
        assert metrics[f"{name}_brier"] == pytest.approx(brier_score_loss(outcome, p), abs=1e-12)
        assert metrics[f"{name}_auc"] == pytest.approx(roc_auc_score(outcome, p), abs=1e-12)
    assert metrics["mean_uncertainty"] == pytest.approx(frame["uncertainty"].mean())


def test_auc_is_nan_for_one_class_and_log_loss_is_finite():
    frame = pd.DataFrame(
        {
            "reward": [1.0, 1.0],
            "uncertainty": 0.0,
            "bandit": [1.5, -0.5],
            "global_rate": 0.5,
            "irt": [0.2, 0.9],
        }
    )
    metrics = prediction_metrics(frame)
    assert np.isnan(metrics["bandit_auc"])
    assert metrics["bandit_log_loss"] == pytest.approx(
        -(np.log(1 - PROBABILITY_FLOOR) + np.log(PROBABILITY_FLOOR)) / 2
    )


def test_each_batch_is_predicted_before_it_is_learned():
    X, y = contexts(700)
    pipeline = TrainedModel()
    result = replay_history(pipeline, X, y, batch_size=200)
    predictions = result.predictions
    # nothing learned yet: the prior mean makes the score the IRT probability exactly
    np.testing.assert_array_equal(predictions["score"].iloc[:100], predictions["irt"].iloc[:100])
    # the batch (100, 300) is forecast by a model that has learned exactly rows 0..99
    reference = TrainedModel()
    features = model_features(reference, X)
    reference.estimator.partial_fit(features[:100], y[:100])
    np.testing.assert_allclose(
        predictions["score"].iloc[100:300],
        reference.estimator.predict(features[100:300]),
        atol=1e-12,
    )
    # no earlier pair: the identity (the score clipped to the floor); then the map fitted on
    # the first batch's pairs
    np.testing.assert_array_equal(
        predictions["bandit"].iloc[:100], np.clip(predictions["score"].iloc[:100], FLOOR, 1 - FLOOR)
    )
    first = fit_calibration(predictions["score"].iloc[:100], y[:100])
    np.testing.assert_array_equal(
        predictions["bandit"].iloc[100:300], first(predictions["score"].iloc[100:300])
    )
    # the global rate baseline forecasts with what came before (prior 0.5 as one pseudo-event)
    assert predictions["global_rate"].iloc[100] == pytest.approx((0.5 + y[:100].sum()) / 101)
    np.testing.assert_allclose(
        predictions["irt"],
        p_correct_2pl(
            mastery_to_logit(X[schema.MASTERY].to_numpy()),
            X[schema.DIFFICULTY].to_numpy(),
            X[schema.DISCRIMINATION].to_numpy(),
        ),
    )
    assert pipeline.estimator.n_updates_ == 700
    assert list(result.history["events_seen"]) == [100, 300, 500, 700]


def test_replaying_a_then_b_equals_replaying_a_and_b():
    X, y = contexts(900, seed=3)
    both = TrainedModel()
    replay_history(both, X, y, batch_size=250)
    split = TrainedModel()
    replay_history(split, X.iloc[:400], y[:400], batch_size=250)
    replay_history(split, X.iloc[400:], y[400:], batch_size=250)
    for attribute in ("A_", "b_", "coef_"):
        np.testing.assert_allclose(
            getattr(split.estimator, attribute),
            getattr(both.estimator, attribute),
            rtol=1e-10,
            atol=1e-10,
        )


def test_final_metrics_are_computed_once_and_match_the_predictions(monkeypatch):
    X, y = contexts(500, seed=4)
    result = replay_history(
        TrainedModel("seed"), X, y, batch_size=100, features=None, on_batch=None
    )
    first = result.final_metrics()
    assert first == prediction_metrics(result.predictions)
    monkeypatch.setattr(progressive, "prediction_metrics", None)  # would fail if called again
    first["bandit_auc"] = -1.0  # callers get a copy
    assert result.final_metrics()["bandit_auc"] != -1.0


def test_precomputed_features_and_progress_callback():
    X, y = contexts(450, seed=5)
    seen = []
    a = replay_history(TrainedModel(), X, y, batch_size=200, on_batch=seen.append)
    pipeline = TrainedModel()
    b = replay_history(pipeline, X, y, batch_size=200, features=model_features(pipeline, X))
    assert seen == [100, 200, 150]
    pd.testing.assert_frame_equal(a.predictions, b.predictions)


def test_unscored_events_are_learned_but_never_scored():
    """``score_from``: the calibration window trains the model and stays out of the metrics."""
    X, y = contexts(1_500, seed=6)
    full, windowed = TrainedModel(), TrainedModel()
    everything = replay_history(full, X, y, batch_size=400)
    result = replay_history(windowed, X, y, batch_size=400, score_from=500)
    np.testing.assert_allclose(
        windowed.estimator.coef_, full.estimator.coef_, rtol=1e-10, atol=1e-12
    )
    assert (len(result.predictions), result.n_unscored, result.first_batch) == (1_000, 500, 0)
    np.testing.assert_array_equal(result.predictions["reward"], y[500:])
    # the scored events got the same forecasts as in the full replay (same model states)
    np.testing.assert_allclose(
        result.predictions["score"].iloc[200:], everything.predictions["score"].iloc[700:]
    )


def test_metrics_without_the_untrained_first_batch_and_caveats():
    X, y = contexts(600, seed=7)
    result = replay_history(TrainedModel(), X, y, batch_size=200)
    assert result.first_batch == 100
    after = result.metrics_after_first_batch()
    assert after == prediction_metrics(result.predictions.iloc[100:])
    # the untrained first batch forecast the IRT prior's probability
    np.testing.assert_array_equal(
        result.predictions["score"].iloc[:100], result.predictions["irt"].iloc[:100]
    )
    caveats = result.caveats()
    assert caveats[0].startswith("only 600 events were scored (fewer than 1,000)")
    assert "the first 100 events were predicted by an untrained model" in caveats[1]
    trained = replay_history(TrainedModel(), X, y, batch_size=200, score_from=100)
    assert trained.first_batch == 0 and trained.metrics_after_first_batch() is None
    straddled = replay_history(TrainedModel(), X, y, batch_size=200, score_from=50)
    assert (straddled.predictions["bandit"].iloc[:50] != 0).all()  # learned rows 0-49 first


def test_irt_baseline_uses_guessing_where_given():
    X, _ = contexts(5, seed=8)
    plain = progressive.irt_prediction(X)
    guessed = progressive.irt_prediction(X.assign(guessing=[0.25, np.nan, 0.0, 0.5, 0.2]))
    expected = plain + np.array([0.25, 0.0, 0.0, 0.5, 0.2]) * (1 - plain)
    np.testing.assert_allclose(guessed, expected)


def test_an_untrained_model_predicts_the_irt_probability_exactly():
    X, _ = contexts(50, seed=4)
    pipeline = TrainedModel()
    features = model_features(pipeline, X)
    pipeline.estimator.initialize(features.shape[1])
    np.testing.assert_array_equal(pipeline.estimator.predict(features), features[:, 1])  # p_irt
    np.testing.assert_allclose(pipeline.estimator.predict(features), irt_prediction(X), atol=1e-15)


def test_probability_calibration_never_learns_from_the_events_it_scores():
    X, y = contexts(1500, seed=5)
    result = replay_history(TrainedModel(), X, y, batch_size=400)
    p = result.predictions
    # the batch (300, 700) is calibrated by the map fitted on rows 0..299 only
    earlier = fit_calibration(p["score"].iloc[:300], y[:300])
    np.testing.assert_array_equal(p["bandit"].iloc[300:700], earlier(p["score"].iloc[300:700]))
    # flipping the outcomes of that batch changes no forecast in it
    flipped = y.copy()
    flipped[300:700] = 1 - flipped[300:700]
    again = replay_history(TrainedModel(), X, flipped, batch_size=400).predictions
    np.testing.assert_array_equal(again["bandit"].iloc[:700], p["bandit"].iloc[:700])
    assert ((p["bandit"] >= FLOOR) & (p["bandit"] <= 1 - FLOOR)).all()
    # what the version serves is fitted on every scored pair
    assert result.calibration.n_events == 1500


@pytest.mark.parametrize("seed", range(5))
def test_calibration_from_per_score_sums_equals_the_fit_on_the_rows(seed):
    """What the Spark engine fits from (score, outcome sum, count) is the rows' map exactly,
    with ties and scores closer than float64 resolution (which sklearn pools)."""
    from skbandit.probability_calibration import fit_calibration_counts

    rng = np.random.default_rng(seed)
    n = 3_000
    scores = rng.normal(0.5, 0.4, n)
    scores[:600] = rng.choice(scores[600:], 600)  # exact ties
    scores[600:900] = scores[900:1200] + rng.integers(-6, 7, 300) * 2e-16  # near-ties
    outcomes = (rng.random(n) < np.clip(scores, 0.05, 0.95)).astype(float)
    distinct, group = np.unique(scores, return_inverse=True)
    order = rng.permutation(len(distinct))  # any order
    sums = fit_calibration_counts(
        distinct[order],
        np.bincount(group, weights=outcomes)[order],
        np.bincount(group)[order],
    )
    rows = fit_calibration(scores, outcomes)
    assert len(rows.scores) > 10 and sums == rows
    small = fit_calibration_counts(distinct[:50], np.ones(50), np.ones(50))
    assert small == fit_calibration(distinct[:50], np.ones(50))
    assert fit_calibration([], []) == fit_calibration_counts([], [], [])  # none: the identity
