"""Simulation study: ranking policies run online in the simulated school, scored by the truth.

Every policy plays a whole school (:class:`~skbandit.school_env.SchoolEnv`) on its own, for
several seeds; a seed fixes the school and every attempt's random draws, so on one seed all
policies face the same students, timetable and outcome noise (common random numbers). At
each step all acting students choose at once: a policy scores every candidate row of the
step in one vectorised pass and picks one row per decision (:func:`group_argmax`, ties
broken at random).

Policies (:data:`POLICIES`):

- ``oracle``: the item with the highest *true* success probability (knows the simulator);
- ``oracle_learning``: the item with the highest true learning gain (success probability
  closest to the simulator's ``learning_peak``);
- ``linucb_default`` / ``linucb_seed``: LinUCB (objective ``"max_success"``) on the default
  or the seed's features, starting from the prior and learning online from its own choices
  (one ``partial_fit`` per step on the chosen rows);
- ``linucb_target_band``: LinUCB on the default features ranking by
  ``-|expected - target| + bonus`` (objective ``"target_band"``);
- ``rule``: the seed's rule, top-1 by :func:`skbandit.irt.rule_distance` on observed mastery;
- ``thompson``: a non-contextual bandit, Beta-Bernoulli Thompson sampling on each item's own
  successes and failures (no student context);
- ``random``: a uniformly random candidate.

Metrics per run (one policy on one seed), over the ``n`` decisions of the run:

- ``success_rate``: mean observed reward (correct);
- ``cumulative_regret``: ``sum_t [max_a p(a | s_t) - p(a_t | s_t)]`` where ``p`` is the true
  success probability in the policy's own state ``s_t`` (students' abilities evolve with
  what each policy showed them) and the max runs over the decision's candidates, so the
  ``oracle`` has regret 0 by construction; ``regret_per_decision`` is it divided by ``n``;
- ``learning_gain``: growth of true ability (logits), ``sum(ability_after -
  ability_before)`` divided by the number of students who practised.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from skbandit import irt, schema
from skbandit.exceptions import SkbanditError
from skbandit.features import make_pipeline
from skbandit.school import SchoolConfig, school_days
from skbandit.school_env import SchoolEnv

POLICIES = ("oracle", "oracle_learning", "linucb_default", "linucb_seed", "linucb_target_band",
            "rule", "thompson", "random")
"""Policy names understood by :func:`make_policy`, in the order of the study's tables."""
BASELINES = ("rule", "thompson")
"""Policies that the paired differences (``<metric>_vs_<baseline>``) compare against."""
RUN_METRICS = ("success_rate", "expected_success", "cumulative_regret", "regret_per_decision",
               "learning_gain")
"""Per-run metrics of :func:`summarise_trace`."""
TRACE_COLUMNS = ("student", "p_chosen", "regret", "correct", "gain")
"""Columns of :func:`run_policy`'s per-decision trace."""
PAIRED_METRICS = ("success_rate", "cumulative_regret", "learning_gain")
"""Metrics also reported as paired differences to :data:`BASELINES` on the same seed."""


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs (the defaults are the documented study, ~6 min on 2 cores).

    Parameters
    ----------
    n_students : int
        Students of every simulated school (``SchoolConfig(n_students, seed)``).
    seeds : tuple of int
        One school (and one outcome noise) per seed.
    days : int or None
        Stop after this many school days (None: the whole school year, 180 days).
    alpha, target : float
        LinUCB exploration width; target success of ``linucb_target_band``.
    policies : tuple of str
        Names from :data:`POLICIES`.
    n_bins : int
        Points of the learning and regret curves (bins of equally many decisions).
    n_jobs : int
        Runs in parallel (joblib processes; 1 runs in this process).
    """

    n_students: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    days: int | None = None
    alpha: float = 1.0
    target: float = 0.7
    policies: tuple[str, ...] = POLICIES
    n_bins: int = 40
    n_jobs: int = 2


def quick_study_config() -> StudyConfig:
    """A few-second study for tests and CI: 60 students, 15 school days, 2 seeds."""
    return StudyConfig(n_students=60, seeds=(0, 1), days=15, n_bins=10, n_jobs=1)


@dataclass
class Step:
    """One step's candidates in array form, one row per (decision, item), sorted by decision.

    Attributes
    ----------
    decision, item : ndarray of int of shape (n_rows,)
        Decision (``0..n_decisions-1``) and item index (into the world's item arrays).
    X : ndarray of shape (n_rows, 9)
        Raw model input, the columns ``schema.MODEL_INPUT``.
    p_true : ndarray of shape (n_rows,)
        True success probability (only the oracles may look at it).
    n_decisions : int
    """

    decision: np.ndarray
    item: np.ndarray
    X: np.ndarray
    p_true: np.ndarray
    n_decisions: int

    def column(self, name):
        """Raw model-input column ``name`` of every row."""
        return self.X[:, schema.MODEL_INPUT.index(name)]


def observe(env: SchoolEnv) -> Step:
    """The current step's candidates; ``X`` equals ``env.candidates()[MODEL_INPUT]``.

    Uses the environment's array interface (no pandas per step), like the logging policy.
    """
    rows, item = env._candidate_index()
    ctx = env._context_arrays()
    w = env.world
    attempts = env._item_n[item]
    X = np.column_stack([
        *(ctx[name][rows] for name in schema.STUDENT_CONTEXT),
        w.difficulty_published[item], w.discrimination_published[item],
        attempts, (env._item_c[item] + 1.0) / (attempts + 2.0),
    ]).astype(np.float64)
    p_true = env._p_true(env._acting_students()[rows], item)
    return Step(rows, item, X, p_true, env.n_decisions)


def group_argmax(score, group, n_groups, rng):
    """Row of the highest ``score`` in each group (ties broken uniformly at random by ``rng``).

    ``group`` (shape ``(n_rows,)``) must be sorted with every group ``0..n_groups-1``
    non-empty, as :func:`observe` gives it. Returns the chosen row of each group in order.

    >>> rng = np.random.default_rng(0)
    >>> group_argmax(np.array([1.0, 3.0, 2.0, 5.0]), np.array([0, 0, 1, 1]), 2, rng).tolist()
    [1, 3]
    """
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    if starts.size != n_groups or group[starts[-1]] != n_groups - 1 or (np.diff(group) < 0).any():
        raise SkbanditError(f"expected candidate rows sorted by decision with at least one per "
                            f"decision 0..{n_groups - 1}; found {starts.size} groups")
    best = np.maximum.reduceat(score, starts)
    key = np.where(score == best[group], rng.random(score.size), -1.0)
    hits = np.flatnonzero(key == np.maximum.reduceat(key, starts)[group])
    return hits[np.r_[True, group[hits][1:] != group[hits][:-1]]]  # one per group


class Policy:
    """A study policy: ``choose`` one candidate row per decision, ``update`` on outcomes."""

    def choose(self, step: Step, rng: np.random.Generator) -> np.ndarray:
        """Row index (into ``step``) chosen for each decision: the best ``score``."""
        return group_argmax(self.score(step, rng), step.decision, step.n_decisions, rng)

    def update(self, step: Step, rows: np.ndarray, reward: np.ndarray) -> None:
        """Learn from the rewards of the chosen rows (no-op for non-learning policies)."""


class RandomPolicy(Policy):
    """A uniformly random candidate."""

    def score(self, step, rng):
        return np.zeros(step.decision.size)


class RulePolicy(Policy):
    """The seed's rule: the item whose difficulty is closest to the observed mastery."""

    def score(self, step, rng):
        return -irt.rule_distance(step.column(schema.MASTERY), step.column(schema.DIFFICULTY))


class OraclePolicy(Policy):
    """Knows the truth: max true success, or (``peak`` given) true success closest to it."""

    def __init__(self, peak=None):
        self.peak = peak

    def score(self, step, rng):
        return step.p_true if self.peak is None else -np.abs(step.p_true - self.peak)


class ThompsonPolicy(Policy):
    """Beta-Bernoulli Thompson sampling per item (non-contextual).

    Each item's success probability has the posterior ``Beta(1 + s, 1 + f)`` of its own
    successes ``s`` and failures ``f`` under this policy; every candidate row draws one
    sample and the highest draw wins.
    """

    def __init__(self, n_items):
        self.successes = np.zeros(n_items)
        self.failures = np.zeros(n_items)

    def score(self, step, rng):
        return rng.beta(1.0 + self.successes[step.item], 1.0 + self.failures[step.item])

    def update(self, step, rows, reward):
        n = self.successes.size
        self.successes += np.bincount(step.item[rows], weights=reward, minlength=n)
        self.failures += np.bincount(step.item[rows], weights=1.0 - reward, minlength=n)


class LinUCBPolicy(Policy):
    """LinUCB on a :func:`skbandit.features.make_pipeline` pipeline, learning online.

    Scores like :func:`skbandit.policy.rank_linucb` (greedy): ``expected = clip(mean, 0, 1)``,
    ``bonus = alpha * std``; ``"max_success"`` ranks by ``expected + bonus``,
    ``"target_band"`` by ``-|expected - target| + bonus``. Before the first update the model
    is its prior (``mean = 0``, ``std = sqrt(x'x / l2)``). The features are the pipeline's
    own stateless feature function applied to the raw matrix (``X`` already holds
    ``schema.MODEL_INPUT`` in order, so the ColumnTransformer's column selection is skipped).
    """

    def __init__(self, feature_set="default", alpha=1.0, objective="max_success", target=0.7,
                 l2=1.0):
        self.pipeline = make_pipeline(feature_set, alpha=alpha, l2=l2)
        self.feature_set, self.objective, self.target = feature_set, objective, target
        frame = pd.DataFrame(np.full((1, len(schema.MODEL_INPUT)), 0.5),
                             columns=list(schema.MODEL_INPUT))
        features = self.pipeline.named_steps["features"].fit(frame)
        self._transform = features.named_transformers_[feature_set].transform
        self._features = None

    def score(self, step, rng):
        Z = self._features = self._transform(step.X)
        model = self.pipeline[-1]
        if hasattr(model, "coef_"):
            mean, std = model.predict(Z, return_std=True)
        else:
            mean, std = np.zeros(len(Z)), np.sqrt((Z**2).sum(axis=1) / model.l2)
        expected = np.clip(mean, 0.0, 1.0)
        base = expected if self.objective == "max_success" else -np.abs(expected - self.target)
        return base + model.alpha * std

    def update(self, step, rows, reward):
        self.pipeline[-1].partial_fit(self._features[rows], reward)


def make_policy(name: str, env: SchoolEnv, config: StudyConfig) -> Policy:
    """A fresh policy called ``name`` (one of :data:`POLICIES`) for ``env``."""
    linucb = {"linucb_default": ("default", "max_success"), "linucb_seed": ("seed", "max_success"),
              "linucb_target_band": ("default", "target_band")}
    if name in linucb:
        feature_set, objective = linucb[name]
        return LinUCBPolicy(feature_set, config.alpha, objective, config.target)
    simple = {"oracle": lambda: OraclePolicy(),
              "oracle_learning": lambda: OraclePolicy(peak=env.config.learning_peak),
              "rule": RulePolicy, "random": RandomPolicy,
              "thompson": lambda: ThompsonPolicy(len(env.world.item_ids))}
    if name not in simple:
        raise SkbanditError(f"unknown policy {name!r} (expected one of {POLICIES})")
    return simple[name]()


def run_policy(policy: Policy, env: SchoolEnv, rng: np.random.Generator,
               days: int | None = None) -> pd.DataFrame:
    """Play ``policy`` against ``env`` until the year (or ``days`` school days) is over.

    Returns a DataFrame with one row per decision in step order and the columns
    :data:`TRACE_COLUMNS`: ``student, p_chosen, regret, correct, gain``.
    """
    stop = _stop_seconds(env.config, days)
    trace = {name: [] for name in TRACE_COLUMNS}
    while not env.done and env._slot * env.config.slot_seconds < stop:
        step = observe(env)
        rows = policy.choose(step, rng)
        if rows.shape != (step.n_decisions,) or (step.decision[rows] != np.arange(rows.size)).any():
            raise SkbanditError(f"{type(policy).__name__} chose rows outside their decisions' "
                                "candidates (expected one candidate row per decision)")
        starts = np.flatnonzero(np.r_[True, step.decision[1:] != step.decision[:-1]])
        best = np.maximum.reduceat(step.p_true, starts)
        students = env._acting_students()
        env._step_indices(step.item[rows])
        outcome = {key: env._records[key][-1] for key in ("correct", "p_true", "before", "after")}
        reward = outcome["correct"].astype(np.float64)
        policy.update(step, rows, reward)
        values = (students, outcome["p_true"], best - step.p_true[rows], reward,
                  outcome["after"] - outcome["before"])
        for name, value in zip(TRACE_COLUMNS, values, strict=True):
            trace[name].append(value)
    if not trace["student"]:
        raise SkbanditError(f"nobody practised in the first {days} school days (expected at "
                            "least one attempt); use more days or students")
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in trace.items()})


def _stop_seconds(config: SchoolConfig, days):
    """Epoch seconds of the first moment after ``days`` school days (inf for the year)."""
    if days is None:
        return np.inf
    if days < 1:
        raise SkbanditError(f"days must be at least 1; found {days}")
    calendar = school_days(config)
    return np.inf if days >= len(calendar) else calendar[days].timestamp()


def summarise_trace(trace: pd.DataFrame, n_bins: int) -> tuple[dict, pd.DataFrame]:
    """Metrics (:data:`RUN_METRICS`, ``n_decisions``, ``n_students``) and curves of a run.

    The curves have one row per bin of equally many decisions: ``bin``, ``decisions``,
    ``cumulative_regret`` and ``learning_gain`` (per student) at the bin's end, and
    ``success_rate`` and ``expected_success`` within the bin.
    """
    n, n_students = len(trace), trace["student"].nunique()
    metrics = {"n_decisions": n, "n_students": n_students,
               "success_rate": trace["correct"].mean(),
               "expected_success": trace["p_chosen"].mean(),
               "cumulative_regret": trace["regret"].sum(),
               "regret_per_decision": trace["regret"].mean(),
               "learning_gain": trace["gain"].sum() / n_students}
    bins = np.minimum(np.arange(n) * n_bins // n, n_bins - 1)
    grouped = trace.groupby(bins)
    curves = pd.DataFrame({
        "decisions": grouped.size().cumsum(),
        "cumulative_regret": grouped["regret"].sum().cumsum(),
        "success_rate": grouped["correct"].mean(),
        "expected_success": grouped["p_chosen"].mean(),
        "learning_gain": grouped["gain"].sum().cumsum() / n_students,
    }).rename_axis("bin").reset_index()
    return metrics, curves


def run_one(name: str, seed: int, config: StudyConfig) -> tuple[dict, pd.DataFrame]:
    """Run policy ``name`` on the school of ``seed``; its metrics and curves, labelled."""
    from threadpoolctl import threadpool_limits

    env = SchoolEnv(SchoolConfig(n_students=config.n_students, seed=seed))
    policy = make_policy(name, env, config)
    rng = np.random.default_rng([seed, POLICIES.index(name)])
    with threadpool_limits(limits=1):  # small matrices: threaded BLAS only adds overhead
        trace = run_policy(policy, env, rng, config.days)
    metrics, curves = summarise_trace(trace, config.n_bins)
    return {"policy": name, "seed": seed, **metrics}, curves.assign(policy=name, seed=seed)


@dataclass
class StudyResult:
    """What :func:`run_study` measured.

    Attributes
    ----------
    runs, summary, curves : DataFrame
        ``runs``: one row per (policy, seed) with ``n_decisions, n_students`` and
        :data:`RUN_METRICS`. ``summary``: one row per (policy, metric) with ``mean, ci_low,
        ci_high, n_seeds`` (95 % t-interval over seeds), for :data:`RUN_METRICS` and the
        paired differences ``<metric>_vs_<baseline>``. ``curves``: every run's curves
        (:func:`summarise_trace`) with ``policy, seed``.
    config : StudyConfig
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    config: StudyConfig


def run_study(config: StudyConfig | None = None, on_done=None) -> StudyResult:
    """Run every policy on every seed (in parallel when ``config.n_jobs > 1``).

    ``config`` defaults to the default study; ``on_done(policy, seed)`` is called as each
    run finishes (for a progress bar).
    """
    config = config or StudyConfig()
    _check_config(config)
    # slowest (LinUCB) first, so the parallel workers finish together
    tasks = sorted(((name, seed) for name in config.policies for seed in config.seeds),
                   key=lambda task: not task[0].startswith("linucb"))
    if config.n_jobs == 1:
        outputs = (run_one(name, seed, config) for name, seed in tasks)
    else:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=config.n_jobs, return_as="generator_unordered")
        outputs = parallel(delayed(run_one)(name, seed, config) for name, seed in tasks)
    results = []
    for metrics, curves in outputs:
        results.append((metrics, curves))
        if on_done is not None:
            on_done(metrics["policy"], metrics["seed"])
    order = {name: i for i, name in enumerate(config.policies)}
    runs = pd.DataFrame([m for m, _ in results]).sort_values(
        ["policy", "seed"], key=lambda col: col.map(order) if col.name == "policy" else col,
        ignore_index=True)
    curves = pd.concat([c for _, c in results], ignore_index=True)
    return StudyResult(runs, summarise_runs(runs), curves, config)


def summarise_runs(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over seeds of every metric, and paired differences to baselines.

    A paired difference (``<metric>_vs_<baseline>``) is taken seed by seed, where both
    policies met the same school and noise, so its interval is much narrower than the
    difference of the two means' intervals.
    """
    rows = []
    by_seed = runs.set_index(["policy", "seed"])
    for name, group in runs.groupby("policy", sort=False):
        for metric in RUN_METRICS:
            rows.append((name, metric, *confidence_interval(group[metric], level)))
        for baseline in (b for b in BASELINES if b != name and b in by_seed.index):
            paired = group.set_index("seed")
            for metric in PAIRED_METRICS:
                diff = (paired[metric] - by_seed.loc[baseline, metric]).dropna()
                rows.append((name, f"{metric}_vs_{baseline}",
                             *confidence_interval(diff, level)))
    return pd.DataFrame(rows, columns=["policy", "metric", "mean", "ci_low", "ci_high",
                                       "n_seeds"])


def confidence_interval(values, level=0.95) -> tuple[float, float, float, int]:
    """Mean and Student-t interval of ``values`` (NaN bounds with fewer than 2 values).

    >>> [round(v, 2) for v in confidence_interval([1.0, 2.0, 3.0])[:3]]
    [2.0, -0.48, 4.48]
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    mean = float(values.mean()) if n else np.nan
    if n < 2:
        return mean, np.nan, np.nan, n
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return mean, float(mean - half), float(mean + half), n


def _check_config(config: StudyConfig):
    unknown = [name for name in config.policies if name not in POLICIES]
    if unknown:
        raise SkbanditError(f"unknown policies {unknown} (expected names from {POLICIES})")
    if config.n_students < 1 or not config.seeds:
        raise SkbanditError(f"the study needs at least 1 student and 1 seed; found "
                            f"{config.n_students} students and {len(config.seeds)} seeds")
    if config.days is not None:
        _stop_seconds(SchoolConfig(n_students=1), config.days)
