"""Promotion is a compare-and-set, all or nothing (issue 20): the champion moves only if it is
still the version the gate judged against; of two promotions at once exactly one moves it; an
interrupted promotion puts the alias back and leaves no gate tag.

The versions are bare registry entries (what they hold plays no part in moving an alias).
"""

from __future__ import annotations

import multiprocessing

import mlflow
import pytest
from mlflow import MlflowClient

from adapters import tracking
from adapters.registry import CHAMPION_ALIAS
from adapters.registry import promote as promotion
from skbandit.exceptions import SkbanditError

NAME = "promotion-test"
TAGS = {"gate.decision": "promoted", "gate.reason": "passes", "gate.run_id": "r1"}


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    folder = tmp_path_factory.mktemp("promotion-store")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def client(store_uri, monkeypatch):
    """Model ``NAME`` with versions 1-3 (fresh each test), ``champion`` on v1."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    tracking.configure_tracking()
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    if client.search_registered_models(f"name = '{NAME}'"):
        client.delete_registered_model(NAME)
    client.create_registered_model(NAME)
    for _ in range(3):
        client.create_model_version(NAME, "file:///nowhere")
    client.set_registered_model_alias(NAME, CHAMPION_ALIAS, "1")
    yield client
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def champion(client) -> str:
    return str(client.get_registered_model(NAME).aliases[CHAMPION_ALIAS])


def gate_tags(client, version: str) -> dict:
    tags = client.get_model_version(NAME, version).tags
    return {key: value for key, value in tags.items() if key.startswith("gate.")}


def test_a_promotion_moves_the_champion_and_writes_the_tags(client):
    promotion.promote(NAME, "2", "1", TAGS)
    assert champion(client) == "2"
    assert gate_tags(client, "2") == TAGS


def test_a_champion_moved_since_the_gate_judged_is_not_overwritten(client):
    client.set_registered_model_alias(NAME, CHAMPION_ALIAS, "3")  # someone promoted v3
    with pytest.raises(SkbanditError) as caught:
        promotion.promote(NAME, "2", "1", TAGS)
    message = str(caught.value)
    assert "\n" not in message
    assert "'champion' is v3 now, but the gate judged v2 against v1" in message
    assert "compare again" in message
    assert champion(client) == "3"
    assert gate_tags(client, "2") == {}


READ_WAIT_S = 3.0
"""How long a promotion holds still after reading the champion, for the other to read too."""


def _promote_in_process(uri, version, barrier, after_read, results):
    """Promote ``version`` over v1; after its compare-and-set read it waits for the other
    process's read (at most READ_WAIT_S): without the lock both would read v1 and both move
    the alias; with it the other is still waiting for the lock, so the wait just ends."""
    import os
    import threading

    os.environ["MLFLOW_TRACKING_URI"] = uri
    from adapters import tracking
    from adapters.registry import promote as promotion
    from skbandit.exceptions import SkbanditError

    read = promotion._champion
    reads = []

    def read_then_wait(client, name):
        found = read(client, name)
        if not reads:
            reads.append(found)
            try:
                after_read.wait(timeout=READ_WAIT_S)
            except threading.BrokenBarrierError:
                pass  # the other promotion never got to read: it waits for the lock
        return found

    promotion._champion = read_then_wait
    tracking.configure_tracking(create=False)
    barrier.wait()  # both processes are ready: promote at the same moment
    try:
        promotion.promote(NAME, version, "1", {"gate.decision": "promoted"})
    except SkbanditError as error:
        results.put((version, "refused", str(error)))
    else:
        results.put((version, "promoted", ""))


def test_of_two_promotions_at_once_exactly_one_moves_the_champion(client, store_uri):
    context = multiprocessing.get_context("spawn")
    barrier, after_read, results = context.Barrier(2), context.Barrier(2), context.Queue()
    workers = [
        context.Process(
            target=_promote_in_process, args=(store_uri, v, barrier, after_read, results)
        )
        for v in ("2", "3")
    ]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    decisions = [decision for _, decision, _ in outcomes]
    assert sorted(decisions) == ["promoted", "refused"], outcomes
    (winner,) = [v for v, decision, _ in outcomes if decision == "promoted"]
    ((loser, _, message),) = [o for o in outcomes if o[1] == "refused"]
    assert champion(client) == winner
    assert "\n" not in message
    assert f"'champion' is v{winner} now, but the gate judged v{loser} against v1" in message
    assert gate_tags(client, winner) == {"gate.decision": "promoted"}
    assert gate_tags(client, loser) == {}


def test_an_interrupted_promotion_puts_the_champion_back_and_removes_its_tags(client, monkeypatch):
    real = MlflowClient.set_model_version_tag
    calls = []

    def interrupted_on_the_second_tag(self, name, version, key, value):
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", interrupted_on_the_second_tag)
    with pytest.raises(KeyboardInterrupt):
        promotion.promote(NAME, "2", "1", TAGS)
    assert champion(client) == "1"
    assert gate_tags(client, "2") == {}


def test_when_the_undo_fails_the_error_says_so(client, monkeypatch):
    def store_gone(*args, **kwargs):
        raise ConnectionError("store gone")

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", store_gone)
    monkeypatch.setattr(MlflowClient, "delete_model_version_tag", store_gone)
    with pytest.raises(ConnectionError) as caught:
        promotion.promote(NAME, "2", "1", TAGS)
    assert promotion.UNDO_FAILED in caught.value.__notes__
    assert champion(client) == "1"  # the alias itself was put back


def test_a_refusal_writes_its_tags_and_moves_nothing(client):
    refused = {**TAGS, "gate.decision": "refused"}
    promotion.record_decision(NAME, "2", refused)
    assert champion(client) == "1"
    assert gate_tags(client, "2") == refused


def test_the_lock_sits_beside_a_sqlite_store_and_is_per_server_otherwise(tmp_path):
    database = tmp_path / "mlflow.db"
    assert promotion.alias_lock_path(f"sqlite:///{database}") == tmp_path / "mlflow.db.aliases.lock"
    one = promotion.alias_lock_path("https://mlflow.example.com")
    other = promotion.alias_lock_path("https://mlflow.other.example.com")
    assert one != other
    assert one.parent == other.parent
