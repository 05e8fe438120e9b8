"""Column names of the canonical learning-event schema and of the model's raw inputs.

Every engine reads and writes these names; change them here and nowhere else.
"""

# --- events: one row per attempt -------------------------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"
TOPIC = "topic"
SKILL_IDS = "skill_ids"  # list of str; the first is the topic (alternative to TOPIC)
TIMESTAMP = "timestamp"  # UTC datetime
CORRECT = "correct"  # 0/1 int, the reward
LATENCY_MS = "latency_ms"  # optional int
HELP_REQUESTED = "help_requested"  # optional bool
ACTION_SEQUENCE_ID = "action_sequence_id"  # optional str
PROPENSITY = "propensity"  # optional: P(logging policy showed this item), in (0, 1]
POLICY = "policy"  # optional: logging policy name/version
DECISION_ID = "decision_id"  # optional: the decision an event answers

EVENT_REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP, CORRECT)  # plus TOPIC or SKILL_IDS
EVENT_OPTIONAL = (LATENCY_MS, HELP_REQUESTED, ACTION_SEQUENCE_ID, PROPENSITY, POLICY)

# --- items: one row per practice item --------------------------------------------------
DIFFICULTY = "difficulty"  # IRT b, logit scale
DISCRIMINATION = "discrimination"  # IRT a, default 1.0
GUESSING = "guessing"  # optional IRT c in [0, 1); a model input, 0 when an item has none
DRIFT_FLAG = "drift_flag"  # optional bool; flagged items are never recommended

ITEM_REQUIRED = (ITEM_ID, TOPIC)  # DIFFICULTY optional: blank or absent, see context.py
ITEM_OPTIONAL = (DIFFICULTY, DISCRIMINATION, GUESSING, DRIFT_FLAG)

# --- student context at a decision time (skbandit.context) -----------------------------
MASTERY = "mastery"  # probability in [0, 1]
RECENT_ACCURACY = "recent_accuracy"
RECENT_SPEED = "recent_speed"  # 0 = fast, 1 = slow (normalised, capped latency)
HELP_TENDENCY = "help_tendency"
SKILL_GAP = "skill_gap"
N_PRIOR = "n_prior_events"  # not a model feature; tells cold start apart

STUDENT_CONTEXT = (MASTERY, RECENT_ACCURACY, RECENT_SPEED, HELP_TENDENCY, SKILL_GAP)

# --- item context at a decision time (skbandit.context) --------------------------------
ITEM_ATTEMPTS = "item_attempts"  # earlier attempts on the item, by anyone
ITEM_ACCURACY = "item_accuracy"  # smoothed success rate of those attempts

ITEM_CONTEXT = (DIFFICULTY, DISCRIMINATION, GUESSING, ITEM_ATTEMPTS, ITEM_ACCURACY)

# One row per (student, candidate item): what the pipeline's ColumnTransformer reads.
MODEL_INPUT = STUDENT_CONTEXT + ITEM_CONTEXT
CANDIDATE_COLUMNS = (USER_ID, ITEM_ID, TOPIC, *MODEL_INPUT)

# --- ranking output (skbandit.policy) ---------------------------------------------------
RANK = "rank"
EXPECTED_REWARD = "expected_reward"
SUCCESS_LOW = "success_low"  # the interval of the true success (skbandit.uncertainty)
SUCCESS_HIGH = "success_high"
UNCERTAINTY = "uncertainty"  # half the interval's width, (success_high - success_low) / 2
UCB_BONUS = "ucb_bonus"  # the exploration bonus alpha * sqrt(x' A^-1 x), not an uncertainty
UCB = "ucb"  # expected_reward + ucb_bonus
IS_EXPLORATION = "is_exploration"
REASON = "reason"
RECOMMENDATION_COLUMNS = (
    RANK,
    ITEM_ID,
    EXPECTED_REWARD,
    SUCCESS_LOW,
    SUCCESS_HIGH,
    UNCERTAINTY,
    UCB_BONUS,
    UCB,
    IS_EXPLORATION,
    PROPENSITY,
    REASON,
)
