"""Coverage of the promotion gate's interval against the simulator's truth, by effective size.

    python -m bench.bench_gate_coverage [--seeds 10] [--students 300] [--n-bootstrap 400]

What it measures: how often the 95% interval of the paired difference
``V(candidate) - V(champion)`` (doubly robust, both on the same logged decisions) contains the
simulator's truth, for the student (cluster) bootstrap the gate uses and, for comparison, the
per-decision bootstrap. The truth is the one of ``tests/skbandit/test_ope_validation.py``:
the expected reward of each policy's choice in the logged contexts, from the simulator's true
success probabilities.

Design: each seed simulates a school (rule+epsilon logging policy, epsilon 0.1); a LinUCB
pipeline learns the first half of the events and serves as reward model; the champion is
the rule policy, the candidates LinUCB softmax policies at a few temperatures and objectives
(their overlap with the logging policy sets the effective sample size). The second half is cut
into disjoint groups of students (group sizes below), every group is one replicate. The table
bins the replicates by the gate's effective sample size (the smaller of the two policies').
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.context import historical_contexts
from skbandit.model import TrainedModel
from skbandit.ope import targets as ope_targets
from skbandit.ope.gate import paired_difference
from skbandit.ranking_settings import RankingSettings
from skbandit.sim.generate import SchoolConfig, simulate_school
from tests.support.simulated_truth import true_success

GROUP_SIZES = (20, 40, 75, 150)
CANDIDATES = {
    "target_band T=0.05": RankingSettings(
        objective="target_band", exploration="softmax", temperature=0.05
    ),
    "target_band T=0.2": RankingSettings(
        objective="target_band", exploration="softmax", temperature=0.2
    ),
    "target_band T=1": RankingSettings(
        objective="target_band", exploration="softmax", temperature=1.0
    ),
    "max_success T=0.05": RankingSettings(
        objective="max_success", exploration="softmax", temperature=0.05
    ),
}
BINS = (0, 15, 30, 50, 100, 200, 400, np.inf)


def replicates(seed: int, n_students: int, n_bootstrap: int) -> list[dict]:
    config = SchoolConfig(
        n_students=n_students,
        seed=seed,
        start_date="2023-09-05",
        end_date="2023-11-10",
        attempts_per_student=40,
    )
    school = simulate_school(config)
    contexts = historical_contexts(school.events, school.items)
    half = len(school.events) // 2
    pipeline = TrainedModel()
    pipeline.partial_fit(contexts.iloc[:half], school.events[schema.CORRECT].to_numpy()[:half])
    rows = np.arange(half, len(school.events))
    common = {
        "reward_model": ope_targets.linucb_reward_model(pipeline),
        "expectations": {"truth": true_success(school)},
        "contexts": contexts,
        "rows": rows,
    }
    champion = ope_targets.off_policy_inputs(
        school.events, school.items, ope_targets.rule_policy(), **common
    )
    students = school.events[schema.USER_ID].to_numpy()[rows]
    rng = np.random.default_rng(seed)
    out = []
    for name, settings in CANDIDATES.items():
        candidate = ope_targets.off_policy_inputs(
            school.events, school.items, ope_targets.linucb_policy(pipeline, settings), **common
        )
        truth = candidate.expectations["truth"] - champion.expectations["truth"]
        for size in GROUP_SIZES:
            order = rng.permutation(np.unique(students))
            for group in np.array_split(order, len(order) // size):
                mask = np.isin(students, group)
                out.append(
                    {
                        "candidate": name,
                        "students": size,
                        **_covered(candidate, champion, students, mask, truth, n_bootstrap, rng),
                    }
                )
    return out


def _covered(candidate, champion, students, mask, truth, n_bootstrap, rng) -> dict:
    terms = [
        tuple(None if part is None else part[mask] for part in inputs.terms("dr"))
        for inputs in (candidate, champion)
    ]
    target = float(truth[mask].mean())
    result = {}
    for label, units in (("student", students[mask]), ("decision", np.flatnonzero(mask))):
        d = paired_difference(*terms, units, n_bootstrap=n_bootstrap, rng=rng)
        result[label] = d.ci_low <= target <= d.ci_high
        result["ess"] = d.effective_sample_size
    return result


def coverage_table(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(ess_bin=pd.cut(frame["ess"], BINS, right=False))
    table = frame.groupby("ess_bin", observed=True).agg(
        replicates=("student", "size"),
        student_bootstrap=("student", "mean"),
        decision_bootstrap=("decision", "mean"),
        median_ess=("ess", "median"),
    )
    return table.round(3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--n-bootstrap", type=int, default=400)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [
        row
        for seed in range(args.seeds)
        for row in replicates(seed, args.students, args.n_bootstrap)
    ]
    frame = pd.DataFrame(rows)
    print(
        f"{len(frame)} replicates from {args.seeds} schools of {args.students} students, "
        f"95% intervals of the DR paired difference, {args.n_bootstrap} resamples "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(coverage_table(frame).to_string())
    print("\nby candidate and group size (student bootstrap coverage, median ESS):")
    print(
        frame.groupby(["candidate", "students"])
        .agg(
            replicates=("student", "size"),
            coverage=("student", "mean"),
            median_ess=("ess", "median"),
        )
        .round(3)
        .to_string()
    )


if __name__ == "__main__":
    main()
