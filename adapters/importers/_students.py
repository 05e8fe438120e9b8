"""A quick first look at a big export: only some students, the same ones on every run.

``--max-students N`` keeps the first ``N`` students in file order; ``--sample-students F``
keeps each student with probability ``F``, decided by a hash of the student id and
``--seed`` (so a student is in or out as a whole, and a re-run keeps the same students).
Both act on the raw rows before any rule of the format, the same in memory and streaming.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skbandit.exceptions import SkbanditError

_HASH_SPAN = float(2**64)


def check_fraction(fraction: float | None) -> None:
    """Refuse a sample fraction outside (0, 1]."""
    if fraction is not None and not 0 < fraction <= 1:
        raise SkbanditError(
            f"--sample-students {fraction} is not in (0, 1]; pass e.g. 0.01 for 1% of the students"
        )


def sampled(students, fraction: float, seed: int) -> np.ndarray:
    """Which of ``students`` (ids as text) the ``fraction`` sample keeps (a boolean mask).

    >>> sampled(["u1", "u2", "u1"], 1.0, 0).tolist()
    [True, True, True]
    """
    values = np.asarray(students, dtype=object)
    key = f"skbandit{seed:08d}"[-16:]
    hashed = pd.util.hash_array(values, hash_key=key, categorize=True)
    return hashed.astype(np.float64) < fraction * _HASH_SPAN


def first_students(students, n: int, seen: dict | None = None) -> np.ndarray:
    """Which rows belong to the first ``n`` students by first appearance (a boolean mask).

    ``seen`` (student -> True, in order) carries the students met so far across the
    batches of a stream; it is updated in place.

    >>> first_students(["b", "a", "b", "c"], 2).tolist()
    [True, True, True, False]
    """
    seen = {} if seen is None else seen
    values = pd.Series(np.asarray(students, dtype=object))
    for student in pd.unique(values.to_numpy()):
        if len(seen) >= n:
            break
        seen.setdefault(student, True)
    return values.isin(list(seen)).to_numpy(dtype=bool)


def select_students(students: pd.Series, options, report, seen: dict | None = None):
    """The rows ``options.sample_students`` then ``options.max_students`` keep (a boolean
    mask, the drops counted in ``report``), or None when every row stays."""
    values = students.to_numpy(dtype=object)
    keep = np.ones(len(values), dtype=bool)
    if options.sample_students is not None:
        keep &= sampled(values, options.sample_students, options.seed)
        report.count(sample_label(options.sample_students, options.seed), (~keep).sum())
    if options.max_students is not None:
        first = np.zeros(len(values), dtype=bool)
        first[keep] = first_students(values[keep], options.max_students, seen)
        report.count(max_students_label(options.max_students), (keep & ~first).sum())
        keep &= first
    return None if keep.all() else keep


def max_students_label(n: int) -> str:
    return f"rows dropped: beyond the first {n:,} students (--max-students)"


def sample_label(fraction: float, seed: int) -> str:
    return (
        f"rows dropped: students outside the {fraction:g} sample (--sample-students, seed {seed})"
    )
