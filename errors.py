"""The one exception type the command line turns into an `Error: ...` line and exit code 1."""


class MksgnError(Exception):
    """A runtime error whose message says what went wrong and how to fix it."""


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) during a command, with what was kept and how to continue (not a
    KeyboardInterrupt: click would turn that into a bare Abort)."""
