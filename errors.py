"""The one exception type the command line turns into an `Error: ...` line and exit code 1."""


class MksgnError(Exception):
    """A runtime error whose message says what went wrong and how to fix it."""
