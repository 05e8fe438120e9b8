"""``python -m train.evaluate``: the command in :mod:`train.evaluate.cli`."""

from train.evaluate.cli import app

app()
