"""A registered version's data: ``config.json`` and ``state.npz`` (no code, no pickle).

A version stores only these two files (plus MLflow's ``MLmodel``, signature, input example
and environment files); the code that reads them is the *installed* skbandit
(:mod:`adapters.model.flavor`). ``config.json`` records the skbandit release and the state
format that wrote it; a version written in another state format is refused with a one-line
error naming both. Every stored file's sha256 is recorded at registration
(:func:`file_checksums`) and checked before a version is loaded (:func:`verify_checksums`).

Kept apart from :mod:`adapters.model.pyfunc` so that reading a version (the CLI) does not
import ``mlflow.pyfunc``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

import skbandit
from adapters.errors import first_line as _first_line
from skbandit import schema
from skbandit.exceptions import SkbanditError
from skbandit.features import FEATURE_SETS, feature_set_of, make_pipeline
from skbandit.learning_progress import ProgressBands, attach_bands, learned_bands
from skbandit.linucb import LinUCB
from skbandit.probability_calibration import (
    ProbabilityCalibration,
    attach_calibration,
    calibration_of,
)
from skbandit.uncertainty import (
    SuccessInterval,
    attach_success_interval,
    has_learned_interval,
    success_interval_of,
)

CONFIG_FILE, STATE_FILE = "config.json", "state.npz"
DATA_FOLDER = "skbandit"
"""The folder holding the two files, stored as ``data/skbandit/`` inside the MLflow model."""
STATE_FORMAT = 2
"""Version of the stored layout. 1: models-from-code with ``code/`` copies (before issue 11,
no longer loaded); 2: data only, loaded by :mod:`adapters.model.flavor`."""
RETRAIN_HINT = "retrain it with `python -m train.warmstart` (this skbandit cannot load it)"
LEARNING_PROGRESS = "learning_progress"
"""Key of ``config.json`` holding the learning-progress bands the version learned (and their
best ``target``); versions written before it was kept have none and still load, but refuse
the ``learning_progress`` objective (:func:`skbandit.learning_progress.learned_target`)."""
PROBABILITY_CALIBRATION = "probability_calibration"
"""Key of ``config.json`` holding the score-to-probability map the version learned
(:mod:`skbandit.probability_calibration`); older versions have none and serve the clipped
score as before."""
SUCCESS_INTERVAL = "success_interval"
"""Key of ``config.json`` holding the learned scales of the success interval
(:mod:`skbandit.uncertainty`); older versions have none and get its defaults."""
IGNORED_FILES = frozenset({"registered_model_meta"})
"""Files MLflow itself adds to a downloaded model folder (not part of what was stored)."""


def save_pipeline(pipeline, directory: Path) -> Path:
    """Write the pipeline's ``config.json`` and ``state.npz`` into ``directory``; return it."""
    estimator = pipeline[-1]
    config = {
        "feature_set": feature_set_of(pipeline),
        # prior_mean is an array: it is stored in state.npz, which set_state restores it from
        "params": {k: v for k, v in estimator.get_params().items() if k != "prior_mean"},
        "skbandit_version": skbandit.__version__,
        "state_format": STATE_FORMAT,
    }
    bands = learned_bands(pipeline)
    if bands is not None:
        config[LEARNING_PROGRESS] = bands.as_dict()
    calibration = calibration_of(pipeline)
    if calibration is not None:
        config[PROBABILITY_CALIBRATION] = calibration.as_dict()
    if has_learned_interval(pipeline):
        config[SUCCESS_INTERVAL] = success_interval_of(pipeline).as_dict()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    np.savez(directory / STATE_FILE, **estimator.get_state())
    return directory


def load_pipeline_dir(directory: Path, what: str = "the model"):
    """Rebuild a fitted pipeline from a folder :func:`save_pipeline` wrote.

    ``what`` names the version in errors (``skbandit-linucb version 3``). A missing or
    unreadable file, a state format this skbandit does not read, or a config that disagrees
    with the state raises a one-line :class:`~skbandit.exceptions.SkbanditError`.
    """
    return load_pipeline_files(Path(directory) / CONFIG_FILE, Path(directory) / STATE_FILE, what)


def load_pipeline_files(config_path, state_path, what: str = "the model"):
    """Rebuild a fitted pipeline from the two files (see :func:`load_pipeline_dir`)."""
    config = read_config(Path(config_path), what)
    pipeline = make_pipeline(config["feature_set"])
    try:
        pipeline.steps[-1] = ("linucb", LinUCB(**config["params"]))
        with np.load(state_path, allow_pickle=False) as state:
            pipeline[-1].set_state({key: state[key] for key in state.files})
    except SkbanditError as error:
        raise SkbanditError(f"cannot load {what}: {error}") from None
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SkbanditError(
            f"cannot load {what}: {Path(state_path).name} is unreadable ({_first_line(error)}); "
            f"{RETRAIN_HINT}"
        ) from None
    example = pd.DataFrame({column: [0.5] for column in schema.MODEL_INPUT})
    pipeline[0].fit(example)  # the feature maps are stateless; fitting fixes the columns
    _check_agrees(pipeline, config["feature_set"], what)
    if LEARNING_PROGRESS in config:
        try:
            attach_bands(pipeline, ProgressBands.from_dict(config[LEARNING_PROGRESS]))
        except SkbanditError as error:
            raise SkbanditError(
                f"cannot load {what}: config.json's {LEARNING_PROGRESS} is "
                f"malformed ({error}); {RETRAIN_HINT}"
            ) from None
    if PROBABILITY_CALIBRATION in config:
        try:
            attach_calibration(
                pipeline, ProbabilityCalibration.from_dict(config[PROBABILITY_CALIBRATION])
            )
        except SkbanditError as error:
            raise SkbanditError(
                f"cannot load {what}: config.json's {PROBABILITY_CALIBRATION} "
                f"is malformed ({error}); {RETRAIN_HINT}"
            ) from None
    if SUCCESS_INTERVAL in config:
        try:
            attach_success_interval(pipeline, SuccessInterval.from_dict(config[SUCCESS_INTERVAL]))
        except SkbanditError as error:
            raise SkbanditError(
                f"cannot load {what}: config.json's {SUCCESS_INTERVAL} is malformed "
                f"({error}); {RETRAIN_HINT}"
            ) from None
    return pipeline


def read_config(path: Path, what: str = "the model") -> dict:
    """The checked ``config.json``; a one-line error if it is unreadable or incompatible."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SkbanditError(
            f"cannot load {what}: {path.name} is unreadable ({_first_line(error)}); {RETRAIN_HINT}"
        ) from None
    if not isinstance(config, dict):
        raise SkbanditError(f"cannot load {what}: {path.name} is not a JSON object; {RETRAIN_HINT}")
    written = config.get("state_format", 1)
    if written != STATE_FORMAT:
        writer = config.get("skbandit_version")
        raise SkbanditError(
            f"cannot load {what}: it was written by "
            f"{f'skbandit {writer}' if writer else 'an older skbandit'} in state format {written}, "
            f"this skbandit {skbandit.__version__} reads state format {STATE_FORMAT}; "
            f"{RETRAIN_HINT}"
        )
    if config.get("feature_set") not in FEATURE_SETS or not isinstance(config.get("params"), dict):
        raise SkbanditError(
            f"cannot load {what}: {path.name} needs a feature_set in {FEATURE_SETS} and a "
            f"params object, found {sorted(config)}; {RETRAIN_HINT}"
        )
    return config


def _check_agrees(pipeline, feature_set: str, what: str) -> None:
    """Refuse a config whose feature set does not produce the state's features."""
    names = list(pipeline[0].get_feature_names_out())
    estimator = pipeline[-1]
    stored = getattr(estimator, "feature_names_in_", None)
    if len(names) != estimator.n_features_in_ or (stored is not None and list(stored) != names):
        raise SkbanditError(
            f"cannot load {what}: config.json names feature set {feature_set!r} "
            f"({len(names)} features) but state.npz holds a {estimator.n_features_in_}-feature "
            f"state; the files do not belong together: {RETRAIN_HINT}"
        )


# --- checksums ---------------------------------------------------------------------------------


def file_checksums(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (a stored model)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in IGNORED_FILES
    }


def verify_checksums(folder: Path, expected: dict[str, str], what: str) -> None:
    """Refuse a model folder whose files differ from ``expected`` (added, changed, missing)."""
    found = file_checksums(folder)
    changed = sorted(
        name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name)
    )
    if changed:
        raise SkbanditError(
            f"refusing to load {what}: its stored files differ from the checksums recorded "
            f"at registration ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}); "
            "the artifact store was modified: retrain with `python -m train.warmstart`"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
