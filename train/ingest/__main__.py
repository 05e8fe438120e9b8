"""``python -m train.ingest``: the command in :mod:`train.ingest.cli`."""

from train.ingest.cli import app

app()
