"""The decision log: round trip, append-only, durable under kill -9, faults as clear errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from adapters import decision_log
from adapters.decision_log import DecisionLog
from adapters.model.pyfunc import LinUCBModel
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.model import TrainedModel
from tests.support.local_server import free_port

REPO = Path(__file__).resolve().parents[2]


def request(n_students=2, n_items=6, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_students * n_items
    return pd.DataFrame(
        {
            schema.USER_ID: np.repeat([f"u{k}" for k in range(n_students)], n_items),
            schema.ITEM_ID: [f"i{j}" for j in range(n)],
            **{column: rng.uniform(0.1, 0.9, n) for column in schema.MODEL_INPUT},
        }
    )


@pytest.fixture(scope="module")
def pipeline():
    frame = request(4, 6, seed=1)
    return TrainedModel().partial_fit(frame, np.tile([1.0, 0.0], len(frame) // 2))


def model(pipeline, log, version="skbandit-linucb/3") -> LinUCBModel:
    served = LinUCBModel.from_model(pipeline, version)
    served.decision_log = log
    return served


def test_served_decisions_round_trip_and_join_the_response(pipeline, tmp_path):
    log = DecisionLog(f"sqlite:///{tmp_path / 'log' / 'decisions.db'}")
    frame = request()
    out = model(pipeline, log).predict(None, frame, {"topic": "7.RP.A.1", "top_k": 2})
    seeded = model(pipeline, log, "other/1").predict(None, frame, {"seed": 5})
    decisions, candidates = log.read()
    assert len(decisions) == 4 and len(candidates) == 4 * 6
    assert decisions["logged_at"].dt.tz is not None
    mine = decisions[decisions["model_name"] == "skbandit-linucb"]
    assert set(mine["decision_id"]) == set(out["decision_id"])  # one decision per student
    assert mine["topic"].tolist() == ["7.RP.A.1"] * 2 and not mine["seeded"].any()
    assert decisions.loc[decisions["model_name"] == "other", "seeded"].all()
    settings = json.loads(mine["settings"].iloc[0])
    assert settings["epsilon"] == 0.1 and settings["top_k"] == 2 and settings["seed"] is None
    joined = out.merge(candidates, on=["decision_id", schema.ITEM_ID])
    assert len(joined) == len(out)  # every response row is a logged candidate
    np.testing.assert_allclose(joined["propensity_y"], joined["first_slot_propensity"])
    shown = joined[joined["recommended"]]
    assert (shown["served_rank"] == shown[schema.RANK]).all()
    np.testing.assert_allclose(shown["slot_propensity"], shown["propensity_x"])
    assert joined.loc[~joined["recommended"], "served_rank"].isna().all()
    first = joined[joined[schema.RANK] == 1].set_index("decision_id")[schema.ITEM_ID]
    served_first = mine.set_index("decision_id")["served_item_id"]
    assert (served_first.sort_index() == first.sort_index()).all()
    logged_inputs = joined.merge(frame, on=[schema.USER_ID, schema.ITEM_ID])
    for column in schema.MODEL_INPUT:  # the model inputs are logged exactly
        np.testing.assert_array_equal(logged_inputs[column + "_x"], logged_inputs[column + "_y"])
    assert candidates.groupby("decision_id")["propensity"].sum().round(12).eq(1).all()
    only, _ = log.read(model_name="other")
    assert set(only["decision_id"]) == set(seeded["decision_id"])
    later, later_candidates = log.read(since=pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h"))
    assert later.empty and later_candidates.empty
    log.export_parquet(tmp_path / "export")
    exported = pd.read_parquet(tmp_path / "export" / "decision_candidates.parquet")
    pd.testing.assert_frame_equal(exported, candidates, check_dtype=False)


def test_the_log_is_append_only(pipeline, tmp_path):
    path = tmp_path / "decisions.db"
    model(pipeline, DecisionLog(str(path))).predict(None, request())
    with sqlite3.connect(path) as connection:
        for statement in (
            "UPDATE decisions SET user_id = 'x'",
            "DELETE FROM decision_candidate_sets",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)
    assert len(DecisionLog(str(path)).read()[1]) == 12


def test_a_locked_log_is_a_503_and_nothing_is_served(pipeline, tmp_path, monkeypatch):
    monkeypatch.setattr(decision_log, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "decisions.db"
    log = DecisionLog(str(path))
    served = model(pipeline, log)
    served.predict(None, request())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MlflowException) as caught:
            served.predict(None, request())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert caught.value.get_http_status_code() == 503
    assert "is unavailable (database is locked)" in caught.value.message
    assert "\n" not in caught.value.message
    assert len(log.read()[0]) == 2  # only the first request's decisions


def test_reading_a_missing_or_corrupt_log_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nowhere" / "decisions.db"
    with pytest.raises(SkbanditError, match="no decision log at"):
        DecisionLog(str(missing)).read()
    assert not missing.parent.exists()  # reading creates nothing
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database " * 400)
    with pytest.raises(SkbanditError, match=r"cannot read decision log .*file is not a database"):
        DecisionLog(str(corrupt)).read()


def test_default_location_is_beside_the_mlflow_store(tmp_path, monkeypatch):
    monkeypatch.delenv(decision_log.ENV_VAR, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert DecisionLog().url == f"sqlite:///{tmp_path / 'store' / 'decisions.db'}"
    monkeypatch.setenv(decision_log.ENV_VAR, "postgresql://u:secret@db.example/log")
    assert "secret" not in DecisionLog().display_url


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import pandas as pd
    from adapters.decision_log import DecisionLog, new_decision_ids
    from skbandit import schema
    log = DecisionLog(sys.argv[1])
    n = int(sys.argv[2])
    rng = np.random.default_rng(int(sys.argv[3]))
    while True:
        decision_id = new_decision_ids(1)[0]
        decisions = pd.DataFrame({
            "decision_id": [decision_id], "logged_at": [pd.Timestamp.now(tz="UTC")],
            "user_id": ["u"], "topic": ["t"], "model_name": ["m"], "model_version": ["1"],
            "settings": ["{}"], "seeded": [False], "served_item_id": ["i0"]})
        candidates = pd.DataFrame({
            "decision_id": decision_id, "item_id": [f"i{k}" for k in range(n)],
            **{c: rng.random(n) for c in schema.MODEL_INPUT},
            "served_rank": pd.array([1] + [None] * (n - 1), dtype="Int64"),
            "propensity": np.full(n, 1 / n), "slot_propensity": [1 / n] + [np.nan] * (n - 1)})
        log.append(decisions, candidates)
        print(decision_id, flush=True)
""")


def test_kill_9_after_a_commit_loses_nothing_and_leaves_no_partial_decision(tmp_path):
    """Two writers at once; each is killed with SIGKILL mid-stream (often mid-transaction)."""
    path = tmp_path / "decisions.db"
    n_candidates = 200
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n_candidates), str(k)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for k in range(2)
    ]
    acknowledged = []
    try:
        for writer in writers:  # wait for a few commits, then kill without warning
            acknowledged += [writer.stdout.readline().strip() for _ in range(15)]
        for writer in writers:
            writer.send_signal(signal.SIGKILL)
    finally:
        for writer in writers:
            writer.kill()
            acknowledged += [line.strip() for line in writer.stdout if line.strip()]
            writer.wait()
    decisions, candidates = DecisionLog(str(path)).read()
    assert set(acknowledged) <= set(decisions["decision_id"])  # every acknowledged commit
    sizes = candidates.groupby("decision_id").size()
    assert set(sizes.index) == set(decisions["decision_id"])  # no decision without candidates
    assert (sizes == n_candidates).all()  # and no partial candidate set


@pytest.fixture
def postgres_url():
    """A throwaway local PostgreSQL server (skipped, with the reason, where it cannot start)."""
    from tests.support.postgres import Unavailable, local_postgres

    with ExitStack() as stack:
        try:
            url = stack.enter_context(local_postgres())
        except Unavailable as reason:
            pytest.skip(str(reason))
        yield url


def test_the_same_log_works_on_postgresql(pipeline, postgres_url):
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    log = DecisionLog(postgres_url)
    out = model(pipeline, log).predict(None, request(), {"topic": "T"})
    decisions, candidates = log.read()
    assert set(decisions["decision_id"]) == set(out["decision_id"])
    assert len(candidates) == len(out) and decisions["topic"].eq("T").all()
    assert str(decisions["logged_at"].dt.tz) == "UTC"
    with pytest.raises(SQLAlchemyError, match="append-only"), log._engine.begin() as connection:
        connection.execute(text("DELETE FROM decisions"))
    unreachable = DecisionLog(postgres_url.rsplit(":", 1)[0] + f":{free_port()}/postgres")
    with pytest.raises(MlflowException) as caught:
        model(pipeline, unreachable).predict(None, request())
    assert caught.value.get_http_status_code() == 503
    assert "is unavailable" in caught.value.message


def test_trace_log_decision_records_the_cli_decision(store_env, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serve.cli import app

    monkeypatch.setenv(decision_log.ENV_VAR, str(tmp_path / "cli.db"))
    args = [
        "trace",
        "--student-id",
        "ABC123",
        "--topic",
        "7.RP.A.1",
        "--time-window",
        "2024-W01",
        "--use-rl",
        "--exploration",
        "softmax",
        "--json",
        "--log-decision",
        *store_env.school.options,
    ]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    decisions, candidates = DecisionLog(str(tmp_path / "cli.db")).read()
    assert decisions["decision_id"].tolist() == [payload["decision_id"]]
    assert decisions["served_item_id"].iloc[0] == payload["recommendations"][0][schema.ITEM_ID]
    assert not decisions["seeded"].iloc[0] and decisions["model_version"].iloc[0] == "1"
    shown = candidates.dropna(subset=["served_rank"]).sort_values("served_rank")
    assert shown[schema.ITEM_ID].tolist() == [r[schema.ITEM_ID] for r in payload["recommendations"]]
    np.testing.assert_allclose(
        shown["slot_propensity"], [r[schema.PROPENSITY] for r in payload["recommendations"]]
    )
    assert candidates["propensity"].sum() == pytest.approx(1.0)
    refused = CliRunner().invoke(app, [a for a in args if a != "--use-rl"])
    assert refused.exit_code == 1 and "add --use-rl" in refused.output


def test_candidate_sets_logged_with_other_model_inputs_still_read(tmp_path):
    """A set packed before a model input existed reads with that input null (guessing: 0, its
    documented default), the others intact."""
    from adapters.decision_log.candidate_sets import pack

    log = DecisionLog(str(tmp_path / "decisions.db"))
    older = [c for c in schema.MODEL_INPUT if c not in (schema.DIFFICULTY, schema.GUESSING)]
    older.append("retired_input")
    inputs = np.arange(3 * len(older), dtype=float).reshape(3, len(older))
    decision = (
        "d-old",
        pd.Timestamp.now(tz="UTC").to_pydatetime(),
        "u",
        "t",
        "m",
        "1",
        "{}",
        False,
        "a",
    )
    log.append_rows(
        [decision],
        [
            pack(
                "d-old",
                ["a", "b", "c"],
                inputs,
                older,
                [1, 0, 0],
                [0.8, 0.1, 0.1],
                [0.8, np.nan, np.nan],
            )
        ],
    )
    _, candidates = log.read()
    assert candidates["item_id"].tolist() == ["a", "b", "c"]
    assert candidates[schema.DIFFICULTY].isna().all()
    assert (candidates[schema.GUESSING] == 0.0).all()
    for k, column in enumerate(older[:-1]):
        np.testing.assert_array_equal(candidates[column], inputs[:, k])
    assert "retired_input" not in candidates.columns
    assert candidates["served_rank"].tolist() == [1, pd.NA, pd.NA]


# --- issue 22: a logged decision cannot be replaced, and a rewrite is detectable ----------


@pytest.mark.parametrize("verb", ["INSERT OR REPLACE INTO", "REPLACE INTO"])
def test_a_logged_decision_cannot_be_replaced(pipeline, tmp_path, verb):
    path = tmp_path / "decisions.db"
    model(pipeline, DecisionLog(str(path))).predict(None, request())
    with sqlite3.connect(path) as connection:
        for table in ("decisions", "decision_candidate_sets"):
            row = connection.execute(f"SELECT * FROM {table} LIMIT 1").fetchone()
            marks = ", ".join("?" * len(row))
            changed = (row[0], *(["x"] if table == "decisions" else [row[1]]), *row[2:])
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(f"{verb} {table} VALUES ({marks})", changed)
            fresh = ("new-id", *row[1:])
            connection.execute(f"INSERT INTO {table} VALUES ({marks})", fresh)  # a new id is fine
            connection.rollback()
    assert DecisionLog(str(path)).verify().ok


@pytest.mark.parametrize(
    "how",
    ["insert", "on conflict do update", "merge", "truncate", "delete then insert"],
)
def test_a_logged_decision_cannot_be_replaced_on_postgresql(pipeline, postgres_url, how):
    from sqlalchemy import text
    from sqlalchemy.dialects.postgresql import insert
    from sqlalchemy.exc import SQLAlchemyError

    from adapters.decision_log.tables import CANDIDATE_SETS, DECISIONS

    log = DecisionLog(postgres_url)
    model(pipeline, log).predict(None, request())
    before = log.read()
    for table in (DECISIONS, CANDIDATE_SETS):
        with log._engine.connect() as connection:
            row = connection.execute(table.select().limit(1)).mappings().one()
        key = row["decision_id"]
        changed = {**row, **({"user_id": "x"} if table is DECISIONS else {"item_ids": "[]"})}
        statement = {
            "insert": insert(table).values(changed),
            "on conflict do update": insert(table)
            .values(changed)
            .on_conflict_do_update(
                index_elements=["decision_id"],
                set_={k: v for k, v in changed.items() if k != "decision_id"},
            ),
            "merge": text(
                f"MERGE INTO {table.name} AS t USING (SELECT :key AS decision_id) AS s "
                "ON t.decision_id = s.decision_id WHEN MATCHED THEN DELETE"
            ).bindparams(key=key),
            "truncate": text(f"TRUNCATE {table.name} CASCADE"),
            "delete then insert": text(
                f"DELETE FROM {table.name} WHERE decision_id = :key"
            ).bindparams(key=key),
        }[how]
        words = "duplicate key" if how == "insert" else "append-only"
        with pytest.raises(SQLAlchemyError, match=words), log._engine.begin() as connection:
            connection.execute(statement)
        with log._engine.begin() as connection:  # a new id is fine
            connection.execute(insert(table).values({**row, "decision_id": "new-id"}))
            connection.rollback()
    after = log.read()
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)
    assert log.verify().ok


def tampered(path, *statements):
    with sqlite3.connect(path) as connection:
        connection.executescript(
            "".join(
                f"DROP TRIGGER {t};"
                for (t,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall()
            )
        )
        for statement in statements:
            connection.execute(statement)


def served_log(pipeline, path, n_requests=3):
    served = model(pipeline, DecisionLog(str(path)))
    ids = []
    for seed in range(n_requests):
        ids.extend(dict.fromkeys(served.predict(None, request(seed=seed))["decision_id"]))
    return ids


def test_an_intact_log_verifies_and_its_parquet_export_too(pipeline, tmp_path):
    from adapters.decision_log.chain import verify

    path = tmp_path / "decisions.db"
    ids = served_log(pipeline, path)
    result = DecisionLog(str(path)).verify()
    assert result.ok and result.n_decisions == len(ids) == 6 and result.n_chains == 1
    assert next(iter(result.heads.values()))[0] == 5
    DecisionLog(str(path)).export_parquet(tmp_path / "export")
    exported = verify(
        pd.read_parquet(tmp_path / "export" / "decisions.parquet"),
        pd.read_parquet(tmp_path / "export" / "decision_candidates.parquet"),
    )
    assert exported.ok and exported.heads == result.heads


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        (
            "UPDATE decisions SET served_item_id = 'not-served' WHERE decision_id = '{id}'",
            "does not match its hash",
        ),
        (
            "UPDATE decision_candidate_sets SET propensity = zeroblob(length(propensity)) "
            "WHERE decision_id = '{id}'",
            "does not match its hash",
        ),
        ("DELETE FROM decisions WHERE decision_id = '{id}'", "were deleted"),
        ("UPDATE decisions SET chain_hash = NULL WHERE decision_id = '{id}'", "no chain hash"),
    ],
)
def test_a_rewritten_decision_is_named_by_the_verifier(pipeline, tmp_path, statement, words):
    path = tmp_path / "decisions.db"
    ids = served_log(pipeline, path)
    tampered(path, statement.format(id=ids[3]))
    result = DecisionLog(str(path)).verify()
    assert not result.ok and words in result.broken
    if "deleted" not in words:
        assert result.broken.startswith(f"decision {ids[3]}")


def test_a_deleted_decision_breaks_the_next_link(pipeline, tmp_path):
    path = tmp_path / "decisions.db"
    ids = served_log(pipeline, path)
    tampered(
        path,
        f"DELETE FROM decisions WHERE decision_id = '{ids[2]}'",
        f"DELETE FROM decision_candidate_sets WHERE decision_id = '{ids[2]}'",
    )
    result = DecisionLog(str(path)).verify()
    assert result.broken.startswith(f"decision {ids[3]}") and "were deleted" in result.broken


def test_verify_log_command_and_compare_refuse_a_broken_log(pipeline, tmp_path):
    from typer.testing import CliRunner

    from serve.cli import app as cli

    path = tmp_path / "decisions.db"
    ids = served_log(pipeline, path, 2)
    runner = CliRunner()
    result = runner.invoke(cli, ["verify-log", str(path)])
    assert result.exit_code == 0 and "intact" in result.output
    tampered(path, f"UPDATE decisions SET user_id = 'someone' WHERE decision_id = '{ids[1]}'")
    result = runner.invoke(cli, ["verify-log", str(path)])
    assert result.exit_code == 1 and f"decision {ids[1]}" in result.output
    assert "Traceback" not in result.output


def test_writers_in_two_processes_keep_separate_chains(pipeline, tmp_path):
    path = tmp_path / "decisions.db"
    served_log(pipeline, path, 1)
    script = textwrap.dedent(f"""
        import numpy as np, pandas as pd
        from adapters.decision_log import DecisionLog
        from adapters.decision_log.candidate_sets import pack
        from skbandit import schema
        log = DecisionLog({str(path)!r})
        for k in range(3):
            row = (f"p{{k}}", pd.Timestamp.now(tz="UTC").to_pydatetime(), "u", None, "m", "1",
                   "{{}}", False, "a")
            log.append_rows([row], [pack(f"p{{k}}", ["a"], np.ones((1, len(schema.MODEL_INPUT))),
                                         schema.MODEL_INPUT, [1], [1.0], [1.0])])
    """)
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    result = DecisionLog(str(path)).verify()
    assert result.ok and result.n_chains == 2 and result.n_decisions == 5


def test_the_chain_hashes_every_decision_column():
    from adapters.decision_log.chain import DECISION_FIELDS

    assert DECISION_FIELDS == decision_log.DECISION_COLUMNS
