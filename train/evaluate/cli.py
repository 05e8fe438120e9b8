"""``python -m train.evaluate``: evidence that the bandit helps students.

- ``simulate``: run policies online in the simulated school and compare them (train.evaluate.study).
- ``sweep``: every learning model x policy x seed, scored by a held-out post-test
  (train.evaluate.sweep).
- ``compare``: off-policy champion/challenger comparison on logged events or the served
  decision log (``--decisions``), with promotion only through the gate (train.evaluate.compare.job).
- ``deploy``: a simulated deployment of the closed loop: served days, outcomes, nightly
  warm-start and the gate (train.evaluate.deploy.job).
"""

import typer

from train.evaluate.compare.job import compare
from train.evaluate.deploy.job import deploy
from train.evaluate.study import simulate
from train.evaluate.sweep import sweep

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("simulate")(simulate)
app.command("sweep")(sweep)
app.command("compare")(compare)
app.command("deploy")(deploy)

if __name__ == "__main__":
    app()
