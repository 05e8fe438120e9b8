"""MLflow's scoring app and model loading for ``skbandit serve`` (the serving layer's only
MLflow calls; :mod:`serve.app` wraps the app in its guard)."""

from __future__ import annotations


def load_served_model(path: str):
    """The pyfunc model in the downloaded (checksum-verified) version folder ``path``."""
    import mlflow

    return mlflow.pyfunc.load_model(path)


def scoring_app(model):
    """MLflow's ASGI scoring app (``/invocations``, ``/ping``, ``/health``, ``/version``),
    with a JSON table to ``/invocations`` answered without pandas for skbandit's model
    (:mod:`adapters.serving.invocations`; the same answer, a few ms sooner)."""
    from mlflow.pyfunc import scoring_server

    from adapters.serving.invocations import fast_json_app

    return fast_json_app(scoring_server.init(model), model)


def param_names(model) -> list[str] | None:
    """The request params the served version's signature names (None: it names none)."""
    schema = model.metadata.get_params_schema() if model.metadata else None
    return None if schema is None else [spec.name for spec in schema.params]
