"""Shared LinUCB (Li et al., 2010) as a scikit-learn regressor.

One linear model is shared by all arms: each candidate item is described by its own context
vector ``x`` (student and item features), the expected reward is ``θᵀx`` and the exploration
bonus is ``alpha * sqrt(xᵀA⁻¹x)``.
"""

import math
import operator
import warnings
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from skbandit.exceptions import SkbanditError

STATE_VERSION = 1
_STATE_ARRAYS = ("A", "b", "A_inv", "coef")
_RECORDED = ("n_features_in_", "feature_names_in_")
_STATE_SCALARS = ("alpha", "l2", "forgetting", "n_updates", "n_features_in", "state_version")
# Single rows update A⁻¹ by rank one; every this-many-th row refactors A, bounding the drift.
_REFACTOR_EVERY = 64


class LinUCB(RegressorMixin, BaseEstimator):
    """Shared linear upper-confidence-bound bandit model (LinUCB, Li et al. 2010).

    A ridge regression of reward on context that also reports how uncertain it is about
    each context, updated incrementally with :meth:`partial_fit`.

    Parameters
    ----------
    alpha : float, default=1.0
        LinUCB's exploration width, the ``α`` of Li et al. (2010), **not** Ridge's
        ``alpha``: :meth:`predict_uncertainty` returns ``alpha * sqrt(xᵀA⁻¹x)`` and the upper
        confidence bound is ``predict(X) + predict_uncertainty(X)``. It never changes the
        fitted mean; ``0`` is greedy.

    l2 : float, default=1.0
        Ridge strength ``λ > 0``. The mean is the ridge fit
        ``sklearn.linear_model.Ridge(alpha=l2, fit_intercept=False)`` on the same rows and
        weights, i.e. scikit-learn's ``Ridge.alpha`` is this ``l2``. A fresh model has
        ``A = λ I``, ``b = 0`` (``A = I`` with the default, as in Li et al.).

    prior_mean : array-like of shape (n_features,), default=None
        The coefficients ``θ₀`` the ridge shrinks towards instead of 0 (``None`` means
        zeros): ``A = λ I + Σ w x xᵀ`` and ``b = λ θ₀ + Σ w y x``, so a model that has seen no
        evidence (:meth:`initialize`) predicts ``X @ θ₀`` exactly and data
        moves ``θ`` away from it only as far as the evidence supports. Equivalently, ``θ − θ₀``
        is ``Ridge(alpha=l2, fit_intercept=False)`` fitted on ``y − X θ₀``. Its length must be
        the number of features. Like ``l2`` it defines the prior, so it cannot change on a
        fitted model (see Notes).

    forgetting : float in (0, 1], default=1.0
        Discount ``γ`` applied **per observed row** (not per call), for drifting students and
        items. Before each row is added, the data part of ``A`` and ``b`` is multiplied by
        ``γ`` while the prior ``λ I`` (and ``λ θ₀``) is kept, so after ``T`` rows
        ``A = λ I + Σ_t γ^(T−t) w_t x_t x_tᵀ`` (an effective memory of about ``1 / (1 − γ)``
        rows). Because the discount is per row, one batch still equals the same rows one at a
        time, but the order of rows and batches matters and a weight is no longer equivalent
        to repeated rows. ``1.0`` turns forgetting off.

    Attributes
    ----------
    A_ : ndarray of shape (n_features, n_features)
        ``λ I + Σ w x xᵀ`` (discounted when ``forgetting < 1``); exactly symmetric.

    b_ : ndarray of shape (n_features,)
        ``λ θ₀ + Σ w y x`` (the sum discounted when ``forgetting < 1``).

    prior_mean_ : ndarray of shape (n_features,)
        The prior mean ``θ₀`` the model was fitted with (zeros when ``prior_mean=None``).

    A_inv_ : ndarray of shape (n_features, n_features)
        Cached ``A⁻¹`` (exactly symmetric). Recomputed from ``A_`` by a Cholesky
        factorisation after every batch and every 64th row; a single row in between updates
        it by rank one (see Notes), so it stays within rounding of ``inv(A_)``.

    coef_ : ndarray of shape (n_features,)
        ``θ = A⁻¹ b``, solved with the Cholesky factor of ``A_`` (updated by recursive least
        squares for a single row in between).

    n_updates_ : int
        Number of rows observed (whatever their weight).

    n_features_in_ : int
        Number of features seen during the first :meth:`fit` or :meth:`partial_fit`.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.Ridge : ``coef_`` equals ``Ridge(alpha=l2, fit_intercept=False)``.
    sklearn.linear_model.BayesianRidge : same ``predict(X, return_std=True)`` convention.

    Notes
    -----
    Shared (not disjoint) LinUCB, algorithm 1 of Li et al. (2010) with one ``A`` and ``b`` for
    all arms. With row weights ``w``::

        A = λ I + Σ_i w_i x_i x_iᵀ,   b = λ θ₀ + Σ_i w_i y_i x_i,   θ = A⁻¹ b
        mean(x) = θᵀx,   std(x) = sqrt(xᵀ A⁻¹ x),   UCB(x) = θᵀx + α sqrt(xᵀ A⁻¹ x)

    ``θ`` is the ridge estimate (``argmin Σ w (y − θᵀx)² + λ‖θ − θ₀‖²``), computed as
    ``θ₀ + A⁻¹ (b − A θ₀)`` so that no evidence gives ``θ₀`` exactly, and ``std`` is the
    unscaled standard deviation of ``θᵀx`` (the posterior with unit noise variance); unlike
    ``BayesianRidge`` it contains no noise term.

    Numerics: ``A`` and ``b`` are sums, so each call adds a batch with one BLAS product
    (``XᵀX`` through ``syrk``), refactors ``A`` by Cholesky (``O(d³)``) and caches ``A⁻¹``
    and ``θ``. One row (the online loop's update, with ``forgetting == 1``) instead updates
    the cache in ``O(d²)``, as the LinUCB literature does: with ``u = A⁻¹x``,
    ``A⁻¹ ← A⁻¹ − u uᵀ / (1 + xᵀu)`` (Sherman–Morrison) and
    ``θ ← θ + u (y − xᵀθ) / (1 + xᵀu)``; every 64th row refactors ``A`` so rounding cannot
    accumulate. A cached inverse rather than a Cholesky factor is kept because scoring ``K``
    candidates is then one matrix product, ``((X @ A⁻¹) * X).sum(1)``; nothing is inverted
    per prediction. Tiny negative quadratic forms from rounding are clipped to 0 before the
    root.

    The prior (``l2`` and ``prior_mean``) is part of the fitted state: changing either on a
    fitted model (``set_params(l2=10)``) and then calling :meth:`partial_fit` or
    :meth:`get_state` raises ``SkbanditError`` rather than mixing two priors; :meth:`fit`
    starts afresh with the new prior. ``alpha`` (scoring only) and ``forgetting`` (applied
    to the rows that follow) may change at any time.

    Input is validated before anything is changed: bad input raises and leaves the model
    exactly as it was (a failed ``fit`` keeps the earlier fit). Input that needs no
    conversion (a finite 2-D float64 ``ndarray`` and, when fitting without weights, a
    matching 1-D float64 ``ndarray`` ``y``) skips the generic steps of scikit-learn's
    ``validate_data`` with the same effects (see ``_validate_plain``). ``fit`` validates the
    parameters on every call; ``partial_fit``, which an online loop calls once per
    observation, validates them on its first call and again whenever ``get_params()``
    changes (through ``set_params`` or by assigning an attribute).

    References
    ----------
    L. Li, W. Chu, J. Langford, R. E. Schapire (2010). A contextual-bandit approach to
    personalized news article recommendation. WWW 2010, 661–670.

    Examples
    --------
    >>> import numpy as np
    >>> from skbandit import LinUCB
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> model = LinUCB(alpha=1.0).fit(X, [1.0, 0.0, 1.0])
    >>> model.coef_  # A = [[3, 1], [1, 3]], b = [2, 1]
    array([0.625, 0.125])
    >>> model.predict_uncertainty(np.array([[1.0, 0.0]])) ** 2  # xᵀA⁻¹x = 3/8
    array([0.375])
    >>> model = model.partial_fit(np.array([[1.0, 0.0]]), [1.0])
    >>> int(model.n_updates_)
    4
    """

    _parameter_constraints: ClassVar[dict] = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l2": [Interval(Real, 0, None, closed="neither")],
        "prior_mean": ["array-like", None],
        "forgetting": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, *, alpha=1.0, l2=1.0, prior_mean=None, forgetting=1.0):
        self.alpha = alpha
        self.l2 = l2
        self.prior_mean = prior_mean
        self.forgetting = forgetting

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit a fresh model on ``(X, y)``, discarding any earlier state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Contexts (preprocessed features).
        y : array-like of shape (n_samples,)
            Observed rewards.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; an integer weight ``k`` equals repeating the row ``k``
            times (when ``forgetting == 1``).

        Returns
        -------
        self : LinUCB
            The fitted model.
        """
        return self._update(X, y, sample_weight, reset=True)

    def partial_fit(self, X, y, sample_weight=None):
        """Add a batch of observations to the model (fit a fresh one on the first call).

        One call with a batch gives the same state as the same rows one call at a time, and
        (with ``forgetting == 1``) the order of batches does not matter. The parameters are
        validated on the first call and after any change to ``get_params()``, not per call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Contexts; the same number of features as the first call.
        y : array-like of shape (n_samples,)
            Observed rewards.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : LinUCB
            The updated model. Raises ``SkbanditError`` if ``l2`` or ``prior_mean`` changed
            since the model was fitted (see Notes).
        """
        self._validate_params_once()
        first_call = not hasattr(self, "n_features_in_")
        return self._update(X, y, sample_weight, reset=first_call)

    def initialize(self, n_features=None):
        """Start a model that has seen no rows: it predicts ``X @ prior_mean`` exactly.

        Parameters
        ----------
        n_features : int, default=None
            Number of features; taken from ``prior_mean`` when that is given.

        Returns
        -------
        self : LinUCB
            A fitted model with ``A = λ I``, ``b = λ θ₀``, ``coef_ = θ₀`` and
            ``n_updates_ = 0``; :meth:`partial_fit` continues from it.
        """
        self._validate_params()
        if n_features is None:
            if self.prior_mean is None:
                raise SkbanditError(
                    "LinUCB.initialize needs n_features when prior_mean is None; "
                    "pass initialize(n_features=...)"
                )
            n_features = np.shape(self.prior_mean)[0] if np.ndim(self.prior_mean) else 0
        d = int(n_features)
        if d < 1:
            raise SkbanditError(f"LinUCB.initialize needs n_features >= 1, got {n_features}")
        prior = self._resolved_prior(d)
        l2 = float(self.l2)
        A = l2 * np.eye(d)
        self.A_, self.b_ = A, l2 * prior
        self.A_inv_, self.coef_ = np.eye(d) / l2, prior.copy()
        self.prior_mean_, self._fitted_l2 = prior, l2
        self._fitted_prior_param = self.prior_mean
        self.n_updates_ = 0
        self.n_features_in_ = d
        vars(self).pop("feature_names_in_", None)
        return self

    def partial_fit_sums(self, xtx, xty, n_rows):
        """Add a batch given as its sums ``Σ w x xᵀ`` and ``Σ w y x`` (``forgetting == 1``).

        What an engine that computes the sums elsewhere (Spark, per partition) uses instead
        of :meth:`partial_fit`; the state equals ``partial_fit`` on the rows to rounding. A
        fresh model starts from the prior (:meth:`initialize`).

        Parameters
        ----------
        xtx : ndarray of shape (n_features, n_features)
            The batch's ``Σ w x xᵀ``.
        xty : ndarray of shape (n_features,)
            The batch's ``Σ w y x``.
        n_rows : int
            Number of rows in the batch.

        Returns
        -------
        self : LinUCB
            The updated model.
        """
        self._validate_params_once()
        if float(self.forgetting) != 1.0:
            raise SkbanditError("LinUCB.partial_fit_sums needs forgetting == 1 (the sums "
                                "carry no row order); use partial_fit on the rows")
        xtx, xty = np.asarray(xtx, dtype=np.float64), np.asarray(xty, dtype=np.float64)
        if not hasattr(self, "n_features_in_"):
            self.initialize(xtx.shape[0])
        d = self.n_features_in_
        if xtx.shape != (d, d) or xty.shape != (d,):
            raise SkbanditError(f"LinUCB.partial_fit_sums needs sums of shape ({d}, {d}) and "
                                f"({d},), got {xtx.shape} and {xty.shape}")
        A = self.A_ + xtx
        A = (A + A.T) * 0.5  # as _accumulate does after every batch
        b = self.b_ + xty
        A_inv, step = _cholesky_inverse_and_solve(A, b - A @ self.prior_mean_)
        self.A_, self.b_, self.A_inv_, self.coef_ = A, b, A_inv, self.prior_mean_ + step
        self.n_updates_ += int(n_rows)
        return self

    def _validate_params_once(self):
        """``_validate_params()`` unless the parameters are the objects validated last time.

        Assigning a parameter (directly or through ``set_params``) binds a new object, so
        comparing identities notices every change; validation is skipped, as in
        ``_fit_context``, under ``sklearn.set_config(skip_parameter_validation=True)``.
        On a fitted model a change is also checked against the fitted prior.
        """
        current = [getattr(self, name) for name in self._parameter_constraints]
        last = getattr(self, "_validated_params", None)
        if last is not None and all(map(operator.is_, current, last)):
            return
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        self._check_prior_unchanged()
        self._validated_params = current

    def _check_prior_unchanged(self):
        """Raise if ``l2`` or ``prior_mean`` differ from the prior the state was built with."""
        if not hasattr(self, "prior_mean_"):
            return
        changed = []
        if float(self.l2) != self._fitted_l2:
            changed.append(f"l2 from {self._fitted_l2:g} to {float(self.l2):g}")
        if self.prior_mean is not self._fitted_prior_param:
            prior = self._resolved_prior(self.prior_mean_.shape[0])
            if not np.array_equal(prior, self.prior_mean_):
                changed.append("prior_mean")
            else:
                self._fitted_prior_param = self.prior_mean
        if changed:
            raise SkbanditError(
                f"LinUCB's prior changed after fitting ({', '.join(changed)}); the fitted "
                "state was built with the old one. Call fit() to refit with the new prior, "
                "or set the parameter back"
            )

    def _resolved_prior(self, d):
        """``prior_mean`` as a finite float64 array of shape ``(d,)`` (zeros for ``None``)."""
        if self.prior_mean is None:
            return np.zeros(d)
        try:
            prior = np.array(self.prior_mean, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise SkbanditError(
                f"LinUCB prior_mean must be numbers ({err}); pass one coefficient per feature"
            ) from err
        if prior.shape != (d,) or not np.isfinite(prior).all():
            raise SkbanditError(
                f"LinUCB prior_mean must be {d} finite numbers (one per feature), found "
                f"shape {prior.shape}; pass one coefficient per feature column"
            )
        return prior

    def _update(self, X, y, sample_weight, reset):
        """Validate, compute the new state on the side, then commit it in one step.

        On ``reset`` ``validate_data`` records ``n_features_in_`` and ``feature_names_in_``
        on ``self`` before the arithmetic; if anything then fails they are put back, so a
        failed call leaves the model exactly as it was.
        """
        if not reset:
            X, y, sample_weight = _validate_fit_input(self, X, y, sample_weight, False)
            self.A_, self.b_, self.A_inv_, self.coef_ = self._new_state(
                X, y, sample_weight, None
            )
            self.n_updates_ += X.shape[0]
            return self
        saved = {k: vars(self)[k] for k in _RECORDED if k in vars(self)}
        try:
            X, y, sample_weight = _validate_fit_input(self, X, y, sample_weight, True)
            prior = self._resolved_prior(X.shape[1])
            state = self._new_state(X, y, sample_weight, prior)
        except BaseException:
            for key in _RECORDED:
                vars(self).pop(key, None)
            vars(self).update(saved)
            raise
        self.A_, self.b_, self.A_inv_, self.coef_ = state
        self.prior_mean_, self._fitted_l2 = prior, float(self.l2)
        self._fitted_prior_param = self.prior_mean
        self.n_updates_ = X.shape[0]
        return self

    def _new_state(self, X, y, sample_weight, prior):
        """``(A, b, A_inv, coef)`` with the validated rows added; ``self`` is left unchanged.

        ``prior`` is ``θ₀`` for a fresh state, ``None`` to continue the fitted one. The input
        is finite and so is the state, so a non-finite number can only come from an
        overflow, which numpy is told to raise.
        """
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                if prior is not None:
                    l2 = float(self.l2)
                    A0, b0 = l2 * np.eye(X.shape[1]), l2 * prior
                    return self._accumulate(A0, b0, X, y, sample_weight, prior)
                one_row = X.shape[0] == 1 and float(self.forgetting) == 1.0
                if one_row and (self.n_updates_ + 1) % _REFACTOR_EVERY:
                    weight = 1.0 if sample_weight is None else sample_weight[0]
                    return self._add_row(X[0], y[0], weight)
                return self._accumulate(
                    self.A_, self.b_, X, y, sample_weight, self.prior_mean_
                )
        except FloatingPointError as err:
            raise SkbanditError(
                f"the update overflowed ({err}): the features or rewards are too large; "
                "scale them (e.g. StandardScaler) before fitting"
            ) from err

    def _accumulate(self, A0, b0, X, y, sample_weight, prior):
        """Return ``(A, b, A_inv, coef)`` after adding rows ``X`` to ``(A0, b0)``.

        ``coef = θ₀ + A⁻¹ (b − A θ₀)``: the same ``A⁻¹ b`` in exact arithmetic, and exactly
        ``θ₀`` when the rows carry no evidence.
        """
        gamma = float(self.forgetting)
        weights = sample_weight
        if gamma < 1.0:
            n = X.shape[0]
            decay = gamma ** np.arange(n - 1, -1, -1, dtype=np.float64)
            weights = decay if weights is None else weights * decay
            kept = gamma**n
            l2_rest = (1.0 - kept) * float(self.l2)
            A0 = kept * A0 + l2_rest * np.eye(X.shape[1])
            b0 = kept * b0 + l2_rest * prior
        if weights is None:
            Xs, yw = X, y
        else:
            Xs, yw = X * np.sqrt(weights)[:, None], weights * y
        A = A0 + Xs.T @ Xs
        A = (A + A.T) * 0.5  # exactly symmetric whatever path BLAS took
        b = b0 + X.T @ yw
        A_inv, step = _cholesky_inverse_and_solve(A, b - A @ prior)
        return A, b, A_inv, prior + step

    def _add_row(self, x, y, weight):
        """Return ``(A, b, A_inv, coef)`` after one row, by a rank-one update (``O(d²)``).

        With ``s = √w x``, ``u = A⁻¹ s`` and ``v = u / √(1 + sᵀu)``: ``A⁻¹ ← A⁻¹ − v vᵀ``
        (Sherman–Morrison, exactly symmetric) and ``θ ← θ + u (√w y − sᵀθ) / (1 + sᵀu)``
        (recursive least squares), instead of refactorising ``A``. ``y`` and ``weight`` are
        numpy scalars, so that an overflow raises even in the scalar arithmetic.
        """
        root = np.sqrt(weight)
        s = x if weight == 1.0 else root * x
        A = self.A_ + s[:, None] * s  # s sᵀ, exactly symmetric
        b = self.b_ + (weight * y) * x
        u = self.A_inv_ @ s
        denominator = 1.0 + s @ u  # >= 1 up to rounding: A⁻¹ is positive definite
        v = u / np.sqrt(denominator)
        A_inv = self.A_inv_ - v[:, None] * v
        coef = self.coef_ + u * ((root * y - s @ self.coef_) / denominator)
        return A, b, A_inv, coef

    # --------------------------------------------------------------- prediction
    def predict(self, X, return_std=False):
        """Expected reward ``θᵀx`` (and optionally the unscaled std ``sqrt(xᵀA⁻¹x)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Candidate contexts.
        return_std : bool, default=False
            Also return ``sqrt(xᵀA⁻¹x)`` (without ``alpha``), like ``BayesianRidge``. One
            call with ``return_std=True`` gives everything a UCB ranking needs:
            ``ucb = mean + alpha * std``.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
            Expected rewards.
        y_std : ndarray of shape (n_samples,)
            Only with ``return_std=True``.
        """
        X = self._validate_X_predict(X)
        mean = X @ self.coef_
        if return_std:
            return mean, self._std(X)
        return mean

    def predict_uncertainty(self, X):
        """Exploration width ``alpha * sqrt(xᵀA⁻¹x)`` for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Candidate contexts.

        Returns
        -------
        width : ndarray of shape (n_samples,)
            Non-negative; ``predict(X) + predict_uncertainty(X)`` is the UCB score.
        """
        X = self._validate_X_predict(X)
        return float(self.alpha) * self._std(X)

    def _std(self, X):
        quad = ((X @ self.A_inv_) * X).sum(axis=1)
        return np.sqrt(np.maximum(quad, 0.0, out=quad), out=quad)

    def _validate_X_predict(self, X):
        if hasattr(self, "coef_"):
            plain = _validate_plain(self, X, reset=False)
            if plain is not None:
                return plain
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64, accept_sparse=False)

    # -------------------------------------------------------------------- state
    def get_state(self):
        """Return the fitted state as plain arrays and numbers (no code, no pickle).

        Returns
        -------
        state : dict of str to ndarray, float or int
            Keys ``A``, ``b``, ``A_inv``, ``coef``, ``prior_mean`` (copies), ``alpha``,
            ``l2``, ``forgetting``,
            ``n_updates``, ``n_features_in``, ``state_version`` and, when the model was
            fitted with column names, ``feature_names_in`` (a unicode array). It can be
            saved with ``np.savez`` and restored with :meth:`set_state` or
            :meth:`from_state`.
        """
        check_is_fitted(self)
        self._check_prior_unchanged()
        state = {name: getattr(self, name + "_").copy() for name in _STATE_ARRAYS}
        state["prior_mean"] = self.prior_mean_.copy()
        state.update(
            alpha=float(self.alpha),
            l2=float(self.l2),
            forgetting=float(self.forgetting),
            n_updates=int(self.n_updates_),
            n_features_in=int(self.n_features_in_),
            state_version=STATE_VERSION,
        )
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in"] = np.asarray(self.feature_names_in_, dtype=str)
        return state

    def set_state(self, state):
        """Restore parameters and fitted state from :meth:`get_state` (exact round trip).

        Parameters
        ----------
        state : mapping of str to ndarray, float or int
            As returned by :meth:`get_state` (or loaded back from ``np.savez``).

        Returns
        -------
        self : LinUCB
            The restored model. A malformed state raises ``SkbanditError`` and changes
            nothing. A state saved before ``prior_mean`` existed loads with zeros.
        """
        arrays, scalars, names = _check_state(state)
        prior = arrays.pop("prior_mean")
        params = {k: scalars[k] for k in ("alpha", "l2", "forgetting")}
        params["prior_mean"] = prior.copy() if prior.any() else None
        self.set_params(**params)
        self.prior_mean_, self._fitted_l2 = prior, scalars["l2"]
        self._fitted_prior_param = self.prior_mean
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        for name, value in arrays.items():
            setattr(self, name + "_", value)
        self.n_updates_ = scalars["n_updates"]
        self.n_features_in_ = scalars["n_features_in"]
        if names is not None:
            self.feature_names_in_ = names
        return self

    @classmethod
    def from_state(cls, state):
        """Build a fitted model from :meth:`get_state` output.

        Parameters
        ----------
        state : mapping of str to ndarray, float or int
            As returned by :meth:`get_state`.

        Returns
        -------
        model : LinUCB
            A model equal to the one the state was taken from.
        """
        return cls().set_state(state)


def _validate_fit_input(estimator, X, y, sample_weight, reset):
    """``(X, y, sample_weight)`` validated as float64 arrays, recorded on ``estimator``."""
    if sample_weight is None:
        plain = _validate_plain(estimator, X, y, reset=reset)
        if plain is not None:
            return (*plain, None)
    if y is not None:
        y = _numeric_rewards(y)
    X, y = validate_data(
        estimator, X, y, reset=reset, dtype=np.float64, y_numeric=True, accept_sparse=False
    )
    y = np.asarray(y, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
    return X, y, sample_weight


def _numeric_rewards(y):
    """``y`` itself, or as float64 if it is an object array; strings raise ``SkbanditError``."""
    y_arr = np.asarray(y)
    if y_arr.dtype.kind in "USV":
        raise SkbanditError(
            f"y must hold numeric rewards, but it has dtype {y_arr.dtype} "
            f"(for example {y_arr.ravel()[:1].tolist()}); convert the rewards to "
            "numbers (e.g. correct = 0/1) before fitting"
        )
    if y_arr.dtype.kind != "O":
        return y
    try:
        return y_arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise SkbanditError(
            f"y must hold numeric rewards, but it contains non-numeric values "
            f"({err}); convert the rewards to numbers before fitting"
        ) from err


def _validate_plain(estimator, X, y="no_validation", *, reset):
    """``validate_data(estimator, X, y, reset=reset)`` for input needing no conversion.

    The online loop's fast path. It takes only a finite, non-empty, 2-D float64
    ``np.ndarray`` ``X`` and (unless ``y`` is ``"no_validation"``) a finite 1-D float64
    ``np.ndarray`` ``y`` of matching length, which ``check_X_y`` would return unchanged, and
    for them has exactly ``validate_data``'s effects: an ndarray has no feature names, so
    ``reset`` drops ``feature_names_in_`` and otherwise a model fitted with names gets
    scikit-learn's warning; ``reset`` records the feature count, and a count that differs
    from the fitted one is left to ``validate_data`` (which raises its error). What it leaves out
    costs more than an online update and cannot matter here: the tag lookup and asking
    narwhals whether ``X`` is a dataframe. Any other input returns ``None``, having changed
    nothing, and the caller uses ``validate_data``. ``tests/test_linucb.py`` checks that
    both have the same effects.
    """
    if not (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.size
        and math.isfinite(X.sum())
    ):
        return None
    no_y = isinstance(y, str) and y == "no_validation"
    if not no_y and not (
        type(y) is np.ndarray
        and y.dtype == np.float64
        and y.shape == (X.shape[0],)
        and math.isfinite(y.sum())
    ):
        return None
    if not reset and X.shape[1] != getattr(estimator, "n_features_in_", X.shape[1]):
        return None  # validate_data raises scikit-learn's error for the count
    if reset:
        vars(estimator).pop("feature_names_in_", None)
    elif hasattr(estimator, "feature_names_in_"):
        warnings.warn(
            "X does not have valid feature names, but "
            f"{type(estimator).__name__} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    if reset:
        estimator.n_features_in_ = X.shape[1]
    return X if no_y else (X, y)


def _cholesky_inverse_and_solve(A, b):
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


def _check_state(state):
    missing = [k for k in (*_STATE_ARRAYS, *_STATE_SCALARS) if k not in state]
    if missing:
        raise SkbanditError(
            f"LinUCB state is missing {missing} (expected the dict from LinUCB.get_state(), "
            f"found keys {sorted(state)}); save the model with get_state()"
        )
    if int(state["state_version"]) != STATE_VERSION:
        raise SkbanditError(
            f"LinUCB state has version {int(state['state_version'])}, expected "
            f"{STATE_VERSION}; re-export the model with this version of skbandit"
        )
    d = int(state["n_features_in"])
    shapes = {"A": (d, d), "b": (d,), "A_inv": (d, d), "coef": (d,), "prior_mean": (d,)}
    arrays = {}
    for name in (*_STATE_ARRAYS, "prior_mean"):
        if name == "prior_mean" and name not in state:
            arrays[name] = np.zeros(d)  # saved before the prior mean existed
            continue
        value = np.array(state[name], dtype=np.float64)
        if value.shape != shapes[name] or not np.isfinite(value).all():
            raise SkbanditError(
                f"LinUCB state array {name!r} must be finite with shape {shapes[name]} "
                f"(n_features_in={d}), found shape {value.shape}; the state is corrupt"
            )
        arrays[name] = value
    params = {k: float(state[k]) for k in ("alpha", "l2", "forgetting")}
    LinUCB(**params)._validate_params()
    if not (np.array_equal(arrays["A"], arrays["A"].T) and state["n_updates"] >= 0):
        raise SkbanditError("LinUCB state is corrupt: A is not symmetric or n_updates < 0")
    scalars = {**params, "n_updates": int(state["n_updates"]), "n_features_in": d}
    names = state.get("feature_names_in")
    if names is not None:
        names = np.asarray(names, dtype=object)
        if names.shape != (d,):
            raise SkbanditError(
                f"LinUCB state 'feature_names_in' must have {d} names, found {names.shape}"
            )
    return arrays, scalars, names
