"""What a simulated deployment (``python -m train.evaluate deploy``) is asked to do, and what
it found, day by day."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from adapters import registry

if TYPE_CHECKING:
    from train.evaluate.deploy.night import Night
    from train.evaluate.deploy.school import ServedDay

DEFAULT_MODEL_NAME = "skbandit-deploy"
MIN_STUDENTS = 10
PRODUCTION_MODEL_NAME = registry.DEFAULT_MODEL_NAME
"""The served model, which a simulated deployment must never write to."""


class Via(StrEnum):
    """How the champion is reached: its ``predict`` in this process, or a real server."""

    in_process = "in-process"
    rest = "rest"


@dataclass(frozen=True)
class DeployOptions:
    """Everything the deployment was asked to do (logged as run parameters)."""

    days: int = 5
    students: int = 2000
    seed: int | None = None
    """The school's seed; with a seed every served draw is seeded from it too (reproducible,
    logged ``seeded``). None: the default school (seed 0) with unseeded draws, as REST."""
    history_days: int = 5
    via: str = Via.in_process.value
    model_name: str | None = None
    """None: the first free of ``skbandit-deploy``, ``skbandit-deploy-2``, ..."""
    decision_log: str | None = None
    out: Path | None = None
    n_bootstrap: int = 1000
    gate_reward: str = "correct"
    """What the gate estimates (``compare --reward``): ``correct`` or ``progress``."""


@dataclass
class DayResult:
    """One school day and the night after it."""

    day: int
    served: ServedDay
    night: Night
    seconds: float


@dataclass
class DeployResult:
    """The deployment: its options, day 0 (attempts in the history, the first version), where
    decisions went, every day, the MLflow run and the wall time."""

    options: DeployOptions
    history_events: int
    first_version: str
    decision_log: str
    days: list[DayResult] = field(default_factory=list)
    run_id: str = ""
    seconds: float = 0.0
