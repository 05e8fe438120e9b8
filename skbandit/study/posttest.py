"""The study's learning outcome: a held-out post-test, measured like a study would.

Learning is not the sum of the simulator's ability increments but each student's expected
score on a fixed **test form** of items nobody practises: ``FORM_ITEMS`` items per topic,
drawn from the same distribution as the topic's item bank (true difficulty around the
bank's mean with the bank's spread, discrimination lognormal) from a random stream of their
own, so drawing the form does not change the school. A student's score on a topic is the
mean success probability of the form's items at their true ability then (under knowledge
tracing with its guess and slip); the post-test **gain** is the mean, over the topics of
the student's grade, of the score at a checkpoint (mid-year, end of year) minus the score at
the start, in points out of 100. Every student of the school counts, practised or not.

>>> from skbandit.sim.env import SchoolEnv
>>> from skbandit.sim.world import SchoolConfig
>>> env = SchoolEnv(SchoolConfig(n_students=20, seed=0))
>>> form = make_test_form(env.world)
>>> form.difficulty.shape == (len(env.world.topics), FORM_ITEMS)
True
>>> float(posttest_gain(env.world, form, env.ability, env.ability).max())
0.0
"""

from dataclasses import dataclass

import numpy as np

from skbandit.irt import p_correct_2pl
from skbandit.sim.learning import observed_probability
from skbandit.sim.world import World

FORM_ITEMS = 12
"""Items per topic on the test form."""
FORM_STREAM = 2
"""Child of the school's seed sequence the form is drawn from (0 and 1 draw the school)."""


@dataclass(frozen=True)
class TestForm:
    """A fixed test form: ``difficulty`` and ``discrimination`` of shape (n_topics, FORM_ITEMS)."""

    __test__ = False  # not a pytest test class

    difficulty: np.ndarray
    discrimination: np.ndarray


def make_test_form(world: World, n_items: int = FORM_ITEMS) -> TestForm:
    """The school's test form (a function of ``world.config.seed`` and the item bank)."""
    config = world.config
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(FORM_STREAM + 1)[-1])
    n_topics = len(world.topics)
    bank = world.difficulty_true + world.hidden_effect
    centre = np.array(
        [bank[(world.item_topic == t) & ~world.drift].mean() for t in range(n_topics)]
    )
    difficulty = centre[:, None] + rng.normal(0.0, config.difficulty_sd, (n_topics, n_items))
    discrimination = np.clip(rng.lognormal(0.0, 0.25, (n_topics, n_items)), 0.4, 2.5)
    return TestForm(difficulty, discrimination)


def expected_scores(world: World, form: TestForm, ability: np.ndarray) -> np.ndarray:
    """Expected score (share correct) of every student on every topic's form, (n_students,
    n_topics)."""
    p = p_correct_2pl(ability[:, :, None], form.difficulty[None], form.discrimination[None])
    return observed_probability(p, world.config).mean(axis=2)


def posttest_gain(world: World, form: TestForm, start: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Each student's post-test gain (points of 100) from abilities ``start`` to ``now``.

    The mean over the topics of the student's grade of the expected score's change.
    """
    change = expected_scores(world, form, now) - expected_scores(world, form, start)
    sizes = np.array([len(grade) for grade in world.config.curriculum])
    offsets = np.cumsum(sizes) - sizes
    in_grade = np.zeros(change.shape, dtype=bool)
    for g, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
        in_grade[world.grade == g, offset : offset + size] = True
    return 100.0 * (change * in_grade).sum(axis=1) / in_grade.sum(axis=1)
