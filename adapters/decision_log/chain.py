"""The decision log's hash chain: every logged decision carries a hash chained to the previous
decision of the same writer, so a rewritten, inserted or deleted decision is detectable.

Each writer (one :class:`~adapters.decision_log.DecisionLog` in one process) starts a
*chain* (``chain_id``, a random hex id) and numbers its decisions ``chain_seq`` = 0, 1, 2...;
``chain_hash`` is ``sha256(previous hash + the decision's content)``, the first link
chaining to :data:`GENESIS`. The content is the decision row (id, time to the microsecond,
student, topic, model, version, settings, seeded, served item) and its whole candidate set
(item ids, model inputs, served ranks, propensities), in a canonical form that the database
and its parquet export give back alike, so :func:`verify` checks either.

What it proves: a decision changed in place (by SQL, a text editor or ``INSERT OR
REPLACE`` with the triggers dropped), a decision deleted from the middle of a chain, and a
decision added without the chain all break a link, and :func:`verify` names the first.
What it cannot prove alone: the hash is keyless, so someone who rewrites a decision *and*
recomputes every later hash of that chain, or who deletes the newest decisions of a chain,
leaves a consistent log; compare the chain heads :func:`verify` reports with ones recorded
earlier (``skbandit verify-log`` prints them) to detect that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from skbandit import schema

GENESIS = b"skbandit decision log v1"
CHAIN_COLUMNS = ("chain_id", "chain_seq", "chain_hash")
DECISION_FIELDS = (
    "decision_id", "logged_at", "user_id", "topic", "model_name", "model_version",
    "settings", "seeded", "served_item_id",
)  # fmt: skip
"""The hashed fields of a decision row (``adapters.decision_log.DECISION_COLUMNS``)."""
_SEP = "\x1f"
_FLOAT, _RANK = np.dtype("<f8"), np.dtype("<i4")


def decision_text(row: tuple) -> bytes:
    """The canonical bytes of a decision row (in ``DECISION_COLUMNS`` order)."""
    decision_id, logged_at, user_id, topic, model_name, version, settings, seeded, served = row
    stamp = pd.Timestamp(logged_at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    fields = (
        str(decision_id),
        stamp.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        str(user_id),
        "" if topic is None or topic != topic else str(topic),
        str(model_name),
        str(version),
        str(settings),
        "1" if seeded else "0",
        str(served),
    )
    return _SEP.join(fields).encode()


def link_hash(
    previous: bytes,
    decision: bytes,
    items,
    inputs: np.ndarray,
    rank: np.ndarray,
    propensity: np.ndarray,
    slot: np.ndarray,
) -> bytes:
    """The hash of one link: the previous link's hash and the decision with its candidates."""
    digest = hashlib.sha256(previous)
    digest.update(len(decision).to_bytes(8, "little"))
    digest.update(decision)
    names = _SEP.join(map(str, items)).encode()
    digest.update(len(names).to_bytes(8, "little"))
    digest.update(names)
    digest.update(np.ascontiguousarray(inputs, dtype=_FLOAT).tobytes())
    digest.update(np.asarray(rank, dtype=_RANK).tobytes())
    for values in (propensity, slot):
        values = np.asarray(values, dtype=_FLOAT)
        digest.update(np.where(np.isnan(values), np.nan, values).tobytes())  # one NaN pattern
    return digest.digest()


def packed_link_hash(previous: bytes, decision_row: tuple, packed: tuple | None) -> bytes:
    """:func:`link_hash` of a decision row and its packed candidate set
    (:func:`adapters.decision_log.candidate_sets.pack`, inputs in ``schema.MODEL_INPUT`` order)."""
    if packed is None:
        empty = np.empty(0)
        return link_hash(previous, decision_text(decision_row), [], empty, empty, empty, empty)
    _, n, columns, items, inputs, rank, propensity, slot = packed
    inputs = np.frombuffer(inputs, dtype=_FLOAT).reshape(n, -1)
    columns = json.loads(columns)
    if columns != list(schema.MODEL_INPUT):
        position = {c: j for j, c in enumerate(columns)}
        inputs = (
            np.column_stack(
                [
                    inputs[:, position[c]] if c in position else np.zeros(n)
                    for c in schema.MODEL_INPUT
                ]
            )
            if n
            else np.empty((0, 0))
        )
    return link_hash(
        previous,
        decision_text(decision_row),
        json.loads(items),
        inputs,
        np.frombuffer(rank, dtype=_RANK),
        np.frombuffer(propensity, dtype=_FLOAT),
        np.frombuffer(slot, dtype=_FLOAT),
    )


@dataclass
class Verification:
    """What :func:`verify` found: ``broken`` is None for an intact log, else the first broken
    link said in one line; ``heads`` maps each chain to its last seq and hash."""

    n_decisions: int
    n_chains: int
    broken: str | None = None
    heads: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(decisions: pd.DataFrame, candidates: pd.DataFrame) -> Verification:
    """Check every link of every chain of a log read back (database or parquet export).

    ``decisions`` has the decision columns and :data:`CHAIN_COLUMNS`; ``candidates`` one row
    per candidate (``decision_id``, ``item_id``, the model inputs, ``served_rank``,
    ``propensity``, ``slot_propensity``). The first broken link is the earliest logged
    decision whose link does not hold.
    """
    n = len(decisions)
    missing = [c for c in CHAIN_COLUMNS if c not in decisions.columns]
    if missing:
        return Verification(
            n,
            0,
            f"the log has no hash chain (columns {missing} missing): "
            "it was written before decisions were chained, or stripped",
        )
    groups = _candidate_groups(candidates)
    order = pd.DataFrame(
        {
            "seq": decisions["chain_seq"],
            "chain": decisions["chain_id"],
            "at": pd.to_datetime(decisions["logged_at"], utc=True),
        }
    )
    problems = []  # (logged_at, message)
    unchained = order["chain"].isna() | order["seq"].isna() | decisions["chain_hash"].isna()
    if unchained.any():
        k = int(np.flatnonzero(unchained.to_numpy())[0])
        problems.append(
            (
                order["at"].iloc[k],
                f"decision {decisions['decision_id'].iloc[k]} "
                "carries no chain hash (added outside skbandit, or logged before "
                "decisions were chained)",
            )
        )
    rows = decisions[list(DECISION_FIELDS)].itertuples(index=False, name=None)
    rows = list(rows)
    hashes = decisions["chain_hash"].tolist()
    heads = {}
    chained = order[~unchained].sort_values(["chain", "seq"], kind="stable")
    for chain, links in chained.groupby("chain", sort=False):
        previous = GENESIS
        expected_seq = 0
        for k, seq in zip(links.index.to_numpy(), links["seq"].to_numpy(), strict=True):
            k = decisions.index.get_loc(k)
            decision_id = rows[k][0]
            if int(seq) != expected_seq:
                what = (
                    "is repeated"
                    if int(seq) < expected_seq
                    else f"follows link {expected_seq - 1}: decisions were deleted before it"
                )
                problems.append(
                    (
                        order["at"].iloc[k],
                        f"decision {decision_id} (chain {chain}, link {int(seq)}) {what}",
                    )
                )
                break
            parts = groups.get(decision_id)
            computed = (
                link_hash(previous, decision_text(rows[k]), *parts)
                if parts
                else link_hash(previous, decision_text(rows[k]), [], *[np.empty(0)] * 4)
            )
            if computed.hex() != hashes[k]:
                problems.append(
                    (
                        order["at"].iloc[k],
                        f"decision {decision_id} (chain {chain}, "
                        f"link {int(seq)}) does not match its hash: it or its "
                        "candidate set was rewritten",
                    )
                )
                break
            previous, expected_seq = computed, expected_seq + 1
        heads[str(chain)] = (expected_seq - 1, previous.hex())
    known = set(decisions["decision_id"].astype(str))
    orphans = [d for d in groups if d not in known]
    if orphans:
        problems.append(
            (
                pd.Timestamp.max.tz_localize("UTC"),
                f"candidates of decision "
                f"{orphans[0]} have no decision row (the decision was deleted)",
            )
        )
    first = min(problems, key=lambda p: p[0])[1] if problems else None
    return Verification(n, int(order["chain"].nunique()), first, heads)


def _candidate_groups(candidates: pd.DataFrame) -> dict:
    """{decision_id: (items, inputs, rank, propensity, slot)} from a candidates table."""
    if len(candidates) == 0:
        return {}
    ids = candidates["decision_id"].astype(str).to_numpy()
    items = candidates["item_id"].astype(str).to_numpy(dtype=object)
    inputs = candidates[list(schema.MODEL_INPUT)].to_numpy(dtype=np.float64)
    rank = candidates["served_rank"].fillna(0).to_numpy(dtype=np.int64).astype(_RANK)
    propensity = candidates["propensity"].to_numpy(dtype=np.float64)
    slot = candidates["slot_propensity"].to_numpy(dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    groups = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        groups[ids[start]] = (
            items[start:end].tolist(),
            inputs[start:end],
            rank[start:end],
            propensity[start:end],
            slot[start:end],
        )
    return groups


def require_intact(decisions: pd.DataFrame, candidates: pd.DataFrame, source: str) -> None:
    """Raise a one-line SkbanditError naming the first broken link of a log that fails."""
    from skbandit.exceptions import SkbanditError

    result = verify(decisions, candidates)
    if not result.ok:
        raise SkbanditError(
            f"decision log {source} fails verification: {result.broken}; "
            "evaluate an intact log, or pass --unverified-log to use it anyway"
        )
