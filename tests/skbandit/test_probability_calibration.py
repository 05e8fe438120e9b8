"""The served probability map: a logistic link on the score, shrunk toward the identity."""

import numpy as np
import pytest

from skbandit.probability_calibration import (
    FLOOR,
    PRIOR_EVENTS,
    ProbabilityCalibration,
    fit_calibration,
)


def overconfident(n, seed):
    """Scores twice as far from 1/2 in logits as the truth: the link should halve them."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.15, 0.85, n)
    z = np.log(truth / (1 - truth))
    score = 1 / (1 + np.exp(-2 * z))
    return score, (rng.random(n) < truth).astype(float), truth


def test_no_events_is_the_identity_clipped_to_the_floor():
    scores = np.array([-0.3, 0.0, 0.2, 0.5, 0.9, 1.4])
    np.testing.assert_array_equal(fit_calibration([], [])(scores), ProbabilityCalibration()(scores))
    np.testing.assert_allclose(
        fit_calibration([0.5], [1.0])(np.array([0.2, 0.5, 0.9])), [0.2, 0.5, 0.9], atol=0.02
    )


def test_many_events_learn_the_over_confidence_and_few_barely_move_the_map():
    score, y, truth = overconfident(20_000, seed=0)
    learned = fit_calibration(score, y)
    assert np.abs(learned(score) - truth).max() < 0.03  # 2,000 per decile: within 0.03
    few = fit_calibration(score[:10], y[:10])  # 10 events against a prior worth PRIOR_EVENTS
    assert PRIOR_EVENTS >= 10
    probe = np.array([0.1, 0.3, 0.7, 0.9])
    assert np.abs(few(probe) - probe).max() < np.abs(learned(probe) - probe).max() / 2


@pytest.mark.parametrize("seed", range(3))
def test_the_map_keeps_the_ranking_even_beyond_zero_and_one(seed):
    rng = np.random.default_rng(seed)
    score = rng.normal(0.6, 0.4, 3_000)  # a linear score leaves [0, 1]
    y = (rng.random(3_000) < np.clip(score, 0.05, 0.95)).astype(float)
    cal = fit_calibration(score, y)
    probe = np.sort(rng.uniform(-0.9, 1.9, 500))
    p = cal(probe)
    assert np.all(np.diff(p) > 0), "strictly increasing within the stored range: no ties"
    assert p.min() >= FLOOR and p.max() <= 1 - FLOOR


def test_the_map_is_stored_as_data_and_round_trips():
    score, y, _ = overconfident(2_000, seed=1)
    cal = fit_calibration(score, y)
    again = ProbabilityCalibration.from_dict(cal.as_dict())
    assert again == cal and again.n_events == 2_000
