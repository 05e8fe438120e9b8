"""The one bootstrap of off-policy evaluation: resampled column totals, percentile interval.

Every estimate is a ratio of sums over decisions, so a resample only needs, per resampling
unit (a decision, or a student's decisions), the sums of its columns: a resample draws unit
indices, and its totals are the sums of the picked units' rows. The estimators' row and
student (cluster) intervals and the promotion gate's paired difference all go through
:func:`percentile_interval`; only their statistic of the totals differs.

References
----------
Efron, B. and Tibshirani, R. J. (1993). An Introduction to the Bootstrap, ch. 13
(percentile intervals).
"""

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError

BOOTSTRAP_CHUNK_ELEMENTS = 2**22
"""Resample counts held in memory at once (``chunk_rows * n``; 32 MiB of int64)."""


def unit_sums(columns, units=None, name="clusters") -> np.ndarray:
    """Per resampling unit, the sums of each column: shape ``(n_units, len(columns))``.

    Without ``units`` every row is its own unit (the columns side by side); with them, one
    row per distinct unit in sorted order, so a seeded interval does not depend on the order
    the rows came in. ``name`` is what the units are, for the error on a missing one.

    >>> unit_sums([np.array([1.0, 2.0, 3.0])], ["b", "a", "b"]).tolist()
    [[2.0], [4.0]]
    """
    if units is None:
        return np.column_stack(columns)
    codes, uniques = pd.factorize(pd.Series(np.asarray(units, dtype=object)), sort=True)
    if (codes < 0).any():
        raise SkbanditError(f"{name} has missing values; every decision needs its {name[:-1]}")
    return np.column_stack(
        [np.bincount(codes, weights=column, minlength=len(uniques)) for column in columns]
    )


def resampled_totals(sums, n_bootstrap, rng) -> np.ndarray:
    """Column totals of ``sums`` (one row per unit) over bootstrap resamples of its rows.

    Returns an array of shape ``(n_bootstrap, sums.shape[1])``; unit indices are drawn in
    chunks of at most :data:`BOOTSTRAP_CHUNK_ELEMENTS`, and each resample's picks are summed
    on their own (not by a matrix product, whose rounding depends on the chunk's shape), so
    a seeded interval does not depend on the chunk size.
    """
    rng = np.random.default_rng(rng)
    n = len(sums)
    chunk = max(1, BOOTSTRAP_CHUNK_ELEMENTS // n)
    totals = np.empty((n_bootstrap, sums.shape[1]))
    for start in range(0, n_bootstrap, chunk):
        stop = min(start + chunk, n_bootstrap)
        picks = rng.integers(0, n, size=(stop - start, n))
        for j, column in enumerate(sums.T):
            totals[start:stop, j] = column[picks].sum(axis=1)
    return totals


def percentile_interval(sums, statistic, n_bootstrap, confidence, rng):
    """Percentile interval of ``statistic(totals)`` over ``n_bootstrap`` resamples of units.

    Parameters
    ----------
    sums : ndarray of shape (n_units, k)
        :func:`unit_sums`.
    statistic : callable
        Maps resampled totals of shape ``(n_bootstrap, k)`` to one value per resample; NaN
        or infinite values (a resample without overlap) are dropped.
    n_bootstrap : int
        Resamples; 0 gives no interval (NaN bounds).
    confidence : float
        Coverage, strictly between 0 and 1.
    rng : numpy.random.Generator, int or None

    Returns
    -------
    tuple of (float, float, int)
        ``(low, high, dropped)``, where ``dropped`` counts resamples whose statistic was not
        finite.
    """
    check_bootstrap(n_bootstrap, confidence)
    if n_bootstrap == 0:
        return np.nan, np.nan, 0
    totals = resampled_totals(sums, n_bootstrap, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = statistic(totals)
    finite = stats[np.isfinite(stats)]
    if len(finite) == 0:
        return np.nan, np.nan, len(stats)
    alpha = 1.0 - confidence
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), len(stats) - len(finite)


def check_bootstrap(n_bootstrap, confidence) -> None:
    """Raise unless ``n_bootstrap`` is a non-negative integer and ``0 < confidence < 1``."""
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, int | np.integer)
        or n_bootstrap < 0
    ):
        raise SkbanditError(f"n_bootstrap must be a non-negative integer; got {n_bootstrap!r}")
    if not 0.0 < confidence < 1.0:
        raise SkbanditError(f"confidence must lie strictly between 0 and 1; got {confidence!r}")
