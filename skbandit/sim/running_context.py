"""The simulated school's running context: per-student and per-item counts, updated per step.

:class:`SchoolContext` is what :class:`~skbandit.sim.env.SchoolEnv` knows about its
students and items from the attempts so far. It computes the same features as
:mod:`skbandit.context` (whose constants it uses), but incrementally: the counts grow with
every step instead of being rebuilt from the event log.

Student features use every earlier attempt of the student. Item features (``item_attempts``,
``item_accuracy``) count whole earlier steps, because :meth:`SchoolContext.update` adds one
step's attempts at once: the attempts of other students in the same time slot are not yet
visible (a lag below one slot).
"""

import numpy as np

from skbandit import schema
from skbandit.context import (
    COLD_START_MIN_EVENTS,
    DEFAULT_HELP_TENDENCY,
    DEFAULT_MASTERY,
    DEFAULT_RECENT_ACCURACY,
    DEFAULT_RECENT_SPEED,
    RECENT_SPEED_SCALE_MS,
    RECENT_WINDOW,
    SKILL_TARGET,
)

STUDENT_COLUMNS = (*schema.STUDENT_CONTEXT, schema.N_PRIOR)
"""Columns :meth:`SchoolContext.student_columns` can compute."""


class SchoolContext:
    """Running attempt counts of every student and item, and the context features from them.

    Parameters
    ----------
    n_students, n_topics, n_items : int
        Sizes of the world; students, topics and items are indices ``0..n-1``.

    Attributes
    ----------
    attempts, correct : ndarray of int64 of shape (n_students,)
        Attempts (and correct ones) of each student so far.
    topic_attempts, topic_correct : ndarray of int64 of shape (n_students, n_topics)
        The same per topic.
    recent_correct, recent_latency_ms : ndarray of float of shape (n_students, RECENT_WINDOW)
        Ring buffers of the latest ``RECENT_WINDOW`` outcomes (NaN before the buffer fills);
        attempt ``m`` of a student (0-based) is in column ``m % RECENT_WINDOW``.
    help_sum : ndarray of float of shape (n_students,)
        Help requests of each student so far.
    help_count : ndarray of int64 of shape (n_students,)
        Attempts with a known help flag (every attempt in the simulator).
    item_attempt_counts, item_correct_counts : ndarray of int64 of shape (n_items,)
        Attempts (and correct ones) at each item in the steps so far.

    Notes
    -----
    With ``n`` attempts of the student, ``c`` of them correct, and ``n_k, c_k`` on the topic:
    ``mastery`` is ``DEFAULT_MASTERY`` while ``n < COLD_START_MIN_EVENTS``, else
    ``(c_k + 1) / (n_k + 2)`` once ``n_k >= COLD_START_MIN_EVENTS``, else ``(c + 1) / (n + 2)``;
    ``skill_gap = max(0, SKILL_TARGET - mastery)``. ``recent_accuracy`` is the mean and
    ``recent_speed`` the median latency over ``RECENT_SPEED_SCALE_MS`` (clipped to [0, 1]) of
    the latest ``RECENT_WINDOW`` attempts; ``help_tendency`` the share of attempts with help.
    Cold students get the ``DEFAULT_*`` values. ``item_accuracy = (c_i + 1) / (n_i + 2)``.

    Examples
    --------
    >>> ctx = SchoolContext(n_students=1, n_topics=1, n_items=2)
    >>> for _ in range(3):
    ...     ctx.update(np.array([0]), np.array([0]), np.array([1]), np.array([True]),
    ...                np.array([4000.0]), np.array([False]))
    >>> cols = ctx.student_columns(np.array([0]), np.array([0]))
    >>> float(cols["mastery"][0]), int(cols["n_prior_events"][0])
    (0.8, 3)
    >>> ctx.item_attempts(np.array([0, 1])).tolist(), ctx.item_accuracy(np.array([1])).tolist()
    ([0, 3], [0.8])
    """

    def __init__(self, n_students: int, n_topics: int, n_items: int):
        self.attempts = np.zeros(n_students, np.int64)
        self.correct = np.zeros(n_students, np.int64)
        self.topic_attempts = np.zeros((n_students, n_topics), np.int64)
        self.topic_correct = np.zeros((n_students, n_topics), np.int64)
        self.recent_correct = np.full((n_students, RECENT_WINDOW), np.nan)
        self.recent_latency_ms = np.full((n_students, RECENT_WINDOW), np.nan)
        self.help_sum = np.zeros(n_students)
        self.help_count = np.zeros(n_students, np.int64)
        self.item_attempt_counts = np.zeros(n_items, np.int64)
        self.item_correct_counts = np.zeros(n_items, np.int64)

    def student_columns(self, student, topic, names=STUDENT_COLUMNS) -> dict[str, np.ndarray]:
        """Student-context columns ``names`` (from :data:`STUDENT_COLUMNS`) of each row.

        Parameters
        ----------
        student, topic : ndarray of int of shape (n_rows,)
            The student of each row and the topic it practises.
        names : sequence of str, default :data:`STUDENT_COLUMNS`
            Only these columns are computed.

        Returns
        -------
        dict of str to ndarray of shape (n_rows,)
        """
        s = student
        n = self.attempts[s]
        cold = n < COLD_START_MIN_EVENTS
        mastery = (self._mastery(s, topic) if {schema.MASTERY, schema.SKILL_GAP} & set(names)
                   else None)
        compute = {
            schema.MASTERY: lambda: mastery,
            schema.RECENT_ACCURACY: lambda: self._recent_accuracy(s, cold),
            schema.RECENT_SPEED: lambda: self._recent_speed(s, cold),
            schema.HELP_TENDENCY: lambda: np.where(
                cold | (self.help_count[s] == 0), DEFAULT_HELP_TENDENCY,
                self.help_sum[s] / np.maximum(self.help_count[s], 1)),
            schema.SKILL_GAP: lambda: np.maximum(0.0, SKILL_TARGET - mastery),
            schema.N_PRIOR: lambda: n,
        }
        return {name: compute[name]() for name in names}

    def item_attempts(self, item) -> np.ndarray:
        """Attempts at each item in ``item`` (int array of its shape) in the steps so far."""
        return self.item_attempt_counts[item]

    def item_accuracy(self, item) -> np.ndarray:
        """Smoothed accuracy ``(correct + 1) / (attempts + 2)`` of each item in ``item``."""
        return (self.item_correct_counts[item] + 1.0) / (self.item_attempt_counts[item] + 2.0)

    def update(self, student, topic, item, correct, latency_ms, help_requested) -> None:
        """Add one step's attempts; every argument is an array of shape (n_attempts,).

        A student attempts at most once per step (the per-student updates index by
        ``student`` without accumulating repeats); items may repeat.
        """
        s = student
        slot = self.attempts[s] % RECENT_WINDOW
        self.recent_correct[s, slot] = correct
        self.recent_latency_ms[s, slot] = latency_ms
        self.attempts[s] += 1
        self.correct[s] += correct
        self.topic_attempts[s, topic] += 1
        self.topic_correct[s, topic] += correct
        self.help_sum[s] += help_requested
        self.help_count[s] += 1
        n_items = len(self.item_attempt_counts)
        self.item_attempt_counts += np.bincount(item, minlength=n_items)
        self.item_correct_counts += np.bincount(item, weights=correct,
                                                minlength=n_items).astype(np.int64)

    def _mastery(self, s, k) -> np.ndarray:
        n, n_topic = self.attempts[s], self.topic_attempts[s, k]
        overall = (self.correct[s] + 1.0) / (n + 2.0)
        on_topic = (self.topic_correct[s, k] + 1.0) / (n_topic + 2.0)
        return np.where(n < COLD_START_MIN_EVENTS, DEFAULT_MASTERY,
                        np.where(n_topic >= COLD_START_MIN_EVENTS, on_topic, overall))

    def _recent_accuracy(self, s, cold) -> np.ndarray:
        recent = self.recent_correct[s]
        known = ~np.isnan(recent)
        accuracy = np.nansum(recent, axis=1) / np.maximum(known.sum(axis=1), 1)
        return np.where(cold, DEFAULT_RECENT_ACCURACY, accuracy)

    def _recent_speed(self, s, cold) -> np.ndarray:
        median = _row_nanmedian(self.recent_latency_ms[s])
        speed = np.clip(median / RECENT_SPEED_SCALE_MS, 0, 1)
        return np.where(cold | np.isnan(speed), DEFAULT_RECENT_SPEED, speed)


def _row_nanmedian(matrix: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for an all-NaN row), without warnings."""
    ordered = np.sort(matrix, axis=1)
    count = (~np.isnan(matrix)).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    low = np.take_along_axis(ordered, lo[:, None], axis=1)[:, 0]
    high = np.take_along_axis(ordered, hi[:, None], axis=1)[:, 0]
    return np.where(count > 0, (low + high) / 2.0, np.nan)
