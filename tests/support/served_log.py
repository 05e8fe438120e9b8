"""A served decision log built from a simulated school's logged events (for tests).

Each selected event becomes one served decision: its candidate set and model inputs are the
ones :func:`skbandit.ope.decisions.logged_decisions` rebuilds, its ``propensity`` the school's
rule+epsilon logging policy's first-slot probability, logged one second before the attempt.
Evaluating on this log must therefore give exactly what evaluating on the events gives.
"""

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.ope import decisions as logged
from skbandit.ope import targets

CANDIDATE_COLUMNS = (
    schema.DECISION_ID,
    schema.ITEM_ID,
    *schema.MODEL_INPUT,
    "served_rank",
    "propensity",
    "slot_propensity",
)


def served_log(events, items, rows, *, model_name="skbandit-linucb", epsilon=0.1, top_k=5):
    """``(decisions, candidates)`` tables in the decision log's columns."""
    rows = np.asarray(rows)
    ids = np.array([f"d{row}" for row in rows])
    chunks = []
    policy = targets.logging_policy(epsilon, top_k)
    for chunk in logged.logged_decisions(events, items, rows=rows):
        chunk = chunk.assign(propensity=policy(chunk))
        chunk[schema.DECISION_ID] = ids[chunk[schema.DECISION_ID].to_numpy()]
        chunk["served_rank"] = np.where(chunk[logged.IS_LOGGED], 1, pd.NA)
        chunk["slot_propensity"] = np.where(chunk[logged.IS_LOGGED], chunk["propensity"], np.nan)
        chunks.append(chunk[list(CANDIDATE_COLUMNS)])
    picked = events.iloc[rows]
    decisions = pd.DataFrame(
        {
            schema.DECISION_ID: ids,
            "logged_at": (picked[schema.TIMESTAMP] - pd.Timedelta(seconds=1)).to_numpy(),
            schema.USER_ID: picked[schema.USER_ID].to_numpy(),
            schema.TOPIC: picked[schema.TOPIC].to_numpy(),
            "model_name": model_name,
            "model_version": "1",
            "settings": "{}",
            "seeded": False,
            "served_item_id": picked[schema.ITEM_ID].to_numpy(),
        }
    )
    decisions["logged_at"] = pd.to_datetime(decisions["logged_at"], utc=True)
    return decisions, pd.concat(chunks, ignore_index=True)


def write_export(decisions, candidates, folder, *, chained=True):
    """The parquet export of a log holding these decisions
    (:meth:`adapters.decision_log.DecisionLog.export_parquet`): written through a real log, so
    its hash chain verifies; ``chained=False`` writes the tables as given (no chain)."""
    from adapters.decision_log import DecisionLog

    folder.mkdir(parents=True, exist_ok=True)
    if not chained:
        decisions.to_parquet(folder / "decisions.parquet", index=False)
        candidates.to_parquet(folder / "decision_candidates.parquet", index=False)
        return folder
    log = DecisionLog(str(folder.parent / f"{folder.name}.db"))
    log.append(decisions, candidates)
    log.export_parquet(folder)
    return folder
