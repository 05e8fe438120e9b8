"""The one error handler of every ``python -m train.*`` command (``serve/cli.py`` prints with
the same :mod:`adapters.errors`).

>>> import typer
>>> try:
...     with one_line_errors():
...         raise SkbanditError("no such file 'x.parquet'")
... except typer.Exit as done:
...     done.exit_code
1

Exit codes: 0 done; 1 bad options, bad data, an unreachable store or an unexpected error (one
line on stderr, ``error: ...``; ``SKBANDIT_DEBUG=1`` shows the traceback of an unexpected one);
130 interrupted (Ctrl-C), with what was kept or undone when the command says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import typer

from skbandit.exceptions import SkbanditError


@contextmanager
def one_line_errors(
    nothing_done: str = "", interrupted: Callable[[KeyboardInterrupt], str] | None = None
) -> Iterator[None]:
    """Turn every error of the block into one line on stderr and an exit code.

    ``nothing_done`` is added to unexpected errors (what did not happen); ``interrupted``
    gives the line printed after ``interrupted:`` on Ctrl-C (exit 130); without it Ctrl-C
    propagates as usual.
    """
    from adapters import errors

    try:
        yield
    except SkbanditError as error:
        fail(errors.one_line(error))
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except KeyboardInterrupt as interrupt:
        if interrupted is None:
            raise
        typer.echo(f"interrupted: {errors.for_terminal(interrupted(interrupt))}", err=True)
        raise typer.Exit(130) from None
    except Exception as error:
        if errors.debugging():
            raise
        fail(errors.one_line(error, nothing_done))


def fail(message: str) -> None:
    """Print ``error: message`` (already made one safe line) on stderr and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


__all__ = ["fail", "one_line_errors"]
