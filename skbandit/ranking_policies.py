"""The served rankings as policy objects: :func:`skbandit.policy.rank_linucb` and
:func:`skbandit.policy.rank_rule_based` behind :class:`~skbandit.policy_protocol.StochasticPolicy`.

A ranking object is one student's decision: its candidates are one candidate frame
(:func:`skbandit.context.candidate_frame`), so :meth:`choose` returns one row index.
``rank`` gives the shown list, as the functions do.

>>> import pandas as pd
>>> from skbandit.policy_protocol import StochasticPolicy
>>> frame = pd.DataFrame({"item_id": ["a", "b"], "mastery": [0.5, 0.5],
...                       "difficulty": [2.0, 0.1]})
>>> rule = RuleRanking(top_k=1)
>>> isinstance(rule, StochasticPolicy), rule.probabilities(frame).tolist()
(True, [0.0, 1.0])
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from skbandit import irt, schema
from skbandit.exploration import draw_order
from skbandit.policy import action_probabilities, rank_linucb, rank_rule_based, score_candidates
from skbandit.ranking_settings import RankingSettings, as_settings


@dataclass(frozen=True)
class LinUCBRanking:
    """A trained model ranking by ``settings`` (see :func:`skbandit.policy.rank_linucb`)."""

    pipeline: Any
    """The :class:`skbandit.model.TrainedModel` (a model version)."""
    settings: RankingSettings | None = None

    def rank(self, candidates: pd.DataFrame, rng: np.random.Generator | None = None):
        """The shown items, best first (``schema.RECOMMENDATION_COLUMNS``)."""
        return rank_linucb(self.pipeline, candidates, self.settings, rng)

    def probabilities(self, candidates: pd.DataFrame) -> np.ndarray:
        """:func:`skbandit.policy.action_probabilities`: each row's chance of slot 1."""
        return action_probabilities(self.pipeline, candidates, self.settings)

    def choose(self, candidates: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """The row :meth:`rank` puts first (the same draw for the same ``rng`` state)."""
        settings = as_settings(self.settings)
        score = score_candidates(self.pipeline, candidates, settings).score
        first, _ = draw_order(score, 1, min(settings.top_k, len(score)), rng, settings)
        return first


@dataclass(frozen=True)
class RuleRanking:
    """The seed's rule (:func:`skbandit.policy.rank_rule_based`): deterministic, so its
    first item has probability 1."""

    top_k: int = 5

    def rank(self, candidates: pd.DataFrame, rng: np.random.Generator | None = None):
        """The shown items, closest in difficulty to the student's level first."""
        return rank_rule_based(candidates, self.top_k)

    def probabilities(self, candidates: pd.DataFrame) -> np.ndarray:
        """1 on the rule's first row, 0 elsewhere (drift-flagged rows are never chosen)."""
        out = np.zeros(len(candidates))
        out[self.choose(candidates, np.random.default_rng(0))] = 1.0
        return out

    def choose(self, candidates: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """The rule's first row (ties: the earliest row); ``rng`` plays no part."""
        rows = np.arange(len(candidates))
        if schema.DRIFT_FLAG in candidates.columns:
            rows = rows[~candidates[schema.DRIFT_FLAG].fillna(False).to_numpy(dtype=bool)]
        distance = irt.rule_distance(
            candidates[schema.MASTERY].to_numpy(np.float64)[rows],
            candidates[schema.DIFFICULTY].to_numpy(np.float64)[rows],
        )
        return rows[np.argsort(distance, kind="stable")[:1]]
