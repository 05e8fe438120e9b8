"""The sweep's teaching side: the target experiment run once per school, and the gap shares.

Before the sweep's runs, :func:`run_experiment` measures the fit's design bias on null-world
history schools and then, for every (learning model, school), runs the school's history
school with the target experiment and identifies the target to serve
(:mod:`skbandit.study.experiment`); the experiment-driven policies of that school serve it.

:func:`gap_shares` reports, per (learning model, policy), the share of two gaps the policy
closes over the rule, with 95 % bootstrap intervals over schools:

- the **achievable gap**, rule to ``oracle_achievable`` (knows the learning model, sees what
  a deployed policy sees), and
- the **full gap**, rule to ``oracle_learning`` (knows every true success probability).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skbandit.study.experiment import design_bias, identified_target
from skbandit.study.runner import school_config

EXPERIMENT_POLICIES = ("experiment_served", "experiment_argmax", "linucb_experiment_served")
"""Policies that serve the target a school's experiment history identifies."""
BOOTSTRAP = 2000
"""Resamples of the schools behind a gap share's interval."""


@dataclass
class ExperimentOutcome:
    """What the experiment side of a sweep measured.

    Attributes
    ----------
    bias : dict of float to float
        Design bias per target (logits per attempt) on the null worlds.
    targets : DataFrame
        One row per (learning, seed): ``target`` (served), ``best_rate_target`` (highest
        identified rate), ``n_attempts`` (the history's size), and ``rate_<t>`` /
        ``se_<t>`` per arm.
    seconds : dict of str to float
        Wall time of the bias and of the histories with their fits.
    """

    bias: dict
    targets: pd.DataFrame
    seconds: dict

    def study_inputs(self, learning: str):
        """``(design_bias, served_targets)`` pairs for the learning model's study."""
        part = self.targets[self.targets["learning"] == learning]
        return (
            tuple(self.bias.items()),
            tuple(
                zip(
                    part["seed"].tolist(),
                    part["target"].tolist(),
                    part["best_rate_target"].tolist(),
                    strict=True,
                )
            ),
        )


def run_experiment(config) -> ExperimentOutcome:
    """The design bias, then every (learning, seed)'s identified target (``config`` a
    :class:`~skbandit.study.sweep.SweepConfig`)."""
    state = config.study(config.learning[0]).experiment()
    started = time.perf_counter()
    bias = design_bias(
        range(config.null_seeds), config.days, config.history_students, state, config.n_jobs
    )
    bias_seconds = time.perf_counter() - started
    tasks = [(learning, seed) for learning in config.learning for seed in config.seeds]

    def one(learning, seed):
        school = school_config(config.study(learning), seed)
        target, curves = identified_target(
            school, config.days, config.history_students, state, bias
        )
        row = {
            "learning": learning,
            "seed": seed,
            "target": target,
            "best_rate_target": float(curves.targets[np.argmax(curves.rates)]),
            "n_attempts": int(curves.n_attempts.sum()),
        }
        for t, rate, se in zip(curves.targets, curves.rates, curves.stderr, strict=True):
            row[f"rate_{t:g}"], row[f"se_{t:g}"] = float(rate), float(se)
        return row

    started = time.perf_counter()
    if config.n_jobs == 1:
        rows = [one(*task) for task in tasks]
    else:
        from joblib import Parallel, delayed

        rows = Parallel(n_jobs=config.n_jobs)(delayed(one)(*task) for task in tasks)
    seconds = {"bias": bias_seconds, "histories": time.perf_counter() - started}
    return ExperimentOutcome(bias, pd.DataFrame(rows), seconds)


def gap_shares(runs: pd.DataFrame, level: float = 0.95, n_boot: int = BOOTSTRAP) -> pd.DataFrame:
    """Share of the achievable and of the full gap each policy closes over the rule.

    ``runs`` as :class:`~skbandit.study.sweep.SweepResult` has them (``learning, policy,
    seed, posttest_end``). A share is ``mean(policy - rule) / mean(oracle - rule)`` over the
    schools (paired by seed); its interval is the percentile interval of that ratio over
    ``n_boot`` resamples of the schools (seeded, so reproducible). NaN where the oracle is
    missing or does not beat the rule (under the nulls every policy ties).

    Columns: ``learning, policy, vs_rule, achievable, achievable_low, achievable_high, full,
    full_low, full_high, n_seeds``.
    """
    rng = np.random.default_rng(0)
    out = []
    for learning, group in runs.groupby("learning", sort=False):
        table = group.pivot(index="seed", columns="policy", values="posttest_end")
        if "rule" not in table:
            continue
        seeds = table.index.size
        draws = rng.integers(0, seeds, (n_boot, seeds))
        diff = table.sub(table["rule"], axis=0)
        for name in dict.fromkeys(group["policy"]):
            row = {"learning": learning, "policy": name, "vs_rule": diff[name].mean()}
            for label, oracle in (("achievable", "oracle_achievable"), ("full", "oracle_learning")):
                row.update(_share(diff, name, oracle, draws, level, label))
            out.append({**row, "n_seeds": seeds})
    return pd.DataFrame(out)


def _share(diff, name, oracle, draws, level, label) -> dict:
    nan = {label: np.nan, f"{label}_low": np.nan, f"{label}_high": np.nan}
    if oracle not in diff or not diff[oracle].mean() > 0:
        return nan
    mine, gap = diff[name].to_numpy(), diff[oracle].to_numpy()
    boot_gap = gap[draws].mean(axis=1)
    ok = boot_gap > 0
    ratios = mine[draws].mean(axis=1)[ok] / boot_gap[ok]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail]) if ratios.size else (np.nan,) * 2
    return {label: mine.mean() / gap.mean(), f"{label}_low": low, f"{label}_high": high}


def gap_markdown(shares: pd.DataFrame, policies=None) -> str:
    """The gap shares as Markdown (``policies``: which rows, in that order; default all).

    >>> shares = pd.DataFrame({"learning": ["x"], "policy": ["p"], "vs_rule": [0.1],
    ...     "achievable": [0.5], "achievable_low": [0.4], "achievable_high": [0.6],
    ...     "full": [0.25], "full_low": [0.2], "full_high": [0.3], "n_seeds": [20]})
    >>> print(gap_markdown(shares).splitlines()[2])
    | x | p | +0.10 | 50% [40%, 60%] | 25% [20%, 30%] |
    """
    lines = [
        "| learning model | policy | vs rule (points) | share of achievable gap "
        "| share of full gap |",
        "|---|---|---|---|---|",
    ]
    rows = shares if policies is None else shares[shares["policy"].isin(policies)]
    for row in rows.itertuples(index=False):
        achievable = _percent(row.achievable, row.achievable_low, row.achievable_high)
        full = _percent(row.full, row.full_low, row.full_high)
        lines.append(
            f"| {row.learning} | {row.policy} | {row.vs_rule:+.2f} | {achievable} | {full} |"
        )
    return "\n".join(lines) + "\n"


def _percent(mean, low, high) -> str:
    if mean != mean:
        return "-"
    return f"{mean:.0%} [{low:.0%}, {high:.0%}]"


def experiment_markdown(outcome: ExperimentOutcome) -> str:
    """Per learning model: how often each target was served, the history's size, the bias.

    >>> outcome = ExperimentOutcome({0.7: 0.0, 0.9: -0.01}, pd.DataFrame({"learning": ["x"] * 2,
    ...     "seed": [0, 1], "target": [0.7, 0.9], "best_rate_target": [0.9, 0.9],
    ...     "n_attempts": [100, 110]}), {"bias": 1.0, "histories": 2.0})
    >>> print(experiment_markdown(outcome).splitlines()[2])
    | x | 0.7 x1, 0.9 x1 | 0.9 x2 | 105 |
    """
    lines = [
        "| learning model | served target (schools) | highest identified rate (schools) "
        "| attempts per history |",
        "|---|---|---|---|",
    ]
    for learning, part in outcome.targets.groupby("learning", sort=False):
        served = _counts(part["target"])
        best = _counts(part["best_rate_target"])
        lines.append(f"| {learning} | {served} | {best} | {part['n_attempts'].mean():.0f} |")
    bias = ", ".join(f"{t:g}: {b:+.4f}" for t, b in outcome.bias.items())
    lines += [
        "",
        f"Design bias subtracted (logits per attempt, null worlds): {bias}.",
        f"Wall time: bias {outcome.seconds['bias']:.0f} s, histories and fits "
        f"{outcome.seconds['histories']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def _counts(values) -> str:
    counts = pd.Series(values).value_counts().sort_index()
    return ", ".join(f"{t:g} x{n}" for t, n in counts.items())
