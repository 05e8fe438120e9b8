"""The arithmetic of a :class:`skbandit.linucb.LinUCB` update, as functions of arrays.

``accumulate`` adds a batch (one BLAS product and a Cholesky refactorisation, ``O(d³)``);
``add_row`` adds one row by a rank-one update (``O(d²)``); both return the new
``(A, b, A_inv, coef)`` and change nothing they are given.
"""

import math

import numpy as np

from skbandit.exceptions import SkbanditError

REFACTOR_EVERY = 64
"""Single rows update A⁻¹ by rank one; every this-many-th row refactors A, bounding the drift."""


def accumulate(A0, b0, X, y, sample_weight, prior, l2, gamma):
    """Return ``(A, b, A_inv, coef)`` after adding rows ``X`` to ``(A0, b0)``.

    ``gamma < 1`` discounts the data part per row while the prior ``(λ I, λ θ₀)`` is kept.
    ``coef = θ₀ + A⁻¹ (b − A θ₀)``: the same ``A⁻¹ b`` in exact arithmetic, and exactly ``θ₀``
    when the rows carry no evidence.
    """
    weights = sample_weight
    if gamma < 1.0:
        n = X.shape[0]
        decay = gamma ** np.arange(n - 1, -1, -1, dtype=np.float64)
        weights = decay if weights is None else weights * decay
        kept = gamma**n
        l2_rest = (1.0 - kept) * l2
        A0 = kept * A0 + l2_rest * np.eye(X.shape[1])
        b0 = kept * b0 + l2_rest * prior
    if weights is None:
        Xs, yw = X, y
    else:
        Xs, yw = X * np.sqrt(weights)[:, None], weights * y
    A = A0 + Xs.T @ Xs
    A = (A + A.T) * 0.5  # exactly symmetric whatever path BLAS took
    b = b0 + X.T @ yw
    A_inv, step = cholesky_inverse_and_solve(A, b - A @ prior)
    return A, b, A_inv, prior + step


def add_row(A, b, A_inv, x, y, weight=None):
    """Return ``(A, b, A_inv, coef)`` after one row, by a rank-one update (``O(d²)``).

    With ``s = √w x``, ``u = A⁻¹ s`` and ``v = u / √(1 + sᵀu)``: ``A⁻¹ ← A⁻¹ − v vᵀ``
    (Sherman–Morrison, exactly symmetric) and ``θ = A⁻¹ b``, instead of refactorising ``A``.
    ``weight=None`` means 1. Nothing here checks for overflow: the caller either runs it
    under ``np.errstate(over="raise", ...)`` or has bounded the inputs.
    """
    if weight is None:
        s, wy = x, y
    else:
        s, wy = np.sqrt(weight) * x, weight * y
    u = A_inv @ s
    # 1 + sᵀu >= 1 up to rounding (A⁻¹ is positive definite); an overflow in sᵀu has
    # raised already under errstate, so the scalar arithmetic can be Python's
    v = u * (1.0 / math.sqrt(1.0 + float(s @ u)))
    A_inv = A_inv - _outer(v, v)
    if wy == 0.0:
        b = b.copy()  # b + 0·x, one call instead of two (0/1 rewards are the common case)
    else:
        b = b + x if wy == 1.0 else b + wy * x
    return A + _outer(s, s), b, A_inv, A_inv @ b


_outer = np.multiply.outer  # one call for v vᵀ (exactly symmetric), cheaper than np.outer


def cholesky_inverse_and_solve(A, b):
    """``(A⁻¹, A⁻¹b)`` for symmetric positive definite ``A`` from its Cholesky factor.

    ``A = L Lᵀ`` (numpy's ``cholesky``, which also rejects a non positive definite ``A``),
    ``A⁻¹ = L⁻ᵀ L⁻¹`` and ``θ = L⁻ᵀ (L⁻¹ b)``, so the error grows with ``cond(L) = √cond(A)``
    per factor. Only numpy's LAPACK is used: SciPy's separately bundled OpenBLAS (``potri``,
    ``potrs``, ``solve_triangular``) wakes a second thread pool even for 8 x 8 matrices,
    which stalls on a loaded machine.
    """
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError as err:
        raise SkbanditError(
            "A is not numerically positive definite after the update; the features are too "
            "large or too collinear for l2; scale the features or increase l2"
        ) from err
    L_inv = np.linalg.inv(L)
    inverse = L_inv.T @ L_inv
    return (inverse + inverse.T) * 0.5, L_inv.T @ (L_inv @ b)
