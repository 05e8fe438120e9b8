"""Shared LinUCB (Li et al., 2010) as a scikit-learn regressor.

One linear model is shared by all arms: each candidate item is described by its own context
vector ``x`` (student and item features), the expected reward is ``θᵀx`` and the exploration
bonus is ``alpha * sqrt(xᵀA⁻¹x)``.
"""

import operator
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from skbandit._linucb_input import add_plain_row, plain_mean, validate_fit_input
from skbandit._linucb_state import (
    STATE_VERSION,
    check_prior_unchanged,
    check_state,
    resolved_prior,
    restore,
    state_of,
)
from skbandit._linucb_update import (
    REFACTOR_EVERY,
    accumulate,
    add_row,
    cholesky_inverse_and_solve,
)
from skbandit.exceptions import SkbanditError

__all__ = ["STATE_VERSION", "LinUCB"]

_RECORDED = ("n_features_in_", "feature_names_in_")
_ERRSTATE = {"over": "raise", "invalid": "raise", "divide": "raise", "under": "ignore"}


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

    Numerics (``skbandit/_linucb_update.py``): a batch is one BLAS product and a Cholesky
    refactorisation of ``A`` (``O(d³)``) caching ``A⁻¹`` and ``θ``; one row (the online
    loop, ``forgetting == 1``) updates the cache by Sherman–Morrison in ``O(d²)``
    (``A⁻¹ ← A⁻¹ − u uᵀ / (1 + xᵀu)`` with ``u = A⁻¹x``, then ``θ = A⁻¹b``), and every 64th row
    refactors so rounding cannot accumulate. Scoring ``K`` candidates is one product with
    the cached inverse; tiny negative quadratic forms from rounding are clipped to 0.

    The prior (``l2`` and ``prior_mean``) is part of the fitted state: changing either on a
    fitted model (``set_params(l2=10)``) and then calling :meth:`partial_fit` or
    :meth:`get_state` raises ``SkbanditError`` rather than mixing two priors; :meth:`fit`
    starts afresh with the new prior. ``alpha`` (scoring only) and ``forgetting`` (applied
    to the rows that follow) may change at any time.

    Input is validated before anything is changed: bad input raises and leaves the model
    exactly as it was (a failed ``fit`` keeps the earlier fit). Plain float64 ``ndarray``
    input skips the generic steps of ``validate_data`` with the same effects
    (``skbandit/_linucb_input.py``). ``fit`` validates the
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
        last = self.__dict__.get("_validated_params")
        if (
            last is None
            or last[0] is not self.alpha
            or last[1] is not self.l2
            or last[2] is not self.prior_mean
            or last[3] is not self.forgetting
        ):
            self._validate_params_once()
        if sample_weight is None and add_plain_row(self, X, y):
            return self
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
        prior = resolved_prior(self.prior_mean, d)
        l2 = float(self.l2)
        A = l2 * np.eye(d)
        vars(self).pop("_headroom", None)
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
            raise SkbanditError(
                "LinUCB.partial_fit_sums needs forgetting == 1 (the sums "
                "carry no row order); use partial_fit on the rows"
            )
        xtx, xty = np.asarray(xtx, dtype=np.float64), np.asarray(xty, dtype=np.float64)
        if not hasattr(self, "n_features_in_"):
            self.initialize(xtx.shape[0])
        d = self.n_features_in_
        if xtx.shape != (d, d) or xty.shape != (d,):
            raise SkbanditError(
                f"LinUCB.partial_fit_sums needs sums of shape ({d}, {d}) and "
                f"({d},), got {xtx.shape} and {xty.shape}"
            )
        A = self.A_ + xtx
        A = (A + A.T) * 0.5  # as _accumulate does after every batch
        b = self.b_ + xty
        A_inv, step = cholesky_inverse_and_solve(A, b - A @ self.prior_mean_)
        vars(self).pop("_headroom", None)
        self.A_, self.b_, self.A_inv_, self.coef_ = A, b, A_inv, self.prior_mean_ + step
        self.n_updates_ += int(n_rows)
        return self

    def _validate_params_once(self):
        """``_validate_params()`` unless the parameters are the objects validated last time.

        Assigning a parameter (directly or through ``set_params``) binds a new object, so
        comparing identities notices every change; validation is skipped, as in
        ``_fit_context``, under ``sklearn.set_config(skip_parameter_validation=True)``. On a
        fitted model a change is also checked against the fitted prior."""
        current = tuple(getattr(self, name) for name in self._parameter_constraints)
        last = getattr(self, "_validated_params", None)
        if last is not None and all(map(operator.is_, current, last)):
            return
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        check_prior_unchanged(self)
        self._validated_params = current

    def _update(self, X, y, sample_weight, reset):
        """Validate, compute the new state on the side, then commit it in one step.

        On ``reset`` ``validate_data`` records ``n_features_in_`` and ``feature_names_in_``
        on ``self`` before the arithmetic; if anything then fails they are put back, so a
        failed call leaves the model exactly as it was.
        """
        if not reset:
            X, y, sample_weight = validate_fit_input(self, X, y, sample_weight, False)
            vars(self).pop("_headroom", None)
            self.A_, self.b_, self.A_inv_, self.coef_ = self._new_state(X, y, sample_weight, None)
            self.n_updates_ += X.shape[0]
            return self
        saved = {k: vars(self)[k] for k in _RECORDED if k in vars(self)}
        try:
            X, y, sample_weight = validate_fit_input(self, X, y, sample_weight, True)
            prior = resolved_prior(self.prior_mean, X.shape[1])
            state = self._new_state(X, y, sample_weight, prior)
        except BaseException:
            for key in _RECORDED:
                vars(self).pop(key, None)
            vars(self).update(saved)
            raise
        vars(self).pop("_headroom", None)
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
        l2, gamma = float(self.l2), float(self.forgetting)
        try:
            with np.errstate(**_ERRSTATE):
                if prior is not None:
                    A0, b0 = l2 * np.eye(X.shape[1]), l2 * prior
                    return accumulate(A0, b0, X, y, sample_weight, prior, l2, gamma)
                if X.shape[0] == 1 and gamma == 1.0 and (self.n_updates_ + 1) % REFACTOR_EVERY:
                    weight = None if sample_weight is None else sample_weight[0]
                    return add_row(self.A_, self.b_, self.A_inv_, X[0], y[0], weight)
                return accumulate(
                    self.A_, self.b_, X, y, sample_weight, self.prior_mean_, l2, gamma
                )
        except FloatingPointError as err:
            raise SkbanditError(
                f"the update overflowed ({err}): the features or rewards are too large; "
                "scale them (e.g. StandardScaler) before fitting"
            ) from err

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
        mean = plain_mean(self, X)
        if mean is None:
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
        if plain_mean(self, X) is None:
            X = self._validate_X_predict(X)
        return float(self.alpha) * self._std(X)

    def _std(self, X):
        quad = np.vecdot(X @ self.A_inv_, X)  # a ufunc: less call overhead than einsum
        return np.sqrt(np.maximum(quad, 0.0, out=quad), out=quad)

    def _validate_X_predict(self, X):
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
        check_prior_unchanged(self)
        return state_of(self)

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
        arrays, scalars, names = check_state(state, _validate_params_of_state)
        restore(self, arrays, scalars, names)
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


def _validate_params_of_state(params):
    """Validate a state's parameters as ``LinUCB``'s (a subclass may add its own)."""
    LinUCB(**params)._validate_params()
