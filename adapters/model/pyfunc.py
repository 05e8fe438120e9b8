"""The MLflow model behind the registry and ``mlflow models serve``: a thin skbandit adapter.

A version stores no code: ``config.json`` (feature set, estimator parameters, learned extras)
and ``state.npz`` (the LinUCB sufficient statistics) rebuild its
:class:`~skbandit.model.TrainedModel`, and the installed :mod:`adapters.model.flavor` builds
this class around it when mlflow loads the version.

REST request: one row per (student, candidate item) with ``user_id``, ``item_id`` and the
raw context columns ``skbandit.schema.MODEL_INPUT``. Optional ``params``: ``alpha``,
``top_k``, ``objective``, ``target``, ``exploration``, ``temperature``, ``epsilon``,
``seed``, ``topic`` (defaults: :data:`skbandit.ranking_settings.REST_SETTINGS`, softmax with
an epsilon floor of 0.1; no seed). ``objective="learning_progress"`` aims at the target the
version learned from its training events (``target`` is then ignored); a version stored
without one answers it with HTTP 400. Response: one record per request row, in request order,
with ``expected_reward``, ``success_low`` and ``success_high`` (the 80 % interval of the true
success, :mod:`skbandit.uncertainty`; REST rows carry no ability sd, so it uses the version's
typical ability error), ``uncertainty`` (half its width), ``ucb_bonus`` (the exploration bonus
``alpha * sqrt(x' A^-1 x)``), ``ucb``, ``rank`` (within the student),
``recommended`` (rank <= top_k), ``is_exploration``, ``propensity`` (of the row's slot),
``first_slot_propensity``, ``model_version`` and ``decision_id`` (one per student).

Draws come from a generator seeded from OS entropy once per server process; a request
``seed`` >= 0 makes its draw reproducible and its decision is logged as ``seeded``. Every
decision is appended to the decision log (:mod:`adapters.decision_log`,
``$SKBANDIT_DECISION_LOG``; ``off`` disables logging) and committed before the response is
returned; when the log cannot be written the request is answered with HTTP 503 and nothing
is served.

Every bad request (a missing column, a wrong type, a null, an out-of-range value or
parameter, an empty frame, more than ``MAX_REQUEST_ROWS`` rows: the checks of
:mod:`adapters.model.requests`) is answered with HTTP 400 and a one-line message. Any other
failure is a bug on the server's side: it is logged with its traceback and answered with
HTTP 500 and a short message, never a stack trace or a file path.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE
from mlflow.pyfunc.model import PythonModel

from adapters.model.format import load_model_files, save_model  # re-exported
from adapters.model.requests import (  # MAX_REQUEST_ROWS, default_params: re-exported
    MAX_REQUEST_ROWS,
    CheckedRequest,
    check_params,
    check_topic,
    checked_request,
    default_params,
    request_interval_inputs,
)
from skbandit.exceptions import SkbanditError
from skbandit.model import NOT_TRAINED
from skbandit.policy import resolve_objective
from skbandit.ranking_settings import SETTING_NAMES
from skbandit.request_ranking import rank_request_rows

if TYPE_CHECKING:
    from adapters.decision_log import DecisionLog
    from skbandit.model import TrainedModel

UNREGISTERED = "unregistered"
LOGGING_OFF = "off"
"""``SKBANDIT_DECISION_LOG=off`` serves without logging decisions (said once in the log)."""
INTERNAL_ERROR_MESSAGE = (
    "internal error while scoring the request (a bug on the server's side, not in the "
    "request); the server log has the details"
)
"""What the client is told about an unexpected failure (HTTP 500)."""

_logger = logging.getLogger(__name__)
_NOT_LOGGING = contextvars.ContextVar("skbandit_decisions_not_logged", default=False)


@contextlib.contextmanager
def decisions_not_logged():
    """No decision is logged inside this block: MLflow's check of the input example when a
    version is logged calls ``predict``, and that is not a served decision."""
    token = _NOT_LOGGING.set(True)
    try:
        yield
    finally:
        _NOT_LOGGING.reset(token)


@contextlib.contextmanager
def _answered_as_http():
    """A SkbanditError becomes an HTTP 400 with its message; any other error is logged with
    its traceback and becomes an HTTP 500 with :data:`INTERNAL_ERROR_MESSAGE`."""
    try:
        yield
    except SkbanditError as error:
        raise MlflowException(str(error), error_code=BAD_REQUEST) from None
    except Exception:
        _logger.exception("unexpected error while scoring a request")
        raise MlflowException(INTERNAL_ERROR_MESSAGE, error_code=INTERNAL_ERROR) from None


class LinUCBModel(PythonModel):
    """Scores candidate items for students with a registered version's TrainedModel."""

    model: TrainedModel
    """The version's :class:`~skbandit.model.TrainedModel` (set by :meth:`load_context` or
    :meth:`from_model`)."""
    model_version = UNREGISTERED
    decision_log: DecisionLog | None = None
    """Where :meth:`predict` logs decisions: a DecisionLog, False for none, or None to
    resolve from ``$SKBANDIT_DECISION_LOG`` at the first request."""
    _rng = None
    _rng_pid = None

    @classmethod
    def from_model(cls, model, model_version: str = UNREGISTERED) -> LinUCBModel:
        """An adapter around an in-memory :class:`~skbandit.model.TrainedModel`."""
        adapter = cls()
        adapter.model, adapter.model_version = model, model_version
        return adapter

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        """Score a request: a bad request is an HTTP 400, anything else an HTTP 500.

        Only a :class:`~skbandit.exceptions.SkbanditError` (something the client can fix)
        becomes a 400 with its one-line message. Any other exception is logged here with its
        traceback and the client gets a 500 with :data:`INTERNAL_ERROR_MESSAGE`, so that a
        bug shows in monitoring instead of passing for the client's fault.
        """
        with _answered_as_http():
            request = checked_request(self.model.with_item_parameters(model_input))
        return pd.DataFrame(self.serve_request(request, params), index=request.frame_index)

    def serve_request(self, request: CheckedRequest, params: dict | None = None) -> dict:
        """Rank a checked request, log its decisions and return the answer's columns (the
        columns of :meth:`predict`'s frame, as arrays): the one per-request path, which
        ``skbandit serve`` calls directly for a JSON request (no DataFrame built).

        Raises MlflowException as :meth:`predict` does (400, 500, or 503 when the decision
        log cannot be written).
        """
        params = {**default_params(self.model), **(params or {})}
        with _answered_as_http():
            settings, seed = check_params(params)
            settings = resolve_objective(self.model, settings)  # logs the target used
            topic = check_topic(params)
            columns = self._rank(request, settings, seed)
            decision_ids, decisions, candidates = self._decisions(
                request, columns, settings, seed, topic
            )
        log = None if _NOT_LOGGING.get() else self._log()
        if log:
            try:
                log.append_rows(decisions, candidates)
            except SkbanditError as error:
                _logger.error("%s", error)
                raise MlflowException(str(error), error_code=TEMPORARILY_UNAVAILABLE) from None
        columns["decision_id"] = decision_ids
        return columns

    def score(self, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
        """Rank each student's candidate rows; one output row per input row, in input order."""
        settings, seed = check_params(params)
        request = checked_request(self.model.with_item_parameters(frame))
        return pd.DataFrame(self._rank(request, settings, seed), index=request.frame_index)

    def _rank(self, request: CheckedRequest, settings, seed) -> dict:
        rng = self._generator() if seed is None else np.random.default_rng(seed)
        columns = rank_request_rows(
            self.model,
            request.user_ids,
            request.item_ids,
            self._features(request),
            request_interval_inputs(request),
            settings,
            rng=rng,
        )
        columns["model_version"] = [self.model_version] * len(request.user_ids)
        return columns

    def _features(self, request: CheckedRequest):
        """The request's feature rows, from its model-input array (no DataFrame)."""
        if not self.model.is_trained:
            raise SkbanditError(NOT_TRAINED)
        with np.errstate(over="ignore", invalid="ignore"):  # a non-finite score is refused
            return self.model.features_of_array(request.inputs)

    def _decisions(self, request, columns, settings, seed, topic):
        from adapters.decision_log import served_decisions

        values = {name: getattr(settings, name) for name in SETTING_NAMES}
        values["alpha"] = float(
            self.model.estimator.alpha if settings.alpha is None else settings.alpha
        )
        values = {k: v.value if hasattr(v, "value") else v for k, v in values.items()}
        return served_decisions(
            request,
            columns,
            settings={**values, "seed": seed},
            seeded=seed is not None,
            model_version=self.model_version,
            topic=topic,
        )

    def _generator(self) -> np.random.Generator:
        """This process's generator, seeded from OS entropy (a forked worker gets its own)."""
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng, self._rng_pid = np.random.default_rng(), os.getpid()
        return self._rng

    def _log(self):
        if self.decision_log is None:
            from adapters.decision_log import ENV_VAR, DecisionLog

            if os.environ.get(ENV_VAR, "").strip().lower() == LOGGING_OFF:
                _logger.warning(
                    "decision logging is off (%s=off): served decisions are not recorded", ENV_VAR
                )
                self.decision_log = False
            else:
                self.decision_log = DecisionLog()
                _logger.info("logging decisions to %s", self.decision_log.display_url)
        return self.decision_log


__all__ = [
    "INTERNAL_ERROR_MESSAGE",
    "MAX_REQUEST_ROWS",
    "LinUCBModel",
    "decisions_not_logged",
    "default_params",
    "load_model_files",
    "save_model",
]
