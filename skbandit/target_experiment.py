"""The target experiment: what a school turns on to learn which target success teaches.

On a share of traffic each (student, topic) pair is served at a target success drawn at
random from a few **arms** and keeps it for all its attempts on the topic; the rest is
served at the default target. Each served decision logs the target and the probability the
assignment had of giving it (like an item's propensity), so the learning curves
(:mod:`skbandit.learning_curves`) can be identified from the log and the design is known.

Assignment is a pure function of ``(student, topic, seed)``: a keyed hash (BLAKE2b) gives
each pair a uniform number ``u``; ``u < share`` puts it in the experiment, with arm
``floor(u / share * n_arms)``. Serving needs no state: any process, any day, gives a pair
the same target.

The experiment's whole state is a plain dict (:func:`experiment_state`), stored with a
model version; :func:`assign_targets` reads it. What a version learned from an experiment's
log is a plain dict too (:func:`identified_state`: the experiment and the learning curves
fit to its log); :func:`served_target` reads it, the target the ``learning_progress``
objective serves (:func:`skbandit.learning_progress.learned_target`).

>>> state = experiment_state(share=1.0, arms=(0.5, 0.9), seed=7)
>>> targets, probability = assign_targets(state, ["ABC123", "ABC123"], ["6.NS.B.2"] * 2)
>>> bool(targets[0] == targets[1]), probability.tolist()
(True, [0.5, 0.5])
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError
from skbandit.learning_curves import LearningCurves, fit_learning_curves, safe_target

ARMS = (0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97)
"""Target successes of the experiment's arms."""
DEFAULT_TARGET = 0.7
"""The target served outside the experiment (the served target band's)."""
SHARE = 0.5
"""Default share of (student, topic) pairs in the experiment."""
TARGET = "target"
"""Decision-log column of the target a decision was served at."""
TARGET_PROBABILITY = "target_probability"
"""Decision-log column of the probability the assignment had of giving that target."""


def experiment_state(
    share: float = SHARE, arms=ARMS, seed: int = 0, default: float = DEFAULT_TARGET
) -> dict:
    """The experiment as a plain dict, checked (one-line SkbanditError on a bad value).

    Parameters
    ----------
    share : float in [0, 1]
        Share of (student, topic) pairs in the experiment (0 turns it off).
    arms : sequence of float in (0, 1)
        Target successes drawn uniformly for a pair in the experiment.
    seed : int
        Key of the assignment hash (a new seed re-randomises every pair).
    default : float in (0, 1)
        Target of the pairs outside the experiment.
    """
    return check_state({"share": share, "arms": list(arms), "seed": seed, "default": default})


def check_state(state) -> dict:
    """``state`` normalised (floats, sorted distinct arms) or a one-line SkbanditError."""
    try:
        share = float(state["share"])
        arms = sorted({float(a) for a in state["arms"]})
        seed = int(state["seed"])
        default = float(state["default"])
    except (KeyError, TypeError, ValueError) as error:
        raise SkbanditError(
            "a target experiment needs 'share', 'arms', 'seed' and 'default'; found a "
            f"problem with {error}"
        ) from None
    if not 0.0 <= share <= 1.0:
        raise SkbanditError(f"the experiment's share must lie in [0, 1]; found {share}")
    if not arms or not all(0.0 < a < 1.0 for a in arms) or not 0.0 < default < 1.0:
        raise SkbanditError(
            f"the experiment's arms and default must be success probabilities in (0, 1); "
            f"found arms {arms} and default {default}"
        )
    return {"share": share, "arms": arms, "seed": seed, "default": default}


def pair_uniform(user_ids, topics, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per (student, topic), from a keyed hash (stateless).

    >>> u = pair_uniform(["a", "a", "b"], ["t", "t", "t"], seed=0)
    >>> bool(u[0] == u[1]), bool(0 <= u.min() and u.max() < 1)
    (True, True)
    """
    users = pd.Series(np.asarray(user_ids, dtype=object)).astype(str)
    topic = pd.Series(np.asarray(topics, dtype=object)).astype(str)
    if len(users) != len(topic):
        raise SkbanditError(
            f"one topic per student expected; found {len(users)} students, {len(topic)} topics"
        )
    pairs = pd.MultiIndex.from_arrays([users, topic])
    codes, unique = pd.factorize(pairs)
    key = str(int(seed)).encode()
    values = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(f"{u}\x1f{t}".encode(), digest_size=8, key=key).digest(), "big"
            )
            / 2.0**64
            for u, t in unique
        ],
        dtype=np.float64,
    )
    return values[codes] if len(values) else np.empty(0)


def assign_targets(state, user_ids, topics) -> tuple[np.ndarray, np.ndarray]:
    """The target each (student, topic) is served at, and the probability of that target.

    Returns
    -------
    target : ndarray of shape (n,)
        An arm for pairs in the experiment, ``default`` for the rest.
    probability : ndarray of shape (n,)
        ``share / n_arms`` for an arm, plus ``1 - share`` when the arm is the default (a
        pair outside the experiment is served at it too).
    """
    state = check_state(state)
    arms = np.asarray(state["arms"])
    share, default = state["share"], state["default"]
    u = pair_uniform(user_ids, topics, state["seed"])
    inside = u < share
    scaled = u / share * arms.size if share > 0 else np.zeros(u.size)
    arm = np.minimum(scaled.astype(np.int64), arms.size - 1)
    target = np.where(inside, arms[arm], default)
    probability = share / arms.size * np.isclose(target[:, None], arms[None, :]).any(axis=1)
    probability = probability + (1.0 - share) * np.isclose(target, default)
    return target, probability


def identified_state(attempts: pd.DataFrame | None, experiment: dict, bias=None) -> dict:
    """What a version stores: the experiment and the learning curves of its logged attempts.

    ``attempts`` are logged attempts in time order with ``target`` and the columns of
    :func:`skbandit.learning_curves.fit_learning_curves`; rows without a target (served
    before the experiment was on) are left out. Without any, ``curves`` is None and the
    default target is served.
    """
    experiment = check_state(experiment)
    curves = None
    if attempts is not None and TARGET in attempts:
        logged = attempts[attempts[TARGET].notna()]
        if len(logged):
            curves = fit_learning_curves(logged, bias=bias).as_dict()
    return {"experiment": experiment, "curves": curves}


def served_target(state) -> float:
    """The target to serve from :func:`identified_state`'s dict: the default unless the
    identified curves say another target surely teaches more
    (:func:`skbandit.learning_curves.safe_target`).

    >>> served_target({"experiment": experiment_state(), "curves": None})
    0.7
    """
    try:
        experiment, curves = check_state(state["experiment"]), state["curves"]
    except (KeyError, TypeError):
        raise SkbanditError(
            "an identified target needs 'experiment' and 'curves' (retrain the version with "
            "`python -m train.warmstart`)"
        ) from None
    if curves is None:
        return experiment["default"]
    return safe_target(LearningCurves.from_dict(curves), experiment["default"])


__all__ = [
    "ARMS",
    "DEFAULT_TARGET",
    "TARGET",
    "TARGET_PROBABILITY",
    "assign_targets",
    "check_state",
    "experiment_state",
    "identified_state",
    "pair_uniform",
    "served_target",
]
