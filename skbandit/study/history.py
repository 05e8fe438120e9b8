"""A logged history for the study's served learning-progress policy.

Served, the ``learning_progress`` objective ranks at the target a model version learned from
its training events: rule-logged attempts of earlier students
(:func:`skbandit.learning_progress.progress_bands`, run by ``python -m train.warmstart``).
The study reproduces that: before a school is run, another school under the same learning
model (its seed offset by :data:`HISTORY_SEED_OFFSET`, so it is never a reported school) is
logged by the default school's logging policy, the seed's rule with 10 % uniform exploration
(:mod:`skbandit.logging_policy`), for as long as the run will last; the target its delayed
rewards favour is the one the policy serves.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import progress_bands
from skbandit.sim.env import SchoolEnv
from skbandit.sim.world import school_days

HISTORY_SEED_OFFSET = 10_000
"""Seed of the history school = the reported school's seed + this."""
LOGGING_EPSILON = 0.1
"""Uniform exploration of the logging policy (as in the default school)."""
RULE_TOP_K = 5
"""The logging rule shows one of its five closest items uniformly."""
_COLUMNS = (schema.MASTERY, schema.DIFFICULTY, schema.DISCRIMINATION)


def stop_seconds(config, days) -> float:
    """Epoch seconds of the first moment after ``days`` school days (inf for the year)."""
    if days is None:
        return np.inf
    if days < 1:
        raise SkbanditError(f"days must be at least 1; found {days}")
    calendar = school_days(config)
    return np.inf if days >= len(calendar) else calendar[days].timestamp()


def learned_target(config, days) -> float:
    """The target a rule-logged history of ``config``'s learning model favours.

    Parameters
    ----------
    config : SchoolConfig
        The reported school's configuration; the history school differs only in its seed
        (which also seeds the logging policy's draws).
    days : int or None
        School days logged (the reported run's length; None: the whole year).
    """
    history = replace(config, seed=config.seed + HISTORY_SEED_OFFSET)
    env, stop = SchoolEnv(history), stop_seconds(history, days)
    rng = np.random.default_rng(history.seed)
    students, items, correct, contexts = [], [], [], []
    while not env.done and env.slot_start < stop:
        cands = env.candidate_arrays(columns=_COLUMNS)
        rows = _rule_epsilon(cands, rng)
        outcome = env.step_indices(cands.item[rows])
        students.append(outcome.student)
        items.append(outcome.item)
        correct.append(outcome.correct)
        contexts.append(np.column_stack([cands.column(c)[rows] for c in _COLUMNS]))
    logged = pd.DataFrame(np.concatenate(contexts), columns=list(_COLUMNS)).assign(
        **{
            schema.USER_ID: np.concatenate(students),
            schema.TOPIC: env.world.item_topic[np.concatenate(items)],
            schema.CORRECT: np.concatenate(correct).astype(np.float64),
        }
    )
    return progress_bands(logged, logged).best_target()


def _rule_epsilon(cands, rng) -> np.ndarray:
    """One row per decision: w.p. 0.9 one of the rule's 5 closest items, else any item."""
    distance = irt.rule_distance(cands.column(schema.MASTERY), cands.column(schema.DIFFICULTY))
    starts = np.searchsorted(cands.decision, np.arange(cands.n_decisions))
    order = np.lexsort((distance, cands.decision))  # rows of a decision stay together
    rank = np.empty(distance.size, dtype=np.int64)
    rank[order] = np.arange(distance.size) - starts[cands.decision[order]]
    explore = rng.random(cands.n_decisions) < LOGGING_EPSILON
    eligible = explore[cands.decision] | (rank < RULE_TOP_K)
    key = np.where(eligible, rng.random(distance.size), -1.0)
    best = np.maximum.reduceat(key, starts)[cands.decision]
    hits = np.flatnonzero(key == best)
    return hits[np.r_[True, cands.decision[hits][1:] != cands.decision[hits][:-1]]]
