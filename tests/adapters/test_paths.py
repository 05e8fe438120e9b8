"""Where the tracking store and the default-school cache live (adapters.paths, one rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import paths, tracking
from adapters.data import datasets
from adapters.model import log as model_logging

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = '[project]\nname = "{name}"\nversion = "0"\n'


@pytest.fixture
def nowhere(monkeypatch, tmp_path) -> Path:
    """No store or data overrides, a fake home, and the current directory outside any
    checkout."""
    for name in ("MLFLOW_TRACKING_URI", datasets.ENV_DATA_DIR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert paths.find_checkout(outside) is None, "a skbandit pyproject.toml above tmp_path"
    return tmp_path


def _project(folder: Path, name: str = "skbandit") -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name))
    return folder


def _locations() -> tuple[str, Path]:
    return tracking.embedded_tracking_uri(), datasets.default_school_dir()


def test_installed_package_never_writes_into_site_packages(nowhere, monkeypatch):
    site = _project(nowhere / "venv" / "lib" / "python3.11" / "site-packages")  # even with a
    monkeypatch.setattr(paths, "CODE_ROOT", site)  # stray pyproject.toml beside the packages
    home = nowhere / "home" / ".skbandit"
    assert paths.source_checkout() is None
    assert _locations() == (
        f"sqlite:///{home}/mlruns/mlflow.db",
        home / ".cache" / "default-school",
    )
    assert model_logging.git_commit() == "unknown"  # not the commit of a repo around the venv


def test_the_checkout_around_the_current_directory_wins(nowhere, monkeypatch):
    monkeypatch.setattr(paths, "CODE_ROOT", nowhere / "venv" / "site-packages")
    checkout = _project(nowhere / "work" / "skbandit")
    inner = checkout / "notebooks" / "week1"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert _locations() == (
        f"sqlite:///{checkout}/mlruns/mlflow.db",
        checkout / ".cache" / "default-school",
    )


def test_another_projects_pyproject_is_not_a_checkout(nowhere, monkeypatch):
    monkeypatch.setattr(paths, "CODE_ROOT", nowhere / "venv" / "site-packages")
    ours = _project(nowhere / "ours")
    theirs = _project(ours / "theirs", name="their-app")
    monkeypatch.chdir(theirs)
    assert paths.project_dir() == ours
    (ours / "pyproject.toml").write_text("not [toml")
    assert paths.project_dir() == nowhere / "home" / ".skbandit"


def test_running_from_this_checkout_uses_its_mlruns_from_any_directory(nowhere):
    assert paths.source_checkout() == REPO
    assert _locations() == (
        f"sqlite:///{REPO}/mlruns/mlflow.db",
        REPO / ".cache" / "default-school",
    )


def test_environment_variables_win(nowhere, monkeypatch):
    import mlflow

    uri = f"sqlite:///{nowhere / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv(datasets.ENV_DATA_DIR, str(nowhere / "data"))
    try:
        assert tracking.configure_tracking() == uri
        assert mlflow.get_tracking_uri() == uri
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    assert datasets.default_school_dir() == nowhere / "data"


def test_no_model_code_file_is_left_to_be_stored_with_a_version():
    assert not (Path(model_logging.__file__).parent / "model_code.py").exists()
