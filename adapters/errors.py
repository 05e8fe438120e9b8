"""Error messages fit for a terminal: one line, no credentials, no control bytes.

Every command prints its errors through :func:`one_line` (the CLIs' one handler is
:func:`train._cli.one_line_errors`, and ``serve/cli.py`` prints with the same functions), and
the adapters quote a library's error with :func:`first_line`.

>>> for_terminal("bad header 'a\\x1b[2Jb' from http://bob:pw@host/x\\n  (line 2)")
"bad header 'a\\\\x1b[2Jb' from http://***@host/x (line 2)"
>>> first_line(ValueError(""))
'ValueError'
"""

from __future__ import annotations

import os
import re

from adapters.tracking import raise_if_unreachable, redact_text
from skbandit.exceptions import SkbanditError

DEBUG_VAR = "SKBANDIT_DEBUG"
# C0 and C1 control characters and DEL: ESC starts ANSI/OSC sequences, NUL comes from UTF-16
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def first_line(error: BaseException, empty: str | None = None) -> str:
    """The first non-blank line of ``str(error)`` (``empty``, by default the error's type name,
    when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else (empty or type(error).__name__)


def escape_control(text: str) -> str:
    r"""``text`` with each control character shown as ``\xNN``, so it cannot drive the
    terminal (clear it, set its title, hide text)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def for_terminal(message: str) -> str:
    """``message`` redacted (``user:password@`` of URIs), flattened to one line (so it never
    wraps into a block) and with its control characters escaped."""
    return escape_control(" ".join(redact_text(message).split()))


def one_line(error: BaseException, nothing_done: str = "") -> str:
    """What a command prints for ``error`` after ``error: ``.

    A :class:`SkbanditError` says it all; an unreachable tracking server says so; anything
    else is unexpected: its type and first line and how to see the traceback. ``nothing_done``
    (e.g. ``"nothing was registered and no alias moved"``) is added to the last two, which
    the user cannot otherwise tell apart from a half-done job.
    """
    if isinstance(error, SkbanditError):
        return for_terminal(str(error))
    try:
        raise_if_unreachable(error)
    except SkbanditError as unreachable:
        message = str(unreachable)
    else:
        message = (
            f"unexpected {type(error).__name__}: {first_line(error, 'no message')} "
            f"(set {DEBUG_VAR}=1 to see the traceback)"
        )
    return for_terminal(f"{message}; {nothing_done}" if nothing_done else message)


def debugging() -> bool:
    """True when ``$SKBANDIT_DEBUG`` asks for tracebacks of unexpected errors."""
    return bool(os.environ.get(DEBUG_VAR))


__all__ = ["debugging", "escape_control", "first_line", "for_terminal", "one_line"]
