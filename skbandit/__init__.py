"""skbandit: an adaptive practice-item recommender built on a LinUCB contextual bandit.

Pure computation: the estimator, the context-feature pipeline, student and item context,
ranking policies, evaluation and the simulated school. No MLflow, no CLI.
"""

from skbandit.exceptions import SkbanditError
from skbandit.linucb import LinUCB

__all__ = ["LinUCB", "SkbanditError"]
__version__ = "0.1.0"
