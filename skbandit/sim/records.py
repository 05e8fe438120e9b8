"""The simulated school's log: every attempt so far, turned into events and ground truth.

:class:`SchoolRecords` collects the attempts of each step of
:class:`~skbandit.sim.env.SchoolEnv` as arrays and builds, on request, the canonical
events (what a real school would have logged) and the aligned ground truth (what only the
simulator knows), both sorted by timestamp.
"""

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.sim.world import World

P_TRUE = "p_true"
"""True success probability of an attempt (ground truth, never in events)."""
ABILITY_BEFORE = "ability_before"
ABILITY_AFTER = "ability_after"
TRUTH_COLUMNS = (P_TRUE, ABILITY_BEFORE, ABILITY_AFTER)

RECORD_FIELDS = (
    "session",
    "student",
    "item",
    "time",
    "correct",
    "latency",
    "help",
    "p_true",
    "before",
    "after",
    "propensity",
)
"""What :meth:`SchoolRecords.append` takes for every attempt of a step, in this order."""


class SchoolRecords:
    """The attempts of a simulated school, one step at a time.

    Parameters
    ----------
    world : World
        The school the attempts happen in (its ids name the students, items and topics).

    Examples
    --------
    >>> from skbandit.sim.world import SchoolConfig, build_world
    >>> records = SchoolRecords(build_world(SchoolConfig(n_students=10, seed=0),
    ...                                     np.random.default_rng(0)))
    >>> events, truth = records.frames()
    >>> len(events), list(truth.columns) == list(TRUTH_COLUMNS)
    (0, True)
    """

    def __init__(self, world: World):
        self._world = world
        self._records: dict[str, list] = {name: [] for name in RECORD_FIELDS}

    def append(self, *values: np.ndarray) -> None:
        """Record one step's attempts.

        Parameters
        ----------
        *values : ndarray of shape (n_decisions,)
            One array per name of :data:`RECORD_FIELDS`, in that order: session, student
            and item indices, epoch seconds, correct, latency (ms), help requested, true
            success probability, ability before and after, propensity (NaN when unknown).
        """
        for name, value in zip(RECORD_FIELDS, values, strict=True):
            self._records[name].append(value)

    def frames(self, policy: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Everything recorded so far as events and ground truth, sorted by timestamp.

        Parameters
        ----------
        policy : str, optional
            Value of the events' ``policy`` column (omitted when None).

        Returns
        -------
        events : DataFrame
            Canonical events (``propensity`` included when every step recorded one).
        truth : DataFrame
            Aligned with ``events``: ``p_true, ability_before, ability_after``.
        """
        rec = {k: np.concatenate(v) if v else np.empty(0) for k, v in self._records.items()}
        order = np.argsort(rec["time"], kind="stable")
        rec = {k: v[order] for k, v in rec.items()}
        w = self._world
        student = rec["student"].astype(np.int64)
        item = rec["item"].astype(np.int64)
        users = w.user_ids[student]
        number = w.session_number[rec["session"].astype(np.int64)]
        events = pd.DataFrame(
            {
                schema.USER_ID: users,
                schema.ITEM_ID: w.item_ids[item],
                schema.TOPIC: w.topics[w.item_topic[item]],
                schema.TIMESTAMP: to_utc(rec["time"]),
                schema.CORRECT: rec["correct"].astype(np.int64),
                schema.LATENCY_MS: rec["latency"].astype(np.int64),
                schema.HELP_REQUESTED: rec["help"].astype(bool),
                schema.ACTION_SEQUENCE_ID: pd.Series(users, dtype=object)
                + "-"
                + pd.Series(number, dtype=str).str.zfill(3),
            }
        )
        if not np.isnan(rec["propensity"]).any():
            events[schema.PROPENSITY] = rec["propensity"]
        if policy is not None:
            events[schema.POLICY] = policy
        truth = pd.DataFrame(
            {P_TRUE: rec["p_true"], ABILITY_BEFORE: rec["before"], ABILITY_AFTER: rec["after"]}
        )
        return events, truth


def to_utc(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Seconds since the epoch -> UTC timestamps (millisecond precision).

    Examples
    --------
    >>> str(to_utc(np.array([1.0]))[0])
    '1970-01-01 00:00:01+00:00'
    """
    ms = np.round(np.asarray(seconds, dtype=np.float64) * 1000.0).astype(np.int64)
    return pd.to_datetime(ms, unit="ms", utc=True).as_unit("ns")
