"""The simulated school's running context: per-student and per-item counts, updated per step.

:class:`SchoolContext` is what :class:`~skbandit.sim.env.SchoolEnv` knows about its
students and items from the attempts so far. It keeps the counts incrementally (they grow
with every step instead of being rebuilt from the event log) and turns them into features
with :func:`skbandit.context.student_features`, the function the offline context uses.

Like :mod:`skbandit.context`, the context counts only **completed** attempts (start plus
latency). Student features use every earlier attempt of the student: a student's next attempt
always starts after the previous one was submitted. Item features (``item_attempts``,
``item_accuracy``) count the attempts completed strictly before each decision's time:
:meth:`SchoolContext.update` queues an attempt with its completion time,
:meth:`SchoolContext.release` moves the ones completed before a slot into the running counts,
and the item methods add the queued ones completed before each row's ``at``. An attempt in
progress is invisible.
"""

import numpy as np

from skbandit import ability as ability_model
from skbandit import schema
from skbandit.context import DEFAULT_DISCRIMINATION, RECENT_WINDOW, student_features

STUDENT_COLUMNS = (*schema.STUDENT_CONTEXT, schema.N_PRIOR)
"""Columns :meth:`SchoolContext.student_columns` can compute."""


class SchoolContext:
    """Running attempt counts of every student and item, and the context features from them.

    Parameters
    ----------
    n_students, n_topics, n_items : int
        Sizes of the world; students, topics and items are indices ``0..n-1``.
    difficulty, discrimination, guessing : ndarray of shape (n_items,), optional
        The items' published IRT parameters, which the ability uses (default b = 0,
        ``DEFAULT_DISCRIMINATION``, c = 0).

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
    ability_sums, topic_ability_sums : ndarray of float of shape (3, n_students[, n_topics])
        The ability posterior's sums ``G, H, B`` (:mod:`skbandit.ability`) over all of each
        student's attempts and per topic.
    item_attempt_counts, item_correct_counts : ndarray of int64 of shape (n_items,)
        Completed attempts (and correct ones) at each item released so far.

    Notes
    -----
    The student features are :func:`skbandit.context.student_features` of these counts (the
    definitions are in :mod:`skbandit.context`); ``item_accuracy = (c_i + 1) / (n_i + 2)``
    with ``n_i`` attempts at the item, ``c_i`` of them correct.

    Examples
    --------
    >>> ctx = SchoolContext(n_students=1, n_topics=1, n_items=2)
    >>> for _ in range(3):
    ...     ctx.update(np.array([0]), np.array([0]), np.array([1]), np.array([True]),
    ...                np.array([4000.0]), np.array([False]))
    >>> cols = ctx.student_columns(np.array([0]), np.array([0]))
    >>> round(float(cols["mastery"][0]), 4), int(cols["n_prior_events"][0])
    (0.7389, 3)
    >>> ctx.item_attempts(np.array([0, 1])).tolist(), ctx.item_accuracy(np.array([1])).tolist()
    ([0, 3], [0.8])
    """

    def __init__(
        self,
        n_students: int,
        n_topics: int,
        n_items: int,
        difficulty=None,
        discrimination=None,
        guessing=None,
    ):
        self.item_parameters = (
            np.zeros(n_items) if difficulty is None else np.asarray(difficulty, np.float64),
            np.full(n_items, DEFAULT_DISCRIMINATION)
            if discrimination is None
            else np.asarray(discrimination, np.float64),
            np.zeros(n_items) if guessing is None else np.asarray(guessing, np.float64),
        )
        self.ability_sums = np.zeros((3, n_students))
        self.topic_ability_sums = np.zeros((3, n_students, n_topics))
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
        self._pending = (np.empty(0, np.int64), np.empty(0, bool), np.empty(0))

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
        features = [name for name in names if name != schema.N_PRIOR]
        # the ring buffers are gathered only for the features that read them
        sums = self.ability_sums[:, s]
        topic_sums = self.topic_ability_sums[:, s, topic]
        values = (
            student_features(
                score=sums[0],
                info=sums[1],
                info_b=sums[2],
                topic_score=topic_sums[0],
                topic_info=topic_sums[1],
                topic_info_b=topic_sums[2],
                n=self.attempts[s],
                n_correct=self.correct[s],
                n_topic=self.topic_attempts[s, topic],
                n_topic_correct=self.topic_correct[s, topic],
                recent_correct=(
                    np.nansum(self.recent_correct[s], axis=1)
                    if schema.RECENT_ACCURACY in features
                    else None
                ),
                latency_lags=self.recent_latency_ms[s] if schema.RECENT_SPEED in features else None,
                help_sum=self.help_sum[s],
                help_known=self.help_count[s],
                names=features,
            )
            if features
            else {}
        )
        return {
            name: self.attempts[s] if name == schema.N_PRIOR else values[name] for name in names
        }

    def item_attempts(self, item, at=None) -> np.ndarray:
        """Completed attempts at each item in ``item`` (int array of its shape).

        ``at`` (epoch seconds, one per row) also counts the queued attempts completed
        strictly before it; without it only the released counts.
        """
        return self.item_attempt_counts[item] + self._queued(item, at)[0]

    def item_accuracy(self, item, at=None) -> np.ndarray:
        """Smoothed accuracy ``(correct + 1) / (attempts + 2)`` of each item in ``item``."""
        extra_attempts, extra_correct = self._queued(item, at)
        return (self.item_correct_counts[item] + extra_correct + 1.0) / (
            self.item_attempt_counts[item] + extra_attempts + 2.0
        )

    def _queued(self, item, at):
        """Queued attempts (and correct ones) at each row's item completed before its ``at``."""
        items, right, times = self._pending
        if at is None or items.size == 0:
            return 0, 0
        item, at = np.asarray(item)[:, None], np.asarray(at)[:, None]
        hit = (items[None, :] == item) & (times[None, :] < at)
        return hit.sum(axis=1), (hit & right[None, :]).sum(axis=1)

    def update(self, student, topic, item, correct, latency_ms, help_requested, done=None) -> None:
        """Add one step's attempts; every argument is an array of shape (n_attempts,).

        A student attempts at most once per step (the per-student updates index by
        ``student`` without accumulating repeats); items may repeat. ``done`` (epoch
        seconds) is each attempt's completion time: the item counts then wait for
        :meth:`release`; without it they count at once.
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
        evidence = np.stack(
            ability_model.attempt_evidence(
                correct, *(values[item] for values in self.item_parameters)
            )
        )
        # every earlier attempt of the student fades by one step (skbandit.ability)
        self.ability_sums[:, s] *= ability_model.FORGETTING
        self.topic_ability_sums[:, s, :] *= ability_model.FORGETTING
        self.ability_sums[:, s] += evidence
        self.topic_ability_sums[:, s, topic] += evidence
        if done is None:
            self._count_items(item, correct)
            return
        items, right, times = self._pending
        self._pending = (
            np.concatenate([items, item]),
            np.concatenate([right, np.asarray(correct, dtype=bool)]),
            np.concatenate([times, np.asarray(done, dtype=np.float64)]),
        )

    def release(self, now: float) -> None:
        """Count the queued item attempts completed strictly before ``now`` (epoch seconds)."""
        items, right, times = self._pending
        ready = times < now
        if ready.any():
            self._count_items(items[ready], right[ready])
            self._pending = (items[~ready], right[~ready], times[~ready])

    def _count_items(self, item, correct) -> None:
        n_items = len(self.item_attempt_counts)
        self.item_attempt_counts += np.bincount(item, minlength=n_items)
        self.item_correct_counts += np.bincount(item, weights=correct, minlength=n_items).astype(
            np.int64
        )
