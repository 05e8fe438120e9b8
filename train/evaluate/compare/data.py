"""The logged decisions ``python -m train.evaluate compare`` evaluates on.

Two sources, one shape (:class:`Logged`):

- ``--events`` (or the simulated school): events with a ``propensity`` column; the candidate
  sets are rebuilt from the events (:func:`skbandit.ope.targets.off_policy_inputs`).
- ``--decisions LOG --events OUTCOMES``: the served decision log (a database URL, a SQLite
  file, or a folder with the parquet export ``decisions.parquet`` +
  ``decision_candidates.parquet``) with the outcomes joined back
  (:func:`skbandit.ope.join.join_outcomes`); the logged candidate sets and propensities are
  used as served (:func:`skbandit.ope.join.served_inputs`), nothing is rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from rich.console import Console

    from train.evaluate.compare.options import CompareOptions


@dataclass(frozen=True)
class Logged:
    """Decisions to evaluate: ``inputs([(policy, reward_model), ...])`` scores targets on them
    (one :class:`~skbandit.ope.targets.OffPolicyInputs` each, in order)."""

    inputs: Callable
    students: np.ndarray
    first: pd.Timestamp
    n: int
    source: str
    join_summary: str = ""
    progress: np.ndarray | None = None
    """With ``--reward progress``: each decision's delayed learning reward (NaN: unknown)."""


def load_logged(options: CompareOptions, console: Console, model_name: str) -> Logged:
    if options.decisions is not None:
        return _served(options, console, model_name)
    return _rebuilt(options, console)


def _rebuilt(options: CompareOptions, console: Console) -> Logged:
    import numpy as np
    import pandas as pd

    from adapters.data.datasets import load_school
    from skbandit import schema
    from skbandit.context import historical_contexts
    from skbandit.exceptions import SkbanditError
    from skbandit.learning_progress import logged_rewards
    from skbandit.ope import targets

    events, items, source = load_school(options.events, options.items)
    if schema.PROPENSITY not in events.columns:
        raise SkbanditError(
            f"{source} has no {schema.PROPENSITY!r} column (the logging policy's probability "
            "of each shown item), so off-policy estimates are impossible; log propensities "
            "when serving or evaluate on the simulated school"
        )
    known = events[schema.ITEM_ID].isin(items[schema.ITEM_ID])
    if not known.all():
        console.print(
            f"[yellow]skipped {int((~known).sum())} events whose item is not in the "
            "items table[/yellow]"
        )
    events = events[known].sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    selected = events[schema.PROPENSITY].notna().to_numpy()
    since = _since(options)
    if since is not None:
        selected = selected & (events[schema.TIMESTAMP] >= since).to_numpy()
    if not selected.any():
        raise SkbanditError(
            f"no logged decisions with a propensity to evaluate in {source}"
            f"{' since ' + options.since if options.since else ''}; check "
            "--events/--since"
        )
    rows = np.flatnonzero(selected)
    contexts = historical_contexts(events, items)  # once, for both policies

    def inputs(policies):
        return [
            targets.off_policy_inputs(
                events, items, policy, reward_model=reward_model, contexts=contexts, rows=rows
            )
            for policy, reward_model in policies
        ]

    progress = logged_rewards(events, contexts)[rows] if options.reward == "progress" else None
    return Logged(
        inputs,
        events[schema.USER_ID].to_numpy()[rows],
        pd.Timestamp(events[schema.TIMESTAMP].iloc[rows[0]]),
        len(rows),
        source,
        progress=progress,
    )


def _served(options: CompareOptions, console: Console, model_name: str) -> Logged:
    from adapters.data.datasets import read_events
    from skbandit import schema
    from skbandit.exceptions import SkbanditError
    from skbandit.ope import join

    if options.events is None:
        raise SkbanditError(
            "--decisions needs --events: the outcomes (attempts) to join to the "
            "logged decisions; pass the events file"
        )
    decisions, candidates, source = read_decision_log(str(options.decisions))
    if getattr(options, "verify_log", True):
        from adapters.decision_log.chain import require_intact

        require_intact(decisions, candidates, source)
    since = _since(options)
    if since is not None:
        decisions = decisions[decisions[join.LOGGED_AT] >= since]
    events, _ = read_events(options.events)
    joined, report = join.join_outcomes(decisions, events, model_name=model_name)
    console.print(report.summary(), highlight=False, soft_wrap=True)
    if joined.empty:
        raise SkbanditError(
            f"no outcome in {options.events} joins a decision of {model_name} in {source} "
            f"({report.summary()}); check that the events follow the served decisions"
        )

    rows = join.served_rows(joined, candidates)

    def inputs(policies):
        return join.served_inputs_of(joined, rows, policies)

    progress = _served_progress(joined, events, options) if options.reward == "progress" else None
    return Logged(
        inputs,
        joined[schema.USER_ID].to_numpy(),
        joined[join.LOGGED_AT].iloc[0],
        len(joined),
        source,
        report.summary(),
        progress,
    )


def _served_progress(joined, events, options: CompareOptions):
    """Each joined decision's delayed learning reward, from its outcome and the attempts the
    events file holds after it (needs the items table for their difficulties)."""
    import numpy as np
    import pandas as pd

    from adapters.data.datasets import read_items
    from skbandit import schema
    from skbandit.context import historical_contexts
    from skbandit.exceptions import SkbanditError
    from skbandit.learning_progress import logged_rewards
    from skbandit.ope import join

    if options.items is None:
        raise SkbanditError(
            "--reward progress with --decisions needs --items: the delayed "
            "reward reads the difficulty of the attempts after each decision"
        )
    items, _ = read_items(options.items)
    events = events[events[schema.ITEM_ID].isin(items[schema.ITEM_ID])]
    events = events.sort_values(schema.TIMESTAMP, kind="stable").reset_index(drop=True)
    reward = logged_rewards(events, historical_contexts(events, items))
    key = [schema.USER_ID, schema.ITEM_ID, schema.TIMESTAMP]
    table = events[key].assign(_reward=reward).drop_duplicates(key)
    outcomes = pd.DataFrame(
        {
            schema.USER_ID: joined[schema.USER_ID],
            schema.ITEM_ID: joined[join.SERVED_ITEM],
            schema.TIMESTAMP: joined[join.OUTCOME_AT],
        }
    ).reset_index(drop=True)
    return outcomes.merge(table, on=key, how="left")["_reward"].to_numpy(np.float64)


def read_decision_log(where: str):
    """``(decisions, candidates, source)`` from a parquet export folder or a log URL/file."""
    from adapters.decision_log import read_source

    return read_source(where, option="--decisions ")


def _since(options: CompareOptions):
    import pandas as pd

    from skbandit.exceptions import SkbanditError

    if options.since is None:
        return None
    try:
        since = pd.Timestamp(options.since)
    except ValueError as error:
        raise SkbanditError(
            f"--since {options.since!r} is not an ISO time ({error}); use e.g. 2024-03-01"
        ) from None
    return since.tz_localize("UTC") if since.tzinfo is None else since.tz_convert("UTC")
