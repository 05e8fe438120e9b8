"""Candidate sets of the decision log packed one row per decision, and unpacked to a table.

A packed row is ``(decision_id, n_candidates, input_columns, item_ids, model_inputs,
served_rank, propensity, slot_propensity)``: the column names and item ids as JSON lists,
the model inputs as an ``n x len(input_columns)`` float64 array (row-major), ``served_rank``
as int32 (0 for a candidate not shown) and both propensities as float64 (``slot_propensity``
NaN where not shown), every array as little-endian bytes. The input column names are stored
with each row, so a log written before a model input was added still reads: the new column
takes its documented default there (``guessing``: 0, see :mod:`skbandit.schema`), or is null.

>>> import numpy as np
>>> row = pack("d1", ["a", "b"], np.array([[0.1, 0.2], [0.3, 0.4]]), ("x", "y"),
...            np.array([1, 0]), np.array([0.9, 0.1]), np.array([0.9, np.nan]))
>>> row[:4]
('d1', 2, '["x", "y"]', '["a", "b"]')
>>> unpack([[row]], ("x", "y"))[["decision_id", "item_id", "x", "served_rank"]]
  decision_id item_id    x  served_rank
0          d1       a  0.1            1
1          d1       b  0.3         <NA>
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd

FLOAT, RANK = np.dtype("<f8"), np.dtype("<i4")


def pack(
    decision_id: str,
    item_ids,
    inputs: np.ndarray,
    input_columns,
    served_rank,
    propensity,
    slot_propensity,
) -> tuple:
    """One decision's candidates as a packed row (``served_rank`` 0 where not shown)."""
    return (
        decision_id,
        len(item_ids),
        json.dumps(list(input_columns)),
        json.dumps(list(item_ids)),
        np.ascontiguousarray(inputs, dtype=FLOAT).tobytes(),
        np.asarray(served_rank, dtype=RANK).tobytes(),
        np.asarray(propensity, dtype=FLOAT).tobytes(),
        np.asarray(slot_propensity, dtype=FLOAT).tobytes(),
    )


def pack_frame(candidates: pd.DataFrame, input_columns) -> list[tuple]:
    """Packed rows of a candidate table (one row per candidate), decisions in first-seen order."""
    codes, decision_ids = pd.factorize(candidates["decision_id"].to_numpy())
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(decision_ids) + 1))
    items = candidates["item_id"].astype(str).to_numpy()[order]
    inputs = candidates[list(input_columns)].to_numpy(dtype=np.float64)[order]
    rank = pd.array(candidates["served_rank"], dtype="Int64").fillna(0).to_numpy()[order]
    first = candidates["propensity"].to_numpy(dtype=np.float64)[order]
    slot = candidates["slot_propensity"].to_numpy(dtype=np.float64)[order]
    return [
        pack(
            str(decision_id),
            items[lo:hi].tolist(),
            inputs[lo:hi],
            input_columns,
            rank[lo:hi],
            first[lo:hi],
            slot[lo:hi],
        )
        for decision_id, lo, hi in zip(decision_ids, bounds[:-1], bounds[1:], strict=True)
    ]


def unpack(chunks, input_columns, defaults=None) -> pd.DataFrame:
    """One row per candidate (``decision_id``, ``item_id``, ``input_columns``, ``served_rank``,
    ``propensity``, ``slot_propensity``) from packed rows given in chunks (lists of rows),
    in the rows' order.

    ``decision_id`` and ``item_id`` are categoricals: a log holds millions of candidate rows
    that repeat a few thousand items, and strings per row would dominate the time to read it.
    ``defaults`` maps an input column to its value in sets logged without it (else NaN).
    """
    input_columns = list(input_columns)
    fill = [np.nan if defaults is None else defaults.get(c, np.nan) for c in input_columns]
    parts = [_unpack_chunk(list(rows), input_columns, fill) for rows in chunks]
    parts = [part for part in parts if part["sizes"].size] or [
        _unpack_chunk([], input_columns, fill)
    ]
    joined = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    sizes, rank = joined["sizes"], joined["rank"]
    item_codes, item_names = pd.factorize(joined["items"])
    frame = pd.DataFrame(joined["inputs"], columns=input_columns, copy=False)
    frame.insert(
        0,
        "decision_id",
        pd.Categorical.from_codes(
            np.repeat(np.arange(len(sizes)), sizes),
            categories=pd.Index(joined["decision_ids"], dtype="str"),
        ),
    )
    frame.insert(
        1,
        "item_id",
        pd.Categorical.from_codes(item_codes, categories=pd.Index(item_names, dtype="str")),
    )
    frame["served_rank"] = pd.arrays.IntegerArray(rank.astype(np.int64), rank == 0)
    frame["propensity"] = joined["propensity"]
    frame["slot_propensity"] = joined["slot_propensity"]
    return frame


def _unpack_chunk(rows: list, input_columns: list[str], fill: list[float]) -> dict[str, np.ndarray]:
    sizes = np.array([row[1] for row in rows], dtype=np.int64)
    item_lists = json.loads("[" + ",".join(row[3] for row in rows) + "]")
    return {
        "sizes": sizes,
        "decision_ids": np.array([row[0] for row in rows], dtype=object),
        "items": np.fromiter(
            itertools.chain.from_iterable(item_lists), dtype=object, count=int(sizes.sum())
        ),
        "inputs": _inputs(rows, sizes, input_columns, fill),
        "rank": _concat(rows, 5, RANK),
        "propensity": _concat(rows, 6, FLOAT),
        "slot_propensity": _concat(rows, 7, FLOAT),
    }


def _inputs(rows, sizes, input_columns: list[str], fill: list[float]) -> np.ndarray:
    """The model inputs of every candidate, in ``input_columns`` order (``fill`` where a set
    was logged without the column)."""
    layouts = {row[2] for row in rows}
    if layouts == {json.dumps(input_columns)}:  # the usual case: one layout, today's
        return _concat(rows, 4, FLOAT).reshape(-1, len(input_columns))
    inputs = np.tile(np.asarray(fill, dtype=np.float64), (int(sizes.sum()), 1))
    start = 0
    for row, size in zip(rows, sizes.tolist(), strict=True):
        logged = json.loads(row[2])
        block = np.frombuffer(row[4], dtype=FLOAT).reshape(size, len(logged))
        for k, column in enumerate(logged):
            if column in input_columns:
                inputs[start : start + size, input_columns.index(column)] = block[:, k]
        start += size
    return inputs


def _concat(rows, field: int, dtype) -> np.ndarray:
    if not rows:
        return np.empty(0, dtype=dtype.newbyteorder("="))
    return np.frombuffer(b"".join(row[field] for row in rows), dtype=dtype).astype(
        dtype.newbyteorder("=")
    )
