"""IRT probabilities (skbandit.irt): the 3PL with guessing, and its 2PL special case."""

import numpy as np
import pytest
from scipy.special import logit

from skbandit.irt import guessing_of, mastery_to_logit, p_correct_2pl, p_correct_3pl


def test_guessing_lifts_the_issue_example_from_66_to_79_percent():
    """Issue 12: an item with b = 0.44 and c = 0.39 showed 66 % (2PL) where 3PL says 79 %."""
    theta = 0.44 + logit(0.66)  # the student for whom the 2PL says 66 %
    assert p_correct_2pl(theta, 0.44) == pytest.approx(0.66)
    assert p_correct_3pl(theta, 0.44, 1.0, 0.39) == pytest.approx(0.39 + 0.61 * 0.66)
    assert round(float(p_correct_3pl(theta, 0.44, 1.0, 0.39)), 2) == 0.79


def test_missing_guessing_is_the_2pl_and_c_is_the_floor():
    theta = np.array([-8.0, 0.0, 8.0])
    np.testing.assert_allclose(
        p_correct_3pl(theta, 0.5, 1.3, [np.nan, np.nan, np.nan]), p_correct_2pl(theta, 0.5, 1.3)
    )
    low, _, high = p_correct_3pl(theta, 0.0, 1.0, 0.25)
    assert 0.25 < low < 0.2512 and high > 0.999


def test_guessing_of_a_table_without_or_with_gaps():
    import pandas as pd

    assert guessing_of(pd.DataFrame({"item_id": ["a", "b"]})).tolist() == [0.0, 0.0]
    assert guessing_of(pd.DataFrame({"guessing": [0.2, None]})).tolist() == [0.2, 0.0]


def test_rule_list_and_contexts_carry_guessing_into_the_3pl():
    """Issue 12's item (b = 0.44, c = 0.39): the rule list shows ~79 %, not 66 %."""
    import pandas as pd

    from skbandit import context, schema
    from skbandit.policy import rank_rule_based

    items = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "topic": "7.RP.A.1",
            "difficulty": [0.44, 0.44],
            "guessing": [0.39, None],
        }
    )
    events = pd.DataFrame(
        {
            "user_id": "s",
            "item_id": "a",
            "topic": "7.RP.A.1",
            "timestamp": pd.to_datetime(["2024-01-01"], utc=True),
            "correct": [1],
        }
    )
    student = context.student_context(events, "s", "7.RP.A.1")
    candidates = context.candidate_frame(
        student, context.item_context(events, items), "7.RP.A.1", exclude_recent=False
    )
    ranked = rank_rule_based(candidates, top_k=2).set_index(schema.ITEM_ID)
    theta = mastery_to_logit(student[schema.MASTERY])
    two_pl = p_correct_2pl(theta, 0.44)
    assert ranked.loc["b", schema.EXPECTED_REWARD] == pytest.approx(two_pl)
    assert ranked.loc["a", schema.EXPECTED_REWARD] == pytest.approx(0.39 + 0.61 * two_pl)
    history = context.historical_contexts(events, items)
    assert history[schema.GUESSING].tolist() == [0.39]
