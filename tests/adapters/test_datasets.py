"""Where the CLI and the warm-start job find their data (adapters.data.datasets)."""

import pytest

from adapters.data import datasets
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.sim.generate import SchoolConfig

TINY = SchoolConfig(
    n_students=15, seed=0, start_date="2024-01-02", end_date="2024-01-12", attempts_per_student=20
)


@pytest.fixture
def tiny_default(monkeypatch, tmp_path):
    """The default school shrunk to a fortnight, cached under ``tmp_path``."""
    monkeypatch.setattr(datasets, "default_school_config", lambda: TINY)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(datasets.ENV_EVENTS, raising=False)
    monkeypatch.delenv(datasets.ENV_ITEMS, raising=False)
    return tmp_path / "cache"


def test_default_school_is_generated_once_and_cached(tiny_default):
    assert datasets.default_school_dir() == tiny_default
    events, items, source = datasets.load_school()
    assert source == "default-school(seed=0)"
    assert {"events.parquet", "items.parquet", "school.json"} <= {
        p.name for p in tiny_default.iterdir()
    }
    stamp = (tiny_default / "events.parquet").stat().st_mtime_ns
    again, _ = datasets.load_default_school()
    assert (tiny_default / "events.parquet").stat().st_mtime_ns == stamp
    assert again.equals(events)
    assert str(events[schema.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert events[schema.ITEM_ID].isin(items[schema.ITEM_ID]).all()


def test_other_seed_gets_its_own_cache(tiny_default):
    events, _, source = datasets.load_school(seed=4)
    assert source == "default-school(seed=4)"
    assert (tiny_default / "seed-4" / "events.parquet").is_file()
    assert len(events) > 0


def test_explicit_paths_and_environment_variables(tiny_default, tmp_path, monkeypatch):
    events, items = datasets.load_default_school()
    datasets.write_school(events.head(50), items, tmp_path / "mine")
    mine = (tmp_path / "mine" / "events.parquet", tmp_path / "mine" / "items.parquet")
    loaded, _, source = datasets.load_school(*mine)
    assert len(loaded) == 50 and source.startswith(str(mine[0]))
    monkeypatch.setenv(datasets.ENV_EVENTS, str(mine[0]))
    monkeypatch.setenv(datasets.ENV_ITEMS, str(mine[1]))
    assert len(datasets.load_school()[0]) == 50


def test_paths_must_come_together(tiny_default, monkeypatch):
    with pytest.raises(SkbanditError, match="give --events and --items together"):
        datasets.load_school("events.parquet", None)
    monkeypatch.setenv(datasets.ENV_ITEMS, "items.parquet")
    with pytest.raises(SkbanditError, match=r"give \$SKBANDIT_EVENTS and \$SKBANDIT_ITEMS"):
        datasets.load_school()


def test_repo_cache_is_used_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    folder = datasets.default_school_dir()
    assert folder.parts[-2:] == (".cache", "default-school")
    assert (folder.parent.parent / "adapters" / "data" / "datasets.py").is_file()
