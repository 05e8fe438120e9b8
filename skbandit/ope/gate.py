"""The promotion gate: may a candidate policy replace the champion, judged off-policy?

The gate decides on the **paired difference** ``V(candidate) - V(champion)`` estimated on the
same logged decisions, with a bootstrap that resamples **students** (a cluster bootstrap: the
decisions of one student share the student's ability and history, so resampling decisions
one by one makes intervals too narrow). It passes when the interval lies above 0 and the
effective sample size (Kish's, of the importance weights; the smaller of the two policies')
is at least :data:`DEFAULT_MIN_ESS`.

Every estimator is a ratio of means ``mean(num) / mean(den)`` (see
:func:`skbandit.ope.estimators.estimator_terms`), so a resample of students only needs the
per-student sums of the four columns ``num_c, den_c, num_b, den_b``.

**The reward** (:data:`REWARDS`) is either ``"correct"`` (the first attempt at the served
item was correct) or ``"progress"``: the delayed, learning-aligned reward of
:func:`skbandit.learning_progress.logged_rewards`, the ability change (logits) that the
student's next attempts on the topic show against their ability at the decision
(:func:`with_rewards` puts it in the estimator inputs).
"""

from dataclasses import dataclass, replace

import numpy as np

from skbandit.exceptions import SkbanditError
from skbandit.ope.bootstrap import percentile_interval, unit_sums
from skbandit.ope.estimators import effective_sample_size

DEFAULT_MIN_ESS = 100.0
"""Smallest effective sample size that may promote.

Chosen from ``bench/bench_gate_coverage.py`` (docs/loop.md has its table, 872 replicates):
the 95% student-bootstrap interval of the DR paired difference covered the simulator's truth
in 82-84% of replicates below an effective sample size of 30 and in 93-95% from 30 up
(95.3% of 107 replicates between 100 and 200); 100 leaves a threefold margin.
"""

REWARDS = ("correct", "progress")
"""What the gate's estimates are of: success of the served item, or the delayed learning
reward of the decision."""


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """``V(candidate) - V(champion)`` on the same logged decisions, with its interval.

    Attributes
    ----------
    estimator : str
    value : float
        Candidate's estimate minus the champion's.
    ci_low, ci_high : float
        Percentile interval of the student (cluster) bootstrap; NaN if no resample was usable.
    candidate_value, baseline_value : float
        The two point estimates.
    n_decisions, n_students : int
    effective_sample_size : float
        The smaller of the two policies' Kish effective sample sizes.
    confidence : float
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    candidate_value: float
    baseline_value: float
    n_decisions: int
    n_students: int
    effective_sample_size: float
    confidence: float


def paired_difference(
    candidate, baseline, students, *, estimator="dr", n_bootstrap=1000, confidence=0.95, rng=None
) -> PairedDifference:
    """Paired difference of two policies' estimates with a student cluster bootstrap.

    Parameters
    ----------
    candidate, baseline : tuple of (numerator, denominator or None, weights)
        Per-decision terms of the same estimator for each policy, on the same decisions
        (:func:`skbandit.ope.estimators.estimator_terms`).
    students : array-like of shape (n,)
        The student of each decision: the resampling unit.
    estimator : str, default="dr"
        Name recorded in the result.
    n_bootstrap : int, default=1000
    confidence : float, default=0.95
    rng : numpy.random.Generator, int or None

    Returns
    -------
    PairedDifference

    Examples
    --------
    >>> ones = np.ones(4)
    >>> d = paired_difference((np.array([1., 1, 1, 0]), None, ones),
    ...                       (np.array([0., 1, 0, 0]), None, ones), ["a", "a", "b", "c"],
    ...                       n_bootstrap=0)
    >>> d.value, d.n_students, d.effective_sample_size
    (0.5, 3, 4.0)
    """
    n = len(np.asarray(students, dtype=object))
    columns = [_column(part, n) for terms in (candidate, baseline) for part in terms[:2]]
    sums = unit_sums(columns, students, name="students")
    total = sums.sum(axis=0)
    cand_value, base_value = total[0] / total[1], total[2] / total[3]
    low, high, _ = percentile_interval(sums, _difference, n_bootstrap, confidence, rng)
    ess = min(effective_sample_size(candidate[2]), effective_sample_size(baseline[2]))
    return PairedDifference(
        estimator,
        float(cand_value - base_value),
        low,
        high,
        float(cand_value),
        float(base_value),
        n,
        len(sums),
        ess,
        confidence,
    )


def promotion_gate(difference: PairedDifference, min_ess=DEFAULT_MIN_ESS) -> tuple[bool, str]:
    """Whether the candidate may replace the champion, and why (one sentence).

    Passes when the interval of the paired difference lies above 0 and its effective sample
    size is at least ``min_ess``.

    Examples
    --------
    >>> d = PairedDifference("dr", 0.05, 0.01, 0.09, 0.80, 0.75, 1000, 50, 400.0, 0.95)
    >>> promotion_gate(d)
    (True, 'the paired difference 0.0500 has its 95% interval [0.0100, 0.0900] above 0')
    """
    if not np.isfinite(difference.ci_low):
        return False, "the paired difference has no interval (no usable bootstrap resample)"
    if difference.effective_sample_size < min_ess:
        return False, (
            f"the effective sample size {difference.effective_sample_size:.0f} is below "
            f"--min-ess {min_ess:g}, so the interval cannot be trusted (log more decisions "
            "or evaluate a policy closer to the served one)"
        )
    where = "above" if difference.ci_low > 0 else "not above"
    return difference.ci_low > 0, (
        f"the paired difference {difference.value:.4f} has its "
        f"{difference.confidence:.0%} interval [{difference.ci_low:.4f}, "
        f"{difference.ci_high:.4f}] {where} 0"
    )


def with_rewards(inputs, rewards):
    """Estimator inputs with another reward per decision; decisions without one dropped.

    Parameters
    ----------
    inputs : OffPolicyInputs
        From :func:`skbandit.ope.targets.off_policy_inputs` (or the served-log path).
    rewards : array-like of shape (n,)
        The reward of each decision, NaN where it is unknown (for ``"progress"``: fewer
        than five later attempts on the topic).

    Returns
    -------
    inputs : OffPolicyInputs
        Only the decisions with a reward. The success reward model means nothing for
        another reward, so doubly robust's reward model becomes the mean reward (a
        constant: DR is then IPS with that baseline, still unbiased given the propensities).
    keep : ndarray of bool of shape (n,)
        Which decisions were kept (apply it to the students too).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.shape != inputs.rewards.shape:
        raise SkbanditError(
            f"expected one reward per logged decision ({inputs.rewards.size}); "
            f"got shape {rewards.shape}"
        )
    keep = np.isfinite(rewards)
    if not keep.any():
        raise SkbanditError(
            f"none of the {rewards.size} logged decisions has a reward (the "
            "delayed reward needs five later attempts on the decision's "
            "topic); evaluate on a longer stretch of events or use "
            "--reward correct"
        )
    kept = rewards[keep]
    baseline = np.full(kept.size, kept.mean())
    modelled = inputs.reward_model_logged is not None
    return replace(
        inputs,
        rewards=kept,
        logged_propensity=inputs.logged_propensity[keep],
        target_propensity=inputs.target_propensity[keep],
        reward_model_logged=baseline if modelled else None,
        reward_model_target=baseline if modelled else None,
        match=None if inputs.match is None else inputs.match[keep],
        expectations={name: values[keep] for name, values in inputs.expectations.items()},
        n_candidates=None if inputs.n_candidates is None else inputs.n_candidates[keep],
    ), keep


def _column(values, n):
    if values is None:
        return np.ones(n)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n,) or not np.isfinite(values).all():
        raise SkbanditError(
            f"paired terms must be {n} finite numbers (one per decision, like "
            f"students); got shape {values.shape}"
        )
    return values


def _difference(totals):
    """Resampled candidate ratio minus the champion's (columns ``num_c, den_c, num_b, den_b``)."""
    return totals[:, 0] / totals[:, 1] - totals[:, 2] / totals[:, 3]
