"""The student-model benchmark's baselines are causal and its metrics are sklearn's."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from bench import student_baselines
from bench.bench_student_model import metrics, warmstart_batches

N = 400


@pytest.fixture
def events():
    rng = np.random.default_rng(7)
    users = rng.integers(0, 12, N)
    items = rng.integers(0, 30, N)
    skills = items % 4
    correct = (rng.random(N) < 0.3 + 0.05 * (users % 8)).astype(float)
    return users, items, skills, correct


def _forecasts(name, events, slices, online=False):
    users, items, skills, correct = events
    if name == "elo":
        return student_baselines.elo(users, items, correct, slices, online=online)
    if name == "pfa":
        return student_baselines.pfa(users, skills, correct, slices, online=online)
    return student_baselines.bkt(users, skills, correct, slices, online=online)


@pytest.mark.parametrize("name", ["elo", "pfa", "bkt"])
def test_a_batch_is_forecast_without_its_own_outcomes(events, name):
    slices = warmstart_batches(N, 200, score_from=150)
    before = _forecasts(name, events, slices)
    users, items, skills, correct = events
    flipped = correct.copy()
    batch = slices[2]  # rows 150-300 (the batch 100-300 split at 150)
    assert (batch.start, batch.stop) == (150, 300)
    flipped[batch] = 1 - flipped[batch]
    after = _forecasts(name, (users, items, skills, flipped), slices)
    np.testing.assert_array_equal(after[: batch.stop], before[: batch.stop])
    assert not np.allclose(after[batch.stop :], before[batch.stop :])  # later batches learn it


@pytest.mark.parametrize("name", ["elo", "pfa", "bkt"])
def test_online_forecasts_use_only_earlier_rows(events, name):
    slices = warmstart_batches(N, 100, score_from=0)
    before = _forecasts(name, events, slices, online=True)
    users, items, skills, correct = events
    row = 250
    changed = correct.copy()
    changed[row] = 1 - changed[row]
    after = _forecasts(name, (users, items, skills, changed), slices, online=True)
    np.testing.assert_array_equal(after[: row + 1], before[: row + 1])


def test_batches_are_warmstarts_and_cover_every_row():
    slices = warmstart_batches(1_000, 300, score_from=250)
    assert [(s.start, s.stop) for s in slices] == [
        (0, 100),
        (100, 250),
        (250, 300),
        (300, 600),
        (600, 900),
        (900, 1000),
    ]


def test_metrics_equal_sklearn():
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.6).astype(int)
    p = np.clip(0.6 + 0.3 * (y - 0.5) + rng.normal(0, 0.3, 200), -0.2, 1.2)  # leaves [0, 1]
    clip = 1e-6
    clipped = np.clip(p, clip, 1 - clip)
    m = metrics(y, p, clip)
    assert m["log_loss"] == pytest.approx(log_loss(y, clipped), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(y, clipped), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, clipped), abs=1e-12)


def test_expected_calibration_error_by_hand():
    # bins [0.1, 0.2): forecasts 0.1, 0.1 vs outcomes 0, 1 -> |0.1 - 0.5|; bin [0.9, 1]:
    # 0.9 vs 1 -> 0.1; weighted by events: (2 * 0.4 + 1 * 0.1) / 3
    assert metrics([0, 1, 1], [0.1, 0.1, 0.9])["ece"] == pytest.approx(0.3)


def test_the_served_column_is_warmstarts_own_replay():
    from bench.bench_student_model import served_replay, simulated

    data = simulated("bkt", n_students=15).data
    _, unscored, replay = served_replay(data, batch_size=1_000)
    product = replay.final_metrics()  # warm-start's metrics, clipped at 1e-3
    ours = metrics(replay.predictions["reward"], replay.predictions["bandit"], clip=1e-3)
    assert unscored == 0 and len(replay.predictions) == len(data.events)
    assert ours["log_loss"] == pytest.approx(product["bandit_log_loss"], abs=1e-12)
    assert ours["auc"] == pytest.approx(product["bandit_auc"], abs=1e-12)
    assert ours["brier"] == pytest.approx(product["bandit_brier"], abs=1e-12)


def test_bkt_fallback_fits_data_simulated_from_bkt():
    # 300 students x 25 attempts on one skill: prior 0.3, learn 0.2, guess 0.15, slip 0.1
    rng = np.random.default_rng(0)
    n_students, n_attempts = 300, 25
    learned = rng.random(n_students) < 0.3
    users, correct = [], []
    for _ in range(n_attempts):  # rows in time order: attempt t of every student
        p = np.where(learned, 0.9, 0.15)
        correct.append((rng.random(n_students) < p).astype(float))
        users.append(np.arange(n_students))
        learned |= rng.random(n_students) < 0.2
    users, correct = np.concatenate(users), np.concatenate(correct)
    slices = warmstart_batches(len(correct), 2_000, score_from=0)
    forecasts = student_baselines.bkt(users, np.zeros_like(users), correct, slices, online=True)
    base = metrics(correct, np.full(len(correct), correct.mean()))
    fitted = metrics(correct, forecasts)
    assert fitted["log_loss"] < base["log_loss"] - 0.05
    assert fitted["ece"] < 0.03
