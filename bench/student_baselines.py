"""The field's simple student models, run on the same causal batches as warm-start.

Every function takes the events in time order as integer codes (``users``, ``items``,
``skills``; a skill is the item's topic) with their outcomes ``correct`` (0/1), and the
batches as consecutive ``slices`` covering every row. It returns one forecast per row, and
the forecasts of a batch use only the rows before the batch's start: the model and every
per-student state are frozen while a batch is scored, then the batch is learned (the rule
:func:`skbandit.progressive.replay_history` applies to the served model's weights).

With ``online=True`` the fitted parameters stay frozen per batch but the per-student
evidence (Elo's ratings, PFA's counts, BKT's knowledge state) is each row's own, from the
rows strictly before it: the rule the served model's contexts and its IRT baseline follow
(:func:`skbandit.context.historical_contexts` uses every earlier event).

- :func:`elo` -- Elo / online Rasch (Pelanek 2016): ``P = sigma(theta_u - b_i)``, both
  starting at 0, each moved by ``K / (1 + a n) (y - P)`` with ``n`` the attempts it has seen.
- :func:`pfa` -- Performance Factors Analysis (Pavlik, Cen & Koedinger 2009): a logistic
  regression on a per-skill intercept and per-skill weights of the student's prior
  successes and failures on the skill, refitted on all learned rows before each batch.
- :func:`bkt` -- Bayesian Knowledge Tracing (Corbett & Anderson 1995), pyBKT's standard
  model (prior, learn, guess, slip; no forgetting) per skill, fitted by maximum likelihood
  over a grid whenever the learned rows have doubled, its knowledge state filtered forward.
  (A fallback for pyBKT: see ``docs/benchmarks.md``.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

ELO_K = 0.8
ELO_A = 0.05


def _running_rate(correct: np.ndarray, start: int, prior: float = 0.5) -> float:
    return float((prior + correct[:start].sum()) / (1.0 + start))


def elo(
    users, items, correct, slices, *, k: float = ELO_K, a: float = ELO_A, online: bool = False
) -> np.ndarray:
    """Elo / online Rasch forecasts, the ratings frozen within each batch (``online``:
    each row's forecast from the ratings just before it).

    >>> p = elo(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 1.0]),
    ...         [slice(0, 1), slice(1, 2)])
    >>> p.round(3).tolist()  # 0.5, then theta = 0.4, b = -0.4
    [0.5, 0.69]
    """
    users, items = np.asarray(users), np.asarray(items)
    correct = np.asarray(correct, dtype=np.float64)
    theta, n_user = np.zeros(users.max() + 1), np.zeros(users.max() + 1)
    b, n_item = np.zeros(items.max() + 1), np.zeros(items.max() + 1)
    out = np.empty(len(correct))
    for batch in slices:
        u, i = users[batch], items[batch]
        out[batch] = 1.0 / (1.0 + np.exp(-(theta[u] - b[i])))
        for row, uu, ii, y in zip(
            range(batch.start, batch.stop),
            u.tolist(),
            i.tolist(),
            correct[batch].tolist(),
            strict=True,
        ):
            p = 1.0 / (1.0 + np.exp(-(theta[uu] - b[ii])))
            if online:
                out[row] = p
            theta[uu] += k / (1.0 + a * n_user[uu]) * (y - p)
            b[ii] -= k / (1.0 + a * n_item[ii]) * (y - p)
            n_user[uu] += 1
            n_item[ii] += 1
    return out


def frozen_counts(users, skills, correct, slices, online: bool = False):
    """Each row's prior successes and failures of its student on its skill, counted over
    the rows before its batch (not the earlier rows of the same batch; ``online``: over
    every earlier row).

    >>> s, f = frozen_counts(np.zeros(3, int), np.zeros(3, int), np.array([1.0, 0.0, 1.0]),
    ...                      [slice(0, 1), slice(1, 3)])
    >>> s.tolist(), f.tolist()
    ([0.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """
    correct = np.asarray(correct, dtype=np.float64)
    key = np.asarray(users, dtype=np.int64) * (np.max(skills) + 1) + np.asarray(
        skills, dtype=np.int64
    )
    wins = np.zeros(len(correct))
    seen = np.zeros(len(correct))
    for batch in [] if online else slices:  # exclusive counts within the batch, subtracted below
        k = pd.Series(key[batch])
        y = pd.Series(correct[batch])
        wins[batch] = -(y.groupby(k).cumsum().to_numpy() - correct[batch])
        seen[batch] = -k.groupby(k).cumcount().to_numpy()
    full = pd.Series(key)
    wins += pd.Series(correct).groupby(full).cumsum().to_numpy() - correct
    seen += full.groupby(full).cumcount().to_numpy()
    return wins, seen - wins


def pfa_features(skills, successes, failures, n_skills: int) -> sp.csr_matrix:
    """Sparse PFA design: skill one-hot, skill x prior successes, skill x prior failures."""
    n = len(skills)
    rows = np.tile(np.arange(n), 3)
    cols = np.concatenate([skills, skills + n_skills, skills + 2 * n_skills])
    vals = np.concatenate([np.ones(n), successes, failures])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, 3 * n_skills))


PFA_COUNT_SCALE = 10.0
"""Counts enter PFA divided by this (the same model class; raw counts in the hundreds make
lbfgs crawl: 77 s instead of seconds on a 10,000-event export)."""


def pfa(users, skills, correct, slices, *, c: float = 1.0, online: bool = False) -> np.ndarray:
    """PFA forecasts: refit on every learned row before each batch, starting from the
    previous fit (base rate until the learned rows hold both outcomes)."""
    skills, correct = np.asarray(skills), np.asarray(correct, dtype=np.float64)
    s, f = frozen_counts(users, skills, correct, slices, online)
    design = pfa_features(skills, s / PFA_COUNT_SCALE, f / PFA_COUNT_SCALE, int(skills.max()) + 1)
    model = LogisticRegression(C=c, max_iter=500, warm_start=True)
    out = np.empty(len(correct))
    for batch in slices:
        seen = correct[: batch.start]
        if batch.start == 0 or seen.min() == seen.max():
            out[batch] = _running_rate(correct, batch.start)
            continue
        with warnings.catch_warnings():  # lbfgs may stop at max_iter on small data
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(design[: batch.start], seen)
        out[batch] = model.predict_proba(design[batch])[:, 1]
    return out


_GRID = np.array(
    np.meshgrid(
        [0.1, 0.3, 0.5, 0.7, 0.9],  # prior P(L0)
        [0.02, 0.05, 0.1, 0.2, 0.35],  # learn P(T)
        [0.05, 0.15, 0.25, 0.35],  # guess P(G)
        [0.05, 0.1, 0.2, 0.3],  # slip P(S)
        indexing="ij",
    )
).reshape(4, -1)
BKT_DEFAULT = np.array([0.5, 0.1, 0.25, 0.1])
"""Parameters of a skill with no learned rows yet."""


def _bkt_forward(seq, pos, correct, params, n_seq, rows_out: bool = False):
    """Filter every (student, skill) sequence; params has shape (4, n_seq, G) or (4, 1, G).

    Returns the log-likelihood per sequence and grid point (n_seq, G) and the knowledge
    state after the last observed row, learning step included (n_seq, G); with
    ``rows_out`` also each row's forecast before its outcome (n_rows,), first grid point.
    """
    prior, learn, guess, slip = params
    state = np.broadcast_to(prior, (n_seq, prior.shape[-1])).copy()
    loglik = np.zeros_like(state)
    forecast = np.empty(len(seq)) if rows_out else None
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(pos.max() + 2))
    for j in range(len(bounds) - 1):
        rows = order[bounds[j] : bounds[j + 1]]
        q = seq[rows]
        lg = (slice(None),) if learn.shape[0] == 1 else (q,)
        g, s_, t = guess[lg], slip[lg], learn[lg]
        L = state[q]
        p = np.clip(L * (1 - s_) + (1 - L) * g, 1e-12, 1 - 1e-12)
        y = correct[rows][:, None] >= 0.5
        loglik[q] += np.where(y, np.log(p), np.log1p(-p))
        if rows_out:
            forecast[rows] = p[:, 0]
        post = np.where(y, L * (1 - s_) / p, L * s_ / (1 - p))
        state[q] = post + (1 - post) * t
    return (loglik, state, forecast) if rows_out else (loglik, state)


def _bkt_fit(seq, pos, skill_of_seq, correct, n_skills):
    n_seq = len(skill_of_seq)
    loglik, _ = _bkt_forward(seq, pos, correct, _GRID[:, None, :], n_seq)
    per_skill = np.zeros((n_skills, _GRID.shape[1]))
    np.add.at(per_skill, skill_of_seq, loglik)
    best = _GRID[:, per_skill.argmax(axis=1)].T  # (n_skills, 4)
    unseen = np.bincount(skill_of_seq, minlength=n_skills) == 0
    best[unseen] = BKT_DEFAULT
    return best


def bkt(users, skills, correct, slices, *, online: bool = False) -> np.ndarray:
    """BKT forecasts: per-skill parameters refitted whenever the learned rows have doubled,
    the knowledge state at each batch's start filtered over all learned rows (``online``:
    the state just before each row, filtered over every earlier row)."""
    skills = np.asarray(skills, dtype=np.int64)
    correct = np.asarray(correct, dtype=np.float64)
    n_skills = int(skills.max()) + 1
    key = pd.Series(np.asarray(users, dtype=np.int64) * n_skills + skills)
    seq = pd.factorize(key)[0]
    pos = key.groupby(key).cumcount().to_numpy()
    skill_of_seq = np.zeros(seq.max() + 1, dtype=np.int64)
    skill_of_seq[seq] = skills
    params = np.tile(BKT_DEFAULT, (n_skills, 1))
    fitted_on = 0
    out = np.empty(len(correct))
    for batch in slices:
        start = batch.start
        if start and start >= 2 * fitted_on:
            learned = np.unique(seq[:start])
            local = np.searchsorted(learned, seq[:start])
            params = _bkt_fit(local, pos[:start], skill_of_seq[learned], correct[:start], n_skills)
            fitted_on = start
        per_seq = params[skill_of_seq].T[:, :, None]  # (4, n_all_seq, 1)
        if online:
            stop = batch.stop
            *_, forecast = _bkt_forward(
                seq[:stop], pos[:stop], correct[:stop], per_seq, len(skill_of_seq), rows_out=True
            )
            out[batch] = forecast[batch]
            continue
        if start:
            _, state = _bkt_forward(
                seq[:start], pos[:start], correct[:start], per_seq, len(skill_of_seq)
            )
            # sequences not started before the batch keep their prior
            state = state[:, 0]
        else:
            state = per_seq[0, :, 0].copy()
        q = seq[batch]
        guess, slip = per_seq[2, q, 0], per_seq[3, q, 0]
        out[batch] = state[q] * (1 - slip) + (1 - state[q]) * guess
    return out
