"""Learning curves identified from logs: how much one attempt at each target success teaches.

Which target success teaches most cannot be read off rule-logged history (the rule shows
items near one success level); it can be read off a **target experiment**
(:mod:`skbandit.target_experiment`), in which each (student, topic) is served at a target
drawn at random and kept for all its attempts. This module fits the pooled learning curve

``logit P(correct_i) = a_i (theta0_g + sum_t delta_t n_{i,t} - b_i)``

where ``g`` is the attempt's (student, topic), ``n_{i,t}`` the attempts of ``g`` before
``i`` served at target ``t``, ``delta_t`` the ability (logits) one attempt at target ``t``
adds, and ``a_i, b_i`` the item's published discrimination and difficulty. The starting
ability is a random effect, ``theta0_g ~ N(mu + beta c_g, tau^2)`` with ``c_g`` the
deployed ability estimate at the pair's first attempt (centred; 0 without a ``mastery``
column), and it is **integrated out** (Gauss-Hermite quadrature, :data:`N_NODES` nodes):
the fit maximises the marginal likelihood in ``(mu, beta, tau, delta)``. Because that is a
likelihood of the answers given everything before them, it stays valid when the items were
chosen adaptively from earlier answers (the design is ignorable); only the assignment of
targets needs to be random for ``delta_t`` to mean "what serving at ``t`` teaches".

Why integrate rather than penalise: the issue's prototype estimated every ``theta0_g`` with a
ridge penalty (joint maximum a posteriori). With 10-20 attempts per pair the shrunken
starting abilities are wrong by a pair-specific amount that the adaptive item path turns into
a trend, and the learning rates absorb it: on a simulated null world (every target teaching
0.04 logits) the ridge fit put the 0.97 target 0.03 logits per attempt below the others. The
marginal likelihood has no incidental parameters, and the ``c_g`` shift absorbs the item
choice's dependence on the student's other topics. What remains of the bias (the simulator's
items carry hidden effects and noisy published parameters the model does not know) is
measured on null worlds (:func:`skbandit.study.experiment.design_bias`) and subtracted
(``bias``) before targets are compared. :func:`safe_target` then moves the served target
from the default only when another target beats the default's identified rate at a
one-sided lower confidence bound (Bonferroni over the arms) by a margin.

Why :func:`scipy.optimize.minimize` (L-BFGS with the analytic gradient) and not scikit-learn's
``LogisticRegression``: the starting abilities are integrated out (a mixed model, which
``LogisticRegression`` cannot fit), every parameter is multiplied by the attempt's own
``a_i`` and ``-a_i b_i`` is an offset, which it has no way to take. The standard errors come
from the Hessian at the optimum (central differences of the analytic gradient; only
``3 + n_targets`` parameters).

>>> attempts = pd.DataFrame({"user_id": [0, 0, 0, 1, 1, 1], "topic": "t",
...     "correct": [0, 1, 1, 0, 0, 1], "difficulty": 0.0, "discrimination": 1.0,
...     "target": [0.5, 0.5, 0.5, 0.9, 0.9, 0.9]})
>>> curves = fit_learning_curves(attempts)
>>> curves.targets.tolist(), curves.n_attempts.tolist()
([0.5, 0.9], [3, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.irt import mastery_to_logit

TARGET = "target"
"""Column of the target success an attempt was served at (logged by the experiment)."""
REQUIRED = (schema.USER_ID, schema.TOPIC, schema.CORRECT, schema.DIFFICULTY)
N_NODES = 12
"""Gauss-Hermite nodes of the integral over a starting ability."""
MARGIN = 0.002
"""Logits per attempt by which a target must beat the default (5 % of the simulator's 0.04
peak gain) before the served target moves."""
LEVEL = 0.95
"""Confidence of the lower bound of :func:`safe_target` (one-sided, Bonferroni)."""


@dataclass(frozen=True)
class LearningCurves:
    """Identified learning rate per target: a data-only result (:meth:`as_dict` stores it).

    Attributes
    ----------
    targets : ndarray of shape (n_targets,)
        Target successes seen in the log, ascending.
    rates : ndarray of shape (n_targets,)
        ``delta_t`` minus the design bias (logits of ability per attempt at ``t``).
    bias : ndarray of shape (n_targets,)
        What was subtracted (0 where no bias was given).
    covariance : ndarray of shape (n_targets, n_targets)
        Covariance of the rates (inverse profiled Hessian; the bias is a known constant).
    n_attempts : ndarray of int of shape (n_targets,)
        Attempts served at each target.
    theta_mean : float
        ``mu``, the mean starting ability (logits).
    """

    targets: np.ndarray
    rates: np.ndarray
    bias: np.ndarray
    covariance: np.ndarray
    n_attempts: np.ndarray
    theta_mean: float

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of every rate."""
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def rate_of(self, success) -> np.ndarray:
        """The identified rate at any success level: linear between the targets, flat beyond
        (what a teaching reward evaluates at a candidate's predicted success)."""
        return np.interp(np.asarray(success, dtype=np.float64), self.targets, self.rates)

    def as_dict(self) -> dict:
        """Plain lists and floats (JSON-ready), read back by :meth:`from_dict`."""
        return {
            "targets": self.targets.tolist(),
            "rates": self.rates.tolist(),
            "bias": self.bias.tolist(),
            "covariance": self.covariance.tolist(),
            "n_attempts": self.n_attempts.tolist(),
            "theta_mean": float(self.theta_mean),
        }

    @classmethod
    def from_dict(cls, values) -> LearningCurves:
        """Curves from :meth:`as_dict`; a malformed mapping raises SkbanditError.

        >>> curves = LearningCurves.from_dict({"targets": [0.5], "rates": [0.01],
        ...     "bias": [0.0], "covariance": [[1e-6]], "n_attempts": [10], "theta_mean": 0.0})
        >>> round(float(curves.stderr[0]), 6)
        0.001
        """
        try:
            targets = np.asarray(values["targets"], dtype=np.float64)
            k = targets.shape
            arrays = {
                name: np.asarray(values[name], dtype=np.float64)
                for name in ("rates", "bias", "n_attempts")
            }
            covariance = np.asarray(values["covariance"], dtype=np.float64)
            theta_mean = float(values["theta_mean"])
            bad = [n for n, a in arrays.items() if a.shape != k or not np.isfinite(a).all()]
            if targets.ndim != 1 or bad or covariance.shape != k * 2:
                raise ValueError(bad or "shapes")
        except (KeyError, TypeError, ValueError) as error:
            raise SkbanditError(
                "learning curves need 'targets', 'rates', 'bias', 'n_attempts' lists of one "
                f"length, a square 'covariance' and 'theta_mean'; found a problem with {error}"
            ) from None
        arrays["n_attempts"] = arrays["n_attempts"].astype(np.int64)
        return cls(targets=targets, covariance=covariance, theta_mean=theta_mean, **arrays)


def prior_counts(group, target_index, n_targets) -> np.ndarray:
    """``n_{i,t}``: attempts of row ``i``'s group before it (rows in time order) at each target.

    >>> prior_counts(np.array([0, 0, 1, 0]), np.array([1, 0, 0, 1]), 2).tolist()
    [[0, 0], [0, 1], [0, 0], [1, 1]]
    """
    order = np.argsort(group, kind="stable")
    onehot = np.zeros((group.size, n_targets), dtype=np.int64)
    onehot[np.arange(group.size), target_index] = 1
    sorted_hot = onehot[order]
    running = np.cumsum(sorted_hot, axis=0) - sorted_hot
    first = np.r_[True, group[order][1:] != group[order][:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(group.size), 0))
    base = np.cumsum(sorted_hot, axis=0)[starts] - sorted_hot[starts]
    out = np.empty_like(onehot)
    out[order] = running - base
    return out


def fit_learning_curves(
    attempts: pd.DataFrame, bias=None, n_nodes: int = N_NODES
) -> LearningCurves:
    """Fit the pooled learning curve (module docstring) to logged attempts.

    Parameters
    ----------
    attempts : DataFrame of shape (n_attempts, ...)
        In time order: ``user_id, topic, correct, difficulty`` (published), ``target`` (the
        target success each attempt was served at), optionally ``discrimination`` (default
        1) and ``mastery`` (the deployed ability estimate at the attempt; its logit at a
        (student, topic)'s first attempt shifts that pair's starting ability).
    bias : mapping of float to float, optional
        Design bias per target (logits per attempt) to subtract; targets not in it get 0.
    n_nodes : int, default=N_NODES
        Gauss-Hermite nodes of the integral over each starting ability.

    Returns
    -------
    LearningCurves
    """
    data = _Design.of(_checked(attempts), n_nodes)
    k = data.targets.size
    x0 = np.zeros(3 + k)
    x0[0] = float(np.mean(data.b))
    result = optimize.minimize(
        data.loss, x0, jac=True, method="L-BFGS-B", options={"maxiter": 500, "gtol": 1e-7}
    )
    hessian = _numerical_hessian(data.loss, result.x)
    covariance = np.linalg.pinv(hessian)[3:, 3:]
    shift = np.array([0.0 if bias is None else float(bias.get(t, 0.0)) for t in data.targets])
    return LearningCurves(
        targets=data.targets,
        rates=result.x[3:] - shift,
        bias=shift,
        covariance=covariance,
        n_attempts=np.bincount(data.target_index, minlength=k),
        theta_mean=float(result.x[0]),
    )


@dataclass
class _Design:
    """The arrays of the likelihood, rows sorted by (student, topic) (time order kept)."""

    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    counts: np.ndarray
    start: np.ndarray  # covariate of each row's group (centred), shape (n,)
    starts: np.ndarray  # first row of each group
    targets: np.ndarray
    target_index: np.ndarray
    nodes: np.ndarray
    log_weights: np.ndarray

    @classmethod
    def of(cls, frame, n_nodes):
        group = pd.factorize(
            pd.MultiIndex.from_arrays([frame[schema.USER_ID], frame[schema.TOPIC]])
        )[0]
        targets, target_index = np.unique(frame[TARGET].to_numpy(np.float64), return_inverse=True)
        counts = prior_counts(group, target_index, targets.size).astype(np.float64)
        order = np.argsort(group, kind="stable")
        group = group[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        a = (
            frame[schema.DISCRIMINATION].to_numpy(np.float64)
            if schema.DISCRIMINATION in frame
            else np.ones(len(frame))
        )[order]
        if schema.MASTERY in frame:
            first = mastery_to_logit(frame[schema.MASTERY].to_numpy(np.float64)[order])[starts]
            start = np.repeat(first - first.mean(), np.diff(np.r_[starts, group.size]))
        else:
            start = np.zeros(group.size)
        nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
        return cls(
            y=frame[schema.CORRECT].to_numpy(np.float64)[order],
            a=a,
            b=frame[schema.DIFFICULTY].to_numpy(np.float64)[order],
            counts=counts[order],
            start=start,
            starts=starts,
            targets=targets,
            target_index=target_index,
            nodes=np.sqrt(2.0) * nodes,
            log_weights=np.log(weights / np.sqrt(np.pi)),
        )

    def loss(self, x):
        """Negative marginal log-likelihood and its gradient in ``(mu, beta, log tau, delta)``."""
        mu, beta, log_tau, delta = x[0], x[1], x[2], x[3:]
        tau = np.exp(log_tau)
        base = self.a * (mu + beta * self.start + self.counts @ delta - self.b)
        spread = (self.a * tau)[:, None] * self.nodes[None, :]
        eta = base[:, None] + spread
        per_node = np.add.reduceat(self.y[:, None] * eta - np.logaddexp(0.0, eta), self.starts)
        joint = per_node + self.log_weights[None, :]
        top = joint.max(axis=1, keepdims=True)
        mass = np.exp(joint - top)
        total = mass.sum(axis=1, keepdims=True)
        value = -float(np.sum(np.log(total) + top))
        posterior = np.repeat(mass / total, np.diff(np.r_[self.starts, self.y.size]), axis=0)
        residual = self.y[:, None] - expit(eta)
        s = self.a * np.sum(posterior * residual, axis=1)
        t = self.a * tau * np.sum(posterior * residual * self.nodes[None, :], axis=1)
        grad = np.concatenate([[s.sum(), s @ self.start, t.sum()], self.counts.T @ s])
        return value, -grad


def _numerical_hessian(loss, x, step=1e-5) -> np.ndarray:
    """Central differences of the analytic gradient, symmetrised."""
    columns = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = step * max(1.0, abs(x[j]))
        columns.append((loss(x + e)[1] - loss(x - e)[1]) / (2 * e[j]))
    hessian = np.column_stack(columns)
    return (hessian + hessian.T) / 2


def safe_target(
    curves: LearningCurves, default: float, margin: float = MARGIN, level: float = LEVEL
) -> float:
    """The target to serve: ``default`` unless another target surely teaches more.

    For every other target ``t``, the one-sided lower bound of ``rate_t - rate_default`` at
    ``level`` (Bonferroni over the ``n_targets - 1`` comparisons, with the covariance of the
    two rates) must exceed ``margin``; among the targets that pass, the one with the highest
    identified rate is served, and when none passes the default stays.

    >>> curves = LearningCurves(np.array([0.5, 0.7, 0.9]), np.array([0.01, 0.02, 0.05]),
    ...     np.zeros(3), np.diag([1e-6, 1e-6, 1e-6]), np.array([9, 9, 9]), 0.0)
    >>> safe_target(curves, 0.7), safe_target(curves, 0.7, margin=0.03)
    (0.9, 0.7)
    """
    targets = curves.targets
    hits = np.flatnonzero(np.isclose(targets, default))
    if hits.size == 0:
        raise SkbanditError(
            f"the default target {default} was never served in the log (targets: "
            f"{targets.tolist()}); keep the default among the experiment's arms"
        )
    d = int(hits[0])
    if targets.size == 1:
        return float(targets[d])
    z = stats.norm.ppf(1.0 - (1.0 - level) / (targets.size - 1))
    cov = curves.covariance
    diff = curves.rates - curves.rates[d]
    se = np.sqrt(np.clip(np.diag(cov) + cov[d, d] - 2.0 * cov[:, d], 0.0, None))
    passing = (diff - z * se > margin) & (np.arange(targets.size) != d)
    if not passing.any():
        return float(targets[d])
    best = np.flatnonzero(passing)[np.argmax(curves.rates[passing])]
    return float(targets[best])


def _checked(attempts) -> pd.DataFrame:
    if not isinstance(attempts, pd.DataFrame):
        raise SkbanditError(
            f"attempts must be a DataFrame of logged attempts; got {type(attempts).__name__}"
        )
    missing = [c for c in (*REQUIRED, TARGET) if c not in attempts]
    if missing:
        raise SkbanditError(
            f"attempts are missing columns {missing} (expected {(*REQUIRED, TARGET)} in time "
            "order; the target column is what the target experiment logs)"
        )
    if attempts.empty:
        raise SkbanditError("no attempts to fit learning curves on; log some first")
    numeric = attempts[[schema.CORRECT, schema.DIFFICULTY, TARGET]].to_numpy(np.float64)
    if not np.isfinite(numeric).all():
        raise SkbanditError(
            "attempts have missing or non-finite correct, difficulty or target values; "
            "drop the attempts served outside the target experiment"
        )
    return attempts


__all__ = ["LearningCurves", "fit_learning_curves", "prior_counts", "safe_target"]
