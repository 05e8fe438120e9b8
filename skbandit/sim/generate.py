"""The simulated school's history: the logging policy run through :class:`SchoolEnv`.

No real learning data may be shipped, so the embedded default data set is a simulated school
(:mod:`skbandit.sim.world` draws the world, :mod:`skbandit.sim.env` plays policies against
it). :func:`simulate_school` produces the logged history the way a deployed rule-based
recommender with exploration would have: at every decision the **logging policy** shows

- w.p. ``1 - epsilon`` one of the rule's top ``top_k`` items uniformly (the rule orders the
  topic's non-drift items by :func:`skbandit.irt.rule_distance` between the item's
  published difficulty and the student's observed mastery), and
- w.p. ``epsilon`` a uniformly random candidate,

and every event carries the exact probability it was shown with in ``propensity``
(:mod:`skbandit.logging_policy` holds the formula, shared with off-policy evaluation).

Example
-------
>>> school = simulate_school(SchoolConfig(n_students=20, seed=3))
>>> bool(school.events["propensity"].between(0, 1).all())
True
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.logging_policy import logging_policy_name, rule_epsilon_probabilities
from skbandit.sim.env import (
    ABILITY_AFTER,
    ABILITY_BEFORE,
    DECISION_ID,
    P_TRUE,
    TRUTH_COLUMNS,
    SchoolEnv,
    StepOutcome,
)
from skbandit.sim.world import SchoolConfig, default_school_config

__all__ = [
    "ABILITY_AFTER",
    "ABILITY_BEFORE",
    "DECISION_ID",
    "P_TRUE",
    "TRUTH_COLUMNS",
    "SchoolConfig",
    "SchoolEnv",
    "SimulatedSchool",
    "default_school_config",
    "logging_policy_step",
    "simulate_school",
]


@dataclass
class SimulatedSchool:
    """A simulated school year.

    Attributes
    ----------
    events : DataFrame
        Canonical events incl. ``propensity`` and ``policy``, sorted by timestamp.
    items : DataFrame
        The published items table (canonical columns).
    truth : DataFrame
        Aligned with ``events`` row by row: ``p_true, ability_before, ability_after``.
    true_items : DataFrame
        The items with their true parameters (``difficulty_true``,
        ``discrimination_true``, ``hidden_effect``).
    config : SchoolConfig
    """

    events: pd.DataFrame
    items: pd.DataFrame
    truth: pd.DataFrame
    true_items: pd.DataFrame
    config: SchoolConfig


def simulate_school(config: SchoolConfig | None = None) -> SimulatedSchool:
    """Simulate a school year logged by the rule+epsilon policy.

    Parameters
    ----------
    config : SchoolConfig, optional
        Defaults to :func:`default_school_config`. The result depends only on it.

    Returns
    -------
    SimulatedSchool
    """
    env = SchoolEnv(config)
    cfg = env.config
    rng = np.random.default_rng(env.policy_seed)
    while not env.done:
        logging_policy_step(env, rng)
    events, truth = env.history(policy=logging_policy_name(cfg.epsilon))
    return SimulatedSchool(
        events=events, items=env.items, truth=truth, true_items=env.true_items, config=cfg
    )


def logging_policy_step(env: SchoolEnv, rng: np.random.Generator) -> StepOutcome:
    """Play one step of ``env`` with the rule+epsilon logging policy, recording propensities.

    :func:`simulate_school` repeats it until the year is over (drawing from
    ``np.random.default_rng(env.policy_seed)``); a simulated deployment plays the first days
    of a school this way before a model serves it.
    """
    cfg = env.config
    cands = env.candidate_arrays(columns=(schema.MASTERY, schema.DIFFICULTY))
    first, position = _decision_positions(cands.decision, cands.n_decisions)
    difficulty = np.full((cands.n_decisions, position.max() + 1), np.nan)
    difficulty[cands.decision, position] = cands.column(schema.DIFFICULTY)
    mastery = cands.column(schema.MASTERY)[first]
    probs = rule_epsilon_probabilities(mastery, difficulty, cfg.epsilon, cfg.top_k)
    column = _sample_columns(probs, rng)
    decisions = np.arange(cands.n_decisions)
    return env.step_indices(cands.item[first + column], propensity=probs[decisions, column])


def _decision_positions(decision: np.ndarray, n_decisions: int):
    """First row of each decision, and each row's position within its decision.

    ``decision`` is sorted (as in :class:`~skbandit.sim.env.CandidateArrays`).
    """
    first = np.searchsorted(decision, np.arange(n_decisions))
    return first, np.arange(decision.size) - first[decision]


def _sample_columns(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row, drawn with the row's probabilities."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0]) * cumulative[:, -1]
    return (cumulative <= u[:, None]).sum(axis=1)
