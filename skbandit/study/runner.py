"""Simulation study: ranking policies run online in the simulated school, scored by the truth.

Every policy plays a whole school (:class:`~skbandit.sim.env.SchoolEnv`) on its own, for
several seeds; a seed fixes the school and every attempt's random draws, so on one seed all
policies face the same students, timetable and outcome noise (common random numbers). At
each step all acting students choose at once, on the environment's array interface
(:meth:`SchoolEnv.candidate_arrays` -> one row per decision -> :meth:`SchoolEnv.step_indices`).

The policies are in :mod:`skbandit.study.policies` (:data:`POLICIES`).

Metrics per run (one policy on one seed), over the ``n`` decisions of the run:

- ``success_rate``: mean observed reward (correct);
- ``cumulative_regret``: ``sum_t [max_a p(a | s_t) - p(a_t | s_t)]`` where ``p`` is the true
  success probability in the policy's own state ``s_t`` (students' abilities evolve with
  what each policy showed them) and the max runs over the decision's candidates, so the
  ``oracle`` has regret 0 by construction; ``regret_per_decision`` is it divided by ``n``;
- ``learning_gain``: growth of true ability (logits), ``sum(ability_after -
  ability_before)`` divided by the number of students who practised (the simulator's own
  increments: a diagnostic, not the outcome);
- ``posttest_mid``, ``posttest_end``: the held-out post-test gain (points of 100, mean over
  the school's students) at mid-year and at the end (:mod:`skbandit.study.posttest`): the
  outcome the study reports.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from skbandit.exceptions import SkbanditError
from skbandit.policy_protocol import Policy
from skbandit.sim.env import CandidateArrays, SchoolEnv
from skbandit.sim.learning import LEARNING_SCENARIOS
from skbandit.sim.world import SchoolConfig, school_days
from skbandit.study.config import POLICIES, StudyConfig
from skbandit.study.history import stop_seconds
from skbandit.study.policies import OnlinePolicy, make_policy
from skbandit.study.posttest import make_test_form, posttest_gain

BASELINES = ("rule", "thompson")
"""Policies that the paired differences (``<metric>_vs_<baseline>``) compare against."""
RUN_METRICS = (
    "success_rate",
    "expected_success",
    "cumulative_regret",
    "regret_per_decision",
    "learning_gain",
    "posttest_mid",
    "posttest_end",
)
"""Per-run metrics of :func:`summarise_trace`."""
TRACE_COLUMNS = ("student", "p_chosen", "regret", "correct", "gain")
"""Columns of :func:`run_policy`'s per-decision trace."""
PAIRED_METRICS = ("success_rate", "cumulative_regret", "learning_gain", "posttest_end")
"""Metrics also reported as paired differences to :data:`BASELINES` on the same seed."""


class Checkpoints:
    """The students' true abilities at the start, mid-way and at the end of a run.

    ``abilities[name]`` is filled when the clock passes ``times[name]`` (epoch seconds), or
    at the end of the run for a time the run never reached.
    """

    def __init__(self, env: SchoolEnv, days: int | None):
        calendar = school_days(env.config)
        n_days = len(calendar) if days is None else min(days, len(calendar))
        end = calendar[n_days - 1] + pd.Timedelta(days=1)
        self.times = {"mid": calendar[n_days // 2].timestamp(), "end": end.timestamp()}
        self.abilities = {"start": env.ability.copy()}

    def observe(self, env: SchoolEnv) -> None:
        for name, time in self.times.items():
            if name not in self.abilities and env.slot_start >= time:
                self.abilities[name] = env.learning.abilities_at(time)

    def finish(self, env: SchoolEnv) -> None:
        for name, time in self.times.items():
            self.abilities.setdefault(name, env.learning.abilities_at(time))


def run_policy(
    policy: OnlinePolicy,
    env: SchoolEnv,
    rng: np.random.Generator,
    days: int | None = None,
    checkpoints: Checkpoints | None = None,
) -> pd.DataFrame:
    """Play ``policy`` against ``env`` until the year (or ``days`` school days) is over.

    Returns a DataFrame with one row per decision in step order and the columns
    :data:`TRACE_COLUMNS`: ``student, p_chosen, regret, correct, gain``. ``checkpoints``,
    when given, records the abilities for the post-test as the clock passes its times.
    """
    stop = stop_seconds(env.config, days)
    trace: dict[str, list] = {name: [] for name in TRACE_COLUMNS}
    while not env.done and env.slot_start < stop:
        if checkpoints is not None:
            checkpoints.observe(env)
        cands = env.candidate_arrays(columns=policy.columns)
        rows = policy.choose(cands, rng)
        _check_choice(policy, cands, rows)
        starts = np.searchsorted(cands.decision, np.arange(cands.n_decisions))
        best = np.maximum.reduceat(cands.p_true, starts)
        outcome = env.step_indices(cands.item[rows])
        reward = outcome.correct.astype(np.float64)
        policy.update(cands, rows, reward)
        policy.observe(cands, rows, outcome)
        values = (
            outcome.student,
            outcome.p_true,
            best - cands.p_true[rows],
            reward,
            outcome.ability_after - outcome.ability_before,
        )
        for name, value in zip(TRACE_COLUMNS, values, strict=True):
            trace[name].append(value)
    if not trace["student"]:
        raise SkbanditError(
            f"nobody practised in the first {days} school days (expected at "
            "least one attempt); use more days or students"
        )
    if checkpoints is not None:
        checkpoints.finish(env)
    return pd.DataFrame({name: np.concatenate(parts) for name, parts in trace.items()})


def _check_choice(
    policy: Policy[CandidateArrays], cands: CandidateArrays, rows: np.ndarray
) -> None:
    if rows.shape != (cands.n_decisions,) or (cands.decision[rows] != np.arange(rows.size)).any():
        raise SkbanditError(
            f"{type(policy).__name__} chose rows outside their decisions' "
            "candidates (expected one candidate row per decision)"
        )


def summarise_trace(trace: pd.DataFrame, n_bins: int) -> tuple[dict, pd.DataFrame]:
    """Metrics (:data:`RUN_METRICS`, ``n_decisions``, ``n_students``) and curves of a run.

    The curves have one row per bin of equally many decisions: ``bin``, ``decisions``,
    ``cumulative_regret`` and ``learning_gain`` (per student) at the bin's end, and
    ``success_rate`` and ``expected_success`` within the bin.
    """
    n, n_students = len(trace), trace["student"].nunique()
    metrics = {
        "n_decisions": n,
        "n_students": n_students,
        "success_rate": trace["correct"].mean(),
        "expected_success": trace["p_chosen"].mean(),
        "cumulative_regret": trace["regret"].sum(),
        "regret_per_decision": trace["regret"].mean(),
        "learning_gain": trace["gain"].sum() / n_students,
    }
    bins = np.minimum(np.arange(n) * n_bins // n, n_bins - 1)
    grouped = trace.groupby(bins)
    curves = (
        pd.DataFrame(
            {
                "decisions": grouped.size().cumsum(),
                "cumulative_regret": grouped["regret"].sum().cumsum(),
                "success_rate": grouped["correct"].mean(),
                "expected_success": grouped["p_chosen"].mean(),
                "learning_gain": grouped["gain"].sum().cumsum() / n_students,
            }
        )
        .rename_axis("bin")
        .reset_index()
    )
    return metrics, curves


def run_one(name: str, seed: int, config: StudyConfig) -> tuple[dict, pd.DataFrame]:
    """Run policy ``name`` on the school of ``seed``; its metrics and curves, labelled."""
    from threadpoolctl import threadpool_limits

    env = SchoolEnv(school_config(config, seed))
    policy = make_policy(name, env, config)
    rng = np.random.default_rng([seed, POLICIES.index(name)])
    checkpoints = Checkpoints(env, config.days)
    with threadpool_limits(limits=1):  # small matrices: threaded BLAS only adds overhead
        trace = run_policy(policy, env, rng, config.days, checkpoints)
    metrics, curves = summarise_trace(trace, config.n_bins)
    form, start = make_test_form(env.world), checkpoints.abilities["start"]
    for point in ("mid", "end"):
        gains = posttest_gain(env.world, form, start, checkpoints.abilities[point])
        metrics[f"posttest_{point}"] = float(gains.mean())
    labels = {"policy": name, "seed": seed, "learning": config.learning}
    return {**labels, **metrics}, curves.assign(**labels)


def school_config(config: StudyConfig, seed: int) -> SchoolConfig:
    """The school of ``seed`` under the study's learning scenario."""
    if config.learning not in LEARNING_SCENARIOS:
        raise SkbanditError(
            f"unknown learning scenario {config.learning!r} (expected one of "
            f"{tuple(LEARNING_SCENARIOS)})"
        )
    return SchoolConfig(
        n_students=config.n_students, seed=seed, **LEARNING_SCENARIOS[config.learning]
    )


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
        (:func:`summarise_trace`) with ``policy, seed``, sorted by policy (in
        ``config.policies`` order), seed and bin.
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
    tasks = sorted(
        ((name, seed) for name in config.policies for seed in config.seeds),
        key=lambda task: not task[0].startswith("linucb"),
    )
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
    runs = _sorted(pd.DataFrame([m for m, _ in results]), ["policy", "seed"], config.policies)
    curves = _sorted(
        pd.concat([c for _, c in results], ignore_index=True),
        ["policy", "seed", "bin"],
        config.policies,
    )
    return StudyResult(runs, summarise_runs(runs), curves, config)


def _sorted(frame: pd.DataFrame, by: list[str], policies) -> pd.DataFrame:
    """``frame`` sorted by ``by``, ``policy`` in ``policies`` order.

    Parallel workers finish in any order; the study's result must not depend on it.
    """
    order = {name: i for i, name in enumerate(policies)}
    return frame.sort_values(
        by, key=lambda col: col.map(order) if col.name == "policy" else col, ignore_index=True
    )


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
                rows.append((name, f"{metric}_vs_{baseline}", *confidence_interval(diff, level)))
    return pd.DataFrame(rows, columns=["policy", "metric", "mean", "ci_low", "ci_high", "n_seeds"])


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
        raise SkbanditError(
            f"the study needs at least 1 student and 1 seed; found "
            f"{config.n_students} students and {len(config.seeds)} seeds"
        )
    if config.days is not None:
        stop_seconds(SchoolConfig(n_students=1), config.days)
    school_config(config, 0)
