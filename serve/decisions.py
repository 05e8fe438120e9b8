"""``skbandit trace --use-rl --log-decision``: a CLI recommendation recorded in the decision log.

The decision has the same shape as one served over REST (:mod:`adapters.decision_log`): every
eligible candidate with its model inputs and first-slot propensity, the shown items with
their ranks and slot propensities, the model version and the settings.
"""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd

from adapters.decision_log import CANDIDATE_COLUMNS, DECISION_COLUMNS, DecisionLog, new_decision_ids
from skbandit import schema
from skbandit.policy import action_probabilities
from skbandit.ranking_settings import SETTING_NAMES


def log_decision(
    pipeline, week, recs: pd.DataFrame, policy, info: dict, log: DecisionLog | None = None
) -> str:
    """Append the decision behind ``recs`` (``trace``'s LinUCB list) and return its id."""
    decision_id = new_decision_ids(1)[0]
    candidates = week.candidates.reset_index(drop=True)
    ranking = policy.ranking
    settings = {name: getattr(ranking, name) for name in SETTING_NAMES}
    settings = {k: v.value if hasattr(v, "value") else v for k, v in settings.items()}
    settings["alpha"] = float(info["alpha"] if ranking.alpha is None else ranking.alpha)
    settings["seed"] = policy.seed
    shown = dict(
        zip(
            recs[schema.ITEM_ID],
            zip(recs[schema.RANK], recs[schema.PROPENSITY], strict=True),
            strict=True,
        )
    )
    slots = [shown.get(item, (None, None)) for item in candidates[schema.ITEM_ID]]
    table = candidates[[schema.ITEM_ID, *schema.MODEL_INPUT]].assign(
        decision_id=decision_id,
        served_rank=pd.array([rank for rank, _ in slots], dtype="Int64"),
        propensity=action_probabilities(pipeline, candidates, ranking),
        slot_propensity=np.array([np.nan if p is None else p for _, p in slots], dtype=float),
    )
    decision = pd.DataFrame(
        [
            {
                "decision_id": decision_id,
                "logged_at": datetime.datetime.now(datetime.UTC),
                "user_id": week.user_id,
                "topic": week.topic,
                "model_name": info["name"],
                "model_version": str(info["version"]),
                "settings": json.dumps(settings, sort_keys=True),
                "seeded": policy.seed is not None,
                "served_item_id": recs[schema.ITEM_ID].iloc[0],
            }
        ]
    )
    (log or DecisionLog()).append(decision[list(DECISION_COLUMNS)], table[list(CANDIDATE_COLUMNS)])
    return decision_id
