"""Ranking a batch request of many students' candidate rows (the model server's path).

:func:`rank_requests` takes the request as a frame; :func:`rank_request_rows` takes it as
arrays already checked (the REST server's fast path, :mod:`adapters.model.pyfunc`). Both rank
each student's rows by the rule of :func:`skbandit.policy.rank_linucb`.
"""

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.exploration import draw_order, first_slot_probabilities
from skbandit.policy import exploration_flags, require_positive, score_candidates, shown_count
from skbandit.ranking_settings import RankingSettings, as_settings
from skbandit.uncertainty import interval_inputs_of, interval_of_columns

FIRST_SLOT_PROPENSITY = "first_slot_propensity"
"""Column of :func:`rank_requests`: probability of each row being ranked first."""


def rank_requests(pipeline, frame, settings: RankingSettings | None = None, rng=None):
    """Rank every student's candidate rows of a batch request (used by the model server).

    The rows are scored in one pass; each student's rows (grouped by ``user_id``) are then
    ordered completely by the same rule as :func:`rank_linucb` (students in order of first
    appearance, drawing from one ``rng``).

    Parameters
    ----------
    pipeline, settings, rng
        As in :func:`rank_linucb`.
    frame : DataFrame of shape (n_rows, ...)
        One row per (student, candidate item): ``user_id``, ``item_id`` and
        ``schema.MODEL_INPUT``.

    Returns
    -------
    DataFrame of shape (n_rows, 13)
        In request order with ``frame``'s index: ``user_id``, ``item_id``,
        ``expected_reward``, ``success_low``, ``success_high`` (the interval,
        :func:`skbandit.uncertainty.candidate_interval`), ``uncertainty``, ``ucb_bonus``,
        ``ucb``, ``rank`` (1.. within the student),
        ``recommended`` (``rank <= top_k``), ``is_exploration``, ``propensity`` (of the
        row's slot given the earlier slots, as in :func:`rank_linucb`) and
        ``first_slot_propensity`` (probability of being ranked first, as in
        :func:`action_probabilities`).
    """
    settings = as_settings(settings)
    if schema.USER_ID not in frame.columns:
        raise SkbanditError(
            f"request is missing column {schema.USER_ID!r} (expected one row "
            f"per student and candidate item)"
        )
    shown_count(settings.top_k, len(frame))
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite score is refused
        features, _ = pipeline.candidate_features(frame)
    users, items = (frame[c].to_numpy() for c in (schema.USER_ID, schema.ITEM_ID))
    columns = rank_request_rows(
        pipeline, users, items, features, interval_inputs_of(frame), settings, rng
    )
    return pd.DataFrame(columns, index=frame.index)


def rank_request_rows(
    pipeline, user_ids, item_ids, features, interval_inputs, settings=None, rng=None
) -> dict:
    """:func:`rank_requests`' answer as a dict of arrays, for a request already checked with
    its feature rows computed once (``features``, as :func:`candidate_features` gives them).

    ``interval_inputs`` maps the columns the success interval reads (the rows' ``mastery``,
    item parameters and, where known, ``ability_sd``; :func:`interval_inputs_of`) to arrays.
    """
    settings = as_settings(settings)
    rng = np.random.default_rng() if rng is None else rng
    top_k = settings.top_k
    shown_count(top_k, len(user_ids))
    scored = score_candidates(pipeline, {schema.ITEM_ID: item_ids}, settings, features=features)
    n_rows = len(user_ids)
    rank = np.zeros(n_rows, dtype=np.int64)
    propensity = np.ones(n_rows)
    first = np.ones(n_rows)
    explore = np.zeros(n_rows, dtype=bool)
    for rows in student_rows(user_ids):
        score = scored.score[rows]
        chosen, prob = draw_order(score, len(rows), top_k, rng, settings)
        rank[rows[chosen]] = np.arange(1, len(rows) + 1)
        propensity[rows[chosen]] = prob
        first[rows] = first_slot_probabilities(score, settings)
        explore[rows] = exploration_flags(scored.base[rows], top_k)
    require_positive(propensity[rank <= top_k], settings)
    low, high = interval_of_columns(pipeline, interval_inputs, scored.expected, scored.std)
    return {
        schema.USER_ID: user_ids,
        schema.ITEM_ID: item_ids,
        schema.EXPECTED_REWARD: scored.expected,
        schema.SUCCESS_LOW: low,
        schema.SUCCESS_HIGH: high,
        schema.UNCERTAINTY: (high - low) / 2.0,
        schema.UCB_BONUS: scored.bonus,
        schema.UCB: scored.expected + scored.bonus,
        schema.RANK: rank,
        "recommended": rank <= top_k,
        schema.IS_EXPLORATION: explore & (rank <= top_k),
        schema.PROPENSITY: propensity,
        FIRST_SLOT_PROPENSITY: first,
    }


def student_rows(user_ids):
    """Row positions of each student, students in order of first appearance.

    A request for one student (the usual case) is one group without hashing the ids.
    """
    if np.all(user_ids == user_ids[0]):
        return [np.arange(len(user_ids))]
    groups = pd.factorize(user_ids)[0]
    order = np.argsort(groups, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
