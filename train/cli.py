"""How every `python -m train...` command ends: a UserError (models.errors) becomes one line
`error: <message>` on stderr and the error's exit status, never a traceback; a Ctrl-C (a
KeyboardInterrupt that the command did not handle itself) becomes one line `interrupted` and
exit status 130. This is the one list of what a command catches."""
from __future__ import annotations

import functools
import sys

from models.errors import MissingFileError, UserError

__all__ = ["UserError", "MissingFileError", "MissingDependencyError", "command", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


class MissingDependencyError(UserError, ImportError):
    """An optional package a command needs is not installed (the message names it and how to
    install it)."""


def command(main):
    """Decorate a command's main(argv=None, ...) -> exit status: a UserError it raises is
    printed in one line and its exit_status returned."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_status
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    return run
