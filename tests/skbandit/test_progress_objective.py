"""The served learning-progress objective: a target learned from logged events, stored with
the version, ranked with by ``rank_linucb``, the REST ``params`` and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from adapters.model.format import CONFIG_FILE, load_model_dir, save_model
from skbandit import schema
from skbandit.context import historical_contexts
from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import (
    ProgressBands,
    bands_from_sums,
    progress_bands,
    progress_target,
    reward_sums,
)
from skbandit.model import TrainedModel
from skbandit.policy import rank_linucb, score_candidates
from skbandit.ranking_settings import RankingSettings
from skbandit.sim.learning import StudentLearning, expected_gain
from skbandit.sim.world import SchoolConfig

ERRORS_TEACH = SchoolConfig(learning_model="performance_factors", gain_correct=0.0, gain_wrong=0.4)
"""Expected gain 0.4 (1 - p): the hardest items teach most."""
PEAK_AT_0_9 = SchoolConfig(learning_peak=0.9, learning_rate=0.3, learning_width=0.08)
"""Gaussian peak at success 0.9: items a student almost always gets right teach most."""
N_ITEMS = 40


def _logged_school(config, n_students=2000, n_steps=20, seed=0):
    """One topic, 40 items from b = -3 to 3, each attempt a uniformly random item (a logging
    policy that explores every difficulty); students learn by ``config``'s learning model."""
    rng = np.random.default_rng(seed)
    b = np.linspace(-3.0, 3.0, N_ITEMS)
    items = pd.DataFrame(
        {
            schema.ITEM_ID: [f"i{k:02d}" for k in range(N_ITEMS)],
            schema.TOPIC: "t",
            schema.DIFFICULTY: b,
            schema.DISCRIMINATION: 1.0,
        }
    )
    learning = StudentLearning(rng.normal(0.0, 0.5, (n_students, 1)), config)
    students, topic = np.arange(n_students), np.zeros(n_students, np.int64)
    start, frames = pd.Timestamp("2024-01-08", tz="UTC"), []
    for step in range(n_steps):
        item = rng.integers(0, N_ITEMS, n_students)
        p = expit(learning.ability[:, 0] - b[item])
        correct = rng.random(n_students) < p
        learning.learn(students, topic, p, correct, rng.random(n_students))
        frames.append(
            pd.DataFrame(
                {
                    schema.USER_ID: [f"s{s}" for s in students],
                    schema.ITEM_ID: items[schema.ITEM_ID].to_numpy()[item],
                    schema.TOPIC: "t",
                    schema.TIMESTAMP: start + pd.Timedelta(minutes=10 * step),
                    schema.CORRECT: correct.astype(np.int64),
                    schema.LATENCY_MS: 30_000,
                }
            )
        )
    return pd.concat(frames, ignore_index=True), items


def _warm_started(events, items):
    """A pipeline trained on the events, with the bands their delayed rewards give (what
    ``python -m train.warmstart`` stores with a version)."""
    events = events.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    contexts = historical_contexts(events, items)
    pipeline = TrainedModel().partial_fit(contexts, events[schema.CORRECT])
    pipeline.progress_bands = progress_bands(events, contexts)
    return pipeline, contexts


def _candidates(contexts, mastery=0.6):
    """Every item for one student of observed mastery ``mastery`` (item columns: the items'
    last logged context)."""
    rows = contexts.groupby(schema.DIFFICULTY).tail(1).sort_values(schema.DIFFICULTY)
    rows[schema.MASTERY] = mastery
    rows[schema.SKILL_GAP] = max(0.0, 0.8 - mastery)
    rows[schema.ITEM_ID] = [f"i{k:02d}" for k in range(len(rows))]
    return rows.reset_index(drop=True)


@pytest.mark.parametrize(
    ("config", "hard"),
    [(ERRORS_TEACH, True), (PEAK_AT_0_9, False)],
    ids=["errors_teach", "peak_0.9"],
)
def test_learning_progress_aims_where_the_logged_students_learned_most(config, hard):
    events, items = _logged_school(config)
    pipeline, contexts = _warm_started(events, items)
    target = pipeline.progress_bands.best_target()
    assert (target <= 0.5) if hard else (target >= 0.8)
    assert progress_target(events, items)[0] == target  # from the events alone, the same
    cands = _candidates(contexts)
    learned = RankingSettings(objective="learning_progress", top_k=1, alpha=0.0)
    band = RankingSettings(objective="target_band", target=0.7, top_k=1, alpha=0.0)
    at_learned = RankingSettings(objective="target_band", target=target, top_k=1, alpha=0.0)
    np.testing.assert_array_equal(
        score_candidates(pipeline, cands, learned).score,
        score_candidates(pipeline, cands, at_learned).score,
    )
    rng = np.random.default_rng(0)
    pick = rank_linucb(pipeline, cands, learned, rng)[schema.ITEM_ID].iloc[0]
    fixed = rank_linucb(pipeline, cands, band, rng)[schema.ITEM_ID].iloc[0]
    # the truth the simulator knows: which of the two picks teaches this student more
    b = cands.set_index(schema.ITEM_ID)[schema.DIFFICULTY]
    theta = np.log(0.6 / 0.4)
    gain = {item: float(expected_gain(expit(theta - b[item]), config)) for item in (pick, fixed)}
    assert gain[pick] > gain[fixed], (target, gain)
    assert (b[pick] > b[fixed]) if hard else (b[pick] < b[fixed])


# --- stored with the version -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    events, items = _logged_school(PEAK_AT_0_9, n_students=300, n_steps=12, seed=1)
    pipeline, contexts = _warm_started(events, items)
    return pipeline, _candidates(contexts)


def test_a_version_keeps_its_learned_target_and_an_older_one_refuses_the_objective(
    small_model, tmp_path
):
    pipeline, cands = small_model
    folder = save_model(pipeline, tmp_path / "v")
    loaded = load_model_dir(folder)
    np.testing.assert_array_equal(loaded.progress_bands.total, pipeline.progress_bands.total)
    settings = RankingSettings(objective="learning_progress", top_k=3)
    pd.testing.assert_frame_equal(
        rank_linucb(loaded, cands, settings, np.random.default_rng(1)),
        rank_linucb(pipeline, cands, settings, np.random.default_rng(1)),
    )
    config = json.loads((folder / CONFIG_FILE).read_text())
    assert config["learning_progress"]["target"] == pipeline.progress_bands.best_target()
    del config["learning_progress"]  # as written before the target was kept
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    old = load_model_dir(folder)
    assert len(rank_linucb(old, cands, RankingSettings(objective="target_band"))) == 5
    with pytest.raises(
        SkbanditError,
        match=r"^objective learning_progress needs .*none stored.*"
        r"retrain it with `python -m train.warmstart`",
    ):
        rank_linucb(old, cands, settings)


def test_malformed_stored_bands_are_refused_at_load(small_model, tmp_path):
    folder = save_model(small_model[0], tmp_path / "v")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["learning_progress"]["count"] = [1.0, 2.0]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(SkbanditError, match=r"config\.json's learning_progress is malformed"):
        load_model_dir(folder, "v7")


def test_continued_bands_add_the_new_events_rewards(small_model):
    events, items = _logged_school(PEAK_AT_0_9, n_students=200, n_steps=12, seed=2)
    events = events.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    contexts = historical_contexts(events, items)
    fresh = progress_bands(events, contexts)
    before = ProgressBands.from_dict(small_model[0].progress_bands.as_dict())
    continued = progress_bands(events, contexts, before)
    np.testing.assert_allclose(continued.count, small_model[0].progress_bands.count + fresh.count)


def test_reward_sums_of_groups_of_students_add_up_to_the_bands_of_all(small_model):
    """What the Spark engine does: sums per partition of whole students, centred once."""
    events, items = _logged_school(PEAK_AT_0_9, n_students=200, n_steps=12, seed=3)
    events = events.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    contexts = historical_contexts(events, items)
    group = events[schema.USER_ID].str[1:].astype(int).to_numpy() % 3
    parts = [
        reward_sums(
            events[group == g].reset_index(drop=True), contexts[group == g].reset_index(drop=True)
        )
        for g in range(3)
    ]
    whole = progress_bands(events, contexts)
    assert whole.count.sum() > 1000 and all(part[0].sum() > 0 for part in parts)
    combined = bands_from_sums(sum(parts))
    np.testing.assert_array_equal(combined.count, whole.count)
    np.testing.assert_allclose(combined.total, whole.total, rtol=1e-12)
    np.testing.assert_allclose(combined.total_sq, whole.total_sq, rtol=1e-12)
    before = small_model[0].progress_bands
    continued = bands_from_sums(sum(parts), ProgressBands.from_dict(before.as_dict()))
    np.testing.assert_allclose(continued.total, before.total + whole.total, rtol=1e-12)


# --- REST params and the CLI --------------------------------------------------------------


def _rest_frame(cands):
    return cands.assign(**{schema.USER_ID: "s1"})[
        [schema.USER_ID, schema.ITEM_ID, *schema.MODEL_INPUT]
    ]


def test_rest_params_learning_progress_ranks_at_the_learned_target(small_model):
    from mlflow.exceptions import MlflowException

    from adapters.model.pyfunc import LinUCBModel

    pipeline, cands = small_model
    target = pipeline.progress_bands.best_target()
    model = LinUCBModel.from_model(pipeline)
    model.decision_log = False
    frame = _rest_frame(cands)
    params = {"exploration": "greedy", "epsilon": 0.0, "seed": 0}
    served = model.predict(None, frame, {**params, "objective": "learning_progress"})
    other = 0.4 if target > 0.6 else 0.9  # a given target is ignored: the learned one ranks
    ignored = model.predict(
        None, frame, {**params, "objective": "learning_progress", "target": other}
    )
    band = model.predict(None, frame, {**params, "objective": "target_band", "target": target})
    for answer in (ignored, band):
        pd.testing.assert_series_equal(served["rank"], answer["rank"])
    elsewhere = model.predict(None, frame, {**params, "objective": "target_band", "target": other})
    assert not served["rank"].equals(elsewhere["rank"])
    old = LinUCBModel.from_model(TrainedModel().partial_fit(cands, np.ones(len(cands))))
    old.decision_log = False
    with pytest.raises(MlflowException, match="objective learning_progress needs") as error:
        old.predict(None, frame, {"objective": "learning_progress"})
    assert error.value.get_http_status_code() == 400


def test_cli_trace_ranks_with_the_versions_learned_target(configured_store):
    from typer.testing import CliRunner

    from adapters import registry
    from serve.cli import app

    pipeline, _ = registry.load_model(registry.parse_model_ref("skbandit-linucb@champion"))
    target = pipeline.progress_bands.best_target()
    args = [
        "trace",
        "--student-id",
        "ABC123",
        "--topic",
        "7.RP.A.1",
        "--use-rl",
        "--objective",
        "learning_progress",
        *configured_store.school.options,
    ]
    runner = CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"})
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policy_settings"]["objective"] == "learning_progress"
    assert json.loads(result.stdout)["policy_settings"]["target"] == target
    text = runner.invoke(app, args).output
    assert f"objective learning_progress (learned target {target:.0%})" in text


# --- the gate's reward ----------------------------------------------------------------------


def test_the_gates_progress_reward_replaces_success_and_drops_decisions_without_one():
    from skbandit.ope.gate import with_rewards
    from skbandit.ope.targets import OffPolicyInputs

    inputs = OffPolicyInputs(
        rewards=np.array([1.0, 0.0, 1.0, 1.0]),
        logged_propensity=np.array([0.5, 0.5, 0.25, 1.0]),
        target_propensity=np.array([1.0, 0.0, 0.5, 1.0]),
        reward_model_logged=np.array([0.9, 0.1, 0.8, 0.7]),
        reward_model_target=np.array([0.9, 0.5, 0.6, 0.7]),
        n_candidates=np.array([2, 2, 4, 1]),
    )
    progress, keep = with_rewards(inputs, [0.6, np.nan, -0.3, 0.3])
    assert keep.tolist() == [True, False, True, True]
    # DR with the mean reward 0.2 as its (constant) reward model: 0.2 + mean(w (r - 0.2)),
    # weights w = 2, 2, 1
    expected = 0.2 + np.mean([2 * 0.4, 2 * -0.5, 1 * 0.1])
    assert progress.estimate("dr", n_bootstrap=0).value == pytest.approx(expected)
    assert progress.estimate("ips", n_bootstrap=0).value == pytest.approx(
        np.mean([2 * 0.6, 2 * -0.3, 0.3])
    )
    assert progress.n_candidates.tolist() == [2, 4, 1]
    with pytest.raises(SkbanditError, match="none of the 4 logged decisions has a reward"):
        with_rewards(inputs, np.full(4, np.nan))
