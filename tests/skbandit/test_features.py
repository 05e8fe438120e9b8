"""Feature sets: names, hand-checked values, ranking influence, pipeline helpers, errors."""

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from skbandit import features, schema
from skbandit.context import DEFAULT_HELP_TENDENCY, DEFAULT_RECENT_ACCURACY, DEFAULT_RECENT_SPEED
from skbandit.exceptions import SkbanditError
from skbandit.irt import mastery_to_logit
from skbandit.linucb import LinUCB
from skbandit.model import TrainedModel

COLD = {
    "mastery": 0.5,
    "recent_accuracy": DEFAULT_RECENT_ACCURACY,
    "recent_speed": DEFAULT_RECENT_SPEED,
    "help_tendency": DEFAULT_HELP_TENDENCY,
    "skill_gap": 0.3,
}


def _raw(n=3, **overrides):
    base = dict(
        COLD, difficulty=0.0, discrimination=1.0, guessing=0.0, item_attempts=0.0, item_accuracy=0.5
    )
    base.update(overrides)
    frame = pd.DataFrame(
        {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for k, v in base.items()}
    )
    frame.insert(0, "item_id", [f"i{j}" for j in range(n)])
    return frame


def _transform(feature_set, raw):
    ct = features.make_feature_transformer(feature_set).set_output(transform="pandas")
    return ct.fit_transform(raw)


def test_seed_set_is_the_seed_eight_features():
    raw = _raw(1, mastery=0.6, difficulty=-0.4)
    out = _transform("seed", raw)
    assert tuple(out.columns) == features.SEED_FEATURES
    assert out.shape == (1, 8)
    assert out["mastery_x_difficulty"].iloc[0] == pytest.approx(0.6 * -0.4)
    assert out["abs_mastery_minus_difficulty"].iloc[0] == pytest.approx(1.0)


def test_default_set_puts_student_and_item_on_the_logit_scale():
    raw = _raw(2, mastery=[0.5, 0.8], difficulty=[0.0, 1.0], discrimination=[1.0, 2.0])
    out = _transform("default", raw)
    assert tuple(out.columns) == features.DEFAULT_FEATURES
    assert 12 <= out.shape[1] <= 20
    assert (out["intercept"] == 1.0).all()
    gap = mastery_to_logit([0.5, 0.8]) - np.array([0.0, 1.0])
    np.testing.assert_allclose(out["gap"], gap)
    np.testing.assert_allclose(out["p_irt"], expit(np.array([1.0, 2.0]) * gap))
    assert out["p_irt"].iloc[0] == 0.5


def test_cold_start_student_has_no_student_terms_and_untried_item_no_evidence():
    out = _transform("default", _raw(3, difficulty=[-1.0, 0.0, 2.0]))
    student_terms = [c for c in out.columns if c.split("_x_")[0] in features.STUDENT_CENTRES]
    assert len(student_terms) == 12
    np.testing.assert_allclose(out[student_terms], 0.0, atol=1e-12)
    assert (out[["item_evidence", "item_evidence_x_info"]] == 0.0).all().all()


def test_item_evidence_grows_with_attempts_and_surprising_accuracy():
    raw = _raw(
        3,
        difficulty=1.0,
        item_attempts=[10.0, 1000.0, 1000.0],
        item_accuracy=[0.8, 0.8, expit(-1.0)],
    )
    evidence = _transform("default", raw)["item_evidence"].to_numpy()
    assert 0 < evidence[0] < evidence[1]  # answered better than difficulty 1 suggests
    assert evidence[2] == pytest.approx(0.0, abs=1e-12)  # exactly as difficulty says


@pytest.mark.parametrize("name", list(features.STUDENT_CENTRES))
def test_every_student_feature_changes_the_ranking_features_in_default_only(name):
    items = {"difficulty": [-1.0, 1.5], "discrimination": [1.0, 1.3]}
    diffs = {}
    for feature_set in features.FEATURE_SETS:
        low = _transform(feature_set, _raw(2, **items, **{name: 0.1})).to_numpy()
        high = _transform(feature_set, _raw(2, **items, **{name: 0.9})).to_numpy()
        # a linear score ranks item 0 vs 1 by theta'(x0 - x1): does the student move it?
        diffs[feature_set] = np.abs((low[0] - low[1]) - (high[0] - high[1])).max()
    assert diffs["default"] > 0.01
    assert diffs["seed"] == 0.0  # the seed's flaw: a pure shift of every item


def test_default_features_predict_success_better_than_seed():
    """On 2PL data with hidden per-item effects, a ridge on default features is close to
    the true probability and clearly better than on the seed's features."""
    rng = np.random.default_rng(7)
    n, n_items = 40_000, 60
    b = rng.normal(0, 1, n_items)
    a = rng.uniform(0.7, 1.8, n_items)
    hidden = rng.normal(0, 0.7, n_items)
    item = rng.integers(0, n_items, n)
    theta = rng.normal(0, 1.2, n)
    truth = expit(a[item] * (theta - b[item]) + hidden[item])
    y = (rng.random(n) < truth).astype(float)
    acc = np.array([y[item == j].mean() for j in range(n_items)])  # item evidence
    mastery = np.clip(expit(theta + rng.normal(0, 0.3, n)), 0.02, 0.98)
    raw = pd.DataFrame(
        {
            "mastery": mastery,
            "recent_accuracy": 0.5,
            "recent_speed": 0.5,
            "help_tendency": 0.1,
            "skill_gap": np.maximum(0, 0.8 - mastery),
            "difficulty": b[item],
            "discrimination": a[item],
            "guessing": 0.0,
            "item_attempts": 500.0,
            "item_accuracy": acc[item],
        }
    )
    train, test = slice(0, n // 2), slice(n // 2, n)
    brier = {}
    for feature_set in features.FEATURE_SETS:
        pipe = TrainedModel(feature_set)
        pipe.partial_fit(raw.iloc[train], y[train])
        pred = np.clip(pipe.predict(raw.iloc[test]), 0, 1)
        brier[feature_set] = np.mean((pred - y[test]) ** 2)
    oracle = np.mean((truth[test] - y[test]) ** 2)
    assert brier["default"] < oracle + 0.01
    assert brier["default"] < brier["seed"] - 0.01


def test_trained_model_partial_fit_pickles_and_knows_its_feature_set():
    raw = _raw(4, mastery=[0.2, 0.4, 0.6, 0.8], difficulty=[0.0, 1.0, -1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    pipe = TrainedModel("default", alpha=0.5, l2=2.0)
    assert pipe.feature_set == "default"
    pipe.partial_fit(raw.iloc[:2], y[:2])
    pipe.partial_fit(raw.iloc[2:], y[2:])
    direct = LinUCB(alpha=0.5, l2=2.0, prior_mean=features.irt_prior_mean()).fit(
        features.default_features(raw[list(schema.MODEL_INPUT)]), y
    )
    np.testing.assert_allclose(pipe.estimator.coef_, direct.coef_, atol=1e-12)
    clone = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_allclose(clone.predict(raw), pipe.predict(raw))
    assert clone.feature_set == "default"
    assert TrainedModel("seed").feature_set == "seed"


def test_missing_column_and_nan_are_clear_errors():
    pipe = TrainedModel()
    with pytest.raises(SkbanditError, match=r"missing columns \['item_accuracy'\]"):
        pipe.partial_fit(_raw().drop(columns="item_accuracy"), [1, 0, 1])
    bad = _raw()
    bad.loc[1, "recent_speed"] = np.nan
    with pytest.raises(SkbanditError, match="'recent_speed' has NaN"):
        pipe.partial_fit(bad, [1, 0, 1])
    with pytest.raises(SkbanditError, match="unknown feature set"):
        TrainedModel("fancy")
    with pytest.raises(SkbanditError, match="has not been trained"):
        TrainedModel().predict(_raw())


def _random_raw(rng, n):
    """Raw rows over the whole valid range, columns shuffled, extra id and int columns."""
    frame = pd.DataFrame(
        {
            "mastery": rng.uniform(0, 1, n),
            "recent_accuracy": rng.uniform(0, 1, n),
            "recent_speed": rng.uniform(0, 1, n),
            "help_tendency": rng.uniform(0, 1, n),
            "skill_gap": rng.uniform(0, 0.8, n),
            "difficulty": rng.normal(0, 2, n),
            "discrimination": rng.uniform(0.2, 3, n),
            "guessing": rng.uniform(0, 0.5, n),
            "item_attempts": rng.integers(0, 500, n),
            "item_accuracy": rng.uniform(0, 1, n),
        }
    )
    frame.insert(0, "item_id", [f"i{j}" for j in range(n)])
    return frame[rng.permutation(frame.columns)]


@pytest.mark.parametrize("feature_set", features.FEATURE_SETS)
@pytest.mark.parametrize("n", [1, 2, 57])
def test_fast_path_equals_the_column_transformer(feature_set, n):
    rng = np.random.default_rng(n)
    pipe = TrainedModel(feature_set)
    pipe.partial_fit(_random_raw(rng, 30), rng.integers(0, 2, 30) * 1.0)
    assert features.feature_function_of(feature_set) is getattr(features, f"{feature_set}_features")
    for _ in range(5):
        raw = _random_raw(rng, n)
        fast = pipe.features(raw)
        assert fast.dtype == np.float64 and fast.flags.c_contiguous
        np.testing.assert_array_equal(fast, pipe.pipeline[:-1].transform(raw))
        np.testing.assert_array_equal(pipe.features_of_array(features.model_input_array(raw)), fast)
        assert features.model_input_array(raw).shape == (n, len(schema.MODEL_INPUT))


def test_the_model_sets_its_feature_steps_output_itself():
    """The fast path holds because the object fits its own step with NumPy output: a
    global ``set_config(transform_output="pandas")`` does not change what it scores."""
    from sklearn import config_context

    rng = np.random.default_rng(0)
    raw = _random_raw(rng, 5)
    with config_context(transform_output="pandas"):
        pipe = TrainedModel().partial_fit(raw, np.ones(5))
        step = pipe.pipeline[:-1].transform(raw)
    assert isinstance(step, np.ndarray)
    np.testing.assert_array_equal(pipe.features(raw), step)


# --- the 3PL guessing parameter (issue 12) ------------------------------------------------


def _two_pl_features(raw):
    """The default features as they were before ``guessing`` was a model input (the 2PL)."""
    from scipy.special import logit

    c = {name: raw[name].to_numpy(np.float64) for name in schema.MODEL_INPUT}
    ability = mastery_to_logit(c["mastery"])
    gap = ability - c["difficulty"]
    a = c["discrimination"]
    p = expit(a * gap)
    info = p * (1.0 - p)
    attempts = np.maximum(c["item_attempts"], 0.0)
    weight = attempts / (attempts + features.ITEM_EVIDENCE_PRIOR)
    accuracy = np.clip(c["item_accuracy"], features.ACCURACY_EPS, 1 - features.ACCURACY_EPS)
    evidence = weight * (logit(accuracy) + a * c["difficulty"])
    student = [c[name] - centre for name, centre in features.STUDENT_CENTRES.items()]
    return np.column_stack(
        [
            np.ones_like(p),
            p,
            info,
            ability,
            gap,
            evidence,
            evidence * info,
            *student,
            *(s * info for s in student),
            *(s * gap for s in student),
        ]
    )


def test_without_guessing_the_default_features_are_the_2pl_ones_bit_for_bit():
    raw = _random_raw(np.random.default_rng(12), 500).assign(guessing=0.0)
    np.testing.assert_array_equal(
        features.default_features(raw[list(schema.MODEL_INPUT)]), _two_pl_features(raw)
    )
    seed = features.seed_features(raw[list(schema.MODEL_INPUT)])
    lifted = raw.assign(guessing=0.3)
    np.testing.assert_array_equal(features.seed_features(lifted[list(schema.MODEL_INPUT)]), seed)


def test_guessing_lifts_p_irt_as_the_3pl_says_and_info_is_its_slope():
    raw = _raw(
        5,
        mastery=[0.1, 0.3, 0.5, 0.7, 0.9],
        difficulty=[1.0, -0.5, 0.44, 0.0, 2.0],
        discrimination=[0.7, 1.0, 1.0, 1.6, 2.2],
    )
    base = _transform("default", raw)
    c = np.array([0.2, 0.25, 0.39, 0.1, 0.5])
    lifted = _transform("default", raw.assign(guessing=c))
    np.testing.assert_allclose(lifted["p_irt"], c + (1 - c) * base["p_irt"], rtol=1e-12)
    assert (lifted["p_irt"] > base["p_irt"]).all()
    # info is d p_irt / d(a * gap): a central difference over the item's difficulty
    h = 1e-5
    a = raw["discrimination"].to_numpy()
    easier = _transform("default", raw.assign(guessing=c, difficulty=raw["difficulty"] - h))
    harder = _transform("default", raw.assign(guessing=c, difficulty=raw["difficulty"] + h))
    slope = (easier["p_irt"] - harder["p_irt"]).to_numpy() / (2 * h * a)
    np.testing.assert_allclose(lifted["info"], slope, rtol=1e-6)
    np.testing.assert_allclose(lifted["info"], (1 - c) * base["info"], rtol=1e-12)


def test_an_item_answered_as_the_3pl_predicts_has_no_evidence():
    b, a, c = 0.8, 1.3, 0.25
    as_predicted = c + (1 - c) * expit(-a * b)  # an average (ability 0) student, 3PL
    raw = _raw(
        2,
        difficulty=b,
        discrimination=a,
        guessing=c,
        item_attempts=1000.0,
        item_accuracy=[as_predicted, 0.9],
    )
    evidence = _transform("default", raw)["item_evidence"].to_numpy()
    assert evidence[0] == pytest.approx(0.0, abs=1e-9)
    assert evidence[1] > 0.5  # answered far better than the 3PL says
    unfloored = _transform("default", raw.assign(guessing=0.0))["item_evidence"].to_numpy()
    assert unfloored[0] > 0.3  # the 2PL would credit the guessing floor to the item


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_guessing_outside_0_1_is_a_clear_error(value):
    with pytest.raises(SkbanditError, match=r"'guessing' must lie in \[0, 1\).*row 1 has"):
        features.default_features(_raw(2, guessing=[0.2, value])[list(schema.MODEL_INPUT)])
