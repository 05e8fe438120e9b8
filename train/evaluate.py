"""``python -m train.evaluate``: evidence that the bandit helps students.

- ``simulate``: run policies online in the simulated school and compare them (train.study_job).
- ``sweep``: every learning model x policy x seed, scored by a held-out post-test
  (train.sweep_job).
- ``compare``: off-policy champion/challenger comparison on logged events or the served
  decision log (``--decisions``), with promotion only through the gate (train.compare_job).
- ``deploy``: a simulated deployment of the closed loop: served days, outcomes, nightly
  warm-start and the gate (train.deploy_job).
"""

import typer

from train.compare_job import compare
from train.deploy_job import deploy
from train.study_job import simulate
from train.sweep_job import sweep

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.command("simulate")(simulate)
app.command("sweep")(sweep)
app.command("compare")(compare)
app.command("deploy")(deploy)

if __name__ == "__main__":
    app()
