"""The simulated school's world: configuration, curriculum, items, students and sessions.

:func:`build_world` draws everything that does not depend on which items a policy shows:
the items' true IRT parameters and hidden effects, the published items table, the students'
latent abilities and habits, the timetable of practice sessions over the school year and
the per-attempt noise. :class:`~skbandit.sim.env.SchoolEnv` then plays policies against
it. Because the noise is drawn per attempt slot (not per step), two policies run on the same
world see the same random numbers (common random numbers), which makes their comparison
less noisy.

Time: school days are Monday to Friday between ``start_date`` and ``end_date`` minus
``holidays``. Each grade has its maths class at a fixed time (UTC, a US Eastern school);
a student practises on a few of those days, one session of ``session_attempts`` attempts
each. A class works through its grade's topics in order over the year (the curriculum);
``review_rate`` of the sessions revisit an earlier topic.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit import schema

DEFAULT_CURRICULUM = (
    ("6.NS.B.2", "6.NS.B.3", "6.NS.A.1", "6.RP.A.1", "6.RP.A.3", "6.EE.A.2", "6.EE.B.7", "6.G.A.1"),
    ("7.NS.A.1", "7.NS.A.2", "7.NS.A.3", "7.RP.A.1", "7.RP.A.2", "7.RP.A.3", "7.EE.B.4", "7.G.B.4"),
    ("8.NS.A.1", "8.EE.A.1", "8.EE.A.2", "8.EE.B.5", "8.EE.C.7", "8.F.A.1", "8.F.B.4", "8.G.B.7"),
)
"""Common Core topics per grade (6, 7, 8) in teaching order."""

DEFAULT_HOLIDAYS = (
    ("2023-10-09", "2023-10-09"),
    ("2023-11-10", "2023-11-10"),
    ("2023-11-22", "2023-11-24"),
    ("2023-12-22", "2024-01-01"),
    ("2024-01-15", "2024-01-15"),
    ("2024-02-19", "2024-02-19"),
    ("2024-03-25", "2024-03-29"),
    ("2024-05-27", "2024-05-27"),
)
"""Inclusive date ranges without school (US-style calendar, winter break ends 2024-01-01)."""

_ITEM_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


@dataclass(frozen=True)
class SchoolConfig:
    """Everything that defines a simulated school; equal configs give equal schools.

    Parameters
    ----------
    n_students : int
        Students (split evenly at random over grades 6, 7 and 8).
    seed : int
        Seed of every random draw (world, outcomes and the logging policy).
    curriculum : tuple of tuple of str
        Topics per grade in teaching order.
    items_per_topic : (int, int)
        Inclusive range of the number of items of a topic.
    epsilon, top_k : float, int
        Logging policy: the rule's top ``top_k`` w.p. ``1 - epsilon``, else uniform.
    attempts_per_student : float
        Mean attempts per student over the year.
    session_attempts : (int, int)
        Inclusive range of attempts in one session.
    start_date, end_date, holidays
        The school year (ISO dates; holidays are inclusive ranges).
    class_start_utc : tuple of str
        Start of each grade's maths class, ``HH:MM`` UTC.
    review_rate : float
        Share of sessions on an earlier topic of the curriculum.
    drift_rate : float
        Share of items flagged ``drift_flag`` (their true difficulty moved far away).
    ability_mean, general_ability_sd, topic_ability_sd : float
        Ability on a topic = mean + general ability + topic-specific deviation (logits).
    difficulty_sd, hidden_effect_sd, difficulty_noise_sd : float
        Item difficulty spread, hidden per-item effect (not in the published difficulty)
        and the estimation noise of the published difficulty.
    learning_model : str
        How students learn, one of :data:`skbandit.sim.learning.LEARNING_MODELS`
        (``"gaussian_peak"``, the default, keeps the default school's events as before).
    learning_rate, learning_peak, learning_width : float
        Gaussian peak gain per attempt, ``rate * exp(-((p - peak) / width)**2 / 2)``;
        ``learning_rate`` is also the additive-factors gain.
    gain_correct, gain_wrong : float
        Performance factors: gains after a correct and after a wrong answer.
    bkt_transit, bkt_step, bkt_guess, bkt_slip : float
        Knowledge tracing: learning probability per attempt, its ability jump (logits), and
        the guess and slip of the observed answers.
    forgetting_half_life_days : float or None
        Gains since the start of the year halve over this many days without practice
        (None: no forgetting); combines with any learning model.
    latency_median_s, latency_sigma, latency_hardness : float
        Lognormal latency: median, log-sd and how much longer a hard item takes.
    help_rate, help_struggle : float
        Base help probability and how strongly struggling (low p) raises it.
    slot_seconds : float
        Width of an environment step; a student acts at most once per slot.
    demo_student : str or None
        Id given to the first grade-7 student, who also practises on the first school day
        of 2024 (so ``--student-id ABC123 --time-window 2024-W01`` shows something).
    """

    n_students: int = 2000
    seed: int = 0
    curriculum: tuple[tuple[str, ...], ...] = DEFAULT_CURRICULUM
    items_per_topic: tuple[int, int] = (20, 120)
    epsilon: float = 0.1
    top_k: int = 5
    attempts_per_student: float = 100.0
    session_attempts: tuple[int, int] = (6, 14)
    start_date: str = "2023-09-05"
    end_date: str = "2024-06-14"
    holidays: tuple[tuple[str, str], ...] = DEFAULT_HOLIDAYS
    class_start_utc: tuple[str, ...] = ("13:20", "15:05", "18:00")
    review_rate: float = 0.2
    drift_rate: float = 0.02
    ability_mean: float = 0.8
    general_ability_sd: float = 0.8
    topic_ability_sd: float = 0.5
    difficulty_sd: float = 0.9
    hidden_effect_sd: float = 0.5
    difficulty_noise_sd: float = 0.25
    learning_rate: float = 0.04
    learning_peak: float = 0.7
    learning_width: float = 0.15
    learning_model: str = "gaussian_peak"
    gain_correct: float = 0.05
    gain_wrong: float = 0.01
    bkt_transit: float = 0.05
    bkt_step: float = 1.0
    bkt_guess: float = 0.15
    bkt_slip: float = 0.05
    forgetting_half_life_days: float | None = None
    latency_median_s: float = 80.0
    latency_sigma: float = 0.7
    latency_hardness: float = 1.0
    help_rate: float = 0.17
    help_struggle: float = 2.5
    slot_seconds: float = 120.0
    demo_student: str | None = "ABC123"

    @property
    def topics(self) -> tuple[str, ...]:
        """All topics, grade by grade."""
        return tuple(t for grade in self.curriculum for t in grade)


def default_school_config() -> SchoolConfig:
    """The embedded default school: 2,000 students, ~200k events, 24 topics, 2023-24."""
    return SchoolConfig()


@dataclass
class World:
    """Arrays behind a school (index-based; built by :func:`build_world`).

    Items are sorted by topic. ``topic_items[t]`` lists topic ``t``'s non-drift items,
    padded with -1 to the largest topic. Sessions are sorted by start time; ``attempt0`` is
    the index of a session's first attempt in the per-attempt noise arrays.
    """

    config: SchoolConfig
    topics: np.ndarray
    item_ids: np.ndarray
    item_topic: np.ndarray
    difficulty_true: np.ndarray
    discrimination: np.ndarray
    hidden_effect: np.ndarray
    difficulty_published: np.ndarray
    discrimination_published: np.ndarray
    drift: np.ndarray
    topic_items: np.ndarray
    user_ids: np.ndarray
    grade: np.ndarray
    ability0: np.ndarray
    speed: np.ndarray
    help_logit: np.ndarray
    session_student: np.ndarray
    session_start: np.ndarray
    session_topic: np.ndarray
    session_length: np.ndarray
    session_number: np.ndarray
    attempt0: np.ndarray
    noise: dict[str, np.ndarray]

    @property
    def items(self) -> pd.DataFrame:
        """The published items table (canonical columns only)."""
        return pd.DataFrame(
            {
                schema.ITEM_ID: self.item_ids.astype(object),
                schema.TOPIC: self.topics[self.item_topic].astype(object),
                schema.DIFFICULTY: self.difficulty_published,
                schema.DISCRIMINATION: self.discrimination_published,
                schema.DRIFT_FLAG: self.drift,
            }
        )

    @property
    def true_items(self) -> pd.DataFrame:
        """The items' true parameters (evaluation only; never shown to a policy)."""
        return self.items.assign(
            difficulty_true=self.difficulty_true,
            discrimination_true=self.discrimination,
            hidden_effect=self.hidden_effect,
        )


def build_world(config: SchoolConfig, rng: np.random.Generator) -> World:
    """Draw a school's items, students, timetable and per-attempt noise."""
    topics = np.array(config.topics, dtype=object)
    items = _draw_items(config, len(topics), rng)
    students = _draw_students(config, len(topics), rng)
    sessions = _draw_sessions(config, students["grade"], rng)
    n_attempts = int(sessions["session_length"].sum())
    noise = {
        "correct": rng.random(n_attempts),
        "latency": rng.standard_normal(n_attempts),
        "tail": rng.random(n_attempts),
        "help": rng.random(n_attempts),
        "think": rng.uniform(5.0, 30.0, n_attempts),
        "learn": rng.random(n_attempts),  # drawn last: the draws above do not change
    }
    return World(config=config, topics=topics, **items, **students, **sessions, noise=noise)


def _draw_items(config, n_topics, rng):
    lo, hi = config.items_per_topic
    counts = rng.integers(lo, hi + 1, n_topics)
    item_topic = np.repeat(np.arange(n_topics), counts)
    n = len(item_topic)
    topic_shift = rng.normal(0.0, 0.3, n_topics)
    b_true = topic_shift[item_topic] + rng.normal(0.0, config.difficulty_sd, n)
    a = np.clip(rng.lognormal(0.0, 0.25, n), 0.4, 2.5)
    hidden = rng.normal(0.0, config.hidden_effect_sd, n)
    drift = rng.random(n) < config.drift_rate
    hidden = np.where(drift, hidden + rng.choice([-1.5, 1.5], n), hidden)
    b_pub = b_true + rng.normal(0.0, config.difficulty_noise_sd, n)
    a_pub = a * rng.lognormal(0.0, 0.1, n)
    width = int(np.max(np.bincount(item_topic[~drift], minlength=n_topics)))
    topic_items = np.full((n_topics, width), -1, dtype=np.int64)
    for t in range(n_topics):
        members = np.flatnonzero((item_topic == t) & ~drift)
        topic_items[t, : len(members)] = members
    return {
        "item_ids": _item_ids(n, rng).astype(object),
        "item_topic": item_topic,
        "difficulty_true": b_true,
        "discrimination": a,
        "hidden_effect": hidden,
        "difficulty_published": b_pub,
        "discrimination_published": a_pub,
        "drift": drift,
        "topic_items": topic_items,
    }


def _item_ids(n, rng):
    """``n`` distinct 8-character ids such as ``ZK1I2M76``."""
    codes = np.unique(rng.integers(0, 36**8, n + 64))
    codes = rng.permutation(codes)[:n]
    digits = (codes[:, None] // 36 ** np.arange(7, -1, -1)) % 36
    return _ITEM_ALPHABET[digits].view("S8").ravel().astype(str)


def _user_ids(config, n, rng):
    """``n`` distinct ids such as ``ABC123`` (three letters, three digits)."""
    codes = rng.choice(26**3 * 1000, n + 1, replace=False)
    letters = (codes[:, None] // 1000 // 26 ** np.arange(2, -1, -1)) % 26 + ord("A")
    digits = (codes[:, None] % 1000 // 10 ** np.arange(2, -1, -1)) % 10 + ord("0")
    chars = np.concatenate([letters, digits], axis=1).astype(np.uint8)
    ids = chars.view("S6").ravel().astype(str)
    ids = ids[ids != config.demo_student][:n]
    return ids


def _draw_students(config, n_topics, rng):
    n = config.n_students
    n_grades = len(config.curriculum)
    grade = rng.integers(0, n_grades, n)
    user_ids = _user_ids(config, n, rng)
    if config.demo_student and n:
        user_ids[_is_demo(config, grade)] = config.demo_student
    general = rng.normal(0.0, config.general_ability_sd, n)
    ability0 = (
        config.ability_mean
        + general[:, None]
        + rng.normal(0.0, config.topic_ability_sd, (n, n_topics))
    )
    return {
        "user_ids": user_ids.astype(object),
        "grade": grade,
        "ability0": ability0,
        "speed": rng.normal(0.0, 0.3, n),
        "help_logit": np.log(config.help_rate / (1 - config.help_rate)) + rng.normal(0.0, 0.6, n),
    }


def school_days(config: SchoolConfig) -> pd.DatetimeIndex:
    """The school's days (Monday to Friday, holidays removed), as UTC midnights."""
    days = pd.bdate_range(config.start_date, config.end_date, tz="UTC")
    off = np.zeros(len(days), dtype=bool)
    for first, last in config.holidays:
        off |= (days >= pd.Timestamp(first, tz="UTC")) & (days <= pd.Timestamp(last, tz="UTC"))
    return days[~off]


def _draw_sessions(config, grade, rng):
    days = school_days(config)
    n, n_days = len(grade), len(days)
    lo, hi = config.session_attempts
    rate = config.attempts_per_student / ((lo + hi) / 2)
    n_sessions = np.clip(rng.poisson(rate * rng.gamma(4.0, 0.25, n)), 1, n_days)
    keys = rng.random((n, n_days))
    if config.demo_student and n:
        demo = np.flatnonzero(_is_demo(config, grade))
        keys[
            demo, np.searchsorted(days, pd.Timestamp("2024-01-01", tz="UTC")).clip(max=n_days - 1)
        ] = -1.0
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    student, day = np.nonzero(rank < n_sessions[:, None])
    first = np.searchsorted(student, student)
    number = np.arange(len(student)) - first + 1
    class_start = np.array([_seconds(hhmm) for hhmm in config.class_start_utc])
    start = (
        days.as_unit("s").asi8[day].astype(np.float64)
        + class_start[grade[student]]
        + rng.uniform(0.0, 600.0, len(student))
    )
    topic = _session_topics(config, grade[student], day / n_days, rng)
    length = rng.integers(lo, hi + 1, len(student))
    order = np.argsort(start, kind="stable")
    length = length[order]
    return {
        "session_student": student[order],
        "session_start": start[order],
        "session_topic": topic[order],
        "session_length": length,
        "session_number": number[order],
        "attempt0": np.cumsum(length) - length,
    }


def _is_demo(config, grade):
    """The demo student is the first grade-7 student (see ``SchoolConfig.demo_student``)."""
    target = np.flatnonzero(grade == min(1, len(config.curriculum) - 1))
    mask = np.zeros(len(grade), dtype=bool)
    mask[target[0] if len(target) else 0] = True
    return mask


def _session_topics(config, grade, year_fraction, rng):
    sizes = np.array([len(g) for g in config.curriculum])
    offsets = np.cumsum(sizes) - sizes
    position = np.minimum((year_fraction * sizes[grade]).astype(np.int64), sizes[grade] - 1)
    review = (rng.random(len(grade)) < config.review_rate) & (position > 0)
    earlier = (rng.random(len(grade)) * np.maximum(position, 1)).astype(np.int64)
    return offsets[grade] + np.where(review, earlier, position)


def _seconds(hhmm: str) -> float:
    hours, minutes = hhmm.split(":")
    return 3600.0 * int(hours) + 60.0 * int(minutes)
