"""Learning curves identified from a target experiment's log, and the safe switching rule."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from skbandit.exceptions import SkbanditError
from skbandit.learning_curves import LearningCurves, fit_learning_curves, safe_target

ARMS = (0.5, 0.7, 0.9)
DEFAULT = 0.7


def _experiment_log(gain, n_pairs=1200, n_attempts=12, seed=0):
    """A target experiment by construction: each (student, topic) pair gets a target drawn
    uniformly from ``ARMS`` and keeps it; every item is chosen adaptively at that target
    from a running ability estimate (one Fisher-scoring step per answer), and the pair's
    true ability then grows by ``gain(p_true)``."""
    rng = np.random.default_rng(seed)
    target = rng.choice(ARMS, n_pairs)
    theta = rng.normal(0.5, 0.9, n_pairs)
    estimate, information = np.zeros(n_pairs), np.ones(n_pairs)
    rows = []
    for _ in range(n_attempts):
        a = rng.lognormal(0.0, 0.25, n_pairs)
        b = estimate - logit(target) / a + rng.normal(0.0, 0.3, n_pairs)
        p = expit(a * (theta - b))
        correct = rng.random(n_pairs) < p
        rows.append(
            pd.DataFrame(
                {
                    "user_id": np.arange(n_pairs) // 3,
                    "topic": np.arange(n_pairs) % 3,
                    "correct": correct.astype(float),
                    "difficulty": b,
                    "discrimination": a,
                    "target": target,
                }
            )
        )
        theta = theta + gain(p)
        predicted = expit(a * (estimate - b))
        information += a * a * predicted * (1 - predicted)
        estimate = estimate + a * (correct - predicted) / information
    return pd.concat(rows, ignore_index=True)


def test_easy_items_teach_so_the_identified_target_is_the_easy_one():
    curves = fit_learning_curves(_experiment_log(lambda p: 0.25 * p**4))
    assert np.argmax(curves.rates) == 2
    assert safe_target(curves, DEFAULT) == 0.9


def test_hard_items_teach_so_the_identified_target_is_the_hard_one():
    curves = fit_learning_curves(_experiment_log(lambda p: 0.25 * (1 - p) ** 2))
    assert np.argmax(curves.rates) == 0
    assert safe_target(curves, DEFAULT) == 0.5


@pytest.mark.parametrize("seed", [1, 2])
def test_when_every_target_teaches_the_same_the_served_target_stays(seed):
    curves = fit_learning_curves(_experiment_log(lambda p: np.full(p.shape, 0.05), seed=seed))
    assert safe_target(curves, DEFAULT) == DEFAULT
    # the marginal likelihood recovers the common rate within 3 standard errors
    assert np.all(np.abs(curves.rates - 0.05) < 3 * curves.stderr)


def test_the_design_bias_is_subtracted_and_recorded():
    log = _experiment_log(lambda p: np.full(p.shape, 0.05), seed=3)
    plain = fit_learning_curves(log)
    corrected = fit_learning_curves(log, bias={0.9: 0.01})
    assert corrected.rates[2] == pytest.approx(plain.rates[2] - 0.01)
    assert corrected.rates[:2] == pytest.approx(plain.rates[:2])
    assert corrected.bias.tolist() == [0.0, 0.0, 0.01]


def test_curves_round_trip_as_plain_data():
    curves = fit_learning_curves(_experiment_log(lambda p: 0.05 * p, n_pairs=150, n_attempts=6))
    again = LearningCurves.from_dict(curves.as_dict())
    assert again.rates.tolist() == curves.rates.tolist()
    assert again.covariance.tolist() == curves.covariance.tolist()
    assert float(again.rate_of(0.6)) == pytest.approx(np.mean(curves.rates[:2]))


def test_safe_target_needs_the_margin_and_counts_the_covariance():
    rates = np.array([0.010, 0.020, 0.030])
    independent = np.diag([4e-5, 4e-5, 4e-5])
    curves = LearningCurves(np.array(ARMS), rates, np.zeros(3), independent, np.ones(3), 0.0)
    assert safe_target(curves, DEFAULT) == DEFAULT  # 0.01 better, but se of the gap 0.009
    correlated = independent + 3.9e-5 * (1 - np.eye(3))  # the gap's se drops to 0.0014
    curves = LearningCurves(np.array(ARMS), rates, np.zeros(3), correlated, np.ones(3), 0.0)
    assert safe_target(curves, DEFAULT) == 0.9
    assert safe_target(curves, DEFAULT, margin=0.01) == DEFAULT


def test_bad_input_is_one_line_advice():
    with pytest.raises(SkbanditError, match="missing columns"):
        fit_learning_curves(pd.DataFrame({"user_id": [1]}))
    log = _experiment_log(lambda p: 0.0 * p, n_pairs=30, n_attempts=2)
    with pytest.raises(SkbanditError, match="never served"):
        safe_target(fit_learning_curves(log), 0.8)
    with pytest.raises(SkbanditError, match="non-finite"):
        fit_learning_curves(log.assign(target=np.nan))
    with pytest.raises(SkbanditError, match="covariance"):
        LearningCurves.from_dict({"targets": [0.5], "rates": [0.1]})
