"""The simulated school as an online environment: candidates -> choice -> outcome + learning.

A policy is run against the school like this (vectorised over the students who act now)::

    env = SchoolEnv(SchoolConfig(n_students=200, seed=1))
    while not env.done:
        cands = env.candidates()            # one row per (decision, candidate item)
        chosen = my_policy(cands)           # one item id per decision, in decision order
        outcome = env.step(chosen)          # correct, latency, help + ground truth
    events, truth = env.history(policy="my-policy")

Fast policies (the simulation study, the logging policy) use the same loop on arrays, with
no pandas per step: :meth:`SchoolEnv.candidate_arrays` gives the candidates as a
:class:`CandidateArrays` (item indices, the raw model-input matrix, the true success
probabilities) and :meth:`SchoolEnv.step_indices` takes one item index per decision and
returns a :class:`StepOutcome`. The DataFrame methods are built on these two.

A **step** is one ``slot_seconds`` time slot (2 minutes by default) of the school year: the
students whose next attempt falls into the slot act, at most one attempt each. Decisions in a
step are numbered ``0..n-1`` (``decision_id``) in the order of :meth:`SchoolEnv.acting`.

Context (identical to :mod:`skbandit.context`'s definitions, computed incrementally by
:class:`~skbandit.sim.running_context.SchoolContext`), from completed attempts only (start
plus latency): student features use every earlier attempt of the student; item features
(``item_attempts``, ``item_accuracy``) count the attempts completed strictly before the
decision's time, so an attempt in progress is never visible.

The pieces live in their own modules: outcomes (correctness, latency, help, learning) in
:mod:`skbandit.sim.outcomes`, the clock of slots and sessions in
:mod:`skbandit.sim.clock`, and the log behind :meth:`SchoolEnv.history` in
:mod:`skbandit.sim.records`.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.sim.clock import SchoolTimetable
from skbandit.sim.learning import StudentLearning, observed_probability
from skbandit.sim.outcomes import (  # noqa: F401  (learning_gain is re-exported)
    StepOutcome,
    draw_attempt,
    learning_gain,
    success_probability,
)
from skbandit.sim.records import (  # noqa: F401  (TRUTH_COLUMNS is re-exported)
    ABILITY_AFTER,
    ABILITY_BEFORE,
    P_TRUE,
    TRUTH_COLUMNS,
    SchoolRecords,
    to_utc,
)
from skbandit.sim.running_context import SchoolContext
from skbandit.sim.world import SchoolConfig, World, build_world, default_school_config

DECISION_ID = schema.DECISION_ID
"""Column numbering the decisions of the current step (0..n-1)."""


@dataclass(frozen=True)
class CandidateArrays:
    """The current step's candidates as arrays: one row per (decision, candidate item).

    The rows are those of :meth:`SchoolEnv.candidates`, in the same order: grouped by
    decision in ``decision`` order, every decision with at least one row.

    Attributes
    ----------
    decision : ndarray of int of shape (n_rows,)
        Decision of each row, ``0..n_decisions-1`` (non-decreasing).
    item : ndarray of int of shape (n_rows,)
        Item index into the world's item arrays (``env.world.item_ids[item]`` is the id).
    X : ndarray of float64 of shape (n_rows, len(columns))
        Raw model input: the columns ``columns`` (all of ``schema.MODEL_INPUT`` in order
        unless fewer were asked for).
    p_true : ndarray of shape (n_rows,)
        True success probability of the item for the decision's student now (ground
        truth for oracles and regret; never a policy's input).
    n_decisions : int
        Decisions of the step.
    columns : tuple of str
        Names of ``X``'s columns.

    Examples
    --------
    >>> env = SchoolEnv(SchoolConfig(n_students=10, seed=0))
    >>> cands = env.candidate_arrays()
    >>> cands.X.shape == (len(env.candidates()), len(schema.MODEL_INPUT))
    True
    """

    decision: np.ndarray
    item: np.ndarray
    X: np.ndarray
    p_true: np.ndarray
    n_decisions: int
    columns: tuple[str, ...] = schema.MODEL_INPUT

    def column(self, name: str) -> np.ndarray:
        """Raw model-input column ``name`` (one of :attr:`columns`) of every row."""
        if name not in self.columns:
            raise SkbanditError(
                f"no column {name!r} in these candidate arrays (they hold "
                f"{self.columns}); ask env.candidate_arrays() for it"
            )
        return self.X[:, self.columns.index(name)]


class SchoolEnv:
    """A simulated school that policies are run against online.

    Parameters
    ----------
    config : SchoolConfig, optional
        The school; :func:`default_school_config` when omitted. Everything is drawn from
        ``config.seed``, so equal configs give equal worlds and equal outcome noise.

    Attributes
    ----------
    config : SchoolConfig
    items : DataFrame
        The published items table (canonical columns).
    true_items : DataFrame
        The items' true parameters incl. ``hidden_effect`` (for evaluation only).
    n_steps : int
        Steps taken so far.
    """

    def __init__(self, config: SchoolConfig | None = None):
        self.config = config or default_school_config()
        seeds = np.random.SeedSequence(self.config.seed).spawn(2)
        self.world: World = build_world(self.config, np.random.default_rng(seeds[0]))
        self.policy_seed = seeds[1]
        self.items = self.world.items
        self.true_items = self.world.true_items
        w = self.world
        self.learning = StudentLearning(w.ability0, self.config)
        self._context = SchoolContext(
            len(w.user_ids),
            len(w.topics),
            len(w.item_ids),
            *(
                self.items[name].to_numpy(np.float64)
                for name in (schema.DIFFICULTY, schema.DISCRIMINATION)
            ),
        )
        self._item_index = pd.Index(w.item_ids)
        self._timetable = SchoolTimetable(w, self.config.slot_seconds)
        self._records = SchoolRecords(w)
        self.n_steps = 0

    @property
    def ability(self) -> np.ndarray:
        """Every student's true ability per topic now (logits; ``learning.ability``)."""
        return self.learning.ability

    # --- what happens now ----------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when the school year is over (no student acts any more)."""
        return self._timetable.acting.size == 0

    @property
    def n_decisions(self) -> int:
        """Decisions in the current step."""
        return int(self._timetable.acting.size)

    def acting(self) -> pd.DataFrame:
        """The decisions of the current step.

        Returns
        -------
        DataFrame
            ``decision_id, user_id, topic, timestamp`` (UTC), one row per acting student.
        """
        sess = self._timetable.sessions
        return pd.DataFrame(
            {
                DECISION_ID: np.arange(sess.size),
                schema.USER_ID: self.world.user_ids[self.world.session_student[sess]],
                schema.TOPIC: self.world.topics[self.world.session_topic[sess]],
                schema.TIMESTAMP: to_utc(self._timetable.times),
            }
        )

    def student_context(self, names=None) -> pd.DataFrame:
        """Student context of each decision (``schema.STUDENT_CONTEXT`` and ``N_PRIOR``).

        ``names`` computes other columns of :func:`skbandit.context.student_features` instead
        (``ability_sd``, the ability posterior's sd, is not a model input).
        """
        students, topics = self._acting_students(), self._acting_topics()
        if names is None:
            ctx = self._context.student_columns(students, topics)
        else:
            ctx = self._context.student_columns(students, topics, names=tuple(names))
        return pd.DataFrame({DECISION_ID: np.arange(self.n_decisions), **ctx})

    def acting_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Student and topic index (into ``world.user_ids``, ``world.topics``) of each of the
        current step's decisions, in decision order (what a per-(student, topic) policy such
        as the target experiment reads)."""
        return self._acting_students(), self._acting_topics()

    @property
    def slot_start(self) -> float:
        """Epoch seconds at which the current step's time slot begins (inf when done)."""
        return self._timetable.slot_start

    def candidate_arrays(self, columns=schema.MODEL_INPUT) -> CandidateArrays:
        """Candidates of every decision as arrays (no pandas): see :class:`CandidateArrays`.

        Parameters
        ----------
        columns : sequence of str, default ``schema.MODEL_INPUT``
            Raw model-input columns to put in ``X``, in this order; asking for fewer
            computes only those (the logging policy needs just mastery and difficulty).

        Returns
        -------
        CandidateArrays
            The rows of :meth:`candidates`; by default ``X`` equals
            ``candidates()[list(schema.MODEL_INPUT)]``, and ``p_true`` equals
            :meth:`true_success_probability` of those rows.
        """
        columns = tuple(columns)
        unknown = [name for name in columns if name not in schema.MODEL_INPUT]
        if unknown:
            raise SkbanditError(
                f"unknown candidate columns {unknown} (expected names from "
                f"schema.MODEL_INPUT: {schema.MODEL_INPUT})"
            )
        rows, item = self._candidate_index()
        student = self._context.student_columns(
            self._acting_students(),
            self._acting_topics(),
            [c for c in columns if c in schema.STUDENT_CONTEXT],
        )
        w, ctx = self.world, self._context
        at = self._timetable.times[rows]
        item_columns = {
            schema.DIFFICULTY: lambda: w.difficulty_published[item],
            schema.DISCRIMINATION: lambda: w.discrimination_published[item],
            schema.GUESSING: lambda: np.zeros(item.size),  # simulated items have no guessing
            schema.ITEM_ATTEMPTS: lambda: ctx.item_attempts(item, at),
            schema.ITEM_ACCURACY: lambda: ctx.item_accuracy(item, at),
        }
        X = np.empty((rows.size, len(columns)))
        for j, name in enumerate(columns):
            X[:, j] = student[name][rows] if name in student else item_columns[name]()
        p_true = self._p_true(self._acting_students()[rows], item)
        return CandidateArrays(rows, item, X, p_true, self.n_decisions, columns)

    def candidates(self) -> pd.DataFrame:
        """Candidates of every decision: the topic's items without drift-flagged ones.

        Returns
        -------
        DataFrame
            ``decision_id`` followed by ``schema.CANDIDATE_COLUMNS``; one row per
            (decision, item), grouped by decision in ``decision_id`` order (the rows of
            :meth:`candidate_arrays`).
        """
        cands = self.candidate_arrays()
        rows, item, w = cands.decision, cands.item, self.world
        frame = {
            DECISION_ID: rows,
            schema.USER_ID: w.user_ids[self._acting_students()][rows],
            schema.ITEM_ID: w.item_ids[item],
            schema.TOPIC: w.topics[w.item_topic[item]],
        }
        frame.update(zip(schema.MODEL_INPUT, cands.X.T, strict=True))
        frame[schema.ITEM_ATTEMPTS] = frame[schema.ITEM_ATTEMPTS].astype(np.int64)
        return pd.DataFrame(frame)

    def true_success_probability(self, candidates: pd.DataFrame | None = None) -> np.ndarray:
        """True P(correct) of each candidate row for its student now (oracle/regret only).

        Parameters
        ----------
        candidates : DataFrame, optional
            Rows with ``decision_id`` and ``item_id`` of the current step; defaults to
            :meth:`candidates`.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        if candidates is None:
            candidates = self.candidates()
        rows = candidates[DECISION_ID].to_numpy()
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_decisions):
            raise SkbanditError(
                f"decision_id must be in 0..{self.n_decisions - 1} (this step's decisions); "
                f"found {rows.min()}..{rows.max()}"
            )
        item = self._lookup(candidates[schema.ITEM_ID])
        return self._p_true(self._acting_students()[rows], item)

    # --- acting ------------------------------------------------------------------------

    def step(self, item_ids, propensity=None) -> pd.DataFrame:
        """Show one item per decision, draw the outcomes and apply learning.

        Parameters
        ----------
        item_ids : array-like of str of shape (n_decisions,)
            The item shown at each decision, in ``decision_id`` order; it must be a
            non-drift item of the decision's topic.
        propensity : array-like of shape (n_decisions,), optional
            Probability the policy had of showing that item; recorded in
            :meth:`history` (column ``propensity``) when given at every step.

        Returns
        -------
        DataFrame
            ``decision_id, user_id, item_id, topic, timestamp, correct, latency_ms,
            help_requested, p_true, ability_before, ability_after``.
        """
        item_ids = np.asarray(item_ids, dtype=object).ravel()
        self._check_count(item_ids.size)
        acting = self.acting()
        out = self.step_indices(self._lookup(item_ids), propensity)
        return acting.assign(
            **{
                schema.ITEM_ID: self.world.item_ids[out.item],
                schema.CORRECT: out.correct.astype(np.int64),
                schema.LATENCY_MS: out.latency_ms.astype(np.int64),
                schema.HELP_REQUESTED: out.help_requested,
                P_TRUE: out.p_true,
                ABILITY_BEFORE: out.ability_before,
                ABILITY_AFTER: out.ability_after,
            }
        )

    def step_indices(self, item, propensity=None) -> StepOutcome:
        """:meth:`step` with item indices: the array interface, no pandas.

        Parameters
        ----------
        item : array-like of int of shape (n_decisions,)
            Index (into ``env.world.item_ids``) of the item shown at each decision, in
            decision order, e.g. ``cands.item[rows]`` for rows of :meth:`candidate_arrays`;
            it must be a non-drift item of the decision's topic.
        propensity : array-like of shape (n_decisions,), optional
            As in :meth:`step`.

        Returns
        -------
        StepOutcome
            The outcome of every decision (the school then moves to its next step).
        """
        w = self.world
        item = self._check_items(np.asarray(item).ravel())
        sess = self._timetable.sessions
        s, t = w.session_student[sess], self._timetable.times
        attempt = w.attempt0[sess] + self._timetable.attempts
        opening = self._timetable.attempts == 0
        if opening.any():
            self.learning.forget(s[opening], t[opening])
        p = self._p_true(s, item)
        correct, latency, help_ = draw_attempt(w, s, p, attempt)
        before, after = self.learning.learn(
            s, w.item_topic[item], p, correct, w.noise["learn"][attempt]
        )
        self.learning.touch(s, t)
        done = t + latency / 1000.0
        self._context.update(s, w.item_topic[item], item, correct, latency, help_, done)
        prop = (
            np.full(s.size, np.nan)
            if propensity is None
            else np.asarray(propensity, dtype=np.float64).reshape(s.size)
        )
        self._records.append(sess, s, item, t, correct, latency, help_, p, before, after, prop)
        self._timetable.finish_step(done + w.noise["think"][attempt])
        self._context.release(self._timetable.slot_start)
        self.n_steps += 1
        return StepOutcome(s, item, t, correct, latency, help_, p, before, after)

    def history(self, policy: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Everything logged so far, sorted by timestamp.

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
        return self._records.frames(policy)

    # --- internals -------------------------------------------------------------------

    def _acting_students(self) -> np.ndarray:
        return self.world.session_student[self._timetable.sessions]

    def _acting_topics(self) -> np.ndarray:
        return self.world.session_topic[self._timetable.sessions]

    def _candidate_index(self):
        """(decision row, item index) of every candidate, grouped by decision."""
        table = self.world.topic_items[self._acting_topics()]
        rows, cols = np.nonzero(table >= 0)
        return rows, table[rows, cols]

    def _p_true(self, student, item) -> np.ndarray:
        w = self.world
        theta = self.learning.ability[student, w.item_topic[item]]
        return observed_probability(success_probability(w, theta, item), self.config)

    def _lookup(self, item_ids) -> np.ndarray:
        item = self._item_index.get_indexer(np.asarray(item_ids, dtype=object))
        if (item < 0).any():
            unknown = np.asarray(item_ids, dtype=object)[item < 0][0]
            raise SkbanditError(f"unknown item_id '{unknown}' (expected an id from env.items)")
        return item

    def _check_count(self, n_items: int) -> None:
        if n_items != self.n_decisions:
            raise SkbanditError(
                f"step expected one item per decision ({self.n_decisions}); got {n_items}"
            )

    def _check_items(self, item: np.ndarray) -> np.ndarray:
        """``item`` if it holds one candidate item index per decision, else an error."""
        w = self.world
        self._check_count(item.size)
        if item.size and (item.min() < 0 or item.max() >= w.item_ids.size):
            raise SkbanditError(
                f"item indices must be in 0..{w.item_ids.size - 1} (into "
                f"env.world.item_ids); found {item.min()}..{item.max()}"
            )
        topic = w.session_topic[self._timetable.sessions]
        wrong = (w.item_topic[item] != topic) | w.drift[item]
        if wrong.any():
            bad = np.flatnonzero(wrong)[0]
            raise SkbanditError(
                f"decision {bad}: item '{w.item_ids[item[bad]]}' is not a candidate (expected "
                f"a non-drift item of topic {w.topics[topic[bad]]})"
            )
        return item
