"""The target experiment in the simulated school: its history, the identified target, the bias.

Before a reported school is run, a **history school** under the same learning model (its
seed offset by :data:`~skbandit.study.history.HISTORY_SEED_OFFSET`, so it is never
reported; ``n_students`` of its own) runs the target experiment
(:mod:`skbandit.target_experiment`) for as long as the reported run will last: each
(student, topic) pair in the experiment is served at its assigned target, the others at the
default. Serving at a target means what a deployed policy can do: the item whose 2PL success
at the deployed ability estimate (``mastery``) with the published item parameters is closest
to it (:class:`AssignedTargetPolicy`). The log (target and its probability included) is fit
by :func:`skbandit.learning_curves.fit_learning_curves` and
:func:`skbandit.learning_curves.safe_target` picks the target the school then serves.

The fit's design bias (what it reports for each target when every target teaches the same)
is measured on null-world history schools (additive factors, seeds offset by
:data:`NULL_SEED_OFFSET`) by :func:`design_bias`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from skbandit import irt, schema
from skbandit.learning_curves import LearningCurves, fit_learning_curves, safe_target
from skbandit.sim.env import SchoolEnv
from skbandit.sim.learning import LEARNING_SCENARIOS
from skbandit.sim.world import SchoolConfig
from skbandit.study.choice import OnlinePolicy
from skbandit.study.history import HISTORY_SEED_OFFSET, stop_seconds
from skbandit.target_experiment import TARGET, TARGET_PROBABILITY, assign_targets

NULL_SEED_OFFSET = 20_000
"""Seeds of the null-world schools behind :func:`design_bias` (never reported)."""
NULL_LEARNING = "additive"
"""The null world: every attempt teaches ``learning_rate`` whatever the item."""
TRUE_GAIN = "true_gain"
"""History column of the simulator's true ability change of each attempt (evaluation only)."""
_COLUMNS = (schema.MASTERY, schema.DIFFICULTY, schema.DISCRIMINATION)


def pair_targets(world, state) -> tuple[np.ndarray, np.ndarray]:
    """Target and its probability for every (student, topic) of ``world``, shape (n_students,
    n_topics), from the experiment ``state`` (keyed on the published ids and topic names)."""
    n_students, n_topics = world.user_ids.size, world.topics.size
    users = np.repeat(world.user_ids, n_topics)
    topics = np.tile(world.topics, n_students)
    target, probability = assign_targets(state, users, topics)
    return target.reshape(n_students, n_topics), probability.reshape(n_students, n_topics)


def predicted_success(cands) -> np.ndarray:
    """2PL success of every candidate at the deployed ability estimate, published items."""
    return irt.p_correct_2pl(
        irt.mastery_to_logit(cands.column(schema.MASTERY)),
        cands.column(schema.DIFFICULTY),
        cands.column(schema.DISCRIMINATION),
    )


class AssignedTargetPolicy(OnlinePolicy):
    """Serves each (student, topic) at its assigned target: the item whose predicted success
    (:func:`predicted_success`) is closest to it. ``state`` is a target experiment's state
    (a share of 0 serves everyone at the default). A study policy that learns nothing."""

    columns = _COLUMNS

    def __init__(self, env: SchoolEnv, state: dict):
        self.env = env
        self.targets, self.probability = pair_targets(env.world, state)
        self.last_target = self.last_probability = None

    def score(self, cands, rng):
        student, topic = self.env.acting_indices()
        self.last_target = self.targets[student, topic]
        self.last_probability = self.probability[student, topic]
        return -np.abs(predicted_success(cands) - self.last_target[cands.decision])


def experiment_history(
    config: SchoolConfig, days: int | None, n_students: int, state: dict
) -> pd.DataFrame:
    """The logged attempts of ``config``'s history school running the experiment ``state``.

    Returns
    -------
    DataFrame
        In time order: ``user_id, topic, correct, mastery, difficulty, discrimination``
        (the deployed context of each attempt), ``target`` and ``target_probability``, and
        the simulator's truth ``true_gain`` (the attempt's ability change; evaluation only,
        the fit never reads it).
    """
    history = replace(config, seed=config.seed + HISTORY_SEED_OFFSET, n_students=n_students)
    env = SchoolEnv(history)
    policy = AssignedTargetPolicy(env, state)
    stop, rng = stop_seconds(history, days), np.random.default_rng(history.seed)
    parts = []
    while not env.done and env.slot_start < stop:
        cands = env.candidate_arrays(columns=_COLUMNS)
        rows = policy.choose(cands, rng)
        outcome = env.step_indices(cands.item[rows])
        context = {name: cands.column(name)[rows] for name in _COLUMNS}
        parts.append(
            pd.DataFrame(
                {
                    schema.USER_ID: outcome.student,
                    schema.TOPIC: env.world.item_topic[outcome.item],
                    schema.CORRECT: outcome.correct.astype(np.float64),
                    **context,
                    TARGET: policy.last_target,
                    TARGET_PROBABILITY: policy.last_probability,
                    TRUE_GAIN: outcome.ability_after - outcome.ability_before,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def identified_target(
    config: SchoolConfig, days: int | None, n_students: int, state: dict, bias=None
) -> tuple[float, LearningCurves]:
    """The target ``config``'s experiment history identifies (safe switching from the
    default), and the learning curves behind it."""
    curves = fit_learning_curves(experiment_history(config, days, n_students, state), bias=bias)
    return safe_target(curves, state["default"]), curves


def design_bias(
    seeds, days: int | None, n_students: int, state: dict, n_jobs: int = 1
) -> dict[float, float]:
    """Per target, the mean identified rate on null-world history schools minus the truth.

    Every target teaches ``learning_rate`` logits per attempt in the null world
    (:data:`NULL_LEARNING`); what the fit reports beyond that is the design's bias. The
    schools are seeds ``NULL_SEED_OFFSET + s`` (minus the history offset that
    :func:`experiment_history` adds back).
    """
    base = SchoolConfig(**LEARNING_SCENARIOS[NULL_LEARNING])

    def one(seed):
        config = replace(base, seed=NULL_SEED_OFFSET + seed - HISTORY_SEED_OFFSET)
        return identified_target(config, days, n_students, state)[1]

    if n_jobs == 1:
        fits = [one(seed) for seed in seeds]
    else:
        from joblib import Parallel, delayed

        fits = Parallel(n_jobs=n_jobs)(delayed(one)(seed) for seed in seeds)
    rates = np.mean([curves.rates for curves in fits], axis=0)
    return {
        float(t): float(r - base.learning_rate) for t, r in zip(fits[0].targets, rates, strict=True)
    }
