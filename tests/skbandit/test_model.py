"""The trained-model object: every learned part of a version through its state, its files,
``copy.deepcopy`` and ``sklearn.clone``; versions stored before it still load."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from adapters.model.format import CONFIG_FILE, load_model_dir, save_model
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import ProgressBands
from skbandit.model import TrainedModel
from skbandit.probability_calibration import fit_calibration

BEFORE = Path(__file__).parents[1] / "versions" / "before-guessing" / "model" / "data" / "skbandit"


def _rows(rng, n):
    frame = pd.DataFrame(
        {
            schema.ITEM_ID: [f"i{k % 7}" for k in range(n)],
            schema.MASTERY: rng.uniform(0.1, 0.9, n),
            schema.RECENT_ACCURACY: rng.uniform(0, 1, n),
            schema.RECENT_SPEED: rng.uniform(0, 1, n),
            schema.HELP_TENDENCY: rng.uniform(0, 0.3, n),
            schema.SKILL_GAP: rng.uniform(0, 0.5, n),
            schema.DIFFICULTY: rng.normal(0, 1, n),
            schema.DISCRIMINATION: rng.uniform(0.5, 2, n),
            schema.GUESSING: 0.0,
            schema.ITEM_ATTEMPTS: rng.integers(0, 40, n).astype(float),
            schema.ITEM_ACCURACY: rng.uniform(0.2, 0.8, n),
        }
    )
    return frame


def _items():
    return pd.DataFrame(
        {
            schema.ITEM_ID: [f"i{k}" for k in range(7)],
            schema.TOPIC: ["t"] * 4 + ["u"] * 3,
            schema.DIFFICULTY: np.linspace(-1.5, 1.5, 7),
            schema.DISCRIMINATION: np.linspace(0.6, 1.8, 7),
            schema.GUESSING: [0.0] * 6 + [0.2],
        }
    )


@pytest.fixture
def trained():
    """A model with every learned extra, as warm-start leaves it."""
    rng = np.random.default_rng(7)
    rows = _rows(rng, 400)
    y = (rng.random(400) < 0.6).astype(float)
    model = TrainedModel(alpha=0.7, l2=50.0).partial_fit(rows, y)
    bands = ProgressBands()
    bands.update(np.array([1, 2, 2, 4]), np.array([0.3, 0.1, 0.5, -0.2]))
    model.progress_bands = bands
    model.calibration = fit_calibration(model.predict(rows), y)
    model.item_parameters = _items()
    return model, rows


def _assert_same_model(a: TrainedModel, b: TrainedModel, rows) -> None:
    assert a.feature_set == b.feature_set
    np.testing.assert_array_equal(a.predict(rows), b.predict(rows))
    np.testing.assert_array_equal(a.estimator.A_, b.estimator.A_)
    assert a.estimator.get_params()["alpha"] == b.estimator.get_params()["alpha"]
    np.testing.assert_array_equal(a.progress_bands.total, b.progress_bands.total)
    assert a.progress_bands.best_target() == b.progress_bands.best_target()
    assert a.calibration == b.calibration
    pd.testing.assert_frame_equal(a.item_parameters, b.item_parameters)
    score = a.predict(rows)
    np.testing.assert_array_equal(a.success_probability(score), b.success_probability(score))


def test_the_state_is_plain_data_and_rebuilds_an_equal_model(trained):
    model, rows = trained
    state = model.get_state()
    extras = {k: v for k, v in state.items() if k != "estimator"}
    json.dumps(extras)  # everything but the estimator's arrays is JSON
    assert all(
        isinstance(v, (np.ndarray, float, int, np.generic)) for v in state["estimator"].values()
    )
    _assert_same_model(TrainedModel.from_state(state), model, rows)


def test_every_learned_part_survives_the_versions_files(trained, tmp_path):
    model, rows = trained
    folder = save_model(model, tmp_path / "skbandit")
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert {"learning_progress", "probability_calibration", "item_parameters"} <= set(config)
    _assert_same_model(load_model_dir(folder), model, rows)


def test_deepcopy_keeps_everything_and_clone_keeps_only_the_parameters(trained):
    model, rows = trained
    copied = copy.deepcopy(model)
    _assert_same_model(copied, model, rows)
    copied.estimator.partial_fit(copied.features(rows[:5]), np.ones(5))
    assert copied.estimator.n_updates_ == model.estimator.n_updates_ + 5  # a copy, not a view

    fresh = clone(model)
    assert isinstance(fresh, TrainedModel) and not fresh.is_trained
    assert fresh.progress_bands is None and fresh.calibration is None
    assert fresh.item_parameters is None
    params, expected = fresh.get_params(), model.get_params()
    np.testing.assert_array_equal(params.pop("prior_mean"), expected.pop("prior_mean"))
    assert params == expected
    assert model.is_trained  # cloning left the original alone


def test_a_version_saved_before_the_object_loads_without_extras_and_scores(trained):
    """``tests/versions/before-guessing`` was written by an older skbandit (no learned
    extras in its config.json): it loads as a TrainedModel with none of them."""
    old = load_model_dir(BEFORE)
    assert old.is_trained and old.feature_set == "default"
    assert old.progress_bands is None and old.calibration is None
    assert old.item_parameters is None
    _, rows = trained
    scores = old.predict(rows)
    np.testing.assert_array_equal(old.success_probability(scores), np.clip(scores, 0, 1))
    assert old.with_item_parameters(rows) is rows  # nothing stored: the rows as given


def test_a_config_without_item_parameters_loads_and_a_malformed_one_is_refused(trained, tmp_path):
    model, _ = trained
    folder = save_model(model, tmp_path / "v")
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    items = config.pop("item_parameters")
    path.write_text(json.dumps(config))  # as written before items were kept
    assert load_model_dir(folder).item_parameters is None
    items["difficulty"] = items["difficulty"][:-1]
    path.write_text(json.dumps({**config, "item_parameters": items}))
    with pytest.raises(SkbanditError, match=r"config\.json's item_parameters is malformed") as e:
        load_model_dir(folder, "m version 2")
    assert "\n" not in str(e.value) and "m version 2" in str(e.value)


def test_untrained_model_refuses_to_save_or_score():
    with pytest.raises(SkbanditError, match="has not been trained"):
        TrainedModel().get_state()
    with pytest.raises(SkbanditError, match="has not been trained"):
        TrainedModel().candidate_features(_rows(np.random.default_rng(0), 3))


def test_request_rows_without_difficulty_take_the_versions_item_parameters(trained):
    model, rows = trained
    items = _items()
    request = rows.head(7).assign(**{schema.ITEM_ID: items[schema.ITEM_ID]})
    lacking = request.assign(**{schema.DIFFICULTY: [np.nan, 0.3, np.nan, 0, 0, 0, np.nan]})
    filled = model.with_item_parameters(lacking)
    blank = [0, 2, 6]
    for name in (schema.DIFFICULTY, schema.DISCRIMINATION, schema.GUESSING):
        np.testing.assert_array_equal(filled[name].to_numpy()[blank], items[name].to_numpy()[blank])
    kept = [1, 3, 4, 5]
    np.testing.assert_array_equal(
        filled[schema.DIFFICULTY].to_numpy()[kept], lacking[schema.DIFFICULTY].to_numpy()[kept]
    )
    np.testing.assert_array_equal(
        filled[schema.DISCRIMINATION].to_numpy()[kept],
        lacking[schema.DISCRIMINATION].to_numpy()[kept],
    )
    assert model.with_item_parameters(request) is request  # nothing missing: untouched


def test_the_served_model_scores_blank_difficulties_with_the_versions_items(trained):
    """``skbandit serve`` (the pyfunc model): a request row whose difficulty is blank is
    scored as if it carried the version's item parameters."""
    from adapters.model.pyfunc import LinUCBModel

    model, rows = trained
    items = _items()
    complete = rows.head(7).assign(
        **{
            schema.USER_ID: "s1",
            schema.ITEM_ID: items[schema.ITEM_ID],
            **{name: items[name] for name in (schema.DIFFICULTY, schema.DISCRIMINATION)},
            schema.GUESSING: items[schema.GUESSING],
        }
    )
    blank = complete.assign(**{schema.DIFFICULTY: np.nan})
    served = LinUCBModel.from_model(model, "m/1")
    served.decision_log = False
    params = {"exploration": "greedy", "epsilon": 0.0, "seed": 0}
    answers = [served.predict(None, frame, params) for frame in (complete, blank)]
    columns = ["item_id", "expected_reward", "uncertainty", "rank"]
    pd.testing.assert_frame_equal(answers[0][columns], answers[1][columns])
