"""MLflow models-from-code entry point: mlflow runs this file to build the served model.

Logging the model by this file's path (rather than a pickled object) keeps every registered
version free of pickled code; the pipeline itself is rebuilt from ``config.json`` and
``state.npz`` in :meth:`adapters.pyfunc_model.LinUCBModel.load_context`.
"""

from mlflow.models import set_model

from adapters.pyfunc_model import LinUCBModel

set_model(LinUCBModel())
