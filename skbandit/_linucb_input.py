"""Input checks of :class:`skbandit.linucb.LinUCB`: scikit-learn's, plus the online fast path.

``validate_fit_input`` is what ``fit``/``partial_fit`` run; ``validate_plain`` is the fast path
for input that needs no conversion, with exactly ``validate_data``'s effects
(``tests/skbandit/test_linucb.py`` compares the two).
"""

import math
import operator
import warnings

import numpy as np
from sklearn.utils.validation import _check_sample_weight, validate_data

from skbandit._linucb_update import REFACTOR_EVERY, add_row
from skbandit.exceptions import SkbanditError


def validate_fit_input(estimator, X, y, sample_weight, reset):
    """``(X, y, sample_weight)`` validated as float64 arrays, recorded on ``estimator``."""
    if sample_weight is None:
        plain = validate_plain(estimator, X, y, reset=reset)
        if plain is not None:
            return (*plain, None)
    if y is not None:
        y = numeric_rewards(y)
    X, y = validate_data(
        estimator, X, y, reset=reset, dtype=np.float64, y_numeric=True, accept_sparse=False
    )
    y = np.asarray(y, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
    return X, y, sample_weight


def numeric_rewards(y):
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


def validate_plain(estimator, X, y="no_validation", *, reset):
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
    nothing, and the caller uses ``validate_data``. ``tests/skbandit/test_linucb.py`` checks that
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


def add_plain_row(model, X, y):
    """The online loop's update: one plain row, added by rank one; ``False`` if not taken.

    Taken only for a 1-row float64 ``ndarray`` ``X`` of the fitted width (on a model
    fitted without feature names) and a float64 ``ndarray`` ``y`` of one value, with
    ``forgetting == 1`` and no refactorisation due. Instead of checking every value and
    running under ``np.errstate``, it bounds them: ``xᵀx < 1e100`` and ``|y| < 1e50``
    (computed in Python floats, so NaN and inf fail it without a warning), and a state
    with headroom (``|A|, |b| < 1e200`` and ``l2 >= 1e-50``, so ``|A⁻¹| <= 1e50``). Then
    no step of :func:`add_row` can overflow, and each row grows the state by at most
    ``1e100``. Otherwise nothing is changed and ``partial_fit`` takes the general
    path, which raises the same errors as ever.
    """
    state = model.__dict__
    if not (
        type(X) is np.ndarray
        and type(y) is np.ndarray
        and X.shape == (1, state.get("n_features_in_", -1))
        and y.shape == (1,)
        and X.dtype == np.float64
        and y.dtype == np.float64
        and "feature_names_in_" not in state
        and (state["n_updates_"] + 1) % REFACTOR_EVERY
        and model.forgetting == 1.0
    ):
        return False
    values = X.tolist()[0]
    reward = y.item()
    if not (sum(map(operator.mul, values, values)) < 1e100 and -1e50 < reward < 1e50):
        return False  # NaN, inf or huge: the general path says what is wrong
    headroom = state.get("_headroom")
    if headroom is None:
        headroom = model._headroom = (
            float(model.l2) >= 1e-50
            and float(np.abs(model.A_).max()) < 1e200
            and float(np.abs(model.b_).max()) < 1e200
        )
    if not headroom:
        return False
    model.A_, model.b_, model.A_inv_, model.coef_ = add_row(
        model.A_, model.b_, model.A_inv_, X[0], reward
    )
    model.n_updates_ += 1
    return True


def plain_mean(model, X):
    """``X @ coef_`` for a plain float64 ``ndarray`` of the fitted width, else ``None``.

    The scoring fast path: a non-finite value in ``X`` makes the mean non-finite, so one
    check of the result replaces checking ``X``; anything else (including a model
    fitted with feature names, which warns) returns ``None`` for ``validate_data``.
    """
    state = vars(model)
    if not (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.shape[0]
        and X.shape[1] == state.get("n_features_in_", -1)
        and "feature_names_in_" not in state
        and "coef_" in state
    ):
        return None
    mean = X @ model.coef_
    return mean if math.isfinite(mean.sum()) else None
