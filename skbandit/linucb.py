"""Shared LinUCB (Li et al., 2010) as a scikit-learn regressor.

One linear model is shared by all arms: each candidate item is described by its own context
vector ``x`` (student and item features), the expected reward is ``θᵀx`` and the exploration
bonus is ``alpha * sqrt(xᵀA⁻¹x)``.
"""

from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from skbandit.exceptions import SkbanditError

STATE_VERSION = 1
_STATE_ARRAYS = ("A", "b", "A_inv", "coef")
_STATE_SCALARS = ("alpha", "l2", "forgetting", "n_updates", "n_features_in", "state_version")


class LinUCB(RegressorMixin, BaseEstimator):
    """Shared linear upper-confidence-bound bandit model (LinUCB, Li et al. 2010).

    A ridge regression of reward on context that also reports how uncertain it is about
    each context, updated incrementally with :meth:`partial_fit`.

    Parameters
    ----------
    alpha : float, default=1.0
        Exploration width: :meth:`predict_uncertainty` returns ``alpha * sqrt(xᵀA⁻¹x)`` and
        the upper confidence bound is ``predict(X) + predict_uncertainty(X)``. ``0`` is greedy.

    l2 : float, default=1.0
        Ridge strength ``λ > 0``; a fresh model has ``A = λ I``, ``b = 0`` (``A = I`` with the
        default, as in Li et al.).

    forgetting : float in (0, 1], default=1.0
        Discount ``γ`` applied **per observed row** (not per call), for drifting students and
        items. Before each row is added, the data part of ``A`` and ``b`` is multiplied by
        ``γ`` while the prior ``λ I`` is kept, so after ``T`` rows
        ``A = λ I + Σ_t γ^(T−t) w_t x_t x_tᵀ`` (an effective memory of about ``1 / (1 − γ)``
        rows). Because the discount is per row, one batch still equals the same rows one at a
        time, but the order of rows and batches matters and a weight is no longer equivalent
        to repeated rows. ``1.0`` turns forgetting off.

    Attributes
    ----------
    A_ : ndarray of shape (n_features, n_features)
        ``λ I + Σ w x xᵀ`` (discounted when ``forgetting < 1``); exactly symmetric.

    b_ : ndarray of shape (n_features,)
        ``Σ w y x`` (discounted when ``forgetting < 1``).

    A_inv_ : ndarray of shape (n_features, n_features)
        Cached ``A⁻¹`` (exactly symmetric), recomputed from ``A_`` by a Cholesky factorisation
        after every update, so it never drifts from ``A_``.

    coef_ : ndarray of shape (n_features,)
        ``θ = A⁻¹ b``, solved with the Cholesky factor of ``A_``.

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

        A = λ I + Σ_i w_i x_i x_iᵀ,   b = Σ_i w_i y_i x_i,   θ = A⁻¹ b
        mean(x) = θᵀx,   std(x) = sqrt(xᵀ A⁻¹ x),   UCB(x) = θᵀx + α sqrt(xᵀ A⁻¹ x)

    ``θ`` is the ridge estimate (``argmin Σ w (y − θᵀx)² + λ‖θ‖²``) and ``std`` is the
    unscaled standard deviation of ``θᵀx`` (the posterior with unit noise variance); unlike
    ``BayesianRidge`` it contains no noise term.

    Numerics: ``A`` and ``b`` are sums, so each call adds a batch with one BLAS product
    (``XᵀX`` through ``syrk``), refactors ``A`` by Cholesky (``O(d³)``, tiny for a handful of
    features and cheaper than the Python overhead for one row) and caches ``A⁻¹`` and ``θ``.
    A cached inverse rather than a Cholesky factor is kept because scoring ``K`` candidates
    is then one matrix product, ``((X @ A⁻¹) * X).sum(1)``; nothing is inverted per
    prediction. Tiny negative quadratic forms from rounding are clipped to 0 before the root.

    Input is validated before anything is changed: bad input raises and leaves a fitted
    model exactly as it was. Lean path: when ``X`` is already a non-empty 2-D float64
    ``ndarray`` (of the fitted width and with no fitted feature names, except in ``fit``) and
    ``y`` a matching 1-D float64 ``ndarray`` with no sample weights, ``fit``, ``partial_fit``,
    ``predict`` and ``predict_uncertainty`` skip scikit-learn's generic ``validate_data``
    (about 60 µs per call) and only check finiteness with one sum; the result is identical.
    Anything else, including non-finite input, takes the full validation path and its
    error messages. This keeps an online choose–observe–update loop above 10,000
    decisions per second.

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
        "forgetting": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, alpha=1.0, l2=1.0, forgetting=1.0):
        self.alpha = alpha
        self.l2 = l2
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

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Add a batch of observations to the model (fit a fresh one on the first call).

        One call with a batch gives the same state as the same rows one call at a time, and
        (with ``forgetting == 1``) the order of batches does not matter.

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
            The updated model.
        """
        first_call = not hasattr(self, "n_features_in_")
        return self._update(X, y, sample_weight, reset=first_call)

    def _update(self, X, y, sample_weight, reset):
        """Validate, compute the new state on the side, then commit it in one step."""
        lean = None if sample_weight is not None else self._lean_Xy(X, y, reset)
        if lean is not None:
            X, y = lean
            new_state = self._accumulate(*self._start(X.shape[1], reset), X, y, None)
        else:
            saved = {k: v for k, v in vars(self).items() if k.endswith("_")}
            try:
                X, y, sample_weight = self._validate_fit_input(X, y, sample_weight, reset)
                new_state = self._accumulate(
                    *self._start(X.shape[1], reset), X, y, sample_weight
                )
            except BaseException:
                # validate_data may already have set n_features_in_ / feature_names_in_.
                for key in [k for k in vars(self) if k.endswith("_")]:
                    delattr(self, key)
                vars(self).update(saved)
                raise
        if reset and lean is not None:  # what validate_data(reset=True) does for an ndarray
            self.n_features_in_ = X.shape[1]
            vars(self).pop("feature_names_in_", None)
        n_before = 0 if reset else self.n_updates_
        self.A_, self.b_, self.A_inv_, self.coef_ = new_state
        self.n_updates_ = n_before + X.shape[0]
        return self

    def _start(self, n_features, reset):
        """``(A, b)`` to add the batch to: the prior for a fresh model, else the state."""
        if reset:
            return float(self.l2) * np.eye(n_features), np.zeros(n_features)
        return self.A_, self.b_

    def _validate_fit_input(self, X, y, sample_weight, reset):
        if y is not None:
            y_arr = np.asarray(y)
            if y_arr.dtype.kind in "USV":
                raise SkbanditError(
                    f"y must hold numeric rewards, but it has dtype {y_arr.dtype} "
                    f"(for example {y_arr.ravel()[:1].tolist()}); convert the rewards to "
                    "numbers (e.g. correct = 0/1) before fitting"
                )
            if y_arr.dtype.kind == "O":
                try:
                    y = y_arr.astype(np.float64)
                except (TypeError, ValueError) as err:
                    raise SkbanditError(
                        f"y must hold numeric rewards, but it contains non-numeric values "
                        f"({err}); convert the rewards to numbers before fitting"
                    ) from err
        X, y = validate_data(
            self, X, y, reset=reset, dtype=np.float64, y_numeric=True, accept_sparse=False
        )
        y = np.asarray(y, dtype=np.float64)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        return X, y, sample_weight

    def _accumulate(self, A0, b0, X, y, sample_weight):
        """Return ``(A, b, A_inv, coef)`` after adding rows ``X`` to ``(A0, b0)``."""
        gamma = float(self.forgetting)
        weights = sample_weight
        if gamma < 1.0:
            n = X.shape[0]
            decay = gamma ** np.arange(n - 1, -1, -1, dtype=np.float64)
            weights = decay if weights is None else weights * decay
            kept = gamma**n
            A0 = kept * A0 + (1.0 - kept) * float(self.l2) * np.eye(X.shape[1])
            b0 = kept * b0
        if weights is None:
            Xs, yw = X, y
        else:
            Xs, yw = X * np.sqrt(weights)[:, None], weights * y
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            A = A0 + Xs.T @ Xs
            A = (A + A.T) * 0.5  # exactly symmetric whatever path BLAS took
            b = b0 + X.T @ yw
        if not (np.isfinite(A).all() and np.isfinite(b).all()):
            raise SkbanditError(
                "the update overflowed (A or b is no longer finite): the features or rewards "
                "are too large; scale them (e.g. StandardScaler) before fitting"
            )
        A_inv, coef = _cholesky_inverse_and_solve(A, b)
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
        lean = self._lean_X(X)
        if lean is not None:
            return lean
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64, accept_sparse=False)

    def _lean_X(self, X, reset=False):
        """``X`` if it needs no conversion, only a finiteness check; else ``None``.

        ``X`` must be a non-empty 2-D float64 ``ndarray`` and, unless ``reset``, have the
        fitted width with no fitted feature names; anything else (lists, frames, memmaps,
        other dtypes, NaN, a wrong width) takes scikit-learn's full validation path.
        """
        if not (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2 and X.size):
            return None
        if not reset and (
            X.shape[1] != getattr(self, "n_features_in_", -1) or "feature_names_in_" in vars(self)
        ):
            return None
        return X if np.isfinite(X.sum()) else None

    def _lean_Xy(self, X, y, reset):
        X = self._lean_X(X, reset)
        if (
            X is None
            or type(y) is not np.ndarray
            or y.dtype != np.float64
            or y.shape != (X.shape[0],)
            or not np.isfinite(y.sum())
        ):
            return None
        return X, y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags

    # -------------------------------------------------------------------- state
    def get_state(self):
        """Return the fitted state as plain arrays and numbers (no code, no pickle).

        Returns
        -------
        state : dict of str to ndarray, float or int
            Keys ``A``, ``b``, ``A_inv``, ``coef`` (copies), ``alpha``, ``l2``, ``forgetting``,
            ``n_updates``, ``n_features_in``, ``state_version`` and, when the model was
            fitted with column names, ``feature_names_in`` (a unicode array). It can be
            saved with ``np.savez`` and restored with :meth:`set_state` or
            :meth:`from_state`.
        """
        check_is_fitted(self)
        state = {name: getattr(self, name + "_").copy() for name in _STATE_ARRAYS}
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
            nothing.
        """
        arrays, scalars, names = _check_state(state)
        self.set_params(**{k: scalars[k] for k in ("alpha", "l2", "forgetting")})
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


def _cholesky_inverse_and_solve(A, b):
    """``(A⁻¹, A⁻¹b)`` for symmetric positive definite ``A`` from its Cholesky factor.

    ``A = L Lᵀ`` (numpy's ``cholesky``, which also rejects a non positive definite ``A``),
    ``A⁻¹ = L⁻ᵀ L⁻¹`` and ``θ = L⁻ᵀ (L⁻¹ b)``, so the error grows with ``cond(L) = √cond(A)``
    per factor. Only numpy's LAPACK is used: on a loaded machine SciPy's separately bundled
    OpenBLAS (``potri``, ``potrs``, ``solve_triangular``) wakes a second thread pool even for
    8 x 8 matrices and stalls for milliseconds.
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
    shapes = {"A": (d, d), "b": (d,), "A_inv": (d, d), "coef": (d,)}
    arrays = {}
    for name in _STATE_ARRAYS:
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
