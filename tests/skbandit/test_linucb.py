"""LinUCB: oracles (Ridge, closed forms), hand-checkable maths, properties, bad input, state."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import validate_data

from skbandit import LinUCB, SkbanditError, _linucb_input, _linucb_update


def _data(n=50, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    return X, y


def _closed_form(X, y, w, l2):
    """A = l2 I + XᵀWX, b = XᵀWy, straight from the definition."""
    A = l2 * np.eye(X.shape[1]) + X.T @ np.diag(w) @ X
    return A, X.T @ (w * y)


def _fitted_state(model):
    return {k: np.copy(v) for k, v in vars(model).items() if k.endswith("_")}


def _assert_same_state(before, model):
    after = _fitted_state(model)
    assert before.keys() == after.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


# ------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("l2", [0.1, 1.0, 10.0])
def test_coef_equals_ridge_without_intercept(l2):
    X, y = _data()
    model = LinUCB(l2=l2).fit(X, y)
    ridge = Ridge(alpha=l2, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.predict(X), ridge.predict(X), rtol=0, atol=1e-10)


def test_coef_equals_weighted_ridge():
    X, y = _data(seed=1)
    w = np.random.default_rng(2).uniform(0.0, 3.0, size=len(y))
    model = LinUCB(l2=2.0).fit(X, y, sample_weight=w)
    ridge = Ridge(alpha=2.0, fit_intercept=False).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-10)


def test_state_matches_the_definition_and_is_exactly_symmetric():
    X, y = _data(seed=3)
    w = np.random.default_rng(4).uniform(0.1, 2.0, size=len(y))
    model = LinUCB(l2=0.5).fit(X, y, sample_weight=w)
    A, b = _closed_form(X, y, w, 0.5)
    np.testing.assert_allclose(model.A_, A, rtol=1e-12)
    np.testing.assert_allclose(model.b_, b, rtol=1e-12)
    np.testing.assert_allclose(model.A_inv_, np.linalg.inv(A), rtol=1e-10)
    np.testing.assert_array_equal(model.A_, model.A_.T)
    np.testing.assert_array_equal(model.A_inv_, model.A_inv_.T)
    assert model.A_.dtype == model.A_inv_.dtype == model.coef_.dtype == np.float64
    assert model.n_updates_ == len(y)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 2.0])
def test_uncertainty_equals_closed_form(alpha):
    X, y = _data(seed=5)
    w = np.random.default_rng(6).uniform(0.0, 2.0, size=len(y))
    candidates = np.random.default_rng(7).normal(size=(30, X.shape[1]))
    model = LinUCB(alpha=alpha, l2=1.5).fit(X, y, sample_weight=w)
    A, _ = _closed_form(X, y, w, 1.5)
    quad = np.einsum("ij,ij->i", candidates, np.linalg.solve(A, candidates.T).T)
    np.testing.assert_allclose(
        model.predict_uncertainty(candidates), alpha * np.sqrt(quad), rtol=1e-10, atol=1e-12
    )


def test_predict_return_std_is_consistent():
    X, y = _data(seed=8)
    model = LinUCB(alpha=0.7).fit(X, y)
    mean, std = model.predict(X[:10], return_std=True)
    np.testing.assert_array_equal(mean, model.predict(X[:10]))
    np.testing.assert_allclose(0.7 * std, model.predict_uncertainty(X[:10]), rtol=1e-15)


def test_hand_checkable_two_features():
    # A = I + [[2, 1], [1, 2]] = [[3, 1], [1, 3]], b = [2, 1], A⁻¹ = [[3, -1], [-1, 3]] / 8
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    model = LinUCB(alpha=2.0).fit(X, [1.0, 0.0, 1.0])
    np.testing.assert_allclose(model.A_, [[3.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(model.coef_, [0.625, 0.125], atol=1e-15)
    # x = [1, 0]: xᵀA⁻¹x = 3/8; x = [1, -1]: (3 + 2 + 3) / 8 = 1
    width = model.predict_uncertainty(np.array([[1.0, 0.0], [1.0, -1.0]]))
    np.testing.assert_allclose(width, [2.0 * np.sqrt(3 / 8), 2.0], rtol=1e-14)


def test_fresh_model_predicts_zero_with_width_alpha_norm():
    # zero contexts add nothing to A or b, so the model is still at its prior A = I, b = 0
    model = LinUCB(alpha=1.5).fit(np.zeros((1, 3)), [1.0])
    np.testing.assert_array_equal(model.A_, np.eye(3))
    x = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(model.predict(x), [0.0, 0.0])
    np.testing.assert_allclose(model.predict_uncertainty(x), 1.5 * np.linalg.norm(x, axis=1))


def test_fit_starts_fresh_and_partial_fit_continues():
    X, y = _data(seed=9)
    model = LinUCB().fit(X[:20], y[:20]).fit(X[20:], y[20:])
    np.testing.assert_array_equal(model.A_, LinUCB().fit(X[20:], y[20:]).A_)
    model.partial_fit(X[:20], y[:20])
    np.testing.assert_allclose(model.coef_, LinUCB().fit(X, y).coef_, atol=1e-12)
    assert model.n_updates_ == len(y)


# ---------------------------------------------------------------------- forgetting
def test_forgetting_hand_checkable():
    # γ = 0.5, l2 = 1, d = 1: see x=1, y=1 then x=1, y=0.
    # row 1: A = 0.5·1 + 0.5·1 + 1 = 2, b = 1; row 2: A = 0.5·2 + 0.5·1 + 1 = 2.5, b = 0.5
    X, y = np.ones((2, 1)), np.array([1.0, 0.0])
    model = LinUCB(forgetting=0.5).fit(X, y)
    np.testing.assert_allclose(model.A_, [[2.5]])
    np.testing.assert_allclose(model.b_, [0.5])
    np.testing.assert_allclose(model.coef_, [0.2])
    assert LinUCB().fit(X, y).coef_[0] == pytest.approx(1 / 3)  # the old 1 counts fully


def test_forgetting_equals_ridge_with_geometric_weights():
    X, y = _data(n=40, seed=10)
    gamma = 0.9
    model = LinUCB(forgetting=gamma).partial_fit(X[:15], y[:15]).partial_fit(X[15:], y[15:])
    w = gamma ** np.arange(len(y) - 1, -1, -1)
    ridge = Ridge(alpha=1.0, fit_intercept=False).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(model.coef_, ridge.coef_, atol=1e-10)


def test_forgetting_tracks_a_drifting_reward():
    rng = np.random.default_rng(11)
    X = np.column_stack([np.ones(400), rng.normal(size=400)])
    y = np.where(np.arange(400) < 200, 1.0, -1.0) * X[:, 1]
    stale = LinUCB().fit(X, y).coef_[1]
    fresh = LinUCB(forgetting=0.95).fit(X, y).coef_[1]
    assert abs(stale) < 0.3 and fresh < -0.9


# ---------------------------------------------------------------------- properties
def _problem(min_rows=1, max_rows=12):
    def build(draw):
        d = draw(st.integers(1, 4))
        n = draw(st.integers(min_rows, max_rows))
        elements = st.floats(-5, 5, allow_nan=False, allow_infinity=False)
        X = draw(arrays(np.float64, (n, d), elements=elements))
        y = draw(arrays(np.float64, (n,), elements=elements))
        return X, y

    return st.composite(lambda draw: build(draw))()


@settings(max_examples=60, deadline=None)
@given(problem=_problem(), l2=st.floats(0.1, 10), forgetting=st.sampled_from([1.0, 0.9]))
def test_one_batch_equals_row_by_row(problem, l2, forgetting):
    X, y = problem
    batch = LinUCB(l2=l2, forgetting=forgetting).partial_fit(X, y)
    rows = LinUCB(l2=l2, forgetting=forgetting)
    for i in range(len(y)):
        rows.partial_fit(X[i : i + 1], y[i : i + 1])
    for name in ("A_", "b_", "A_inv_", "coef_"):
        np.testing.assert_allclose(getattr(rows, name), getattr(batch, name), atol=1e-9)
    assert rows.n_updates_ == batch.n_updates_ == len(y)


@settings(max_examples=60, deadline=None)
@given(problem=_problem(min_rows=2), data=st.data())
def test_batch_order_does_not_matter(problem, data):
    X, y = problem
    cut = data.draw(st.integers(1, len(y) - 1))
    forward = LinUCB().partial_fit(X[:cut], y[:cut]).partial_fit(X[cut:], y[cut:])
    backward = LinUCB().partial_fit(X[cut:], y[cut:]).partial_fit(X[:cut], y[:cut])
    for name in ("A_", "b_", "A_inv_", "coef_"):
        np.testing.assert_allclose(getattr(forward, name), getattr(backward, name), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(problem=_problem(), x=arrays(np.float64, 4, elements=st.floats(-5, 5)))
def test_width_is_non_negative_and_never_grows_after_observing_x(problem, x):
    X, y = problem
    x = x[: X.shape[1]].reshape(1, -1)
    model = LinUCB(alpha=1.3).fit(X, y)
    before = model.predict_uncertainty(x)[0]
    after = model.partial_fit(x, np.array([0.5])).predict_uncertainty(x)[0]
    assert before >= 0.0 and after >= 0.0
    assert after <= before + 1e-12


@settings(max_examples=60, deadline=None)
@given(problem=_problem(), data=st.data())
def test_integer_weights_equal_repeated_rows(problem, data):
    X, y = problem
    w = np.array(data.draw(st.lists(st.integers(0, 3), min_size=len(y), max_size=len(y))))
    if w.sum() == 0:
        w[0] = 1
    weighted = LinUCB().fit(X, y, sample_weight=w)
    repeated = LinUCB().fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    for name in ("A_", "b_", "coef_"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), atol=1e-9)


def test_plain_path_equals_validated_path():
    X, y = _data(seed=12)
    plain = LinUCB().fit(X[:10], y[:10]).partial_fit(X[10:], y[10:])  # float64 ndarrays
    slow = LinUCB().fit(X[:10], y[:10]).partial_fit(X[10:].tolist(), y[10:].tolist())
    np.testing.assert_array_equal(plain.A_, slow.A_)
    np.testing.assert_array_equal(plain.coef_, slow.coef_)
    np.testing.assert_array_equal(plain.predict(X), slow.predict(X.tolist()))
    plain_fit, slow_fit = LinUCB().fit(X, y), LinUCB().fit(X.tolist(), y.tolist())
    _assert_same_state(_fitted_state(slow_fit), plain_fit)


def test_plain_fit_forgets_earlier_feature_names():
    X, y = _data(d=3, seed=15)
    model = LinUCB().fit(pd.DataFrame(X, columns=["a", "b", "c"]), y)
    model.fit(X, y)  # a plain float64 ndarray takes the fast path
    assert not hasattr(model, "feature_names_in_") and model.n_features_in_ == 3


# ----------------------------------------------------------------------- bad input
_GOOD_X, _GOOD_Y = _data(n=20, d=3, seed=13)


def _nan_x():
    X = _GOOD_X[:4].copy()
    X[1, 2] = np.nan
    return X, _GOOD_Y[:4], None


def _inf_x():
    X = _GOOD_X[:4].copy()
    X[0, 0] = np.inf
    return X, _GOOD_Y[:4], None


def _nan_y():
    y = _GOOD_Y[:4].copy()
    y[2] = np.nan
    return _GOOD_X[:4], y, None


BAD_INPUTS = {
    "nan in X": _nan_x,
    "nan in one row": lambda: (_nan_x()[0][1:2], _GOOD_Y[:1], None),  # the rank-one update
    "inf in X": _inf_x,
    "nan in y": _nan_y,
    "wrong n_features": lambda: (_GOOD_X[:4, :2], _GOOD_Y[:4], None),
    "empty X": lambda: (np.empty((0, 3)), np.empty(0), None),
    "string y": lambda: (_GOOD_X[:2], np.array(["right", "wrong"]), None),
    "object string y": lambda: (_GOOD_X[:2], np.array(["1", "x"], dtype=object), None),
    "y wrong length": lambda: (_GOOD_X[:4], _GOOD_Y[:3], None),
    "negative weight": lambda: (_GOOD_X[:2], _GOOD_Y[:2], np.array([1.0, -1.0])),
    "1-d X": lambda: (_GOOD_X[0], _GOOD_Y[:1], None),
    "overflowing X": lambda: (np.full((2, 3), 1e200), _GOOD_Y[:2], None),
    "overflowing row": lambda: (np.full((1, 3), 1e200), _GOOD_Y[:1], None),
}


@pytest.mark.parametrize(
    ("case", "method"),
    # a new width is not bad input for fit, which starts a fresh model of any width
    [
        (c, m)
        for c in BAD_INPUTS
        for m in ("fit", "partial_fit")
        if (c, m) != ("wrong n_features", "fit")
    ],
)
def test_bad_input_raises_and_leaves_state_unchanged(case, method):
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    before = _fitted_state(model)
    X, y, w = BAD_INPUTS[case]()
    with pytest.raises(ValueError):
        getattr(model, method)(X, y, sample_weight=w)
    _assert_same_state(before, model)


# a first call may choose any width, so "wrong n_features" is not bad input here
@pytest.mark.parametrize("case", [c for c in BAD_INPUTS if c != "wrong n_features"])
def test_bad_first_partial_fit_leaves_model_unfitted(case):
    model = LinUCB()
    X, y, w = BAD_INPUTS[case]()
    with pytest.raises(ValueError):
        model.partial_fit(X, y, sample_weight=w)
    assert not [k for k in vars(model) if k.endswith("_")]


@pytest.mark.parametrize(
    "bad",
    [
        pd.DataFrame({"x": [1.0, np.nan], "y": [0.0, 1.0]}),  # rejected by validate_data
        np.full((2, 2), 1e200),  # passes the plain-input check, then overflows
    ],
    ids=["frame with NaN", "overflowing ndarray"],
)
def test_bad_fit_keeps_feature_names_of_the_fitted_model(bad):
    frame = pd.DataFrame(_GOOD_X, columns=["a", "b", "c"])
    model = LinUCB().fit(frame, _GOOD_Y)
    before = _fitted_state(model)
    with pytest.raises(ValueError):
        model.fit(bad, np.array([0.0, 1.0]))
    _assert_same_state(before, model)
    assert list(model.feature_names_in_) == ["a", "b", "c"]


def test_changed_feature_count_names_both_counts():
    model = LinUCB().partial_fit(_GOOD_X, _GOOD_Y)
    with pytest.raises(ValueError, match="X has 2 features, but LinUCB is expecting 3"):
        model.partial_fit(_GOOD_X[:, :2], _GOOD_Y)


def test_non_numeric_y_error_says_what_to_do():
    with pytest.raises(SkbanditError, match="numeric rewards"):
        LinUCB().fit(_GOOD_X[:2], ["right", "wrong"])


@pytest.mark.parametrize("method", ["predict", "predict_uncertainty"])
def test_predict_rejects_bad_input(method):
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    with pytest.raises(ValueError, match="NaN"):
        getattr(model, method)(_nan_x()[0])
    with pytest.raises(ValueError, match="expecting 3 features"):
        getattr(model, method)(_GOOD_X[:, :2])
    with pytest.raises(NotFittedError):
        getattr(LinUCB(), method)(_GOOD_X)


# ------------------------------------------------------------ plain-input fast path
def _fitted_on(width, names):
    X = _GOOD_X[:, :width]
    return LinUCB().fit(pd.DataFrame(X, columns=list("abc"[:width])) if names else X, _GOOD_Y)


# (model before the check, width of the plain X, reset)
PLAIN_CASES = {
    "first call": (LinUCB, 3, True),
    "refit drops names": (lambda: _fitted_on(3, names=True), 2, True),
    "same count": (lambda: _fitted_on(3, names=False), 3, False),
    "changed count": (lambda: _fitted_on(3, names=False), 2, False),
    "names at fit, none now": (lambda: _fitted_on(3, names=True), 3, False),
    "names at fit, changed count": (lambda: _fitted_on(3, names=True), 2, False),
    "unfitted, no reset": (LinUCB, 3, False),
}


def _effects(check, model):
    """Fitted attributes afterwards, warnings, error and output of ``check(model)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output, error = check(model), None
        except ValueError as err:
            output, error = None, (type(err), str(err))
    return _fitted_state(model), [(w.category, str(w.message)) for w in caught], error, output


@pytest.mark.parametrize("with_y", [True, False], ids=["X and y", "X only"])
@pytest.mark.parametrize("case", PLAIN_CASES)
def test_plain_input_check_has_the_effects_of_validate_data(case, with_y):
    make, width, reset = PLAIN_CASES[case]
    X, y = _GOOD_X[:4, :width].copy(), _GOOD_Y[:4].copy()
    args = (X, y) if with_y else (X,)

    def validated(m):
        return validate_data(m, *args, reset=reset, dtype=np.float64)

    def fast_then_validated(m):  # what the callers do: the fast path, else validate_data
        plain = _linucb_input.validate_plain(m, *args, reset=reset)
        return validated(m) if plain is None else plain

    expected = _effects(validated, make())
    actual = _effects(fast_then_validated, make())
    assert actual[0].keys() == expected[0].keys()
    for key, value in expected[0].items():
        np.testing.assert_array_equal(actual[0][key], value, err_msg=key)
    assert actual[1:3] == expected[1:3]  # same warnings, same error
    if expected[3] is not None:  # returned unchanged, without a copy
        assert all(a is b for a, b in zip(actual[3] if with_y else [actual[3]], args, strict=True))


@pytest.mark.parametrize(
    "X",
    [
        _GOOD_X[:4].tolist(),
        _GOOD_X[:4].astype(np.float32),
        pd.DataFrame(_GOOD_X[:4], columns=["a", "b", "c"]),
        _nan_x()[0],
        _GOOD_X[0],
        np.empty((0, 3)),
    ],
    ids=["list", "float32", "frame", "NaN", "1-d", "empty"],
)
def test_other_input_is_left_to_validate_data(X):
    model = _fitted_on(3, names=True)
    before = _fitted_state(model)
    assert _linucb_input.validate_plain(model, X, reset=True) is None
    assert _linucb_input.validate_plain(model, _GOOD_X[:4], [1.0] * 4, reset=True) is None
    _assert_same_state(before, model)


def test_changed_feature_names_are_refused_like_scikit_learn_does():
    model = _fitted_on(3, names=True)
    renamed = pd.DataFrame(_GOOD_X[:2], columns=["a", "b", "z"])
    with pytest.raises(ValueError, match="feature names should match"):
        model.partial_fit(renamed, _GOOD_Y[:2])
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(renamed)


# --------------------------------------------------------------- one-row updates
def test_single_rows_update_the_inverse_by_rank_one_and_refactor_regularly():
    X, y = _data(n=150, d=4, seed=16)
    model = LinUCB(l2=0.5)
    for i in range(len(y)):
        model.partial_fit(X[i : i + 1], y[i : i + 1])
        np.testing.assert_array_equal(model.A_inv_, model.A_inv_.T)
        if model.n_updates_ % _linucb_update.REFACTOR_EVERY == 0:  # exactly a refactorisation
            A_inv, coef = _linucb_update.cholesky_inverse_and_solve(model.A_, model.b_)
            np.testing.assert_array_equal(model.A_inv_, A_inv)
            np.testing.assert_array_equal(model.coef_, coef)
    assert model.n_updates_ % _linucb_update.REFACTOR_EVERY  # ends on a rank-one update
    np.testing.assert_allclose(model.A_inv_, np.linalg.inv(model.A_), rtol=1e-12)
    ridge = Ridge(alpha=0.5, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-12)


def test_a_weighted_single_row_equals_the_row_repeated():
    X, y = _data(n=12, d=3, seed=17)
    weighted = LinUCB().fit(X[:10], y[:10]).partial_fit(X[10:11], y[10:11], sample_weight=[3.0])
    repeated = (
        LinUCB()
        .fit(X[:10], y[:10])
        .partial_fit(np.repeat(X[10:11], 3, axis=0), np.repeat(y[10:11], 3))
    )
    for name in ("A_", "b_", "A_inv_", "coef_"):
        np.testing.assert_allclose(
            getattr(weighted, name), getattr(repeated, name), rtol=1e-12, atol=1e-14
        )


# ---------------------------------------------------------------- sklearn plumbing
def test_constructor_takes_keywords_only():
    with pytest.raises(TypeError):
        LinUCB(1.0)


def test_partial_fit_validates_parameters_once_per_change(monkeypatch):
    calls = []
    validate = LinUCB._validate_params
    monkeypatch.setattr(
        LinUCB, "_validate_params", lambda self: calls.append(self.get_params()) or validate(self)
    )
    model = LinUCB()
    for i in range(5):
        model.partial_fit(_GOOD_X[i : i + 1], _GOOD_Y[i : i + 1])
    assert len(calls) == 1
    model.set_params(alpha=0.5)
    model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1]).partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    model.forgetting = 0.9
    model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1]).partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    assert [c["alpha"] for c in calls] == [1.0, 0.5, 0.5] and calls[-1]["forgetting"] == 0.9


@pytest.mark.parametrize(
    "change",
    [
        lambda model: model.set_params(alpha=-1.0),
        lambda model: setattr(model, "l2", 0.0),
        lambda model: setattr(model, "forgetting", 1.5),
    ],
    ids=["set_params", "assigned l2", "assigned forgetting"],
)
def test_partial_fit_rejects_a_parameter_made_invalid_after_fitting(change):
    model = LinUCB().partial_fit(_GOOD_X, _GOOD_Y)
    before = _fitted_state(model)
    change(model)
    with pytest.raises(ValueError, match="parameter of LinUCB must be"):
        model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    _assert_same_state(before, model)


def test_clone_get_params_set_params():
    model = LinUCB(alpha=0.5, l2=2.0, forgetting=0.99).fit(_GOOD_X, _GOOD_Y)
    assert model.get_params() == {"alpha": 0.5, "l2": 2.0, "prior_mean": None, "forgetting": 0.99}
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coef_")
    assert copy.set_params(alpha=3.0) is copy and copy.alpha == 3.0


@pytest.mark.parametrize("params", [{"alpha": -1.0}, {"l2": 0.0}, {"forgetting": 0.0}])
def test_invalid_parameters_are_rejected(params):
    with pytest.raises(ValueError, match="parameter"):
        LinUCB(**params).fit(_GOOD_X, _GOOD_Y)


def test_last_step_of_a_pipeline():
    X, y = _data(seed=14)
    X = 10.0 * X + 3.0
    pipe = make_pipeline(StandardScaler(), LinUCB(alpha=0.5)).fit(X, y)
    scaled = StandardScaler().fit_transform(X)
    direct = LinUCB(alpha=0.5).fit(scaled, y)
    mean, std = pipe.predict(X, return_std=True)
    np.testing.assert_allclose(mean, direct.predict(scaled), atol=1e-12)
    np.testing.assert_allclose(std, direct.predict(scaled, return_std=True)[1], atol=1e-12)
    assert pipe.score(X, y) > 0.9


# -------------------------------------------------------------------------- state
def test_state_round_trip_is_exact(tmp_path):
    frame = pd.DataFrame(_GOOD_X, columns=["a", "b", "c"])
    model = LinUCB(alpha=0.7, l2=2.0, forgetting=0.99).fit(frame, _GOOD_Y)
    np.savez(tmp_path / "state.npz", **model.get_state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        restored = LinUCB.from_state(dict(saved))
    assert restored.get_params() == model.get_params()
    _assert_same_state(_fitted_state(model), restored)
    assert isinstance(restored.n_updates_, int) and restored.n_updates_ == 20
    assert list(restored.feature_names_in_) == ["a", "b", "c"]
    more = pd.DataFrame(_GOOD_X[:5], columns=["a", "b", "c"])
    model.partial_fit(more, _GOOD_Y[:5])
    restored.partial_fit(more, _GOOD_Y[:5])
    np.testing.assert_array_equal(restored.coef_, model.coef_)


def test_set_state_rejects_a_corrupt_state_and_changes_nothing():
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    other = LinUCB(alpha=2.0).fit(_GOOD_X[:, :2], _GOOD_Y)
    before = _fitted_state(other)
    state = model.get_state()
    state["A_inv"] = state["A_inv"][:2]
    with pytest.raises(SkbanditError, match="A_inv"):
        other.set_state(state)
    _assert_same_state(before, other)
    assert other.alpha == 2.0
    with pytest.raises(SkbanditError, match="missing"):
        LinUCB.from_state({"A": np.eye(2)})


def test_state_size_does_not_depend_on_the_number_of_rows():
    small = LinUCB().fit(*_data(n=10, d=5)).get_state()
    large = LinUCB().fit(*_data(n=5000, d=5)).get_state()
    size = {k: np.asarray(v).nbytes for k, v in small.items()}
    assert size == {k: np.asarray(v).nbytes for k, v in large.items()}


# --------------------------------------------------------------------- prior mean
_PRIOR = np.array([0.5, -1.0, 2.0])


def test_untrained_model_predicts_the_prior_mean_exactly():
    X = _GOOD_X
    fresh = LinUCB(l2=0.3, prior_mean=_PRIOR).initialize()
    np.testing.assert_array_equal(fresh.predict(X), X @ _PRIOR)
    np.testing.assert_array_equal(fresh.coef_, _PRIOR)
    assert fresh.n_updates_ == 0 and fresh.n_features_in_ == 3
    # a row of weight 0 carries no evidence: still exactly the prior
    w = np.zeros(len(X))
    w[0] = 1.0
    X_zero = X.copy()
    X_zero[0] = 0.0
    zero = LinUCB(l2=0.3, prior_mean=_PRIOR).fit(X_zero, _GOOD_Y, sample_weight=w)
    np.testing.assert_array_equal(zero.predict(X), X @ _PRIOR)
    # and partial_fit continues from initialize() as from a first call
    first = LinUCB(l2=0.3, prior_mean=_PRIOR).partial_fit(X, _GOOD_Y)
    np.testing.assert_allclose(fresh.partial_fit(X, _GOOD_Y).coef_, first.coef_, atol=1e-12)


@pytest.mark.parametrize("l2", [0.1, 1.0, 10.0])
def test_prior_mean_equals_ridge_on_the_residual(l2):
    X, y = _data(seed=3)
    prior = np.array([1.0, -0.5, 0.25, 2.0])
    w = np.random.default_rng(4).uniform(0.0, 2.0, size=len(y))
    model = LinUCB(l2=l2, prior_mean=prior).fit(X, y, sample_weight=w)
    ridge = Ridge(alpha=l2, fit_intercept=False).fit(X, y - X @ prior, sample_weight=w)
    np.testing.assert_allclose(model.coef_, prior + ridge.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.b_, l2 * prior + X.T @ (w * y), rtol=1e-12)
    A, _ = _closed_form(X, y, w, l2)
    np.testing.assert_allclose(model.A_, A, rtol=1e-12)


def test_prior_mean_is_kept_by_forgetting():
    X, y = _data(n=30, d=4, seed=5)
    prior = np.array([1.0, 0.0, -1.0, 0.5])
    gamma = 0.9
    model = LinUCB(l2=2.0, prior_mean=prior, forgetting=gamma).fit(X, y)
    weights = gamma ** np.arange(len(y) - 1, -1, -1)
    ridge = Ridge(alpha=2.0, fit_intercept=False).fit(X, y - X @ prior, sample_weight=weights)
    np.testing.assert_allclose(model.coef_, prior + ridge.coef_, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(
    problem=_problem(),
    l2=st.floats(0.1, 10),
    forgetting=st.sampled_from([1.0, 0.9]),
    data=st.data(),
)
def test_one_batch_equals_row_by_row_with_a_prior(problem, l2, forgetting, data):
    X, y = problem
    prior = data.draw(arrays(np.float64, X.shape[1], elements=st.floats(-3, 3)))
    batch = LinUCB(l2=l2, prior_mean=prior, forgetting=forgetting).partial_fit(X, y)
    rows = LinUCB(l2=l2, prior_mean=prior, forgetting=forgetting)
    for i in range(len(y)):
        rows.partial_fit(X[i : i + 1], y[i : i + 1])
    for name in ("A_", "b_", "A_inv_", "coef_"):
        np.testing.assert_allclose(getattr(rows, name), getattr(batch, name), atol=1e-9)


def test_prior_mean_of_the_wrong_length_is_refused_and_changes_nothing():
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    before = _fitted_state(model)
    with pytest.raises(SkbanditError, match="prior_mean must be 3 finite numbers"):
        model.set_params(prior_mean=[1.0, 2.0]).fit(_GOOD_X, _GOOD_Y)
    _assert_same_state(before, model)
    with pytest.raises(SkbanditError, match="needs n_features"):
        LinUCB().initialize()


def test_prior_mean_round_trips_through_the_state_and_old_states_load_as_zeros(tmp_path):
    model = LinUCB(l2=2.0, prior_mean=_PRIOR).fit(_GOOD_X, _GOOD_Y)
    np.savez(tmp_path / "state.npz", **model.get_state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as saved:
        restored = LinUCB.from_state(dict(saved))
    np.testing.assert_array_equal(restored.prior_mean, _PRIOR)
    np.testing.assert_array_equal(restored.prior_mean_, _PRIOR)
    restored.partial_fit(_GOOD_X[:3], _GOOD_Y[:3])
    model.partial_fit(_GOOD_X[:3], _GOOD_Y[:3])
    np.testing.assert_array_equal(restored.coef_, model.coef_)
    old = LinUCB().fit(_GOOD_X, _GOOD_Y).get_state()
    del old["prior_mean"]  # a state saved before the prior mean existed
    loaded = LinUCB.from_state(old)
    assert loaded.prior_mean is None
    np.testing.assert_array_equal(loaded.prior_mean_, np.zeros(3))


def test_clone_keeps_the_prior_mean():
    model = LinUCB(prior_mean=_PRIOR).fit(_GOOD_X, _GOOD_Y)
    np.testing.assert_array_equal(clone(model).prior_mean, _PRIOR)
    np.testing.assert_array_equal(clone(model).fit(_GOOD_X, _GOOD_Y).coef_, model.coef_)


# ------------------------------------------------------- the prior after fitting
@pytest.mark.parametrize(
    "change",
    [
        {"l2": 10.0},
        {"prior_mean": np.array([1.0, 1.0, 1.0])},
    ],
    ids=["l2", "prior_mean"],
)
def test_changing_the_prior_of_a_fitted_model_is_refused_until_refit(change):
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    before = _fitted_state(model)
    model.set_params(**change)
    with pytest.raises(SkbanditError, match="prior changed after fitting"):
        model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    with pytest.raises(SkbanditError, match="prior changed after fitting"):
        model.get_state()
    _assert_same_state(before, model)
    model.fit(_GOOD_X, _GOOD_Y)  # fit starts afresh with the new prior
    expected = LinUCB(**change).fit(_GOOD_X, _GOOD_Y)
    np.testing.assert_array_equal(model.coef_, expected.coef_)
    model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    assert model.get_state()["l2"] == change.get("l2", 1.0)


def test_setting_the_same_prior_again_or_alpha_is_allowed():
    model = LinUCB(l2=2.0, prior_mean=_PRIOR).fit(_GOOD_X, _GOOD_Y)
    model.set_params(l2=2.0, prior_mean=_PRIOR.copy(), alpha=0.1, forgetting=0.95)
    model.partial_fit(_GOOD_X[:1], _GOOD_Y[:1])
    assert model.get_state()["alpha"] == 0.1


def test_a_subclass_with_required_arguments_can_fit():
    class Tagged(LinUCB):
        def __init__(self, tag, *, alpha=1.0, l2=1.0, prior_mean=None, forgetting=1.0):
            super().__init__(alpha=alpha, l2=l2, prior_mean=prior_mean, forgetting=forgetting)
            self.tag = tag

    model = Tagged("x").fit(pd.DataFrame(_GOOD_X, columns=list("abc")), _GOOD_Y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_allclose(model.coef_, LinUCB().fit(_GOOD_X, _GOOD_Y).coef_, atol=1e-12)


def test_partial_fit_sums_equals_partial_fit_on_the_rows_with_a_prior():
    X, y = _data(n=40, d=4, seed=6)
    prior = np.array([0.3, -0.2, 1.0, 0.0])
    rows = LinUCB(l2=2.0, prior_mean=prior).partial_fit(X[:25], y[:25]).partial_fit(X[25:], y[25:])
    sums = LinUCB(l2=2.0, prior_mean=prior)
    for part in (slice(0, 25), slice(25, 40)):
        sums.partial_fit_sums(X[part].T @ X[part], X[part].T @ y[part], len(y[part]))
    for name in ("A_", "b_", "A_inv_", "coef_"):
        np.testing.assert_allclose(getattr(sums, name), getattr(rows, name), atol=1e-12)
    assert sums.n_updates_ == rows.n_updates_ == 40
    with pytest.raises(SkbanditError, match="forgetting == 1"):
        LinUCB(forgetting=0.9).partial_fit_sums(np.eye(2), np.zeros(2), 1)
