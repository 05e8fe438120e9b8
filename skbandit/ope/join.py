"""Outcomes joined back to the served decisions that caused them, and evaluation inputs from
the served log (no rebuilding of candidate sets).

**Joining.** An outcome is an event (an attempt: ``user_id``, ``item_id``, ``timestamp``,
``correct``). The action of a decision is the item served first (``served_item_id``).

- An event that carries a ``decision_id`` (:data:`skbandit.schema.DECISION_ID`) belongs to
  that decision if the decision is in the log, is for the same student and served that item
  first, and the attempt is not earlier than the decision; otherwise it is counted as
  ``unknown_decision`` (no such decision in the log), ``other_model`` (a decision of another
  model), ``mismatched`` (another student or item) or ``out_of_order`` (before the decision).
- An event without one is matched to the **latest** decision that served that item first to
  that student at or before the attempt, at most ``window`` earlier (default
  :data:`DEFAULT_WINDOW`, 24 hours); events with no such decision are ``unmatched``.
- A decision answered more than once keeps its first attempt (its outcome); the later
  attempts are counted as ``duplicated``.

Nothing here raises on such events: they are counted in a :class:`JoinReport`. It raises a
one-line :class:`~skbandit.exceptions.SkbanditError` only when the log holds no decision of
the requested model at all, or a table lacks a needed column.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.ope import targets

DEFAULT_WINDOW = pd.Timedelta(hours=24)
"""How long after a decision an attempt at the served item still counts as its outcome."""
SERVED_ITEM = "served_item_id"
LOGGED_AT = "logged_at"
MODEL_NAME = "model_name"
OUTCOME_AT = "outcome_at"
DECISION_COLUMNS = (schema.DECISION_ID, LOGGED_AT, schema.USER_ID, SERVED_ITEM)
EVENT_COLUMNS = (schema.USER_ID, schema.ITEM_ID, schema.TIMESTAMP, schema.CORRECT)


@dataclass(frozen=True)
class JoinReport:
    """How the outcomes met the decisions (every event lands in exactly one count).

    ``matched = matched_by_id + matched_by_window``; ``other_model_decisions`` counts the
    log's decisions of other models (ignored); ``unanswered`` the decisions with no outcome.
    """

    events: int
    matched_by_id: int
    matched_by_window: int
    duplicated: int
    unmatched: int
    unknown_decision: int
    other_model: int
    mismatched: int
    out_of_order: int
    decisions: int
    unanswered: int
    other_model_decisions: int

    @property
    def matched(self) -> int:
        return self.matched_by_id + self.matched_by_window

    def summary(self) -> str:
        """One line for a terminal or a log."""
        return (
            f"{self.matched:,} of {self.events:,} outcomes joined to {self.decisions:,} "
            f"decisions ({self.matched_by_id:,} by decision_id, {self.matched_by_window:,} "
            f"within the window); {self.duplicated:,} duplicated, {self.unmatched:,} "
            f"unmatched, {self.unknown_decision:,} naming an unknown decision, "
            f"{self.other_model:,} of another model, {self.mismatched:,} mismatched, "
            f"{self.out_of_order:,} before their decision; {self.unanswered:,} decisions "
            "without an outcome"
        )


def join_outcomes(
    decisions: pd.DataFrame, events: pd.DataFrame, *, model_name=None, window=DEFAULT_WINDOW
) -> tuple[pd.DataFrame, JoinReport]:
    """Each answered decision with its outcome.

    Parameters
    ----------
    decisions : DataFrame
        The decision log's ``decisions`` table (``decision_id``, ``logged_at``, ``user_id``,
        ``served_item_id``, optionally ``model_name``).
    events : DataFrame
        Attempts (``user_id``, ``item_id``, ``timestamp``, ``correct``, optional
        ``decision_id``).
    model_name : str, optional
        Keep only this model's decisions (the others are counted, not joined).
    window : Timedelta or str, default=DEFAULT_WINDOW

    Returns
    -------
    joined : DataFrame
        The answered decisions (their columns) plus ``correct`` and ``outcome_at``, ordered
        by ``logged_at``.
    report : JoinReport

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> decisions = pd.DataFrame({"decision_id": ["d1", "d2"], "logged_at": [t, t],
    ...                           "user_id": ["u", "v"], "served_item_id": ["a", "b"]})
    >>> events = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "a", "c"],
    ...                        "timestamp": [t + pd.Timedelta(minutes=m) for m in (1, 2, 3)],
    ...                        "correct": [1, 0, 1]})
    >>> joined, report = join_outcomes(decisions, events)
    >>> joined[["decision_id", "correct"]].to_dict("records"), report.duplicated
    ([{'decision_id': 'd1', 'correct': 1}], 1)
    """
    _require(decisions, DECISION_COLUMNS, "decision log")
    _require(events, EVENT_COLUMNS, "events")
    window = pd.Timedelta(window)
    decisions, n_other_decisions, other_ids = _of_model(decisions, model_name)
    decisions = decisions.assign(**{LOGGED_AT: _utc(decisions[LOGGED_AT])})
    events = events.assign(**{schema.TIMESTAMP: _utc(events[schema.TIMESTAMP])})
    events = events.reset_index(drop=True).rename_axis("_event").reset_index()
    named = _named(events)
    by_id, counts = _match_by_id(events[named], decisions, other_ids)
    by_window, unmatched = _match_by_window(events[~named], decisions, window)
    candidates = pd.concat([by_id, by_window], ignore_index=True)
    candidates = candidates.sort_values([OUTCOME_AT, "_event"], kind="stable")
    first = ~candidates.duplicated(schema.DECISION_ID, keep="first")
    kept = candidates[first]
    joined = decisions.merge(
        kept[[schema.DECISION_ID, schema.CORRECT, OUTCOME_AT, "_by_id"]],
        on=schema.DECISION_ID,
        how="inner",
    )
    report = JoinReport(
        events=len(events),
        matched_by_id=int(kept["_by_id"].astype(bool).sum()),
        matched_by_window=int((~kept["_by_id"].astype(bool)).sum()),
        duplicated=int((~first).sum()),
        unmatched=unmatched,
        decisions=len(decisions),
        unanswered=len(decisions) - len(joined),
        other_model_decisions=n_other_decisions,
        **counts,
    )
    joined = joined.drop(columns="_by_id").sort_values(LOGGED_AT, kind="stable")
    return joined.reset_index(drop=True), report


def _of_model(decisions, model_name):
    if model_name is None or MODEL_NAME not in decisions.columns:
        return decisions, 0, set()
    mine = decisions[MODEL_NAME] == model_name
    if len(decisions) and not mine.any():
        found = ", ".join(sorted(map(str, decisions[MODEL_NAME].unique()))[:5])
        raise SkbanditError(
            f"the decision log holds no decision of model {model_name!r} (it has decisions of "
            f"{found}); pass the model that served them or another log"
        )
    other = set(decisions.loc[~mine, schema.DECISION_ID])
    return decisions[mine], int((~mine).sum()), other


def _named(events) -> np.ndarray:
    if schema.DECISION_ID not in events.columns:
        return np.zeros(len(events), dtype=bool)
    ids = events[schema.DECISION_ID]
    return (ids.notna() & (ids.astype(str).str.strip() != "")).to_numpy()


def _match_by_id(events, decisions, other_ids):
    if schema.DECISION_ID not in events.columns:
        events = events.assign(**{schema.DECISION_ID: pd.Series([], dtype=object)})
    merged = events.merge(
        decisions[[schema.DECISION_ID, LOGGED_AT, schema.USER_ID, SERVED_ITEM]].rename(
            columns={schema.USER_ID: "_user"}
        ),
        on=schema.DECISION_ID,
        how="left",
    )
    known = merged[LOGGED_AT].notna()
    other = ~known & merged[schema.DECISION_ID].isin(other_ids)
    same = (merged["_user"] == merged[schema.USER_ID]) & (
        merged[SERVED_ITEM] == merged[schema.ITEM_ID]
    )
    mismatched = known & ~same
    early = known & same & (merged[schema.TIMESTAMP] < merged[LOGGED_AT])
    good = known & same & ~early
    counts = {
        "unknown_decision": int((~known & ~other).sum()),
        "other_model": int(other.sum()),
        "mismatched": int(mismatched.sum()),
        "out_of_order": int(early.sum()),
    }
    return _outcomes(merged[good], by_id=True), counts


def _match_by_window(events, decisions, window):
    if events.empty or decisions.empty:
        return _outcomes(events.iloc[:0].assign(**{schema.DECISION_ID: []}), False), len(events)
    left = events.drop(columns=[schema.DECISION_ID], errors="ignore").sort_values(
        schema.TIMESTAMP, kind="stable"
    )
    right = (
        decisions[[schema.DECISION_ID, LOGGED_AT, schema.USER_ID, SERVED_ITEM]]
        .rename(columns={SERVED_ITEM: schema.ITEM_ID})
        .sort_values(LOGGED_AT, kind="stable")
    )
    merged = pd.merge_asof(
        left,
        right,
        left_on=schema.TIMESTAMP,
        right_on=LOGGED_AT,
        by=[schema.USER_ID, schema.ITEM_ID],
        direction="backward",
        tolerance=window,
    )
    found = merged[schema.DECISION_ID].notna()
    return _outcomes(merged[found], by_id=False), int((~found).sum())


def _outcomes(frame, by_id):
    out = (
        frame[[schema.DECISION_ID, schema.CORRECT, schema.TIMESTAMP, "_event"]]
        .rename(columns={schema.TIMESTAMP: OUTCOME_AT})
        .reset_index(drop=True)
    )
    return out.assign(_by_id=bool(by_id))


def _utc(values) -> pd.Series:
    values = pd.to_datetime(values)
    values = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    return values.astype("datetime64[ns, UTC]")  # merge_asof needs one resolution on both sides


def _require(frame, columns, what):
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SkbanditError(
            f"the {what} lacks column(s) {', '.join(missing)} (expected "
            f"{', '.join(columns)}); pass the table the log or export wrote"
        )


# --- evaluation inputs from the served log ------------------------------------------------

CHUNK_DECISIONS = 50_000
"""Decisions scored at once by :func:`served_inputs` (bounds memory on large logs)."""


@dataclass(frozen=True)
class ServedRows:
    """The logged candidates of the answered decisions, ready to score any target policy.

    ``rows`` are grouped by decision, in ``joined`` order, with ``decision_id`` replaced by
    the decision's position in ``joined`` and an ``is_logged`` flag on the item served first.
    Built once by :func:`served_rows` and scored by :func:`served_inputs` for each policy.
    """

    rows: pd.DataFrame
    n: int


def served_rows(joined: pd.DataFrame, candidates: pd.DataFrame) -> ServedRows:
    """Select and order the logged candidates of ``joined``'s decisions (see :class:`ServedRows`).

    Parameters
    ----------
    joined : DataFrame
        From :func:`join_outcomes`.
    candidates : DataFrame
        The log's candidates (``decision_id``, ``item_id``, model inputs, ``propensity``), as
        :meth:`adapters.decision_log.DecisionLog.read` returns them.
    """
    _require(
        candidates,
        (schema.DECISION_ID, schema.ITEM_ID, schema.PROPENSITY, *schema.MODEL_INPUT),
        "decision candidates",
    )
    n = len(joined)
    if n == 0:
        raise SkbanditError(
            "no answered decisions to evaluate (no outcome joined to the log); "
            "check --events and the decision log"
        )
    position = _lookup(
        pd.Index(joined[schema.DECISION_ID].to_numpy()), candidates[schema.DECISION_ID]
    )
    keep = np.flatnonzero(position >= 0)
    keep = keep[np.argsort(position[keep], kind="stable")]
    rows = candidates.take(keep).reset_index(drop=True)
    rows[schema.DECISION_ID] = position[keep]
    served = joined[SERVED_ITEM].to_numpy()[position[keep]]
    items = rows[schema.ITEM_ID]
    if isinstance(items.dtype, pd.CategoricalDtype):
        served_code = items.cat.categories.get_indexer(served)
        rows["is_logged"] = (served_code >= 0) & (items.cat.codes.to_numpy() == served_code)
    else:
        rows["is_logged"] = items.to_numpy() == served
    return ServedRows(rows, n)


def served_inputs(
    joined: pd.DataFrame,
    candidates,
    policy,
    *,
    reward_model=None,
    expectations=None,
    chunk_decisions=CHUNK_DECISIONS,
):
    """Estimator inputs of a target policy on answered served decisions.

    The logged candidate sets and first-slot propensities are used as logged (nothing is
    rebuilt); the action is ``served_item_id``, the reward the joined ``correct``.

    Parameters
    ----------
    joined : DataFrame
        From :func:`join_outcomes`.
    candidates : DataFrame or ServedRows
        The log's candidates (see :func:`served_rows`), or :func:`served_rows`'s result for
        them (prepared once when several policies are scored on the same decisions).
    policy, reward_model, expectations
        As in :func:`skbandit.ope.targets.off_policy_inputs`.

    Returns
    -------
    OffPolicyInputs
        Entry ``i`` is decision ``joined.iloc[i]``.
    """
    return served_inputs_of(
        joined,
        candidates,
        [(policy, reward_model)],
        expectations=expectations,
        chunk_decisions=chunk_decisions,
    )[0]


def served_inputs_of(
    joined: pd.DataFrame,
    candidates,
    policies,
    *,
    expectations=None,
    chunk_decisions=CHUNK_DECISIONS,
) -> list:
    """:func:`served_inputs` of several ``(policy, reward_model)`` pairs in one pass over the
    logged candidates (each chunk scored by every policy while it is at hand)."""
    if not isinstance(candidates, ServedRows):
        candidates = served_rows(joined, candidates)
    sums = [
        targets.TargetSums(candidates.n, policy, reward_model, expectations)
        for policy, reward_model in policies
    ]
    mu = np.zeros(candidates.n)
    for chunk in _decision_chunks(candidates.rows, chunk_decisions):
        logged = chunk["is_logged"].to_numpy()
        for target in sums:
            ids, starts = target.add(chunk, logged)
        mu[ids] = np.add.reduceat(
            np.where(logged, chunk[schema.PROPENSITY].to_numpy(np.float64), 0.0), starts
        )
    _check_logged(mu, sums[0].sizes)
    rewards = joined[schema.CORRECT].to_numpy(np.float64)
    return [target.inputs(rewards, mu) for target in sums]


def _lookup(index: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each value in ``index`` (-1 if absent); categoricals by their categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        found = index.get_indexer(values.cat.categories)
        return np.where(codes >= 0, found[codes], -1)
    return index.get_indexer(values.to_numpy())


def _decision_chunks(rows, chunk_decisions):
    codes = rows[schema.DECISION_ID].to_numpy()
    bounds = np.searchsorted(codes, np.arange(0, codes[-1] + chunk_decisions, chunk_decisions))
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            yield rows.iloc[lo:hi].reset_index(drop=True)


def _check_logged(mu, sizes):
    missing = np.flatnonzero(sizes == 0)
    if len(missing):
        raise SkbanditError(
            f"{len(missing)} answered decision(s) have no candidates in the log "
            "(a truncated or partial log); export the log again or evaluate "
            "with --since after the gap"
        )
    bad = ~(mu > 0) | ~(mu <= 1)
    if bad.any():
        raise SkbanditError(
            f"{int(bad.sum())} decision(s) lack a propensity in (0, 1] for the "
            "item served first (the log's candidates must include it); this "
            "log cannot be evaluated off-policy"
        )
