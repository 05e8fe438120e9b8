"""The MLflow loader of a registered version: installed code reading stored data.

Each version is logged with ``mlflow.pyfunc.log_model(loader_module="adapters.model.flavor",
data_path=...)``: its ``MLmodel`` names this module and ``data/skbandit/`` holds
``config.json`` and ``state.npz`` (see :mod:`adapters.model.format`). No Python file is stored
with a version, so ``mlflow models serve`` (and ``mlflow.pyfunc.load_model``) run the code of
the installed skbandit, never a training-time snapshot, as long as ``MLmodel`` is the one
registered. MLflow itself reads ``MLmodel`` and imports the loader module (and the ``code``
paths) it names before any code of ours runs: whoever can write the artifact store can make
plain ``mlflow models serve`` run code. ``skbandit serve`` checks the checksums before MLflow
reads ``MLmodel``; before plain MLflow serving, run ``skbandit verify-model``
(:mod:`adapters.model.check`).

Before the files are read, a registered version's stored files are checked against the
sha256 checksums recorded at registration (:func:`adapters.registry.verify_stored_files`);
a version that fails, is incomplete (``pending``) or was written in another state format is
refused with a one-line :class:`~skbandit.exceptions.SkbanditError`. A model loaded from a
plain folder (not through the registry) has no recorded checksums and is not checked.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adapters.model import format as model_format

LOADER_MODULE = __name__
_logger = logging.getLogger(__name__)


class ServedModel:
    """What mlflow's ``PyFuncModel`` calls: ``predict(data, params)`` on the one scoring class
    (:class:`adapters.model.pyfunc.LinUCBModel`)."""

    def __init__(self, model):
        self.model = model

    def predict(self, data, params=None):
        return self.model.predict(None, data, params)

    def get_raw_model(self):
        """The :class:`~adapters.model.pyfunc.LinUCBModel` (``PyFuncModel.get_raw_model()``)."""
        return self.model


def _load_pyfunc(data_path: str) -> ServedModel:
    """mlflow's entry point: the scoring model for the version stored around ``data_path``."""
    from adapters import registry
    from adapters.model.pyfunc import LinUCBModel
    from adapters.registry import _mlflow_internals as mlflow_internals

    data = Path(data_path)
    folder = mlflow_internals.model_folder(data)
    found = mlflow_internals.served_version(folder) if folder is not None else None
    if folder is None or found is None:
        _logger.info("loading an unregistered model (not through the registry): no checksums")
        return ServedModel(LinUCBModel.from_model(model_format.load_model_dir(data)))
    name, number = found
    what = f"{name} version {number}"
    version = registry.registry_version(name, number)
    registry.verify_stored_files(version, folder)
    model = model_format.load_model_dir(data, what)
    return ServedModel(LinUCBModel.from_model(model, f"{name}/{number}"))


__all__ = ["LOADER_MODULE", "ServedModel"]
