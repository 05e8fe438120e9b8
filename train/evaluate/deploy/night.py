"""One night of a simulated deployment: judge the waiting challenger, train the next one.

Each night, after a school day served by the champion:

1. The day's outcomes are joined back to the decisions the champion logged
   (:func:`skbandit.ope.join.join_outcomes`).
2. If a challenger trained on an earlier night is waiting, it is evaluated on the day's
   served log, which it has never seen: IPS, SNIPS and DR estimates of its value
   (:mod:`skbandit.ope`), beside the simulator's truth for it, ``mean_i sum_a
   pi_challenger(a | x_i) p_true(a | x_i)`` over the answered decisions (and the same for
   the champion, and for the expected ability gain instead of success); then the gate
   decides (:func:`train.evaluate.compare.job.run_compare` with ``--promote``, ranking as REST
   serves).
3. Warm-start continues from the champion (after any promotion) on every attempt so far,
   learning those after the champion's ``trained_until``, and registers the next
   ``challenger`` (:func:`train.warmstart.job.run_warmstart`).

The challenger judged on night ``d`` is the one trained on night ``d - 1``: evaluating a model
on the decisions it was trained on would flatter it (``compare`` warns about exactly that).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapters.registry import CHALLENGER_ALIAS, CHAMPION_ALIAS
from skbandit import schema
from skbandit.exceptions import SkbanditError
from train.evaluate.deploy.school import GAIN_TRUE, P_TRUE, ServedDay

if TYPE_CHECKING:
    import pandas as pd

    from skbandit.ope.join import JoinReport
    from train.evaluate.compare.options import Comparison

OPE_ESTIMATORS = ("ips", "snips", "dr")
TRUTHS = (P_TRUE, GAIN_TRUE)


@dataclass(frozen=True)
class ChallengerCheck:
    """The waiting challenger on one day's served log.

    ``estimates`` maps each of :data:`OPE_ESTIMATORS` to its
    :class:`~skbandit.ope.estimators.PolicyValueEstimate`; ``truth`` is the simulator's value
    (success probability) of the challenger on the same decisions and ``champion_truth`` the
    champion's, so ``truth - champion_truth`` is what the gate's paired difference estimates
    with the ``correct`` reward; ``teaching`` and ``champion_teaching`` are the same for the
    simulator's expected ability gain (logits per attempt): which of the two teaches more.
    ``gate`` is the comparison that decided.
    """

    version: str
    estimates: dict
    truth: float
    champion_truth: float
    teaching: float
    champion_teaching: float
    n_decisions: int
    gate: Comparison


@dataclass(frozen=True)
class Night:
    """What one night did: the join, the judged challenger (None on the first night after a
    promotion-free start, when the only version is the champion) and the next challenger."""

    join: JoinReport
    check: ChallengerCheck | None
    next_challenger: str
    champion: str


def quiet_console():
    """A console for the jobs the deployment calls (their own summaries are not printed)."""
    from rich.console import Console

    return Console(file=io.StringIO(), width=100)


def join_day(decision_log: str, model_name: str, day: ServedDay, since: pd.Timestamp):
    """The day's answered decisions, the logged candidates and the join's counts."""
    from adapters.decision_log import DecisionLog
    from skbandit.ope import join

    decisions, candidates = DecisionLog(decision_log).read(model_name=model_name, since=since)
    joined, report = join.join_outcomes(decisions, day.outcomes(), model_name=model_name)
    return joined, candidates, report


def evaluate_version(
    version: str,
    model_name: str,
    joined,
    candidates,
    day: ServedDay,
    *,
    estimators=OPE_ESTIMATORS,
    n_bootstrap: int = 1000,
    seed: int = 0,
):
    """``(estimates, truths)`` of version ``version`` on the day's answered decisions, ranking
    as REST serves: ``estimates`` maps each of ``estimators`` to its estimate (of the
    ``correct`` reward); ``truths`` maps ``p_true`` and ``gain_true`` to
    ``mean_i sum_a pi(a | x_i) v(a | x_i)`` for those two columns of ``day.truth``."""
    from adapters import registry
    from skbandit.ope import join, targets
    from skbandit.ranking_settings import REST_SETTINGS

    pipeline, _ = registry.load_model(registry.ModelRef(model_name, version=version))
    answered = candidates[candidates[schema.DECISION_ID].isin(joined[schema.DECISION_ID])]
    with_truth = answered.merge(
        day.truth, on=[schema.DECISION_ID, schema.ITEM_ID], how="left", validate="one_to_one"
    )
    if with_truth[P_TRUE].isna().any():
        raise SkbanditError(
            "the decision log holds candidates the simulator did not offer "
            "(another deployment's decisions under this model name?); pass "
            "a fresh --decision-log"
        )
    inputs = join.served_inputs(
        joined,
        with_truth,
        targets.linucb_policy(pipeline, REST_SETTINGS),
        reward_model=targets.linucb_reward_model(pipeline),
        expectations={name: _column(name) for name in TRUTHS},
    )
    estimates = {
        name: inputs.estimate(name, n_bootstrap=n_bootstrap, rng=seed) for name in estimators
    }
    return estimates, {name: float(inputs.expectations[name].mean()) for name in TRUTHS}


def _column(name: str):
    return lambda chunk: chunk[name].to_numpy(np.float64)


def gate(
    model_name: str,
    decision_log: str,
    files: tuple[Path, Path],
    since: pd.Timestamp,
    seed: int,
    n_bootstrap: int,
    reward: str = "correct",
) -> Comparison:
    """``compare --candidate @challenger --promote`` on the day's log, ranking as REST serves;
    ``files`` are the day's outcomes and the items."""
    from skbandit.ranking_settings import REST_SETTINGS
    from train.evaluate.compare.job import run_compare
    from train.evaluate.compare.options import CompareOptions

    options = CompareOptions(
        candidate=f"models:/{model_name}@{CHALLENGER_ALIAS}",
        baseline=f"models:/{model_name}@{CHAMPION_ALIAS}",
        events=files[0],
        items=files[1],
        decisions=decision_log,
        promote=True,
        estimator="dr",
        ranking=REST_SETTINGS,
        since=since.isoformat(),
        n_bootstrap=n_bootstrap,
        seed=seed,
        reward=reward,
    )
    return run_compare(options, quiet_console())


def train_challenger(model_name: str, events: Path, items: Path, first: bool) -> str:
    """Warm-start from the champion (or from scratch for the first version); its number."""
    from contextlib import redirect_stderr

    from train.warmstart.job import WarmstartOptions, run_warmstart

    options = WarmstartOptions(
        events=events,
        items=items,
        model_name=model_name,
        alias=CHALLENGER_ALIAS,
        from_model=None if first else f"models:/{model_name}@{CHAMPION_ALIAS}",
    )
    with redirect_stderr(io.StringIO()):  # mlflow prints each registration; errors still raise
        return str(run_warmstart(options, quiet_console()).version.version)


def run_night(
    *,
    model_name: str,
    decision_log: str,
    day: ServedDay,
    since: pd.Timestamp,
    files: tuple[Path, Path, Path],
    seed: int,
    n_bootstrap: int,
    reward: str = "correct",
) -> Night:
    """Join, judge the waiting challenger, train the next one (see the module docstring).

    ``files`` are the paths of every attempt so far, the items and the day's outcomes.
    """
    from adapters.registry.register import alias_holder

    events, items, outcomes = files
    joined, candidates, report = join_day(decision_log, model_name, day, since)
    waiting = alias_holder(model_name, CHALLENGER_ALIAS)
    check = None
    if waiting is not None and waiting != day.version:
        estimates, truth = evaluate_version(
            waiting, model_name, joined, candidates, day, n_bootstrap=n_bootstrap, seed=seed
        )
        _, champion = evaluate_version(
            day.version, model_name, joined, candidates, day, estimators=()
        )
        verdict = gate(
            model_name, decision_log, (outcomes, items), since, seed, n_bootstrap, reward
        )
        check = ChallengerCheck(
            waiting,
            estimates,
            truth[P_TRUE],
            champion[P_TRUE],
            truth[GAIN_TRUE],
            champion[GAIN_TRUE],
            len(joined),
            verdict,
        )
    following = train_challenger(model_name, events, items, first=False)
    return Night(report, check, following, alias_holder(model_name, CHAMPION_ALIAS) or "")
