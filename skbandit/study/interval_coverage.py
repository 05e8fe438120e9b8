"""How often the served success interval covers the true success, in the simulated school.

The simulator knows every attempt's true success probability, so the interval of
:mod:`skbandit.uncertainty` can be checked where no real log can check it. One run
(:func:`served_coverage`):

1. the school's first ``history_days`` school days are logged by the rule+epsilon logging
   policy (:func:`skbandit.sim.generate.logging_policy_step`);
2. a version is warm-started on that log as ``train.warmstart`` does it: the default
   features with the IRT prior (``l2 = 1000``), a progressive replay
   (:func:`skbandit.progressive.replay_history`), the probability calibration and the
   interval's scales learned from the replay's forecasts
   (:func:`skbandit.uncertainty.learn_success_interval`);
3. the version serves the next ``served_days`` school days, frozen (a version between two
   nightly trainings): at every decision the topic's candidates are ranked as a REST request
   is (:func:`skbandit.request_ranking.rank_requests`, by default with the REST settings:
   target band at 70 %, softmax with a 10 % uniform floor), the student practises the first
   item, and the served item's interval (``success_low``, ``success_high``) is compared with
   its true success.

The interval is computed twice: with the student's own ability sd (what ``trace`` and batch
scoring show) and without it (what a REST request, which carries no ``ability_sd``, gets).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import ABILITY_SD, historical_contexts
from skbandit.model import TrainedModel
from skbandit.progressive import model_features, replay_history
from skbandit.ranking_settings import REST_SETTINGS, RankingSettings
from skbandit.request_ranking import rank_requests
from skbandit.sim.env import SchoolEnv
from skbandit.sim.generate import logging_policy_step
from skbandit.sim.world import SchoolConfig, school_days
from skbandit.uncertainty import (
    SuccessInterval,
    candidate_interval,
    learn_success_interval,
    success_interval_of,
)

PRIOR_L2 = 1_000.0
"""Warm-start's default ridge strength with the IRT prior (``train.warmstart``)."""


@dataclass(frozen=True)
class Coverage:
    """What one run measured (shares of served items, true success inside the interval).

    Attributes
    ----------
    own_sd, typical_sd : float
        Coverage with the student's ability sd, and with the version's typical ability
        error (a REST request).
    n_served : int
        Served items.
    mean_width : float
        Mean width of the interval (own sd), on the probability scale.
    scales : SuccessInterval
        The learned scales.
    """

    own_sd: float
    typical_sd: float
    n_served: int
    mean_width: float
    scales: SuccessInterval


def served_coverage(
    config: SchoolConfig,
    history_days=60,
    served_days=20,
    settings: RankingSettings = REST_SETTINGS,
    seed=0,
) -> Coverage:
    """Log, warm-start, then serve ``config``'s school and measure the interval's coverage.

    Each step's candidate rows go through :func:`skbandit.request_ranking.rank_requests` (the REST
    path) with ``settings`` (default the REST defaults: softmax with a 10 % uniform floor;
    :data:`~skbandit.ranking_settings.SERVING_SETTINGS` is ``trace``'s greedy ranking); the
    item ranked first is served. ``seed`` seeds the draws.
    """
    env = SchoolEnv(config)
    calendar = school_days(env.config)
    history_end = calendar[min(history_days, len(calendar) - 1)].timestamp()
    served_end = calendar[min(history_days + served_days, len(calendar) - 1)].timestamp()
    log_rng = np.random.default_rng(env.policy_seed)
    while not env.done and env.slot_start < history_end:
        logging_policy_step(env, log_rng)
    model = _warm_start(env)
    rng = np.random.default_rng(seed)
    own, typical, width = [], [], []
    while not env.done and env.slot_start < served_end:
        cands = env.candidate_arrays()
        frame = pd.DataFrame(cands.X, columns=list(cands.columns))
        frame.insert(0, schema.ITEM_ID, env.world.item_ids[cands.item])
        frame.insert(0, schema.USER_ID, cands.decision.astype(str))
        sd = env.student_context(names=[ABILITY_SD])[ABILITY_SD].to_numpy()
        ranked = rank_requests(
            model, frame.assign(**{ABILITY_SD: sd[cands.decision]}), settings, rng
        )
        rows = np.flatnonzero(ranked[schema.RANK].to_numpy() == 1)
        rows = rows[np.argsort(cands.decision[rows])]
        truth = cands.p_true[rows]
        low, high = (ranked[c].to_numpy()[rows] for c in (schema.SUCCESS_LOW, schema.SUCCESS_HIGH))
        own.append((truth >= low) & (truth <= high))
        width.append(high - low)
        expected = ranked[schema.EXPECTED_REWARD].to_numpy()[rows]
        std = model.predict(frame.iloc[rows], return_std=True)[1]
        low, high = candidate_interval(model, frame.iloc[rows], expected, std)  # as REST
        typical.append((truth >= low) & (truth <= high))
        env.step_indices(cands.item[rows])
    covered_own, covered_typical = np.concatenate(own), np.concatenate(typical)
    return Coverage(
        own_sd=float(covered_own.mean()),
        typical_sd=float(covered_typical.mean()),
        n_served=int(covered_own.size),
        mean_width=float(np.concatenate(width).mean()),
        scales=success_interval_of(model),
    )


def _warm_start(env: SchoolEnv):
    """A version trained on the env's log so far, as ``train.warmstart`` trains one."""
    events, _ = env.history()
    events = events.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    contexts = historical_contexts(events, env.items)
    model = TrainedModel("default", l2=PRIOR_L2)
    features = model_features(model, contexts)
    result = replay_history(model, contexts, events[schema.CORRECT], features=features)
    model.calibration = result.calibration
    model.success_interval = learn_success_interval(events, env.items, contexts, result.predictions)
    return model
