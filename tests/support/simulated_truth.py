"""The simulator's truth about logged decisions, for checking off-policy estimates against it
(shared by ``tests/skbandit/test_ope_validation.py`` and ``bench/bench_gate_coverage.py``)."""

from __future__ import annotations

from skbandit import schema
from skbandit.irt import p_correct_2pl
from skbandit.ope import decisions as logged_decisions


def true_success(school):
    """Row values ``p(i, a)``: the simulator's success probability of each candidate."""
    true_items = school.true_items.set_index(schema.ITEM_ID)
    difficulty = true_items["difficulty_true"] + true_items["hidden_effect"]
    discrimination = true_items["discrimination_true"]
    ability = school.truth["ability_before"].to_numpy()

    def values(candidates):
        item = candidates[schema.ITEM_ID]
        return p_correct_2pl(
            ability[candidates[logged_decisions.EVENT_ROW].to_numpy()],
            difficulty.loc[item].to_numpy(),
            discrimination.loc[item].to_numpy(),
        )

    return values
