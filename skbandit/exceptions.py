"""The one exception the project raises for bad input or missing state."""


class SkbanditError(ValueError):
    """A problem the user can fix; the message says what was wrong and what to do.

    Command-line entry points print the message on one line and exit with code 1.
    """
