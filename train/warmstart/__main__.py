"""``python -m train.warmstart``: the command in :mod:`train.warmstart.cli`."""

from train.warmstart.cli import app

app()
