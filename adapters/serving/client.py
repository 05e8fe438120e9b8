"""The champion as a client sees it, for the simulated deployment: in process or over REST.

:func:`serving_champion` resolves ``models:/NAME@champion`` once and yields a
:class:`ServedChampion` whose :meth:`~ServedChampion.rank` answers one REST request (a frame
of ``user_id``, ``item_id`` and :data:`skbandit.schema.MODEL_INPUT` rows, and ``params``)
with the served response (one row per request row, with ``rank``, ``first_slot_propensity``,
``model_version`` and ``decision_id``):

- ``in-process``: :meth:`adapters.model.pyfunc.LinUCBModel.predict` with a
  :class:`~adapters.decision_log.DecisionLog`: the REST code path without HTTP;
- ``rest``: a real ``skbandit serve`` on 127.0.0.1 (:mod:`adapters.serving.local_server`) logging to
  the same decision log, stopped when the block ends.

Either way the decisions are logged by the model's own ``predict`` before the answer comes
back. Every failure is a one-line :class:`~skbandit.exceptions.SkbanditError`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.registry import CHAMPION_ALIAS
from skbandit.exceptions import SkbanditError

VIAS = ("in-process", "rest")
REQUEST_TIMEOUT_S = 120.0


@dataclass
class ServedChampion:
    """The version serving now: ``name``, ``version`` (its number as text), its
    ``pipeline`` (for the simulator's bookkeeping) and how a request reaches it."""

    name: str
    version: str
    pipeline: object
    via: str
    _answer: Callable[[pd.DataFrame, dict], pd.DataFrame]

    def rank(self, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
        """The served response to one request (rows in request order)."""
        answer = self._answer(frame, params)
        served = set(answer["model_version"].astype(str))
        if served != {f"{self.name}/{self.version}"}:
            raise SkbanditError(
                f"the server answered as {sorted(served)} but "
                f"{self.name}@{CHAMPION_ALIAS} is v{self.version}; restart it"
            )
        return answer


@contextmanager
def serving_champion(
    via: str, model_name: str, decision_log_url: str, server_log: Path
) -> Iterator[ServedChampion]:
    """Serve ``models:/MODEL_NAME@champion`` ``via`` one of :data:`VIAS` for a block."""
    from adapters import registry

    if via not in VIAS:
        raise SkbanditError(f"unknown --via {via!r} (expected one of {VIAS})")
    pipeline, version = registry.load_model(registry.ModelRef(model_name, alias=CHAMPION_ALIAS))
    number = str(version.version)
    if via == "in-process":
        yield ServedChampion(
            model_name,
            number,
            pipeline,
            via,
            _in_process(pipeline, f"{model_name}/{number}", decision_log_url),
        )
        return
    with _rest(model_name, decision_log_url, server_log) as answer:
        yield ServedChampion(model_name, number, pipeline, via, answer)


def _in_process(pipeline, model_version: str, decision_log_url: str):
    from mlflow.exceptions import MlflowException

    from adapters.decision_log import DecisionLog
    from adapters.model.pyfunc import LinUCBModel

    model = LinUCBModel.from_model(pipeline, model_version)
    model.decision_log = DecisionLog(decision_log_url)

    def answer(frame, params):
        try:
            return model.predict(None, frame, params)
        except MlflowException as error:
            raise SkbanditError(f"the served model refused a request: {error.message}") from None

    return answer


@contextmanager
def _rest(model_name: str, decision_log_url: str, server_log: Path):
    import mlflow

    from adapters.decision_log import ENV_VAR
    from adapters.serving.local_server import ServerError, skbandit_server

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
        ENV_VAR: decision_log_url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    uri = f"models:/{model_name}@{CHAMPION_ALIAS}"
    try:
        with skbandit_server(uri, env, server_log) as (url, _):
            yield lambda frame, params: _post(url, frame, params)
    except ServerError as error:
        last = (str(error).strip().splitlines() or ["?"])[-1]
        raise SkbanditError(
            f"skbandit serve --model {uri} did not start ({last[:200]}); its log is {server_log}"
        ) from None


def _post(url: str, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    """POST one ``dataframe_split`` request to ``url/invocations``; the predictions."""
    body = {
        "dataframe_split": {
            "columns": list(frame.columns),
            "data": frame.astype(object).to_numpy().tolist(),
        },
        "params": params,
    }
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        message = error.read().decode(errors="replace")
        try:
            message = json.loads(message).get("message", message)
        except ValueError:
            pass
        raise SkbanditError(f"the server at {url} answered {error.code}: {message[:300]}") from None
    except (urllib.error.URLError, OSError) as error:
        raise SkbanditError(
            f"no answer from the server at {url} ({error}); check its log"
        ) from None
    answer = pd.DataFrame(payload["predictions"])
    if len(answer) != len(frame):
        raise SkbanditError(
            f"the server at {url} answered {len(answer)} rows for a request of "
            f"{len(frame)}; check its log"
        )
    answer.index = frame.index
    return answer.astype({"rank": np.int64})
