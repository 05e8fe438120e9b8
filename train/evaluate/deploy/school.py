"""The simulated school of a deployment: its history, then school days served by the champion.

:class:`DeploySchool` wraps one :class:`~skbandit.sim.env.SchoolEnv`. Its history is played
by the rule+epsilon logging policy (:func:`skbandit.sim.generate.logging_policy_step`); each
later school day is served by the champion: at every step (a two-minute slot) the acting
students' candidate rows go to the champion as REST requests (one per topic, ``params`` the
REST defaults plus ``topic``, and a ``seed`` when the deployment is seeded), the item ranked
first is what the student practises, and the environment draws the outcome. A *school day*
is the next calendar day (UTC) on which someone practises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.policy import score_candidates
from skbandit.ranking_settings import REST_SETTINGS, Exploration
from skbandit.request_ranking import FIRST_SLOT_PROPENSITY
from skbandit.sim.env import SchoolEnv
from skbandit.sim.generate import logging_policy_step
from skbandit.sim.learning import expected_gain
from skbandit.sim.records import to_utc
from skbandit.sim.world import SchoolConfig

DAY_SECONDS = 86_400
GREEDY_SETTINGS = dataclasses.replace(REST_SETTINGS, exploration=Exploration.greedy, epsilon=0.0)
"""The served ranking without exploration: its first item is the model's greedy choice."""
P_SERVED, P_GREEDY, GAIN = "p_served", "p_greedy", "gain"
P_TRUE = "p_true"
GAIN_TRUE = "gain_true"


@dataclass(frozen=True)
class ServedDay:
    """One school day served by the champion.

    ``decisions`` has one row per decision: ``decision_id, user_id, item_id, topic,
    timestamp`` (simulated), ``correct, propensity`` (of the served item being first),
    ``p_served`` and ``p_greedy`` (true success probability of the served item and of the
    model's greedy choice) and ``gain`` (the student's true ability growth, logits).
    ``truth`` has one row per logged candidate: ``decision_id, item_id, p_true`` and
    ``gain_true`` (the simulator's expected ability gain of practising it,
    :func:`skbandit.sim.learning.expected_gain`). ``events``
    are the day's attempts as canonical events (simulated time) with their ``decision_id``;
    ``shift`` moves them onto the wall clock after the day was served (:meth:`outcomes`).
    """

    date: pd.Timestamp
    version: str
    decisions: pd.DataFrame
    truth: pd.DataFrame
    events: pd.DataFrame
    shift: pd.Timedelta

    @property
    def success_rate(self) -> float:
        return float(self.decisions[schema.CORRECT].mean())

    @property
    def learning_gain(self) -> float:
        """True ability growth (logits) per student who practised this day."""
        frame = self.decisions
        return float(frame[GAIN].sum() / frame[schema.USER_ID].nunique())

    @property
    def exploration_cost(self) -> float:
        """Mean true success of the greedy choice minus that of the item served."""
        return float((self.decisions[P_GREEDY] - self.decisions[P_SERVED]).mean())

    def outcomes(self) -> pd.DataFrame:
        """The day's attempts as they come back to the decision log's clock.

        The decisions were logged at wall-clock time while the simulated day ran in seconds,
        so the attempts are moved by one constant ``shift``: the day's first attempt lands
        when the day's serving ended, after every decision it answers; order and spacing are
        kept.
        """
        return self.events.assign(**{schema.TIMESTAMP: self.events[schema.TIMESTAMP] + self.shift})


class DeploySchool:
    """A simulated school served day by day (see the module docstring)."""

    def __init__(self, config: SchoolConfig):
        self.env = SchoolEnv(config)
        self._rng = np.random.default_rng(self.env.policy_seed)

    @property
    def items(self) -> pd.DataFrame:
        return self.env.items

    def events(self) -> pd.DataFrame:
        """Every attempt so far (simulated time, with the propensity it was shown with)."""
        return self.env.history()[0]

    def log_history(self, days: int) -> int:
        """Play ``days`` school days with the logging policy; the number of attempts."""
        steps = 0
        for _ in range(days):
            stop = self._day_end()
            while not self.env.done and self.env.slot_start < stop:
                logging_policy_step(self.env, self._rng)
                steps += 1
        if steps == 0:
            raise SkbanditError(
                "nobody practised in the school's history (expected at least "
                "one attempt); use more --students or --history-days"
            )
        return len(self.events())

    def serve_day(self, champion, seeds: Iterator[int] | None) -> ServedDay:
        """Serve the next school day with ``champion``
        (:class:`adapters.serving.client.ServedChampion`); ``seeds`` gives each request's
        seed (None: unseeded draws)."""
        if self.env.done:
            raise SkbanditError(
                "the simulated school year is over; use fewer --days or --history-days"
            )
        date = pd.Timestamp(self._day_end() - DAY_SECONDS, unit="s", tz="UTC")
        stop = self._day_end()
        steps = []
        while not self.env.done and self.env.slot_start < stop:
            steps.append(self._serve_step(champion, seeds))
        decisions = pd.concat([s[0] for s in steps], ignore_index=True)
        events = self.events()
        events = events[events[schema.TIMESTAMP] >= date].merge(
            decisions[[schema.USER_ID, schema.TIMESTAMP, schema.DECISION_ID]],
            on=[schema.USER_ID, schema.TIMESTAMP],
            how="inner",
            validate="one_to_one",
        )
        shift = pd.Timestamp.now(tz="UTC") - events[schema.TIMESTAMP].min()
        return ServedDay(
            date,
            champion.version,
            decisions,
            pd.concat([s[1] for s in steps], ignore_index=True),
            events.reset_index(drop=True),
            shift,
        )

    def _day_end(self) -> float:
        """Epoch seconds of the midnight after the next slot in which someone acts."""
        return (np.floor(self.env.slot_start / DAY_SECONDS) + 1) * DAY_SECONDS

    def _serve_step(self, champion, seeds):
        env = self.env
        cands = env.candidate_arrays()
        acting = env.acting()
        frame = pd.DataFrame(
            {
                schema.USER_ID: acting[schema.USER_ID].to_numpy()[cands.decision],
                schema.ITEM_ID: env.world.item_ids[cands.item],
                **dict(zip(schema.MODEL_INPUT, cands.X.T, strict=True)),
            }
        )
        answer = _ask(champion, frame, acting[schema.TOPIC].to_numpy()[cands.decision], seeds)
        chosen = _first_rows(answer[schema.RANK].to_numpy(), cands.decision, cands.n_decisions)
        greedy = _greedy_rows(
            score_candidates(champion.pipeline, frame, GREEDY_SETTINGS).score,
            cands.decision,
            cands.n_decisions,
        )
        ids = answer[schema.DECISION_ID].to_numpy()[chosen]
        propensity = answer[FIRST_SLOT_PROPENSITY].to_numpy()[chosen]
        outcome = env.step_indices(cands.item[chosen], propensity=propensity)
        decisions = pd.DataFrame(
            {
                schema.DECISION_ID: ids,
                schema.USER_ID: acting[schema.USER_ID].to_numpy(),
                schema.ITEM_ID: frame[schema.ITEM_ID].to_numpy()[chosen],
                schema.TOPIC: acting[schema.TOPIC].to_numpy(),
                schema.TIMESTAMP: to_utc(outcome.timestamp),
                schema.CORRECT: outcome.correct.astype(np.int64),
                schema.PROPENSITY: propensity,
                P_SERVED: outcome.p_true,
                P_GREEDY: cands.p_true[greedy],
                GAIN: outcome.ability_after - outcome.ability_before,
            }
        )
        truth = pd.DataFrame(
            {
                schema.DECISION_ID: ids[cands.decision],
                schema.ITEM_ID: frame[schema.ITEM_ID].to_numpy(),
                P_TRUE: cands.p_true,
                GAIN_TRUE: expected_gain(cands.p_true, env.config),
            }
        )
        return decisions, truth


def _ask(champion, frame: pd.DataFrame, topics: np.ndarray, seeds) -> pd.DataFrame:
    """The champion's answers to the step's requests (one per topic), in row order."""
    answers = []
    for topic in pd.unique(topics):
        params = {"topic": str(topic)}
        if seeds is not None:
            params["seed"] = next(seeds)
        answers.append(champion.rank(frame[topics == topic], params))
    return pd.concat(answers).loc[frame.index]


def _first_rows(rank: np.ndarray, decision: np.ndarray, n_decisions: int) -> np.ndarray:
    """The row ranked first in each decision (exactly one, or a SkbanditError)."""
    rows = np.flatnonzero(rank == 1)
    if not np.array_equal(decision[rows], np.arange(n_decisions)):
        raise SkbanditError(
            "the served answer does not rank exactly one item first per student; check the server"
        )
    return rows


def _greedy_rows(score: np.ndarray, decision: np.ndarray, n_decisions: int) -> np.ndarray:
    """The first row of the highest score in each decision (rows grouped by decision)."""
    starts = np.searchsorted(decision, np.arange(n_decisions))
    best = np.maximum.reduceat(score, starts)[decision]
    position = np.where(score == best, np.arange(score.size), score.size)
    return np.minimum.reduceat(position, starts)


def request_seeds(seed: int | None) -> Iterator[int] | None:
    """Per-request seeds derived from ``seed`` (None: unseeded, as REST without a seed).

    >>> seeds = request_seeds(3)
    >>> first = next(seeds)
    >>> first == next(request_seeds(3)) and first != next(seeds)
    True
    """
    if seed is None:
        return None

    def draw():
        generator = np.random.default_rng([seed, 0x5EED])
        while True:
            yield from (int(v) for v in generator.integers(0, 2**31 - 1, size=256))

    return draw()
