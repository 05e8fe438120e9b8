"""The one error handler of the commands: one line, redacted, control bytes escaped."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from adapters.errors import escape_control, for_terminal, one_line
from skbandit.exceptions import SkbanditError
from train._cli import one_line_errors


def test_control_bytes_are_escaped_not_sent_to_the_terminal():
    text = for_terminal("column '\x1b[2J\x1b]0;pwned\x07a\x00b' from http://u:secret@h/x")
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "\\x00" in text and "secret" not in text
    assert escape_control("plain é text") == "plain é text"


def test_unexpected_errors_name_their_type_and_what_was_not_done():
    message = one_line(ValueError(""), "nothing was written")
    assert message.startswith("unexpected ValueError: no message (set SKBANDIT_DEBUG=1")
    assert message.endswith("; nothing was written")


def _app(error: BaseException, **handler) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def run() -> None:
        with one_line_errors(**handler):
            raise error

    return app


def test_every_error_is_one_line_with_its_exit_code():
    runner = CliRunner()
    result = runner.invoke(_app(SkbanditError("bad\nfile \x1b[31mred")))
    assert result.exit_code == 1 and result.output == "error: bad file \\x1b[31mred\n"
    result = runner.invoke(_app(RuntimeError("boom"), nothing_done="no alias moved"))
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "RuntimeError: boom" in result.output and "no alias moved" in result.output
    result = runner.invoke(_app(KeyboardInterrupt(), interrupted=lambda _: "the run is KILLED"))
    assert result.exit_code == 130 and result.output == "interrupted: the run is KILLED\n"
