"""Run a model server on 127.0.0.1 for tests and benchmarks.

The code lives in :mod:`adapters.serving.local_server` (the simulated deployment,
``python -m train.evaluate deploy --via rest``, starts servers too); this module keeps the
names tests and benchmarks import.
"""

from adapters.serving.local_server import (
    HOST,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    ServerError,
    free_port,
    model_server,
    skbandit_server,
)

__all__ = [
    "HOST",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "ServerError",
    "free_port",
    "model_server",
    "skbandit_server",
]
