"""The loader of versions registered before the adapters were grouped (issue 20).

Their ``MLmodel`` names ``loader_module: adapters.model_flavor``; the loader now lives in
:mod:`adapters.model.flavor`, which new versions name. This module keeps the old ones loading.
"""

from adapters.model.flavor import ServedModel, _load_pyfunc

__all__ = ["ServedModel", "_load_pyfunc"]
