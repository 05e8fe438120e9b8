"""The trained-model object: what one model version is, in one place.

A version is the fitted preprocessing (the design card's ``ColumnTransformer`` feature step),
the :class:`~skbandit.linucb.LinUCB` estimator that scores its features, and what training
learned besides the estimator's sums:

- ``progress_bands``: the learning-progress bands of its training events, whose best target
  the ``learning_progress`` objective aims at (:mod:`skbandit.learning_progress`);
- ``calibration``: the map from linear score to served probability
  (:mod:`skbandit.probability_calibration`);
- ``item_parameters``: the item parameters it was trained with (calibrated ones after
  ``--calibrate``, :mod:`skbandit.version_items`).

Each is None for a version trained before it was kept. :meth:`TrainedModel.get_state` gives
all of it as plain data (dicts, lists, numbers and float arrays) and
:meth:`TrainedModel.from_state` rebuilds an equal model; :mod:`adapters.model.format` writes
that state as a version's ``config.json`` and ``state.npz``.

Copies: :meth:`TrainedModel.from_state` of :meth:`TrainedModel.get_state` (and
``copy.deepcopy``) keep every learned part. ``sklearn.base.clone`` follows scikit-learn's
meaning, an unfitted model with the same parameters (feature set, ``alpha``, ``l2``,
``forgetting``, ``prior_mean``): no sums, no bands, no calibration, no items.

The object builds its own pipeline, so it knows the feature step is the stock one from
:func:`skbandit.features.make_feature_transformer` with NumPy output (it sets that output
itself): :meth:`TrainedModel.features` then applies the feature set's function to the raw
float64 block directly, which is what the ``ColumnTransformer`` computes, without its
per-call column indexing (see :func:`skbandit.features.model_input_array`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import (
    feature_function_of,
    make_pipeline,
    model_input_array,
    validate_model_input,
)
from skbandit.learning_progress import ProgressBands, learned_target
from skbandit.linucb import LinUCB
from skbandit.probability_calibration import ProbabilityCalibration, served_probability
from skbandit.target_experiment import served_target
from skbandit.uncertainty import SuccessInterval
from skbandit.version_items import complete_items, items_as_state, items_from_state

NOT_TRAINED = (
    "the model has not been trained (no coef_); warm-start it with "
    "`python -m train.warmstart` or TrainedModel.partial_fit first"
)
ESTIMATOR_PARAMS = ("alpha", "l2", "forgetting")
"""LinUCB parameters stored by name in a version's state (``prior_mean`` is an array)."""


EXTRAS = (
    "progress_bands",
    "calibration",
    "item_parameters",
    "success_interval",
    "identified_target",
)
"""The learned parts of a version beside the estimator (None where a version has none)."""


class TrainedModel:
    """One model version: preprocessing + LinUCB + learned extras, with a data-only state.

    Parameters
    ----------
    feature_set : {"default", "seed"}, default="default"
        The feature step (:func:`skbandit.features.make_feature_transformer`).
    alpha, l2, forgetting : float
        Passed to :class:`~skbandit.linucb.LinUCB`; its ``prior_mean`` is the feature set's
        IRT prior (:func:`skbandit.features.irt_prior_mean`).

    Attributes
    ----------
    pipeline : Pipeline
        ``[("features", ColumnTransformer), ("linucb", LinUCB)]``, feature step fitted.
    progress_bands : ProgressBands or None
    calibration : ProbabilityCalibration or None
    item_parameters : DataFrame or None
        ``item_id, topic, difficulty, discrimination, guessing`` the version trained with.
    success_interval : SuccessInterval or None
        The learned scales of the shown 80% success interval (:mod:`skbandit.uncertainty`).
    identified_target : dict or None
        The target experiment and the learning curves identified from its log
        (:func:`skbandit.target_experiment.identified_state`).

    Examples
    --------
    >>> row = pd.DataFrame([dict.fromkeys(schema.MODEL_INPUT, 0.5)])
    >>> model = TrainedModel().partial_fit(row, [1.0])
    >>> again = TrainedModel.from_state(model.get_state())
    >>> bool(np.array_equal(again.predict(row), model.predict(row)))
    True
    """

    def __init__(self, feature_set="default", *, alpha=1.0, l2=1.0, forgetting=1.0):
        estimator = make_pipeline(feature_set, alpha=alpha, l2=l2, forgetting=forgetting)[-1]
        self._set_pipeline(feature_set, estimator)
        self.progress_bands: ProgressBands | None = None
        self.calibration: ProbabilityCalibration | None = None
        self.item_parameters: pd.DataFrame | None = None
        self.success_interval: SuccessInterval | None = None
        self.identified_target: dict | None = None

    def _set_pipeline(self, feature_set, estimator):
        pipeline = make_pipeline(feature_set)
        pipeline.steps[-1] = ("linucb", estimator)
        example = pd.DataFrame({column: [0.5] for column in schema.MODEL_INPUT})
        # stateless feature maps: one row fixes the columns; NumPy output is the fast path's
        pipeline[0].set_output(transform="default").fit(example)
        self.feature_set = feature_set
        self.pipeline = pipeline
        self._feature_function = feature_function_of(feature_set)

    # ------------------------------------------------------------------ parts
    @property
    def estimator(self) -> LinUCB:
        """The LinUCB step."""
        return self.pipeline[-1]

    @property
    def preprocessing(self):
        """The fitted feature step (a ``ColumnTransformer``)."""
        return self.pipeline[0]

    @property
    def is_trained(self) -> bool:
        """Whether the estimator has learned (or been restored with) a state."""
        return hasattr(self.estimator, "coef_")

    def feature_names(self) -> np.ndarray:
        """The names of the feature columns the estimator scores."""
        return self.preprocessing.get_feature_names_out()

    def learned_target(self) -> float:
        """The ``learning_progress`` target this version learned (SkbanditError if none)."""
        return learned_target(self)

    # ---------------------------------------------------------------- compute
    def features(self, X) -> np.ndarray:
        """The feature matrix of raw rows (a DataFrame with ``schema.MODEL_INPUT``).

        Equal to the last bit to ``pipeline[:-1].transform(X)``, computed without the
        ColumnTransformer's per-call checks (see the module docstring).
        """
        if not hasattr(X, "columns"):
            return self.pipeline[:-1].transform(X)
        return self._feature_function(model_input_array(X))

    def features_of_array(self, values) -> np.ndarray:
        """:meth:`features` of a raw float64 array whose columns are ``schema.MODEL_INPUT``."""
        return self._feature_function(np.asarray(values, dtype=np.float64))

    def partial_fit(self, X, y, sample_weight=None) -> TrainedModel:
        """Learn new rows: ``estimator.partial_fit(features(X), y, sample_weight)``.

        Parameters
        ----------
        X : DataFrame of shape (n_samples, ...)
            Raw input with the columns ``schema.MODEL_INPUT``.
        y : array-like of shape (n_samples,)
            Rewards (1 correct, 0 not).
        sample_weight : array-like of shape (n_samples,), optional
        """
        validate_model_input(X)
        self.estimator.partial_fit(self.features(X), y, sample_weight=sample_weight)
        return self

    def partial_fit_features(self, Z, y, sample_weight=None) -> TrainedModel:
        """Learn rows whose features were already computed by :meth:`features`."""
        self.estimator.partial_fit(Z, y, sample_weight=sample_weight)
        return self

    def candidate_features(self, candidates):
        """Checked features of candidate rows and the estimator that scores them.

        Raises
        ------
        SkbanditError
            If there are no rows, ``item_id`` or a ``schema.MODEL_INPUT`` column is
            missing, or the model has not been trained; each message says what to do.
        """
        if len(candidates) == 0:
            raise SkbanditError(
                "no candidate items to rank (expected at least one row); the "
                "caller should say why, e.g. all items drift-flagged or recent"
            )
        if schema.ITEM_ID not in candidates.columns:
            raise SkbanditError(
                f"candidates are missing column {schema.ITEM_ID!r}; build them "
                "with skbandit.context.candidate_frame"
            )
        validate_model_input(candidates)
        if not self.is_trained:
            raise SkbanditError(NOT_TRAINED)
        return self.features(candidates), self.estimator

    def predict(self, X, return_std=False):
        """The estimator's linear score of raw rows (and its std with ``return_std``)."""
        if not self.is_trained:
            raise SkbanditError(NOT_TRAINED)
        return self.estimator.predict(self.features(X), return_std=return_std)

    def success_probability(self, score) -> np.ndarray:
        """The expected success to serve: the version's calibration of ``score``.

        A version without one (trained before it was kept) gets the score clipped to
        [0, 1], as it was served then.
        """
        return served_probability(self.calibration, score)

    def with_item_parameters(self, frame):
        """Candidate rows (or an items table) with this version's item parameters for the
        rows that lack a ``difficulty`` (:func:`skbandit.version_items.complete_items`);
        ``frame`` itself when nothing is missing or the version stored no items."""
        if (
            self.item_parameters is None
            or not isinstance(frame, pd.DataFrame)
            or schema.ITEM_ID not in frame.columns
            or (schema.DIFFICULTY in frame.columns and not frame[schema.DIFFICULTY].isna().any())
        ):
            return frame
        return complete_items(frame, self.item_parameters)[0]

    def score(self, candidates, settings=None):
        """:func:`skbandit.policy.score_candidates` of candidate rows with this model."""
        from skbandit.policy import score_candidates

        return score_candidates(self, candidates, settings)

    def rank(self, candidates, settings=None, rng=None):
        """:func:`skbandit.policy.rank_linucb`: the top-k of candidate rows."""
        from skbandit.policy import rank_linucb

        return rank_linucb(self, candidates, settings, rng=rng)

    # ------------------------------------------------------------ copy, state
    def __sklearn_clone__(self) -> TrainedModel:
        """``sklearn.base.clone``: unfitted, same parameters, no learned extras."""
        copy = TrainedModel(self.feature_set)
        copy._set_pipeline(self.feature_set, clone(self.estimator))
        return copy

    def get_params(self, deep=False) -> dict:
        """The feature set and the estimator's parameters (what :meth:`clone` keeps)."""
        return {"feature_set": self.feature_set, **self.estimator.get_params()}

    def get_state(self) -> dict:
        """Everything the version learned, as plain data (see :meth:`from_state`).

        Returns
        -------
        dict
            ``feature_set`` (str), ``params`` (the LinUCB parameters but ``prior_mean``),
            ``estimator`` (:meth:`LinUCB.get_state`: arrays and numbers, ``prior_mean``
            among them), and ``progress_bands``, ``calibration``, ``item_parameters``,
            ``success_interval``, ``identified_target`` (dicts of lists, or None).
        """
        if not self.is_trained:
            raise SkbanditError(NOT_TRAINED)
        return {
            "feature_set": self.feature_set,
            "params": {k: self.estimator.get_params()[k] for k in ESTIMATOR_PARAMS},
            "estimator": self.estimator.get_state(),
            "progress_bands": _as_dict(self.progress_bands),
            "calibration": _as_dict(self.calibration),
            "item_parameters": items_as_state(self.item_parameters),
            "success_interval": _as_dict(self.success_interval),
            "identified_target": self.identified_target,
        }

    @classmethod
    def from_state(cls, state: dict) -> TrainedModel:
        """Rebuild the model :meth:`get_state` described; SkbanditError naming a bad part.

        A state without ``progress_bands``, ``calibration`` or ``item_parameters`` (a
        version trained before they were kept) loads with None for them.
        """
        feature_set = state.get("feature_set")
        model = cls(feature_set)
        params = dict(state.get("params") or {})
        try:
            estimator = LinUCB(**params)
        except TypeError as error:
            raise SkbanditError(f"the state's LinUCB params are malformed ({error})") from None
        model._set_pipeline(feature_set, estimator.set_state(state["estimator"]))
        names = list(model.feature_names())
        stored = getattr(estimator, "feature_names_in_", None)
        if len(names) != estimator.n_features_in_ or (stored is not None and list(stored) != names):
            raise SkbanditError(
                f"the state names feature set {feature_set!r} ({len(names)} features) but "
                f"its estimator holds a {estimator.n_features_in_}-feature state; the parts "
                "do not belong together"
            )
        model.progress_bands = _part("progress_bands", state, ProgressBands.from_dict)
        model.calibration = _part("calibration", state, ProbabilityCalibration.from_dict)
        model.item_parameters = _part("item_parameters", state, items_from_state)
        model.success_interval = _part("success_interval", state, SuccessInterval.from_dict)
        model.identified_target = _part("identified_target", state, _checked_identified)
        return model

    def __repr__(self) -> str:
        learned = [name for name in EXTRAS if getattr(self, name) is not None]
        return (
            f"TrainedModel(feature_set={self.feature_set!r}, trained={self.is_trained}, "
            f"extras={learned})"
        )


def _checked_identified(value) -> dict:
    served_target(value)  # a one-line SkbanditError when malformed
    return value


def _as_dict(part):
    return None if part is None else part.as_dict()


def _part(name: str, state: dict, build):
    value = state.get(name)
    if value is None:
        return None
    try:
        return build(value)
    except SkbanditError as error:
        raise SkbanditError(f"the state's {name} is malformed ({error})") from None
