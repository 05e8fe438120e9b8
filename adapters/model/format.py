"""A registered version's data: ``config.json`` and ``state.npz`` (no code, no pickle).

They are the data-only state of a :class:`skbandit.model.TrainedModel`
(:meth:`~skbandit.model.TrainedModel.get_state`), written by :func:`save_model` and read back
by :func:`load_model_dir`.

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

import skbandit
from adapters.errors import first_line as _first_line
from skbandit.exceptions import SkbanditError
from skbandit.features import FEATURE_SETS
from skbandit.model import TrainedModel

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
ITEM_PARAMETERS = "item_parameters"
"""Key of ``config.json`` holding the item parameters the version was trained with (lists of
``item_id, topic, difficulty, discrimination, guessing``; :mod:`skbandit.version_items`);
older versions have none."""
IDENTIFIED_TARGET = "identified_target"
"""Key of ``config.json`` holding the target experiment and the learning curves the version
identified from it (:func:`skbandit.target_experiment.identified_state`); older versions have
none and serve their bands' target."""
SUCCESS_INTERVAL = "success_interval"
"""Key of ``config.json`` holding the learned scales of the success interval
(:mod:`skbandit.uncertainty`); older versions have none and get its defaults."""
STATE_PARTS = {
    "progress_bands": LEARNING_PROGRESS,
    "calibration": PROBABILITY_CALIBRATION,
    "item_parameters": ITEM_PARAMETERS,
    "identified_target": IDENTIFIED_TARGET,
    "success_interval": SUCCESS_INTERVAL,
}
""":meth:`skbandit.model.TrainedModel.get_state` part -> its key in ``config.json``."""
IGNORED_FILES = frozenset({"registered_model_meta"})
"""Files MLflow itself adds to a downloaded model folder (not part of what was stored)."""


def save_model(model: TrainedModel, directory: Path) -> Path:
    """Write the model's state as ``config.json`` and ``state.npz`` in ``directory``.

    ``state.npz`` holds the estimator's arrays and numbers (:meth:`LinUCB.get_state`), and
    ``config.json`` the rest of :meth:`~skbandit.model.TrainedModel.get_state`: the feature
    set, the estimator parameters and each learned extra the model has.
    """
    state = model.get_state()
    config = {
        "feature_set": state["feature_set"],
        # prior_mean is an array: it is stored in state.npz, which set_state restores it from
        "params": state["params"],
        "skbandit_version": skbandit.__version__,
        "state_format": STATE_FORMAT,
    }
    for part, key in STATE_PARTS.items():
        if state[part] is not None:
            config[key] = state[part]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    np.savez(directory / STATE_FILE, **state["estimator"])
    return directory


def load_model_dir(directory: Path, what: str = "the model") -> TrainedModel:
    """Rebuild the :class:`~skbandit.model.TrainedModel` a folder :func:`save_model` wrote.

    ``what`` names the version in errors (``skbandit-linucb version 3``). A missing or
    unreadable file, a state format this skbandit does not read, or a config that disagrees
    with the state raises a one-line :class:`~skbandit.exceptions.SkbanditError`. Versions
    written before a learned extra was kept load without it (None).
    """
    return load_model_files(Path(directory) / CONFIG_FILE, Path(directory) / STATE_FILE, what)


def load_model_files(config_path, state_path, what: str = "the model") -> TrainedModel:
    """Rebuild the model from the two files (see :func:`load_model_dir`)."""
    config = read_config(Path(config_path), what)
    try:
        with np.load(state_path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SkbanditError(
            f"cannot load {what}: {Path(state_path).name} is unreadable ({_first_line(error)}); "
            f"{RETRAIN_HINT}"
        ) from None
    state = {
        "feature_set": config["feature_set"],
        "params": config["params"],
        "estimator": arrays,
        **{part: config.get(key) for part, key in STATE_PARTS.items()},
    }
    try:
        return TrainedModel.from_state(state)
    except SkbanditError as error:
        message = str(error)
        for part, key in STATE_PARTS.items():  # name the extra as the file holds it
            message = message.replace(f"the state's {part}", f"{CONFIG_FILE}'s {key}")
        raise SkbanditError(f"cannot load {what}: {message}; {RETRAIN_HINT}") from None
    except (ValueError, TypeError, KeyError) as error:
        raise SkbanditError(
            f"cannot load {what}: {Path(state_path).name} is unreadable ({_first_line(error)}); "
            f"{RETRAIN_HINT}"
        ) from None


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
