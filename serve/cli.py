"""The ``skbandit`` command line: recommendations from a registered model version."""

import typer

app = typer.Typer(
    name="skbandit",
    help="Adaptive practice-item recommendations from a LinUCB contextual bandit.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Adaptive practice-item recommendations from a LinUCB contextual bandit."""
