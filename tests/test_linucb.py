"""LinUCB: oracles (Ridge, closed forms), hand-checkable maths, properties, bad input, state."""

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

from skbandit import LinUCB, SkbanditError


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


def test_lean_path_equals_validated_path():
    X, y = _data(seed=12)
    lean = LinUCB().fit(X[:10], y[:10]).partial_fit(X[10:], y[10:])  # float64 ndarrays
    slow = LinUCB().fit(X[:10], y[:10]).partial_fit(X[10:].tolist(), y[10:].tolist())
    np.testing.assert_array_equal(lean.A_, slow.A_)
    np.testing.assert_array_equal(lean.coef_, slow.coef_)
    np.testing.assert_array_equal(lean.predict(X), slow.predict(X.tolist()))
    lean_fit, slow_fit = LinUCB().fit(X, y), LinUCB().fit(X.tolist(), y.tolist())
    _assert_same_state(_fitted_state(slow_fit), lean_fit)


def test_lean_fit_forgets_earlier_feature_names():
    X, y = _data(d=3, seed=15)
    model = LinUCB().fit(pd.DataFrame(X, columns=["a", "b", "c"]), y)
    model.fit(X, y)  # a plain float64 ndarray takes the lean path
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
}


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_and_leaves_state_unchanged(case, method):
    if case == "wrong n_features" and method == "fit":
        return  # fit starts a fresh model of any width
    model = LinUCB().fit(_GOOD_X, _GOOD_Y)
    before = _fitted_state(model)
    X, y, w = BAD_INPUTS[case]()
    with pytest.raises(ValueError):
        getattr(model, method)(X, y, sample_weight=w)
    _assert_same_state(before, model)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_first_partial_fit_leaves_model_unfitted(case):
    model = LinUCB()
    X, y, w = BAD_INPUTS[case]()
    if case == "wrong n_features":
        return  # a first call may choose any width
    with pytest.raises(ValueError):
        model.partial_fit(X, y, sample_weight=w)
    assert not [k for k in vars(model) if k.endswith("_")]


def test_bad_fit_keeps_feature_names_of_the_fitted_model():
    frame = pd.DataFrame(_GOOD_X, columns=["a", "b", "c"])
    model = LinUCB().fit(frame, _GOOD_Y)
    before = _fitted_state(model)
    bad = pd.DataFrame({"x": [1.0, np.nan], "y": [0.0, 1.0]})
    with pytest.raises(ValueError):
        model.fit(bad, [0.0, 1.0])
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


# ---------------------------------------------------------------- sklearn plumbing
def test_clone_get_params_set_params():
    model = LinUCB(alpha=0.5, l2=2.0, forgetting=0.99).fit(_GOOD_X, _GOOD_Y)
    assert model.get_params() == {"alpha": 0.5, "l2": 2.0, "forgetting": 0.99}
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
