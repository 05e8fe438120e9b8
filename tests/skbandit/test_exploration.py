"""The epsilon floor of served exploration: exact propensities, checked against frequencies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from skbandit.exploration import draw_order, first_slot_probabilities
from skbandit.ranking_settings import REST_SETTINGS, RankingSettings

SCORES = np.array([0.30, 0.25, 0.0, -0.4])
MIXED = [
    RankingSettings(exploration="softmax", temperature=0.1, epsilon=0.2),
    RankingSettings(exploration="greedy", epsilon=0.3),
]


@pytest.mark.parametrize("settings", MIXED, ids=["softmax", "greedy"])
def test_ordered_pairs_have_the_frequencies_their_slot_propensities_say(settings):
    """Every (first, second) pair is drawn as often as slot1 * slot2 propensity predicts."""
    rng = np.random.default_rng(2024)
    n = 6000
    counts, predicted = {}, {}
    for _ in range(n):
        order, prob = draw_order(SCORES, 2, 2, rng, settings)
        pair = tuple(order.tolist())
        counts[pair] = counts.get(pair, 0) + 1
        predicted.setdefault(pair, prob[0] * prob[1])
        assert predicted[pair] == pytest.approx(prob[0] * prob[1])  # same pair, same prob
    pairs = list(itertools.permutations(range(len(SCORES)), 2))
    assert set(counts) == set(pairs)  # the floor reaches every ordered pair
    expected = np.array([predicted[p] for p in pairs])
    assert expected.sum() == pytest.approx(1.0)
    observed = np.array([counts[p] for p in pairs])
    assert stats.chisquare(observed, expected * n).pvalue > 1e-3


def test_every_candidate_has_the_floor_even_when_scores_are_far_apart():
    scores = np.array([5.0, 0.0, -5.0, -10.0, -20.0])
    settings = RankingSettings(exploration="softmax", temperature=0.01, epsilon=0.1)
    first = first_slot_probabilities(scores, settings)
    assert first.sum() == pytest.approx(1.0)
    assert (first >= 0.1 / len(scores) - 1e-15).all()
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, prob = draw_order(scores, len(scores), 3, rng, settings)
        assert (prob[:3] > 0).all()  # a shown item never carries propensity 0


def test_first_slot_propensity_is_the_mixture_of_base_and_uniform():
    settings = RankingSettings(exploration="softmax", temperature=0.1, epsilon=0.2)
    base = np.exp(SCORES / 0.1) / np.exp(SCORES / 0.1).sum()
    np.testing.assert_allclose(
        first_slot_probabilities(SCORES, settings), 0.8 * base + 0.2 / 4, rtol=1e-12
    )
    order, prob = draw_order(SCORES, 1, 1, np.random.default_rng(1), settings)
    assert prob[0] == pytest.approx(0.8 * base[order[0]] + 0.05)


def test_without_epsilon_greedy_stays_deterministic():
    settings = RankingSettings(exploration="greedy", epsilon=0.0)
    for seed in range(5):
        order, prob = draw_order(SCORES, 4, 4, np.random.default_rng(seed), settings)
        assert order.tolist() == [0, 1, 2, 3] and prob.tolist() == [1.0] * 4
    np.testing.assert_array_equal(first_slot_probabilities(SCORES, settings), [1, 0, 0, 0])


def test_the_rest_default_explores_with_the_documented_floor():
    assert REST_SETTINGS.exploration.value == "softmax" and REST_SETTINGS.epsilon == 0.1
    assert REST_SETTINGS.objective.value == "target_band"
