"""skbandit: an adaptive practice-item recommender built on a LinUCB contextual bandit.

Pure computation: the estimator, the context-feature pipeline, student and item context,
ranking policies, off-policy evaluation (:mod:`skbandit.ope`), the simulated school
(:mod:`skbandit.sim`) and the simulation study (:mod:`skbandit.study`). No MLflow, no CLI,
no file paths.

``LinUCB`` is imported on first use, so that light modules (``skbandit.ranking_settings``)
can be imported by command-line ``--help`` without importing scikit-learn.
"""

from skbandit.exceptions import SkbanditError

__all__ = ["LinUCB", "SkbanditError"]
__version__ = "0.1.0"
"""The version, written only here (pyproject.toml reads it; CHANGELOG.md says what changed)."""


def __getattr__(name: str):
    if name == "LinUCB":
        from skbandit.linucb import LinUCB

        return LinUCB
    raise AttributeError(f"module 'skbandit' has no attribute {name!r}")
