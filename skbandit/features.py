"""Context features: a ColumnTransformer from raw student and item columns, and the pipeline.

The raw input has one row per (student, candidate item) with the columns
``schema.MODEL_INPUT`` (see :mod:`skbandit.context`). Two feature sets map it to the vector
``x`` that the shared LinUCB model scores with ``theta' x``:

``"seed"``
    The seed design's eight features, unchanged (``guessing`` is not used) so that it can be
    reproduced and compared:
    ``mastery, recent_accuracy, recent_speed, help_tendency, skill_gap, difficulty,
    mastery_x_difficulty, abs_mastery_minus_difficulty``. Its two flaws: mastery is a
    probability while IRT difficulty is a logit, so the products compare unlike scales; and
    there is no intercept and no interaction of ``recent_accuracy``, ``recent_speed``,
    ``help_tendency`` or ``skill_gap`` with the item, so those four shift every item's score
    by the same amount and cannot change which item ranks first.

``"default"``
    Student and item on one scale: mastery becomes an IRT ability on the logit scale,
    ``ability = irt.mastery_to_logit(mastery)``, and ``gap = ability - difficulty``. The
    expected reward is a probability, so the features are chosen to let a *linear* model
    predict ``P(correct)``: the IRT prediction is the main term, the 3PL probability

        ``p_irt = c + (1 - c) * s``,  ``s = sigmoid(discrimination * gap)``,

    with ``c`` the item's ``guessing`` (0 when the item has none: then ``p_irt = s``, the
    2PL), and corrections enter through a first-order expansion around it. A shift
    ``delta`` of the item's or the student's logit ``z = discrimination * gap`` changes the
    probability by about ``info * delta`` with

        ``info = dp_irt/dz = (1 - c) * s * (1 - s)``  (``= (p_irt - c) * (1 - p_irt) / (1 - c)``),

    which is ``p_irt * (1 - p_irt)`` when ``c = 0``. Each correction appears both alone and
    multiplied by ``info``:

    - ``item_evidence = w * (logit((item_accuracy - c) / (1 - c)) + discrimination *
      difficulty)``: how much better the item is answered than its published parameters say
      for an average (ability 0) student, on the logit scale of ``s`` (the guessing floor
      taken off the item's accuracy, which is clipped to ``[ACCURACY_EPS, 1 - ACCURACY_EPS]``
      first), shrunk by ``w = attempts / (attempts + ITEM_EVIDENCE_PRIOR)``, so the model can
      discover hidden per-item effects that the difficulty does not show (0 for an item
      nobody has tried);
    - each of ``recent_accuracy, recent_speed, help_tendency, skill_gap``, centred at its
      cold-start default (so a cold-start student is ranked by IRT alone), alone, times
      ``info`` and times ``gap``: every student feature changes the ranking among items.

    That is 19 features (listed by :data:`DEFAULT_FEATURES`), including an ``intercept``.
    ``ability`` and ``gap`` are kept and ``difficulty`` dropped: it is their difference.
    With ``c = 0`` every feature equals, to the last bit, the 2PL value it had before
    ``guessing`` became a model input, so versions trained before it keep their meaning.

Both transformers are stateless, pickle (module-level functions) and support
``get_feature_names_out`` and ``set_output(transform="pandas")``.

The trained-model object (:class:`skbandit.model.TrainedModel`) builds the pipeline and
scores with exactly ``pipeline[:-1].transform(X)``: the ColumnTransformer only selects
``schema.MODEL_INPUT`` and hands it to the feature set's module-level function
(:func:`feature_function_of`), so the object calls that same function on the same float64
block (:func:`model_input_array`) directly, without scikit-learn's per-call column indexing
and checks (about 0.8 ms of a 1-row request; the values are identical, see
``tests/skbandit/test_features.py``).
"""

import numpy as np
from scipy.special import expit, logit
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skbandit import irt, schema
from skbandit.context import (
    DEFAULT_HELP_TENDENCY,
    DEFAULT_MASTERY,
    DEFAULT_RECENT_ACCURACY,
    DEFAULT_RECENT_SPEED,
    SKILL_TARGET,
)
from skbandit.exceptions import SkbanditError
from skbandit.linucb import LinUCB

FEATURE_SETS = ("default", "seed")
"""Names accepted by :func:`make_feature_transformer` and :func:`make_pipeline`."""

ITEM_EVIDENCE_PRIOR = 20.0
"""Attempts at which an item's own accuracy gets half weight in ``item_evidence``."""
ACCURACY_EPS = 0.01
"""``item_accuracy`` above guessing is clipped to ``[ACCURACY_EPS, 1 - ACCURACY_EPS]`` before
the logit."""

STUDENT_CENTRES = {
    schema.RECENT_ACCURACY: DEFAULT_RECENT_ACCURACY,
    schema.RECENT_SPEED: DEFAULT_RECENT_SPEED,
    schema.HELP_TENDENCY: DEFAULT_HELP_TENDENCY,
    schema.SKILL_GAP: max(0.0, SKILL_TARGET - DEFAULT_MASTERY),
}
"""Default-set student features are centred at their cold-start values."""

SEED_FEATURES = (
    *schema.STUDENT_CONTEXT,
    schema.DIFFICULTY,
    "mastery_x_difficulty",
    "abs_mastery_minus_difficulty",
)
"""Output names of the ``"seed"`` feature set (the seed's order)."""

DEFAULT_FEATURES = (
    "intercept",
    "p_irt",
    "info",
    "ability",
    "gap",
    "item_evidence",
    "item_evidence_x_info",
    *STUDENT_CENTRES,
    *(f"{name}_x_info" for name in STUDENT_CENTRES),
    *(f"{name}_x_gap" for name in STUDENT_CENTRES),
)
"""Output names of the ``"default"`` feature set."""


def seed_features(X):
    """The seed's eight features from raw ``schema.MODEL_INPUT`` columns.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, 10)
        Raw columns in ``schema.MODEL_INPUT`` order.

    Returns
    -------
    ndarray of shape (n_samples, 8)
    """
    c = _raw_columns(X)
    m, b = c[schema.MASTERY], c[schema.DIFFICULTY]
    return np.column_stack([*(c[name] for name in schema.STUDENT_CONTEXT), b, m * b, np.abs(m - b)])


def default_features(X):
    """The default feature set (:data:`DEFAULT_FEATURES`) from raw columns.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_samples, 10)
        Raw columns in ``schema.MODEL_INPUT`` order.

    Returns
    -------
    ndarray of shape (n_samples, 19)
    """
    c = _raw_columns(X)
    ability = irt.mastery_to_logit(c[schema.MASTERY])
    gap = ability - c[schema.DIFFICULTY]
    a, guess = c[schema.DISCRIMINATION], _guessing(c[schema.GUESSING])
    s = expit(a * gap)
    # with guess = 0 these are bit-for-bit the 2PL's p = s and info = p * (1 - p)
    p = guess + (1.0 - guess) * s
    info = (1.0 - guess) * s * (1.0 - s)
    attempts = np.maximum(c[schema.ITEM_ATTEMPTS], 0.0)
    weight = attempts / (attempts + ITEM_EVIDENCE_PRIOR)
    above_guess = (c[schema.ITEM_ACCURACY] - guess) / (1.0 - guess)
    accuracy = np.clip(above_guess, ACCURACY_EPS, 1.0 - ACCURACY_EPS)
    evidence = weight * (logit(accuracy) + a * c[schema.DIFFICULTY])
    student = [c[name] - centre for name, centre in STUDENT_CENTRES.items()]
    return np.column_stack(
        [
            np.ones_like(p),
            p,
            info,
            ability,
            gap,
            evidence,
            evidence * info,
            *student,
            *(s * info for s in student),
            *(s * gap for s in student),
        ]
    )


def _guessing(values):
    """The ``guessing`` column, refused unless every value lies in [0, 1) (the 3PL's c)."""
    bad = ~((values >= 0.0) & (values < 1.0))
    if bad.any():
        raise SkbanditError(
            f"model input column {schema.GUESSING!r} must lie in [0, 1) (the "
            f"3PL guessing parameter, 0 for none); row {int(np.argmax(bad))} "
            f"has {values[np.argmax(bad)]}"
        )
    return values


def _seed_names(transformer, input_features):
    return np.asarray(SEED_FEATURES, dtype=object)


def _default_names(transformer, input_features):
    return np.asarray(DEFAULT_FEATURES, dtype=object)


_BUILDERS = {"default": (default_features, _default_names), "seed": (seed_features, _seed_names)}


def make_feature_transformer(feature_set="default"):
    """A stateless ColumnTransformer from raw ``schema.MODEL_INPUT`` columns to features.

    Parameters
    ----------
    feature_set : {"default", "seed"}, default="default"
        See the module docstring. The transformer's only step is named after the set.

    Returns
    -------
    ColumnTransformer
        Reads ``schema.MODEL_INPUT`` (other columns are dropped); unfitted.

    Examples
    --------
    >>> import pandas as pd
    >>> row = pd.DataFrame([dict.fromkeys(schema.MODEL_INPUT, 0.5)])
    >>> make_feature_transformer("seed").fit(row).get_feature_names_out()[-1]
    'abs_mastery_minus_difficulty'
    """
    _check_feature_set(feature_set)
    func, names = _BUILDERS[feature_set]
    step = FunctionTransformer(func, feature_names_out=names, validate=False)
    return ColumnTransformer(
        [(feature_set, step, list(schema.MODEL_INPUT))],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def make_pipeline(feature_set="default", alpha=1.0, l2=1.0, forgetting=1.0):
    """The whole model: ``Pipeline([("features", ColumnTransformer), ("linucb", LinUCB)])``.

    Parameters
    ----------
    feature_set : {"default", "seed"}, default="default"
    alpha, l2, forgetting : float
        Passed to :class:`skbandit.linucb.LinUCB`.

    Returns
    -------
    Pipeline
        Unfitted; :class:`skbandit.model.TrainedModel` builds, fits and trains it.
    """
    return Pipeline(
        [
            ("features", make_feature_transformer(feature_set)),
            (
                "linucb",
                LinUCB(
                    alpha=alpha,
                    l2=l2,
                    forgetting=forgetting,
                    prior_mean=irt_prior_mean(feature_set),
                ),
            ),
        ]
    )


def irt_prior_mean(feature_set="default"):
    """The prior mean that makes an untrained model predict the IRT probability exactly.

    For ``"default"``: 1 on ``p_irt`` and 0 elsewhere, so ``X @ prior_mean = p_irt`` (the
    3PL probability from the ability and the item); data moves the coefficients away only
    as far as the ridge posterior allows. ``"seed"`` has no IRT column: None (zeros).
    """
    if feature_set != "default":
        return None
    prior = np.zeros(len(DEFAULT_FEATURES))
    prior[DEFAULT_FEATURES.index("p_irt")] = 1.0
    return prior


def feature_function_of(feature_set="default"):
    """The module-level function a feature set's ColumnTransformer applies to its columns.

    It maps a float64 array of the raw ``schema.MODEL_INPUT`` columns (in that order) to the
    feature matrix, exactly what the transformer's ``transform`` returns with NumPy output;
    :class:`skbandit.model.TrainedModel` calls it directly on the pipeline it built.
    """
    _check_feature_set(feature_set)
    return _BUILDERS[feature_set][0]


def model_input_array(X):
    """The ``schema.MODEL_INPUT`` columns of a DataFrame as one C-contiguous float64 array.

    Missing values become NaN (the feature functions then name the column); a column that
    is not numeric raises like ``DataFrame.to_numpy(dtype=float)``.

    Returns
    -------
    ndarray of shape (n_samples, 10)
    """
    return np.column_stack(
        [X[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in schema.MODEL_INPUT]
    )


def validate_model_input(X):
    """Check that raw input is a DataFrame with every ``schema.MODEL_INPUT`` column.

    NaN and infinite values are checked where the features are computed (every transform
    of either feature set raises ``SkbanditError`` naming the first such column).

    Raises
    ------
    SkbanditError
        Naming the missing columns.
    """
    columns = getattr(X, "columns", None)
    if columns is None:
        raise SkbanditError(
            f"model input must be a DataFrame with the columns "
            f"{list(schema.MODEL_INPUT)}; got {type(X).__name__}"
        )
    missing = [name for name in schema.MODEL_INPUT if name not in columns]
    if missing:
        raise SkbanditError(
            f"model input is missing columns {missing} (expected "
            f"{list(schema.MODEL_INPUT)}); build it with "
            "skbandit.context.candidate_frame or historical_contexts"
        )


def _raw_columns(X):
    """Raw columns as float64 arrays keyed by name; NaN or inf raises SkbanditError."""
    if hasattr(X, "to_numpy"):
        values = X.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(X, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(schema.MODEL_INPUT):
        raise SkbanditError(
            f"expected {len(schema.MODEL_INPUT)} raw columns "
            f"{list(schema.MODEL_INPUT)}, got shape {values.shape}"
        )
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        name = schema.MODEL_INPUT[int(np.argmax(bad))]
        raise SkbanditError(
            f"model input column {name!r} has NaN or infinite values "
            f"(expected finite numbers); fill or drop those rows (the "
            "context builders in skbandit.context never produce NaN)"
        )
    return {name: values[:, j] for j, name in enumerate(schema.MODEL_INPUT)}


def _check_feature_set(feature_set):
    if feature_set not in FEATURE_SETS:
        raise SkbanditError(f"unknown feature set {feature_set!r} (expected one of {FEATURE_SETS})")
