"""The simulation study's online policies: vectorised over one step's candidates.

A policy sees one step of the school as :class:`~skbandit.sim.env.CandidateArrays` (every
candidate row of every acting student), scores all rows in one pass and picks one row per
decision (:func:`skbandit.study.choice.group_argmax`, ties broken at random); after the step
it may learn from the rewards of the rows it chose.

Policies (:data:`POLICIES`, built by :func:`make_policy`):

- ``oracle``: the item with the highest *true* success probability (knows the simulator);
- ``oracle_learning``: the item with the highest expected true learning gain under the
  school's learning model (:func:`skbandit.sim.learning.expected_gain`; for the Gaussian
  peak, success probability closest to ``learning_peak``);
- ``linucb_default`` / ``linucb_seed``: LinUCB (objective ``"max_success"``) on the default
  or the seed's features, starting from the prior and learning online from its own choices
  (one ``partial_fit`` per step on the chosen rows);
- ``linucb_target_band``: LinUCB on the default features ranking by
  ``-|expected - target| + bonus`` (objective ``"target_band"``);
- ``linucb_progress``: LinUCB aimed at a target success it learns online from delayed,
  learning-aligned rewards (learning progress, :class:`ProgressPolicy`);
- ``linucb_progress_served``: the served ``learning_progress`` objective: LinUCB ranking
  like the target band at the one target a rule-logged history of another school under
  the same learning model favours (:func:`skbandit.study.history.learned_target`, what
  warm-start stores with a version);
- ``oracle_achievable``: knows the learning model, hence the best target, but sees only
  what a deployed policy sees: the item with the highest expected gain
  (:func:`~skbandit.sim.learning.expected_gain`) at its predicted success, the 2PL at the
  deployed ability estimate with the published item parameters;
- ``experiment_served`` / ``linucb_experiment_served``: the target a target-experiment
  history identifies (:func:`skbandit.study.experiment.identified_target`: learning curves
  fit to a history school running the experiment, then safe switching from the default),
  served by the IRT rule aimed at it or by LinUCB's target band at it;
  ``experiment_argmax``: the IRT rule at the target with the highest identified rate, no
  safe switching (the issue's prototype);
- ``experiment_on``: the reported school running the target experiment itself (each
  (student, topic) at its assigned target): what the experiment costs in learning;
- ``irt_target``: the IRT rule aimed at the target band's target (2PL success at the
  observed mastery closest to ``target``; no learning from data);
- ``rule``: the seed's rule, top-1 by :func:`skbandit.irt.rule_distance` on observed mastery;
- ``thompson``: a non-contextual bandit, Beta-Bernoulli Thompson sampling on each item's own
  successes and failures (no student context);
- ``random``: a uniformly random candidate.
"""

from __future__ import annotations

import numpy as np

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.learning_progress import HORIZON, PendingRewards, ProgressBands
from skbandit.model import TrainedModel
from skbandit.policy import linucb_scores
from skbandit.ranking_settings import RankingSettings
from skbandit.sim.env import SchoolEnv
from skbandit.sim.learning import expected_gain
from skbandit.study.choice import OnlinePolicy
from skbandit.study.config import POLICIES, StudyConfig
from skbandit.study.history import learned_target

Policy = OnlinePolicy
"""The name :class:`OnlinePolicy` had before the policy protocol (kept for imports)."""


class RandomPolicy(OnlinePolicy):
    """A uniformly random candidate."""

    columns = ()

    def score(self, cands, rng):
        return np.zeros(cands.decision.size)


class RulePolicy(OnlinePolicy):
    """The seed's rule: the item whose difficulty is closest to the observed mastery."""

    columns = (schema.MASTERY, schema.DIFFICULTY)

    def score(self, cands, rng):
        return -irt.rule_distance(cands.column(schema.MASTERY), cands.column(schema.DIFFICULTY))


class OraclePolicy(OnlinePolicy):
    """Knows the truth: max true success, or (``config`` given) max expected true learning
    gain under the school's learning model (:func:`skbandit.sim.learning.expected_gain`)."""

    columns = ()

    def __init__(self, config=None):
        self.config = config

    def score(self, cands, rng):
        return cands.p_true if self.config is None else expected_gain(cands.p_true, self.config)


class ThompsonPolicy(OnlinePolicy):
    """Beta-Bernoulli Thompson sampling per item (non-contextual).

    Each item's success probability has the posterior ``Beta(1 + s, 1 + f)`` of its own
    successes ``s`` and failures ``f`` under this policy; every candidate row draws one
    sample and the highest draw wins.
    """

    columns = ()

    def __init__(self, n_items):
        self.successes = np.zeros(n_items)
        self.failures = np.zeros(n_items)

    def score(self, cands, rng):
        return rng.beta(1.0 + self.successes[cands.item], 1.0 + self.failures[cands.item])

    def update(self, cands, rows, reward):
        n = self.successes.size
        self.successes += np.bincount(cands.item[rows], weights=reward, minlength=n)
        self.failures += np.bincount(cands.item[rows], weights=1.0 - reward, minlength=n)


class LinUCBPolicy(OnlinePolicy):
    """LinUCB in a :class:`skbandit.model.TrainedModel`, learning online.

    Scores with :func:`skbandit.policy.linucb_scores`, the formula of
    :func:`skbandit.policy.rank_linucb` (greedy): ``"max_success"`` ranks by
    ``expected + bonus``, ``"target_band"`` by ``-|expected - target| + bonus``; before the
    first update the model is its prior. The features are the model's
    (:meth:`~skbandit.model.TrainedModel.features_of_array`: ``X`` already holds
    ``schema.MODEL_INPUT`` in order).
    """

    def __init__(
        self, feature_set="default", alpha=1.0, objective="max_success", target=0.7, l2=1.0
    ):
        self.model = TrainedModel(feature_set, alpha=alpha, l2=l2)
        self.feature_set = feature_set
        self.settings = RankingSettings(objective=objective, target=target)
        self._features = None

    def score(self, cands, rng):
        if cands.columns != schema.MODEL_INPUT:
            raise SkbanditError(
                f"LinUCBPolicy needs X with the columns schema.MODEL_INPUT; found {cands.columns}"
            )
        Z = self._features = self.model.features_of_array(cands.X)
        return linucb_scores(self.model.estimator, Z, self.settings).score

    def update(self, cands, rows, reward):
        self.model.partial_fit_features(self._features[rows], reward)


class IrtTargetPolicy(OnlinePolicy):
    """The IRT rule aimed at a target: the item whose 2PL success at the observed mastery is
    closest to ``target`` (no learning from data)."""

    columns = (schema.MASTERY, schema.DIFFICULTY, schema.DISCRIMINATION)

    def __init__(self, target=0.7):
        self.target = target

    def score(self, cands, rng):
        p = irt.p_correct_2pl(
            irt.mastery_to_logit(cands.column(schema.MASTERY)),
            cands.column(schema.DIFFICULTY),
            cands.column(schema.DISCRIMINATION),
        )
        return -np.abs(p - self.target)


class AchievableOraclePolicy(Policy):
    """Knows how students learn but not their true ability or the items' true parameters:
    the highest expected gain at the 2PL success predicted from the deployed ability
    estimate (``mastery``) and the published item parameters."""

    columns = (schema.MASTERY, schema.DIFFICULTY, schema.DISCRIMINATION)

    def __init__(self, config):
        self.config = config

    def score(self, cands, rng):
        p = irt.p_correct_2pl(
            irt.mastery_to_logit(cands.column(schema.MASTERY)),
            cands.column(schema.DIFFICULTY),
            cands.column(schema.DISCRIMINATION),
        )
        return expected_gain(p, self.config)


class ProgressPolicy(LinUCBPolicy):
    """LinUCB aimed at a target it learns: learning progress (:mod:`skbandit.learning_progress`).

    Each decision draws a target from :class:`~skbandit.learning_progress.ProgressBands`
    (Thompson sampling on the targets' delayed rewards) and scores with objective
    ``"learning_progress"`` at that target (:func:`skbandit.policy.linucb_scores`, the
    served formula): ``-|expected - target| + bonus``. Served, the objective ranks at the
    one target a version learned from its training events
    (:func:`skbandit.learning_progress.progress_bands`); here the target is learned
    online. LinUCB still learns success from every answer; the bands learn from each
    decision's delayed reward, the ability change that the student's next ``horizon``
    answers on the topic suggest. Nothing it uses is simulator truth.
    """

    def __init__(self, alpha=1.0, topic_of_item=None, horizon=HORIZON):
        super().__init__("default", alpha, "learning_progress")
        self.bands, self.pending = ProgressBands(), PendingRewards(horizon)
        self.topic_of_item = topic_of_item
        self._arm = None

    def score(self, cands, rng):
        self._arm = self.bands.draw(cands.n_decisions, rng)
        Z = self._features = self.model.features_of_array(cands.X)
        target = self.bands.targets[self._arm][cands.decision]
        return linucb_scores(self.model.estimator, Z, self.settings, target=target).score

    def observe(self, cands, rows, outcome):
        topic = self.topic_of_item[outcome.item]
        difficulty = cands.column(schema.DIFFICULTY)[rows]
        discrimination = cands.column(schema.DISCRIMINATION)[rows]
        self.bands.update(
            *self.pending.observe(
                outcome.student,
                topic,
                outcome.correct.astype(np.float64),
                difficulty,
                discrimination,
            )
        )
        self.pending.add(outcome.student, topic, self._arm, cands.column(schema.MASTERY)[rows])


def make_policy(name: str, env: SchoolEnv, config: StudyConfig) -> OnlinePolicy:
    """A fresh policy called ``name`` (one of :data:`POLICIES`) for ``env``.

    ``config`` (a :class:`skbandit.study.config.StudyConfig`) gives LinUCB's ``alpha`` and
    ``target``.
    """
    linucb = {
        "linucb_default": ("default", "max_success"),
        "linucb_seed": ("seed", "max_success"),
        "linucb_target_band": ("default", "target_band"),
    }
    if name in linucb:
        feature_set, objective = linucb[name]
        return LinUCBPolicy(feature_set, config.alpha, objective, config.target)
    if name in (
        "experiment_served",
        "experiment_argmax",
        "linucb_experiment_served",
        "experiment_on",
    ):
        return _experiment_policy(name, env, config)
    if name == "linucb_progress_served":
        return LinUCBPolicy(
            "default", config.alpha, "learning_progress", learned_target(env.config, config.days)
        )
    simple = {
        "oracle": lambda: OraclePolicy(),
        "oracle_learning": lambda: OraclePolicy(env.config),
        "oracle_achievable": lambda: AchievableOraclePolicy(env.config),
        "rule": RulePolicy,
        "random": RandomPolicy,
        "irt_target": lambda: IrtTargetPolicy(config.target),
        "linucb_progress": lambda: ProgressPolicy(config.alpha, env.world.item_topic),
        "thompson": lambda: ThompsonPolicy(len(env.world.item_ids)),
    }
    if name not in simple:
        raise SkbanditError(f"unknown policy {name!r} (expected one of {POLICIES})")
    return simple[name]()


def _experiment_policy(name: str, env: SchoolEnv, config: StudyConfig) -> OnlinePolicy:
    """The target experiment's policies (:mod:`skbandit.study.experiment`)."""
    from skbandit.study import experiment

    if name == "experiment_on":
        return experiment.AssignedTargetPolicy(env, config.experiment())
    known = {seed: targets for seed, *targets in config.served_targets}
    if env.config.seed in known:
        target, best = known[env.config.seed]
    else:
        target, curves = experiment.identified_target(
            env.config,
            config.days,
            config.history_students,
            config.experiment(),
            dict(config.design_bias),
        )
        best = float(curves.targets[np.argmax(curves.rates)])
    if name == "experiment_served":
        return IrtTargetPolicy(target)
    if name == "experiment_argmax":
        return IrtTargetPolicy(best)
    return LinUCBPolicy("default", config.alpha, "target_band", target)
