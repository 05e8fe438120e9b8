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

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adapters.data.spark import ROW_ORDER
from skbandit import schema
from skbandit.learning_progress import (
    HORIZON,
    MASTERY_STRATA,
    TARGETS,
    ProgressBands,
    bands_from_sums,
    reward_sums,
)
from train.spark import engine as engine
from train.spark.contexts import TS, floats, key_codes, partitions_for, whole_partition

if TYPE_CHECKING:
    from train.spark.engine import TimeOrder

REWARD_COLUMNS = (
    schema.USER_ID,
    schema.TOPIC,
    schema.CORRECT,
    schema.MASTERY,
    schema.DIFFICULTY,
    schema.DISCRIMINATION,
)
"""What a delayed reward needs of each learned event."""
COLUMNS = (*REWARD_COLUMNS, TS, ROW_ORDER)
"""The same, with the time order."""


def progress_bands(
    order: TimeOrder, bands: ProgressBands | None = None, horizon: int = HORIZON
) -> ProgressBands:
    """:func:`skbandit.learning_progress.progress_bands` of the learned events of ``order``.

    Adds to ``bands`` (a continued version's) when given, like the local engine.
    """
    targets = TARGETS if bands is None else bands.targets
    shape = (3, len(targets), MASTERY_STRATA)
    n = partitions_for(order.frame.sparkSession, order.n_learned)
    students = engine.learned_events(order, COLUMNS).repartition(n, schema.USER_ID)

    def partial(batches):
        import pyarrow as pa

        table = whole_partition(batches)
        if table is not None:
            keys = (schema.USER_ID, schema.TOPIC)
            events = pd.DataFrame(
                {
                    name: key_codes(table, name) if name in keys else floats(table, name)
                    for name in REWARD_COLUMNS
                }
            )
            sums = reward_sums(events, events, targets, horizon)
            yield pa.RecordBatch.from_pydict({"sums": [sums.ravel().tolist()]})

    total = np.zeros(shape)
    for row in students.mapInArrow(partial, "sums array<double>").collect():
        total += np.asarray(row["sums"]).reshape(shape)
    return bands_from_sums(total, bands)
