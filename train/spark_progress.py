"""The learning-progress bands on Spark: the local job's ``progress`` stage, per student.

A delayed reward (:func:`skbandit.learning_progress.delayed_rewards`) needs each learned
event's next attempts by the same student on the same topic, among the learned events in
time order. So the learned events are repartitioned by student (a partition holds whole
students), each partition sorts its rows by (time, row order), the local engine's order, and
sums its rewards per (target, mastery stratum) with
:func:`skbandit.learning_progress.reward_sums`; the driver adds up the small sums and turns
them into bands with :func:`skbandit.learning_progress.bands_from_sums`, the local engine's
own arithmetic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.spark import ROW_ORDER
from skbandit import schema
from skbandit.learning_progress import (
    HORIZON,
    MASTERY_STRATA,
    TARGETS,
    ProgressBands,
    bands_from_sums,
    reward_sums,
)
from train import spark_engine as engine
from train.spark_contexts import TS

if TYPE_CHECKING:
    from train.spark_engine import TimeOrder

COLUMNS = (schema.USER_ID, schema.TOPIC, TS, ROW_ORDER, schema.CORRECT, schema.MASTERY,
           schema.DIFFICULTY, schema.DISCRIMINATION)
"""What a delayed reward needs of each learned event."""


def progress_bands(order: TimeOrder, bands: ProgressBands | None = None,
                   horizon: int = HORIZON) -> ProgressBands:
    """:func:`skbandit.learning_progress.progress_bands` of the learned events of ``order``.

    Adds to ``bands`` (a continued version's) when given, like the local engine.
    """
    targets = TARGETS if bands is None else bands.targets
    shape = (3, len(targets), MASTERY_STRATA)
    spark = order.frame.sparkSession
    n = max(spark.sparkContext.defaultParallelism,
            math.ceil(order.n_learned / engine.ROWS_PER_PARTITION))
    students = engine.learned_events(order, COLUMNS).repartition(n, schema.USER_ID)

    def partial(batches):
        frames = [frame for frame in batches if len(frame)]
        if not frames:
            return
        events = (pd.concat(frames, ignore_index=True)
                  .sort_values([TS, ROW_ORDER]).reset_index(drop=True))
        sums = reward_sums(events, events, targets, horizon)
        yield pd.DataFrame({"sums": [sums.ravel().tolist()]})

    total = np.zeros(shape)
    for row in students.mapInPandas(partial, "sums array<double>").collect():
        total += np.asarray(row["sums"]).reshape(shape)
    return bands_from_sums(total, bands)
