"""Off-policy estimators of a target policy's value from logged bandit data.

Every estimator takes plain arrays, one entry per logged decision ``i`` (a context
``x_i``, the action ``a_i`` the logging policy ``mu`` chose, and its reward ``r_i``):

- ``rewards``: ``r_i``;
- ``logged_propensity``: ``mu(a_i | x_i)`` in ``(0, 1]``;
- ``target_propensity``: ``pi(a_i | x_i)`` in ``[0, 1]``, the probability that the
  *target* policy chooses the logged action in the logged context (see
  :func:`skbandit.ope.targets.off_policy_inputs` or
  :func:`skbandit.ope.decisions.logged_action_probability`);
- for the doubly robust estimator, a reward model ``q(x, a)`` evaluated at the logged
  action and in expectation under the target policy (see
  :func:`skbandit.ope.decisions.policy_expected_reward`);
- for replay, ``match``: whether the deterministic target chooses the logged action.

Each estimate is a ratio of two sample means, ``mean(numerator) / mean(denominator)``
(:func:`estimator_terms`), which is also what the bootstrap
(:mod:`skbandit.ope.bootstrap`) resamples; the importance weight is
``w_i = pi(a_i | x_i) / mu(a_i | x_i)``.

References
----------
.. [1] Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without
   replacement from a finite universe. JASA 47(260), 663-685.
.. [2] Li, L., Chu, W., Langford, J. and Wang, X. (2011). Unbiased offline evaluation of
   contextual-bandit-based news article recommendation algorithms. WSDM.
.. [3] Swaminathan, A. and Joachims, T. (2015). The self-normalized estimator for
   counterfactual learning. NeurIPS.
.. [4] Dudík, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and
   learning. ICML.
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError
from skbandit.ope.bootstrap import percentile_interval, unit_sums

ESS_WARN_FRACTION = 0.1
"""Warn when the effective sample size is below this fraction of the logged rows."""

MAX_WEIGHT_WARN = 100.0
"""Warn when one importance weight ``pi / mu`` exceeds this (one row counts as 100)."""


@dataclass(frozen=True, slots=True)
class PolicyValueEstimate:
    """One off-policy estimate of a target policy's value, with its bootstrap interval.

    Attributes
    ----------
    name : str
        Estimator name: ``"replay"``, ``"ips"``, ``"snips"`` or ``"dr"``.
    value : float
        Point estimate of the target policy's expected reward.
    ci_low, ci_high : float
        Bootstrap percentile interval at the requested confidence (NaN when
        ``n_bootstrap=0``).
    n : int
        Number of logged rows.
    effective_sample_size : float
        Kish's effective sample size of the weights, ``(sum w)^2 / sum w^2`` (for replay
        the weights are the 0/1 match indicators, so this is the number of matches).
    max_weight : float
        Largest weight.
    warning : str or None
        Why the estimate may be unreliable (low overlap, an exploding weight, bootstrap
        resamples without overlap), or None.
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    effective_sample_size: float
    max_weight: float
    warning: str | None = None


def replay(rewards, match, *, n_bootstrap=1000, confidence=0.95, rng=None, clusters=None):
    """Replay estimate (Li et al. 2011): the mean reward on rows where the target agrees.

    Parameters
    ----------
    rewards : array-like of shape (n,)
        Logged rewards.
    match : array-like of bool of shape (n,)
        True where the target policy's (deterministic) choice equals the logged action.
    n_bootstrap : int, default=1000
        Bootstrap resamples for the interval; 0 skips the interval (NaN bounds).
    confidence : float, default=0.95
        Coverage of the percentile interval.
    rng : numpy.random.Generator, int or None
        Source of the bootstrap resamples (an int seeds a new generator).
    clusters : array-like of shape (n,), optional
        A label per row (e.g. the student); the interval then resamples whole clusters
        (rows of one student are correlated) instead of single rows.

    Returns
    -------
    PolicyValueEstimate

    Notes
    -----
    ``V = sum_i 1[pi(x_i) = a_i] r_i / sum_i 1[pi(x_i) = a_i]`` [2]_. It is unbiased when the
    logging policy chose uniformly at random among the same candidates in every context.
    Under any other logging policy the matched rows over-represent contexts where the
    logging policy favoured the target's choice, so replay is biased; use :func:`ips`,
    :func:`snips` or :func:`doubly_robust` with the logged propensities instead.

    Examples
    --------
    >>> replay([1, 0, 1, 0], [True, True, True, False], n_bootstrap=0).value
    0.6666666666666666
    """
    rewards = finite_vector("rewards", rewards)
    match = _boolean("match", match, len(rewards))
    if not match.any():
        raise SkbanditError(
            f"replay needs at least one row where the target policy chooses the logged "
            f"action; none of the {len(rewards)} rows match (use ips/snips with propensities, "
            "or log more uniformly random decisions)"
        )
    indicator = match.astype(np.float64)
    return _estimate(
        "replay", indicator * rewards, indicator, indicator, n_bootstrap, confidence, rng, clusters
    )


def ips(
    rewards,
    logged_propensity,
    target_propensity,
    *,
    n_bootstrap=1000,
    confidence=0.95,
    rng=None,
    clusters=None,
):
    """Inverse propensity scoring (Horvitz–Thompson) estimate of the target's value.

    Parameters
    ----------
    rewards : array-like of shape (n,)
        Logged rewards.
    logged_propensity : array-like of shape (n,)
        ``mu(a_i | x_i)`` in (0, 1]: the logging policy's probability of the logged action.
    target_propensity : array-like of shape (n,)
        ``pi(a_i | x_i)`` in [0, 1]: the target policy's probability of the logged action.
    n_bootstrap, confidence, rng, clusters
        See :func:`replay`.

    Returns
    -------
    PolicyValueEstimate

    Notes
    -----
    ``V = (1/n) sum_i w_i r_i`` with ``w_i = pi(a_i | x_i) / mu(a_i | x_i)`` [1]_. Unbiased
    when the logged propensities are the true ones and ``mu > 0`` wherever ``pi > 0``;
    its variance grows with the weights. With ``pi = mu`` every weight is 1 and the
    estimate is the logged mean reward.

    Examples
    --------
    >>> ips([1, 0, 0, 1], [0.5, 0.5, 0.25, 1.0], [1.0, 0.0, 0.5, 1.0], n_bootstrap=0).value
    0.75
    """
    terms = estimator_terms("ips", rewards, logged_propensity, target_propensity)
    return _estimate("ips", *terms, n_bootstrap, confidence, rng, clusters)


def snips(
    rewards,
    logged_propensity,
    target_propensity,
    *,
    n_bootstrap=1000,
    confidence=0.95,
    rng=None,
    clusters=None,
):
    """Self-normalised IPS estimate (Swaminathan & Joachims 2015).

    Parameters
    ----------
    rewards, logged_propensity, target_propensity
        See :func:`ips`.
    n_bootstrap, confidence, rng, clusters
        See :func:`replay`.

    Returns
    -------
    PolicyValueEstimate

    Notes
    -----
    ``V = sum_i w_i r_i / sum_i w_i`` [3]_. Biased by O(1/n) but consistent, invariant to
    a constant reward shift (a constant reward ``c`` gives exactly ``c``) and usually far
    less variable than IPS when weights are large.

    Examples
    --------
    >>> snips([1, 0, 0, 1], [0.5, 0.5, 0.25, 1.0], [1.0, 0.0, 0.5, 1.0], n_bootstrap=0).value
    0.6
    """
    terms = estimator_terms("snips", rewards, logged_propensity, target_propensity)
    if not terms[2].any():
        raise SkbanditError(
            "snips is undefined: the target policy gives probability 0 to every logged "
            "action (no overlap with the logging policy); check target_propensity"
        )
    return _estimate("snips", *terms, n_bootstrap, confidence, rng, clusters)


def doubly_robust(
    rewards,
    logged_propensity,
    target_propensity,
    reward_model_logged,
    reward_model_target,
    *,
    n_bootstrap=1000,
    confidence=0.95,
    rng=None,
    clusters=None,
):
    """Doubly robust estimate (Dudík et al. 2011): model prediction plus IPS correction.

    Parameters
    ----------
    rewards, logged_propensity, target_propensity
        See :func:`ips`.
    reward_model_logged : array-like of shape (n,)
        ``q(x_i, a_i)``: the reward model at the logged action.
    reward_model_target : array-like of shape (n,)
        ``sum_a pi(a | x_i) q(x_i, a)``: the model's expected reward under the target
        policy (see :func:`skbandit.ope.decisions.policy_expected_reward`).
    n_bootstrap, confidence, rng, clusters
        See :func:`replay`.

    Returns
    -------
    PolicyValueEstimate

    Notes
    -----
    ``V = (1/n) sum_i [ q(x_i, pi) + w_i (r_i - q(x_i, a_i)) ]`` [4]_. Unbiased if either
    the propensities or the reward model are correct; with ``q = 0`` it is IPS, and with a
    model that predicts every reward exactly it is the model's value of the target.

    Examples
    --------
    >>> doubly_robust([1, 0], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5],
    ...               n_bootstrap=0).value
    1.0
    """
    terms = estimator_terms(
        "dr",
        rewards,
        logged_propensity,
        target_propensity,
        reward_model_logged,
        reward_model_target,
    )
    return _estimate("dr", *terms, n_bootstrap, confidence, rng, clusters)


def estimate_all(
    rewards,
    logged_propensity,
    target_propensity,
    *,
    reward_model_logged=None,
    reward_model_target=None,
    match=None,
    n_bootstrap=1000,
    confidence=0.95,
    rng=None,
):
    """IPS, SNIPS, and when their inputs are given doubly robust and replay estimates.

    Parameters
    ----------
    rewards, logged_propensity, target_propensity
        See :func:`ips`.
    reward_model_logged, reward_model_target : array-like of shape (n,), optional
        Both or neither; see :func:`doubly_robust`.
    match : array-like of bool of shape (n,), optional
        See :func:`replay`.
    n_bootstrap, confidence, rng
        See :func:`replay`; one generator serves all estimators in turn.

    Returns
    -------
    list of PolicyValueEstimate
        In the order replay (if ``match``), ips, snips, dr (if the reward model is given);
        :func:`estimates_frame` turns it into a table.
    """
    if (reward_model_logged is None) != (reward_model_target is None):
        raise SkbanditError(
            "doubly robust needs both reward_model_logged and reward_model_target; "
            "got only one of them (pass both, or neither to skip dr)"
        )
    rng = np.random.default_rng(rng)
    boot = {"n_bootstrap": n_bootstrap, "confidence": confidence, "rng": rng}
    logged = (rewards, logged_propensity, target_propensity)
    estimates = [] if match is None else [replay(rewards, match, **boot)]
    estimates += [ips(*logged, **boot), snips(*logged, **boot)]
    if reward_model_logged is not None:
        estimates.append(doubly_robust(*logged, reward_model_logged, reward_model_target, **boot))
    return estimates


def estimator_terms(
    estimator,
    rewards,
    logged_propensity,
    target_propensity,
    reward_model_logged=None,
    reward_model_target=None,
):
    """Per-decision ``(numerator, denominator or None, weights)`` of one estimator.

    The estimate is ``mean(numerator) / mean(denominator)`` (denominator None: 1): the one
    definition of :func:`ips`, :func:`snips` and :func:`doubly_robust`; the paired gate
    (:func:`skbandit.ope.gate.paired_difference`) resamples these terms by student.

    Examples
    --------
    >>> num, den, w = estimator_terms("snips", [1, 0], [0.5, 0.5], [1.0, 0.5])
    >>> float(num.mean() / den.mean())
    0.6666666666666666
    """
    rewards, weights = _weighted(rewards, logged_propensity, target_propensity)
    if estimator == "ips":
        return weights * rewards, None, weights
    if estimator == "snips":
        return weights * rewards, weights, weights
    if estimator == "dr":
        if reward_model_logged is None or reward_model_target is None:
            raise SkbanditError(
                "doubly robust needs a reward model at the logged action and "
                "under the target; pass both or choose ips/snips"
            )
        q_logged = finite_vector("reward_model_logged", reward_model_logged, len(rewards))
        q_target = finite_vector("reward_model_target", reward_model_target, len(rewards))
        return q_target + weights * (rewards - q_logged), None, weights
    raise SkbanditError(
        f"unknown estimator {estimator!r} for paired terms (expected ips, snips or dr)"
    )


def estimates_frame(estimates):
    """One row per :class:`PolicyValueEstimate`, columns named after its fields."""
    return pd.DataFrame([asdict(estimate) for estimate in estimates])


# --- internals -------------------------------------------------------------------------


def _estimate(name, numerator, denominator, weights, n_bootstrap, confidence, rng, clusters=None):
    """Point estimate ``mean(num) / mean(den)``, bootstrap interval and diagnostics."""
    n = len(numerator)
    den = 1.0 if denominator is None else denominator.mean()
    value = float(numerator.mean() / den)
    if clusters is not None and np.shape(clusters) != numerator.shape:
        raise SkbanditError(
            f"clusters must give one label per row ({n}); got shape {np.shape(clusters)}"
        )
    ones = np.ones(n) if denominator is None else denominator
    ci_low, ci_high, n_dropped = percentile_interval(
        unit_sums([numerator, ones], clusters), _ratio, n_bootstrap, confidence, rng
    )
    ess = effective_sample_size(weights)
    max_weight = float(weights.max())
    problems = []
    if ess < ESS_WARN_FRACTION * n:
        problems.append(
            f"effective sample size {ess:.1f} is below {ESS_WARN_FRACTION:.0%} of the "
            f"{n} logged rows (little overlap between target and logging policy)"
        )
    if max_weight > MAX_WEIGHT_WARN:
        problems.append(f"max importance weight {max_weight:.3g} exceeds {MAX_WEIGHT_WARN:g}")
    if n_dropped:
        problems.append(
            f"{n_dropped} of {n_bootstrap} bootstrap resamples had no overlap and were dropped"
        )
    warning = "; ".join(problems) + "; treat the estimate with caution" if problems else None
    return PolicyValueEstimate(name, value, ci_low, ci_high, n, ess, max_weight, warning)


def effective_sample_size(weights) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights (0 if all 0).

    >>> effective_sample_size([1.0, 1.0, 0.0, 2.0])
    2.6666666666666665
    """
    weights = np.asarray(weights, dtype=np.float64)
    square = np.square(weights).sum()
    return float(weights.sum() ** 2 / square) if square > 0 else 0.0


def _ratio(totals):
    """Resampled ``sum(num) / sum(den)``, NaN where a resample's denominator is 0."""
    return np.where(totals[:, 1] > 0, totals[:, 0] / totals[:, 1], np.nan)


def _weighted(rewards, logged_propensity, target_propensity):
    """Validated rewards and importance weights ``pi / mu``."""
    rewards = finite_vector("rewards", rewards)
    mu = finite_vector("logged_propensity", logged_propensity, len(rewards))
    pi = finite_vector("target_propensity", target_propensity, len(rewards))
    _in_range(
        "logged_propensity",
        mu,
        low_open=True,
        advice="it is the logging policy's probability of the logged action",
    )
    _in_range(
        "target_propensity",
        pi,
        low_open=False,
        advice="it is the target policy's probability of the logged action",
    )
    return rewards, pi / mu


def finite_vector(name, values, n=None, *, rows="rewards has {n} entries"):
    """A finite float vector of length ``n`` (any non-zero length when ``n`` is None).

    ``rows`` says, in the length error, what ``n`` counts (formatted with ``n``).
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise SkbanditError(f"{name} must be numeric; could not convert it ({err})") from err
    if array.ndim != 1:
        raise SkbanditError(f"{name} must be one-dimensional; got shape {array.shape}")
    if n is None and len(array) == 0:
        raise SkbanditError(f"{name} is empty; off-policy evaluation needs logged rows")
    if n is not None and len(array) != n:
        raise SkbanditError(
            f"{name} has {len(array)} entries but {rows.format(n=n)}; pass one entry per row"
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise SkbanditError(
            f"{name} has {len(bad)} missing or infinite values (first at "
            f"row {bad[0]}); drop or fill those rows first"
        )
    return array


def _boolean(name, values, n):
    """A boolean vector of length ``n`` from bools or 0/1 numbers."""
    array = finite_vector(name, values, n)
    if not np.isin(array, (0.0, 1.0)).all():
        raise SkbanditError(
            f"{name} must be boolean (or 0/1); got values such as "
            f"{array[~np.isin(array, (0.0, 1.0))][0]!r}"
        )
    return array.astype(bool)


def _in_range(name, values, *, low_open, advice):
    """Raise unless ``values`` lie in (0, 1] (``low_open``) or [0, 1]."""
    outside = (values <= 0.0 if low_open else values < 0.0) | (values > 1.0)
    if outside.any():
        interval = "(0, 1]" if low_open else "[0, 1]"
        first = np.flatnonzero(outside)[0]
        raise SkbanditError(
            f"{name} must lie in {interval} ({advice}); {outside.sum()} values are outside, "
            f"first {values[first]!r} at row {first}"
        )
