"""Calibration of warm-start's predictions on rule-logged data, against the simulator's truth.

Run from the repository root::

    python -m bench.bench_calibration                  # the default school (2,000 students)
    python -m bench.bench_calibration --students 500   # a smaller school, same settings

``python -m train.warmstart`` learns from events logged by the seed's rule with 10 %
exploration and weights every logged attempt once (no importance weighting), so it learns
most about the items the rule showed. This script simulates the school (the default one
unless ``--students`` shrinks it), builds the events' contexts as warm-start does, replays
them with progressive validation (each prediction made before the event is learned) and
also predicts every event with the final model (what the registered version predicts), then
prints, per band of the *true* success probability of the attempt, the mean prediction
minus the mean truth. It asserts nothing.
"""

import argparse
import time

import numpy as np
import pandas as pd

BANDS = (0.0, 0.4, 0.6, 0.8, 0.9, 1.0)
"""Edges of the bands of true success probability."""


def measure(n_students: int | None, seed: int = 0) -> pd.DataFrame:
    """One row per band of true p: events, mean truth, and each prediction's bias."""
    from dataclasses import replace

    from skbandit import schema
    from skbandit.context import historical_contexts
    from skbandit.model import TrainedModel
    from skbandit.progressive import replay_history
    from skbandit.sim.generate import P_TRUE, default_school_config, simulate_school

    config = default_school_config()
    config = replace(
        config, seed=seed, **({} if n_students is None else {"n_students": n_students})
    )
    school = simulate_school(config)
    order = np.argsort(school.events[schema.TIMESTAMP].to_numpy(), kind="stable")
    events = school.events.iloc[order].reset_index(drop=True)
    truth = school.truth[P_TRUE].to_numpy()[order]
    contexts = historical_contexts(events, school.items)
    pipeline = TrainedModel()
    replay = replay_history(pipeline, contexts, events[schema.CORRECT].to_numpy())
    progressive = replay.predictions["bandit"].to_numpy()
    final = np.clip(pipeline.predict(contexts), 0.0, 1.0)
    band = pd.cut(truth, BANDS, include_lowest=True)
    frame = pd.DataFrame({"band": band, "truth": truth, "final": final, "progressive": progressive})
    table = frame.groupby("band", observed=True).agg(
        events=("truth", "size"),
        true_p=("truth", "mean"),
        final=("final", "mean"),
        progressive=("progressive", "mean"),
    )
    table["final_bias"] = table["final"] - table["true_p"]
    table["progressive_bias"] = table["progressive"] - table["true_p"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--students", type=int, default=None, help="Students (default: the default school's 2,000)."
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    table = measure(args.students, args.seed)
    print("| true p | events | mean true p | final model | bias | progressive | bias |")
    print("|---|---|---|---|---|---|---|")
    for band, row in table.iterrows():
        print(
            f"| {band} | {int(row.events):,} | {row.true_p:.3f} | {row.final:.3f} | "
            f"{row.final_bias:+.3f} | {row.progressive:.3f} | {row.progressive_bias:+.3f} |"
        )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
