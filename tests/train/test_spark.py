"""The Spark engine against the local engine, on one small school with the awkward cases.

One Spark session (``local[2]``) and one temporary MLflow store serve the whole module: the
local engine trains on ``events.parquet``, the Spark engine on the same rows split over a
directory of two parquet files, and the two registered versions, their runs and the batch
scores are compared. The events have ties in time within a student, missing latencies and
help flags, latencies above the cap, exact duplicate rows, attempts on unknown items and a
file order that is not time order. Skipped, saying what to install, without pyspark or Java.
"""

from __future__ import annotations

import itertools

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from adapters import registry, tracking
from adapters.data import datasets
from adapters.data import identity as data_identity
from adapters.data import spark as spark_io
from skbandit import schema
from skbandit.cleaning import validate_events
from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import progress_bands
from skbandit.model import TrainedModel
from skbandit.sim.generate import SchoolConfig, simulate_school
from train.spark import contexts as spark_contexts
from train.spark import engine as spark_engine
from train.spark import metrics as spark_metrics
from train.spark.warmstart import read_items
from train.warmstart.cli import app as warmstart_app
from train.warmstart.history import prepare_history
from train.warmstart.job import REGISTERED_VERSION_TAG

try:
    spark_io.check_spark_installed()
except SkbanditError as missing:
    pytest.skip(f"Spark engine tests skipped: {missing}", allow_module_level=True)

pytestmark = pytest.mark.slow
SCHOOL = SchoolConfig(n_students=60, seed=5, attempts_per_student=50)
BATCH_SIZE = 500
LOCAL, SPARK = "local-engine", "spark-engine"
TEST_CONF = {  # a small session that starts fast: few shuffle partitions, quick JIT only
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}
RTOL = 1e-9


def awkward_events(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The school's events with every case the engines must treat alike."""
    events = events.copy()
    ts = events[schema.TIMESTAMP].to_numpy().copy()
    previous = events.groupby(schema.USER_ID).cumcount().to_numpy() > 0
    for i in rng.choice(np.flatnonzero(previous), 300, replace=False):  # ties in time
        earlier = np.flatnonzero(
            events[schema.USER_ID].to_numpy()[:i] == events[schema.USER_ID].iat[i]
        )
        ts[i] = ts[earlier[-1]]
    events[schema.TIMESTAMP] = ts
    events[schema.LATENCY_MS] = events[schema.LATENCY_MS].astype("float64")
    events.loc[rng.random(len(events)) < 0.1, schema.LATENCY_MS] = np.nan
    events.loc[rng.random(len(events)) < 0.02, schema.LATENCY_MS] = 4e6  # above the cap
    events[schema.HELP_REQUESTED] = events[schema.HELP_REQUESTED].astype("float64")
    events.loc[rng.random(len(events)) < 0.1, schema.HELP_REQUESTED] = np.nan
    unknown = events.iloc[:15].assign(**{schema.ITEM_ID: "NOT-AN-ITEM"})
    duplicates = events.iloc[rng.choice(len(events), 25, replace=False)]
    events = pd.concat([events, duplicates, unknown], ignore_index=True)
    return events.sample(frac=1.0, random_state=1).reset_index(drop=True)  # not time order


@pytest.fixture(scope="module")
def school(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark-school")
    simulated = simulate_school(SCHOOL)
    events = awkward_events(simulated.events, np.random.default_rng(0))
    write_events(folder, "events", events)
    simulated.items.to_parquet(folder / "items.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def session():
    spark = spark_io.start_session("local[2]", conf=TEST_CONF)
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory, school, session):
    """Both engines trained on the school into one temporary store (models LOCAL, SPARK)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    train_both(uri, school, "events", LOCAL, SPARK)
    return uri


def train_both(uri, folder, events, local_name, spark_name, *extra):
    """Train the local engine on ``<events>.parquet`` and Spark on the directory ``<events>``."""
    common = ["--items", folder / "items.parquet", "--batch-size", BATCH_SIZE]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("COLUMNS", "200")
        local = invoke(
            "--events",
            folder / f"{events}.parquet",
            "--model-name",
            local_name,
            *common,
            *(arg.format(LOCAL) for arg in extra),
        )
        spark = invoke(
            "--events",
            folder / events,
            "--model-name",
            spark_name,
            "--engine",
            "spark",
            "--spark-master",
            "local[2]",
            *common,
            *(arg.format(SPARK) for arg in extra),
        )
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert local.exit_code == 0, local.output
    assert spark.exit_code == 0, spark.output


@pytest.fixture
def client(monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")
    tracking.configure_tracking()
    yield mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def invoke(*args):
    return CliRunner().invoke(warmstart_app, [str(a) for a in args])


def write_events(folder, name, events):
    """``<name>.parquet`` for the local engine, the directory ``<name>`` of two parts for Spark."""
    events.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / name).mkdir()
    half = len(events) // 2
    events.iloc[:half].to_parquet(folder / name / "part-0.parquet", index=False)
    events.iloc[half:].to_parquet(folder / name / "part-1.parquet", index=False)


def version(client, name):
    (only,) = client.search_model_versions(f"name = '{name}'")
    return only


def pipeline(name):
    return registry.load_model(registry.ModelRef(name, version="1"))[0]


def assert_close(spark_value, local_value, what):
    np.testing.assert_allclose(spark_value, local_value, rtol=RTOL, atol=0, err_msg=what)


# --- contexts ----------------------------------------------------------------------------------


def test_contexts_equal_the_local_definitions_exactly(school, session):
    events, _ = datasets.read_events(school / "events.parquet")
    items, _ = datasets.read_items(school / "items.parquet")
    local = prepare_history(events, items).contexts
    raw = spark_io.read_parquet(session, str(school / "events"), "events")
    spark_items = read_items(session, school / "items.parquet")[0]
    frame = spark_contexts.historical_contexts(
        spark_contexts.clean_events(raw, "events"), spark_items
    ).toPandas()
    frame = frame.sort_values([spark_contexts.TS, spark_io.ROW_ORDER]).reset_index(drop=True)
    assert len(frame) == len(local) > 2000
    for name in (*schema.MODEL_INPUT, schema.N_PRIOR):
        np.testing.assert_array_equal(frame[name].to_numpy(), local[name].to_numpy(), err_msg=name)


# --- the registered model and its run ----------------------------------------------------------


def test_spark_learns_the_local_state(client):
    local, spark = pipeline(LOCAL).estimator, pipeline(SPARK).estimator
    assert spark.n_updates_ == local.n_updates_ > 2000
    assert_close(spark.A_, local.A_, "A")
    assert_close(spark.b_, local.b_, "b")
    np.testing.assert_array_less(
        np.linalg.norm(spark.coef_ - local.coef_), RTOL * np.linalg.norm(local.coef_)
    )


def test_spark_run_logs_what_the_local_run_logs(client):
    local, spark = version(client, LOCAL), version(client, SPARK)
    local_run, spark_run = client.get_run(local.run_id), client.get_run(spark.run_id)
    assert spark_run.info.status == "FINISHED"
    params = dict(spark_run.data.params)
    assert params.pop("engine") == "spark" and local_run.data.params["engine"] == "local"
    assert params.pop("spark_master") == "local[2]"
    settings = {k: params.pop(k) for k in list(params) if k.startswith("spark_")}
    assert {"spark_version", "spark_default_parallelism"} <= set(settings)
    expected = {k: v for k, v in local_run.data.params.items() if k != "engine"}
    items = expected.pop("data_source").split(" + ")[1]
    params_source = params.pop("data_source")
    assert params_source.endswith(f"events + {items}")
    assert params == expected
    local_metrics = dict(local_run.data.metrics)
    assert "learned_target" in local_metrics
    assert set(spark_run.data.metrics) == set(local_metrics)
    for key, value in local_metrics.items():
        assert_close(spark_run.data.metrics[key], value, key)
        steps = [client.get_metric_history(run.info.run_id, key) for run in (spark_run, local_run)]
        assert [m.step for m in steps[0]] == [m.step for m in steps[1]]
        assert_close([m.value for m in steps[0]], [m.value for m in steps[1]], key)
    different = {"run_id", "git_commit", "sha256"}  # the model files differ in their run
    different |= {k for k in local.tags if k.startswith("metric.")}  # compared above
    different.add(data_identity.DATA_TAG)  # the events path: the directory against the file
    assert spark.tags[data_identity.DATA_TAG] == params_source
    assert {k: v for k, v in spark.tags.items() if k not in different} == {
        k: v for k, v in local.tags.items() if k not in different
    }
    (spark_input,), (local_input,) = (run.inputs.dataset_inputs for run in (spark_run, local_run))
    for field in ("name", "digest", "schema", "profile"):
        assert getattr(spark_input.dataset, field) == getattr(local_input.dataset, field), field
    artifacts = [
        {a.path for a in client.list_artifacts(run.info.run_id)} for run in (spark_run, local_run)
    ]
    assert artifacts[0] == artifacts[1]
    assert len([path for path in artifacts[0] if path.endswith(".png")]) >= 4
    registered = [client.get_registered_model(name).aliases for name in (SPARK, LOCAL)]
    assert registered[0] == registered[1]
    assert_same_run_tags(spark_run.data.tags, local_run.data.tags)


def assert_same_run_tags(spark_tags, local_tags):
    """The run tags agree but for the data source in the run name and the model's name."""
    spark_tags, local_tags = dict(spark_tags), dict(local_tags)
    assert spark_tags.pop(REGISTERED_VERSION_TAG) == f"{SPARK} v1"
    assert local_tags.pop(REGISTERED_VERSION_TAG) == f"{LOCAL} v1"
    names = [tags.pop("mlflow.runName").split(" · ") for tags in (spark_tags, local_tags)]
    assert [name[0] for name in names] == ["events", "events.parquet"]  # the events path
    assert names[0][1] == names[1][1] == "default features"
    started = [pd.Timestamp(name[2], tz="UTC") for name in names]
    assert pd.Timedelta(0) <= started[0] - started[1] < pd.Timedelta(minutes=10)
    assert spark_tags == local_tags


def test_spark_learns_the_local_probability_calibration(client):
    """The served calibration map, fitted on every scored progressive forecast."""

    local, spark = (pipeline(name).calibration for name in (LOCAL, SPARK))
    assert local.n_events == spark.n_events > 2000 and len(local.scores) > 5
    assert_close(spark.scores, local.scores, "scores")
    assert_close(spark.probabilities, local.probabilities, "probabilities")


def test_spark_learns_the_local_learning_progress_bands(client):
    """The delayed rewards need each student's later attempts: the Spark engine sums them per
    partition of whole students, the local engine over all events at once."""
    local, spark = (pipeline(name).progress_bands for name in (LOCAL, SPARK))
    assert local.count.sum() > 1000 and (local.count > 0).sum() >= 3
    assert_same_bands(spark, local)
    assert spark.best_target() == local.best_target()


def assert_same_bands(spark, local):
    np.testing.assert_array_equal(spark.targets, local.targets)
    np.testing.assert_array_equal(spark.count, local.count)
    assert_close(spark.total, local.total, "total")
    assert_close(spark.total_sq, local.total_sq, "total_sq")


def test_a_continued_spark_run_adds_to_the_continued_versions_model_and_bands(
    client, store, school
):
    """Both engines continue their version 1 on the school's events followed by the same
    attempts again after the last one (earlier events context only, later ones learned),
    each registering a new model so that the versions compared above stay as they are."""
    events = pd.read_parquet(school / "events.parquet")
    ts = events[schema.TIMESTAMP]
    later = events.assign(**{schema.TIMESTAMP: ts + (ts.max() - ts.min()) + pd.Timedelta(days=1)})
    write_events(school, "continued", pd.concat([events, later], ignore_index=True))
    names = (f"{LOCAL}-continued", f"{SPARK}-continued")
    train_both(store, school, "continued", *names, "--from", "{}/1")
    first = pipeline(LOCAL)
    for name in names:
        params = client.get_run(version(client, name).run_id).data.params
        assert params["context_only_events"] == str(first.estimator.n_updates_)
    local, spark = map(pipeline, names)
    assert (
        spark.estimator.n_updates_ == local.estimator.n_updates_ == 2 * first.estimator.n_updates_
    )
    assert_close(spark.estimator.A_, local.estimator.A_, "A")
    assert_close(spark.estimator.b_, local.estimator.b_, "b")
    items, _ = datasets.read_items(school / "items.parquet")
    until = pd.Timestamp(version(client, LOCAL).tags["trained_until"])
    learned = prepare_history(
        datasets.read_events(school / "continued.parquet")[0], items, learned_until=until
    )
    fresh = progress_bands(learned.events, learned.contexts)
    assert fresh.count.sum() > 1000
    np.testing.assert_array_equal(
        local.progress_bands.count, first.progress_bands.count + fresh.count
    )
    assert_same_bands(spark.progress_bands, local.progress_bands)


def test_registered_versions_rank_candidates_identically(client, school):
    from serve.recommend import rl_recommendations, student_week, whole_history

    events, _ = datasets.read_events(school / "events.parquet")
    items, _ = datasets.read_items(school / "items.parquet")
    local, spark = pipeline(LOCAL), pipeline(SPARK)
    pairs = events[[schema.USER_ID, schema.TOPIC]].drop_duplicates().sample(25, random_state=2)
    for user, topic in pairs.itertuples(index=False):
        week = student_week(events, items, user, topic, whole_history(events))
        ours, theirs = rl_recommendations(spark, week), rl_recommendations(local, week)
        assert list(ours[schema.ITEM_ID]) == list(theirs[schema.ITEM_ID]), (user, topic)


# --- batch scoring -----------------------------------------------------------------------------


def test_batch_scores_equal_the_in_process_ranking(client, school, session, tmp_path):
    from serve.recommend import rl_recommendations, student_week, whole_history
    from train.batch_score import run_batch_score

    out = tmp_path / "recs"
    result = run_batch_score(
        f"{SPARK}/1",
        str(school / "events"),
        str(school / "items.parquet"),
        out,
        top_k=3,
        master="local[2]",
    )
    recs = pd.read_parquet(out)
    events, _ = datasets.read_events(school / "events.parquet")
    items, _ = datasets.read_items(school / "items.parquet")
    pairs = events[[schema.USER_ID, schema.TOPIC]].drop_duplicates()
    assert result.pairs == len(recs.groupby([schema.USER_ID, schema.TOPIC])) == len(pairs)
    assert result.rows == len(recs) and (recs["model_version"] == f"{SPARK}/1").all()
    model = pipeline(SPARK)
    for user, topic in pairs.sample(30, random_state=3).itertuples(index=False):
        week = student_week(events, items, user, topic, whole_history(events))
        expected = rl_recommendations(model, week, _top(3))
        got = recs[(recs[schema.USER_ID] == user) & (recs[schema.TOPIC] == topic)]
        got = got.sort_values(schema.RANK)
        assert list(got[schema.ITEM_ID]) == list(expected[schema.ITEM_ID]), (user, topic)
        np.testing.assert_allclose(got[schema.UCB], expected[schema.UCB], rtol=1e-12)


def test_both_engines_store_the_items_and_batch_scoring_fills_a_bare_items_file(
    client, school, tmp_path
):
    """The Spark engine's version keeps the items it trained with, as the local one does;
    batch scoring with an items file of only ``item_id, topic`` ranks as with the full file."""
    from serve.recommend import rl_recommendations, student_week, whole_history
    from train.batch_score import run_batch_score

    model = pipeline(SPARK)
    pd.testing.assert_frame_equal(model.item_parameters, pipeline(LOCAL).item_parameters)
    items, _ = datasets.read_items(school / "items.parquet")
    bare = tmp_path / "items.parquet"
    items[[schema.ITEM_ID, schema.TOPIC]].to_parquet(bare, index=False)
    out = tmp_path / "recs"
    result = run_batch_score(
        f"{SPARK}/1", str(school / "events"), str(bare), out, top_k=3, master="local[2]"
    )
    assert result.notes == ()  # every item known to the version, none disagreeing
    recs = pd.read_parquet(out)
    events, _ = datasets.read_events(school / "events.parquet")
    pairs = events[[schema.USER_ID, schema.TOPIC]].drop_duplicates()
    for user, topic in pairs.sample(10, random_state=4).itertuples(index=False):
        week = student_week(events, items, user, topic, whole_history(events))
        expected = rl_recommendations(model, week, _top(3))
        got = recs[(recs[schema.USER_ID] == user) & (recs[schema.TOPIC] == topic)]
        got = got.sort_values(schema.RANK)
        assert list(got[schema.ITEM_ID]) == list(expected[schema.ITEM_ID]), (user, topic)
        np.testing.assert_allclose(got[schema.UCB], expected[schema.UCB], rtol=1e-12)


def _top(k):
    from dataclasses import replace

    from serve.recommend import PolicySettings

    settings = PolicySettings()
    return replace(settings, ranking=replace(settings.ranking, top_k=k))


# --- bad input -----------------------------------------------------------------------------------


def _mixed_schemas(folder, events):
    events.iloc[:100].to_parquet(folder / "part-0.parquet", index=False)
    events.iloc[100:200].drop(columns=[schema.LATENCY_MS]).to_parquet(
        folder / "part-1.parquet", index=False
    )


BAD_INPUTS = {
    "missing-column": (
        lambda folder, ev: ev.drop(columns=[schema.CORRECT]).to_parquet(
            folder / "part-0.parquet", index=False
        ),
        None,
        "missing column 'correct'",
    ),
    "mixed-schemas": (_mixed_schemas, None, "mixed schemas across parquet files"),
    "empty-directory": (lambda folder, ev: None, None, "holds no parquet files"),
    "unreachable-master": (
        lambda folder, ev: ev.to_parquet(folder / "part-0.parquet"),
        "spark://127.0.0.1:9",
        "cannot reach the Spark master",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_the_run_in_one_line_and_registers_nothing(client, school, tmp_path, case):
    write, master, message = BAD_INPUTS[case]
    folder = tmp_path / "events"
    folder.mkdir()
    write(folder, pd.read_parquet(school / "events.parquet"))
    name = f"bad-{case}"
    before = {run.info.run_id for run in _runs(client)}
    result = invoke(
        "--events",
        folder,
        "--items",
        school / "items.parquet",
        "--engine",
        "spark",
        "--spark-master",
        master or "local[2]",
        "--model-name",
        name,
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    (failed,) = [run for run in _runs(client) if run.info.run_id not in before]
    assert failed.info.status == "FAILED"
    assert message in failed.data.tags["failure_reason"]
    assert client.search_model_versions(f"name = '{name}'") == []


def _runs(client):
    experiment = client.get_experiment_by_name(tracking.WARMSTART_EXPERIMENT)
    return client.search_runs([experiment.experiment_id])


def test_forgetting_below_one_is_refused_with_a_reason():
    with pytest.raises(SkbanditError, match=r"forgetting=0\.99; use --engine local"):
        spark_engine.check_estimator(TrainedModel(forgetting=0.99))


def _loose_events(events: pd.DataFrame) -> pd.DataFrame:
    """The school's first events in the loose forms the local engine cleans: ids as floats,
    times as text, help as words, skills as text instead of a topic, blank keys."""
    out = events.head(300).copy()
    codes = pd.factorize(out[schema.USER_ID])[0]
    out[schema.USER_ID] = np.where(codes % 7 == 0, np.nan, 280.0 + codes)  # '280', not '280.0'
    out[schema.TIMESTAMP] = out[schema.TIMESTAMP].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    out[schema.HELP_REQUESTED] = np.where(out[schema.HELP_REQUESTED], " True", "false")
    out[schema.SKILL_IDS] = "[" + out.pop(schema.TOPIC).astype(str) + ", 'x']"
    return pd.concat([out, out.iloc[:5]], ignore_index=True)  # and exact duplicates


def test_spark_cleans_with_the_local_functions(school, session, tmp_path):
    raw_events = _loose_events(pd.read_parquet(school / "events.parquet"))
    raw_events.to_parquet(tmp_path / "loose.parquet", index=False)
    local, local_report = validate_events(raw_events, "loose")
    raw = spark_io.read_parquet(session, str(tmp_path / "loose.parquet"), "loose").repartition(3)
    cleaned = spark_contexts.clean_events(raw, "loose").toPandas()
    cleaned = cleaned.sort_values([spark_contexts.TS, spark_io.ROW_ORDER]).reset_index(drop=True)
    assert len(cleaned) == len(local) < len(raw_events)
    for name in (schema.USER_ID, schema.ITEM_ID, schema.TOPIC):
        assert cleaned[name].tolist() == local[name].tolist(), name
    assert cleaned[spark_contexts.TS].tolist() == local[schema.TIMESTAMP].array.asi8.tolist()
    for name in (schema.CORRECT, schema.LATENCY_MS, schema.HELP_REQUESTED):
        np.testing.assert_array_equal(cleaned[name], local[name].astype(np.float64), name)
    report, _ = spark_contexts.check_events(
        raw,
        spark_contexts.clean_events(raw, "loose"),
        pd.read_parquet(school / "items.parquet"),
        "loose",
    )
    assert report == local_report


def test_a_value_spark_cannot_clean_is_the_local_one_line_error(school, session, tmp_path):
    events = pd.read_parquet(school / "events.parquet").head(200)
    events[schema.CORRECT] = events[schema.CORRECT].where(events.index != 150, 2)
    events.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(SkbanditError) as local:
        validate_events(events, "bad")
    raw = spark_io.read_parquet(session, str(tmp_path / "bad.parquet"), "bad")
    with pytest.raises(SkbanditError) as spark:
        spark_contexts.check_events(
            raw,
            spark_contexts.clean_events(raw, "bad"),
            pd.read_parquet(school / "items.parquet"),
            "bad",
        )
    assert str(spark.value) == str(local.value)
    assert "column 'correct' must be 0 or 1; found 2 (1 rows)" in str(spark.value)


def test_timestamps_of_either_parquet_unit_read_the_same(school, session, tmp_path):
    events = pd.read_parquet(school / "events.parquet").head(50)
    events.to_parquet(tmp_path / "ns.parquet", index=False)
    events.assign(
        **{schema.TIMESTAMP: events[schema.TIMESTAMP].astype("datetime64[us, UTC]")}
    ).to_parquet(tmp_path / "us.parquet", index=False)
    ts = [
        spark_contexts.clean_events(spark_io.read_parquet(session, str(tmp_path / f), "e"), "e")
        .orderBy(spark_io.ROW_ORDER)
        .select(spark_contexts.TS)
        .toPandas()[spark_contexts.TS]
        for f in ("ns.parquet", "us.parquet")
    ]
    assert ts[0].tolist() == ts[1].tolist()
    assert int(ts[0].iloc[0]) == events[schema.TIMESTAMP].iloc[0].value


def test_metrics_aggregated_on_spark_equal_the_local_replay(school, session, monkeypatch):
    """Beyond PLOT_ROWS the metrics are pooled on Spark: per-batch metrics from the scoring
    pass's summary rows (batches cut by a partition boundary rescored), event-weighted means
    and exact AUCs from range partitions of the scores."""
    from skbandit.progressive import replay_history

    events, _ = datasets.read_events(school / "events.parquet")
    items, _ = datasets.read_items(school / "items.parquet")
    history = prepare_history(events, items)
    local = replay_history(
        TrainedModel(),
        history.contexts,
        history.events[schema.CORRECT].to_numpy(),
        batch_size=BATCH_SIZE,
    )
    starts = spark_engine.batch_starts(len(history.events), BATCH_SIZE)
    frame = local.predictions.drop(columns="score").assign(
        batch=np.searchsorted(starts, np.arange(len(local.predictions)), side="right") - 1
    )
    # partitions that cut the first batch and others: their metrics come from their rows
    predicted = in_partitions(session, frame, [0, 50, 1_234, 2_000, len(frame)])
    scored = predicted.mapInPandas(spark_metrics.with_batch_metrics, spark_metrics.SCORED_SCHEMA)
    summaries = scored.where("metrics is not null").groupBy("batch").count().collect()
    assert sorted(row["count"] for row in summaries)[-3:] == [2, 2, 2]
    monkeypatch.setattr(spark_metrics, "PLOT_ROWS", 1_000)
    monkeypatch.setattr(spark_contexts, "ROWS_PER_PARTITION", 200)  # AUC over many partitions
    pooled = spark_metrics.replay_result(scored, len(frame), first_batch=local.first_batch)
    assert isinstance(pooled, spark_metrics.SparkReplayResult) and local.first_batch == 100
    assert 900 < len(pooled.predictions) < 1_100  # a sample for the calibration plot
    for mine, theirs in (
        (pooled.final_metrics(), local.final_metrics()),
        (pooled.metrics_after_first_batch(), local.metrics_after_first_batch()),
    ):
        assert list(mine) == list(theirs)
        for key, value in theirs.items():
            assert_close(mine[key], value, key)
    assert list(pooled.history.columns) == list(local.history.columns)
    assert_close(
        pooled.history.to_numpy(dtype=float), local.history.to_numpy(dtype=float), "history"
    )


def in_partitions(session, frame: pd.DataFrame, cuts):
    """``frame`` as a Spark DataFrame whose partitions are the row ranges between ``cuts``."""
    rows = list(zip(*(frame[c].tolist() for c in frame.columns), strict=True))
    parts = [rows[a:b] for a, b in itertools.pairwise(cuts)]
    rdd = session.sparkContext.parallelize(parts, len(parts)).flatMap(lambda part: part)
    return session.createDataFrame(rdd, list(frame.columns))


@pytest.mark.parametrize("seed", range(5))
def test_exact_auc_from_score_ranges_without_the_first_events_equals_sklearn(seed):
    """The AUC of all events and without the first ones, from per-range pair counts, is
    sklearn's ``roc_auc_score`` (ties count one half), for scores with many ties."""
    rng = np.random.default_rng(seed)
    n, first = 400, 37
    scores = rng.integers(0, 12, n) / 11  # about 33 events per distinct score
    scores[:first] = rng.choice(scores[first:], first)  # first events tie with later ones
    outcomes = rng.random(n) < 0.4
    distinct = np.unique(scores)
    bounds = np.sort(rng.choice(distinct[1:], 4, replace=False))
    ranges = np.searchsorted(bounds, scores, side="right")
    chunks = [
        spark_metrics.rank_counts(
            scores[ranges == r],
            outcomes[ranges == r],
            ~outcomes[ranges == r],
            scores[:first],
            outcomes[:first],
        )
        for r in rng.permutation(len(bounds) + 1)
    ]
    every, after = spark_metrics.exact_auc(chunks, scores[:first], outcomes[:first])
    assert every == pytest.approx(roc_auc_score(outcomes, scores), rel=1e-12)
    assert after == pytest.approx(roc_auc_score(outcomes[first:], scores[first:]), rel=1e-12)


def test_exact_auc_of_one_class_is_nan_like_the_local_metric():
    scores, outcomes = np.array([0.2, 0.4, 0.4, 0.9]), np.array([False, True, True, True])
    chunks = [spark_metrics.rank_counts(scores, outcomes, ~outcomes, scores[:1], outcomes[:1])]
    every, after = spark_metrics.exact_auc(chunks, scores[:1], outcomes[:1])
    assert every == 1.0 and np.isnan(after)  # without the only negative: one class
