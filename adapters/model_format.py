"""A registered version's two files: ``config.json`` and ``state.npz`` (no pickled code).

Kept apart from :mod:`adapters.pyfunc_model` so that reading a version (the CLI) does not
import ``mlflow.pyfunc``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from skbandit import schema
from skbandit.features import feature_set_of, make_pipeline
from skbandit.linucb import LinUCB

CONFIG_FILE, STATE_FILE = "config.json", "state.npz"
CONFIG_ARTIFACT, STATE_ARTIFACT = "config", "state"


def save_pipeline(pipeline, directory: Path) -> dict[str, str]:
    """Write the pipeline's config and state into ``directory``; return the artifact paths."""
    estimator = pipeline[-1]
    config = {"feature_set": feature_set_of(pipeline), "params": estimator.get_params()}
    config_path, state_path = directory / CONFIG_FILE, directory / STATE_FILE
    config_path.write_text(json.dumps(config, indent=2))
    np.savez(state_path, **estimator.get_state())
    return {CONFIG_ARTIFACT: str(config_path), STATE_ARTIFACT: str(state_path)}


def load_pipeline_files(config_path: str, state_path: str):
    """Rebuild a fitted pipeline from the files :func:`save_pipeline` wrote."""
    config = json.loads(Path(config_path).read_text())
    pipeline = make_pipeline(config["feature_set"])
    pipeline.steps[-1] = ("linucb", LinUCB(**config["params"]))
    with np.load(state_path) as state:
        pipeline[-1].set_state({key: state[key] for key in state.files})
    example = pd.DataFrame({column: [0.5] for column in schema.MODEL_INPUT})
    pipeline[0].fit(example)  # the feature maps are stateless; fitting fixes the columns
    return pipeline
