"""Which data a version learned, so a version is never used on another data set silently.

A registered version carries :data:`DATA_TAG` (where its training data came from: the
default school or the ``--events + --items`` files) and :data:`ITEMS_DIGEST_TAG` (a digest
of its item catalogue: every ``item_id`` with its ``topic``). Commands that rank given
events and items with a version (``skbandit trace``/``compare-recs``, ``train.batch_score``)
compare the catalogue they were given with the version's and say so in one line when they
differ (:func:`mismatch`). Each data set gets its own registered model name
(:func:`default_model_name`): ``skbandit-linucb`` for the default school, ``skbandit-<folder>``
for ``--events <folder>/events.parquet``, so an imported data set's versions never sit
beside (or take the aliases of) another data set's.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd

from adapters.registry import CHAMPION_ALIAS, DEFAULT_MODEL_NAME
from skbandit import schema

DATA_TAG = "data"
ITEMS_DIGEST_TAG = "data_items"


def items_digest(items: pd.DataFrame) -> str:
    """16 hex digits identifying an item catalogue (sorted ``item_id, topic`` pairs).

    >>> a = pd.DataFrame({"item_id": ["i", "j"], "topic": ["t", "u"]})
    >>> items_digest(a) == items_digest(a.iloc[::-1]), len(items_digest(a))
    (True, 16)
    """
    pairs = sorted(
        zip(items[schema.ITEM_ID].astype(str), items[schema.TOPIC].astype(str), strict=True)
    )
    text = "\n".join(f"{item}\t{topic}" for item, topic in pairs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_tags(items: pd.DataFrame, source: str) -> dict[str, str]:
    """The version tags naming the training data: its source and its catalogue's digest."""
    return {DATA_TAG: source, ITEMS_DIGEST_TAG: items_digest(items)}


def default_model_name(events_path=None) -> str:
    """The registered model name of a data set: the default school's, or from its folder.

    Only an explicit ``--events`` names a data set; without it the command uses the
    default data (the default school, or what ``SKBANDIT_EVENTS`` points at) and its name.

    ``--events data/a09/events.parquet`` gives ``skbandit-a09`` (the file's stem when the
    folder gives nothing usable); no events (the default school) gives ``skbandit-linucb``.

    >>> default_model_name(None), default_model_name("data/a09/events.parquet")
    ('skbandit-linucb', 'skbandit-a09')
    >>> default_model_name("data/kt1/events")
    'skbandit-kt1'
    """
    if events_path is None:  # the default data (SKBANDIT_EVENTS stands in for it in tests)
        return DEFAULT_MODEL_NAME
    path = Path(str(events_path))
    named_by_folder = path.suffix or path.name.lower() == "events"  # a streamed events/
    for word in (path.parent.name if named_by_folder else path.name, path.stem):
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", word).strip("-_").lower()
        if slug and slug not in ("events", "data", ".", ""):
            return f"skbandit-{slug}"
    return "skbandit-data"


def mismatch(tags: dict, label: str, items: pd.DataFrame, source: str) -> str | None:
    """One line when ``items`` are not the catalogue the version ``label`` learned; else None.

    Versions registered before the tag existed say nothing (None): their data is unknown.
    """
    recorded = (tags or {}).get(ITEMS_DIGEST_TAG)
    if not recorded or recorded == items_digest(items):
        return None
    trained_on = tags.get(DATA_TAG, "other data")
    return (
        f"warning: {label} was trained on {trained_on}, not on the items given ({source}, "
        f"{len(items):,} items): its rankings of these items mean little; pass the model "
        f"trained on them (--model {default_model_name(_events_of(source))}@{CHAMPION_ALIAS}, "
        "`skbandit models --name ...` lists its versions)"
    )


def _events_of(source: str):
    """The events path of a ``"<events> + <items>"`` source label (None: default school)."""
    return None if source.startswith("default-school") else source.split(" + ")[0]


def given_items(events_path=None, items_path=None) -> tuple[pd.DataFrame, str]:
    """The items table a command was given and its source label, resolved as
    :func:`adapters.data.datasets.load_school_reports` resolves them (flags, environment, default
    school)."""
    from adapters.data import datasets

    if events_path is None and items_path is None:
        events_path = os.environ.get(datasets.ENV_EVENTS)
        items_path = os.environ.get(datasets.ENV_ITEMS)
    if items_path is None:
        cached = datasets.default_school_dir() / datasets.ITEMS_FILE
        items = (
            datasets.read_items(cached)[0]
            if cached.is_file()
            else datasets.load_default_school()[1]
        )
        seed = datasets.default_school_config().seed
        return items, f"default-school(seed={seed})"
    return datasets.read_items(items_path)[0], f"{events_path} + {items_path}"


def version_mismatch(version, events_path=None, items_path=None) -> str | None:
    """:func:`mismatch` for a registered ``version`` and the files a command was given."""
    items, source = given_items(events_path, items_path)
    return mismatch(version.tags or {}, f"{version.name} v{version.version}", items, source)


def model_name_for(events_path, items_path) -> tuple[str, str | None]:
    """The model name a warm-start without ``--model-name`` registers to, and why (or None).

    The default data keeps :data:`DEFAULT_MODEL_NAME`. Other ``--events``/``--items`` get it
    too while that model is free or holds the same item catalogue (retraining one data set);
    when its champion learned another catalogue, the data set gets its own name
    (:func:`default_model_name`), so two data sets never share a model's versions and aliases.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from skbandit.exceptions import SkbanditError

    try:
        champion = mlflow.MlflowClient().get_model_version_by_alias(
            DEFAULT_MODEL_NAME, CHAMPION_ALIAS
        )
    except MlflowException:  # no such model or alias yet: the data may take the name
        return DEFAULT_MODEL_NAME, None
    recorded = (champion.tags or {}).get(ITEMS_DIGEST_TAG)
    if recorded is None or (items_path is not None and not Path(str(items_path)).is_file()):
        return DEFAULT_MODEL_NAME, None  # a version of unknown data, or a Spark directory
    items, source = given_items(events_path, items_path)
    if recorded == items_digest(items):
        return DEFAULT_MODEL_NAME, None
    trained_on = champion.tags.get(DATA_TAG, "other data")
    if events_path is None:
        raise SkbanditError(
            f"{DEFAULT_MODEL_NAME}'s champion v{champion.version} was trained on {trained_on}, "
            f"not on the default data ({source}); pass --model-name NAME for a model of its "
            "own (one model per data set)"
        )
    name = default_model_name(events_path)
    return name, (
        f"model: {name} ({DEFAULT_MODEL_NAME}'s champion v{champion.version} was "
        f"trained on {trained_on}, other items: one model per data set; "
        "--model-name to choose)"
    )
