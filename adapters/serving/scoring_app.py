"""MLflow's scoring app and model loading for ``skbandit serve`` (the serving layer's only
MLflow calls; :mod:`serve.app` wraps the app in its guard)."""

from __future__ import annotations


def load_served_model(path: str):
    """The pyfunc model in the downloaded (checksum-verified) version folder ``path``."""
    import mlflow

    return mlflow.pyfunc.load_model(path)


def scoring_app(model):
    """MLflow's ASGI scoring app (``/invocations``, ``/ping``, ``/health``, ``/version``)."""
    from mlflow.pyfunc import scoring_server

    return scoring_server.init(model)
