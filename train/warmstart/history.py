"""Turn loaded events and items into the replay's inputs: time order, contexts, what to learn."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import historical_contexts
from skbandit.exceptions import SkbanditError


@dataclass
class History:
    """Events ready for replay.

    Attributes
    ----------
    events : DataFrame
        The events that are learned from, in time order.
    contexts : DataFrame
        Raw model input for each of those events (context strictly before it).
    n_unknown_items : int
        Events skipped because their item is not in the items table.
    n_context_only : int
        Events used only as context (already learned by the model being continued).
    data_hash : str
        SHA-256 of the learned events' canonical columns.
    """

    events: pd.DataFrame
    contexts: pd.DataFrame
    n_unknown_items: int
    n_context_only: int
    data_hash: str

    @property
    def n_events(self) -> int:
        """Number of learned events (an engine may keep only the first rows in ``events``)."""
        return len(self.events)

    @property
    def trained_until(self) -> pd.Timestamp:
        """Time of the last learned event."""
        return self.events[schema.TIMESTAMP].max()


def prepare_history(
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    max_events: int | None = None,
    learned_until: pd.Timestamp | None = None,
) -> History:
    """Sort events by time, skip unknown items, compute contexts, pick the events to learn.

    Events whose item is missing from the items table cannot be featurised: they are
    skipped and counted. With ``max_events`` only the earliest events are used. Events at
    or before ``learned_until`` (the end of what a continued model already learned) are
    context only: they shape later contexts but are not learned again.
    """
    known = events[schema.ITEM_ID].isin(items[schema.ITEM_ID]).to_numpy()
    n_unknown = int((~known).sum())
    ordered = events[known] if n_unknown else events
    if not ordered[schema.TIMESTAMP].is_monotonic_increasing:  # the loaders already sort
        ordered = ordered.sort_values(schema.TIMESTAMP, kind="stable")
    ordered = ordered.reset_index(drop=True)
    if max_events is not None:
        ordered = ordered.iloc[:max_events]
    if ordered.empty:
        detail = (
            f" ({n_unknown} events name items missing from the items table)" if n_unknown else ""
        )
        raise SkbanditError(
            f"no events to train on{detail}; pass an events file with at least one attempt "
            "on a known item"
        )
    contexts = historical_contexts(ordered, items)
    learn = np.ones(len(ordered), dtype=bool)
    if learned_until is not None:
        learn = (ordered[schema.TIMESTAMP] > learned_until).to_numpy()
        if not learn.any():
            raise SkbanditError(
                f"no events after {learned_until.isoformat()}, where the continued model's "
                "training ended; pass an events file with newer attempts"
            )
    learned = ordered[learn].reset_index(drop=True)
    return History(
        events=learned,
        contexts=contexts[learn].reset_index(drop=True),
        n_unknown_items=n_unknown,
        n_context_only=int((~learn).sum()),
        data_hash=events_hash(learned),
    )


def events_hash(events: pd.DataFrame) -> str:
    """A content hash of the canonical event columns (order-sensitive)."""
    columns = [schema.USER_ID, schema.ITEM_ID, schema.TIMESTAMP, schema.CORRECT]
    row_hashes = pd.util.hash_pandas_object(events[columns], index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()
