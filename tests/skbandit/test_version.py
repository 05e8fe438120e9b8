"""The version is written once (``skbandit.__version__``) and the changelog names it."""

import re
import tomllib
import warnings
from pathlib import Path

import skbandit

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_reads_the_version_from_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "the version is written in skbandit/__init__.py"
    assert "version" in project["project"]["dynamic"]
    from setuptools.config.pyprojecttoml import read_configuration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls [tool.setuptools] "beta"
        built = read_configuration(ROOT / "pyproject.toml")["project"]["version"]
    assert built == skbandit.__version__


def test_the_changelog_has_an_unreleased_section_and_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert skbandit.__version__ in headings
