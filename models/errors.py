"""The errors a person can fix: UserError, the one base of every error this project's commands
report in one line, and the checkpoint errors of `models`.

A CheckpointError (a ValueError) is raised when a checkpoint cannot be turned into a network;
its message names the file and says what was found and what was expected; the subclasses let a
caller tell the cases apart.
"""


class UserError(Exception):
    """Bad input or a refused action, not a bug: the message (one line) names the argument or
    file and what was expected. Every `python -m train...` command prints it as `error: ...`
    and exits with `exit_status` (train.cli.command); no traceback."""

    exit_status = 2


class MissingFileError(UserError, FileNotFoundError):
    """A file named on the command line does not exist (the message names it)."""


class CheckpointError(UserError, ValueError):
    """A file or dict that is not a loadable generator checkpoint; the message says what was
    found and what was expected."""


class NotACheckpointError(CheckpointError):
    """The file was not written by torch.save (an image, random bytes, a plain pickle...)."""


class CorruptCheckpointError(CheckpointError):
    """A torch.save file that ends early or is damaged."""


class UnsafeCheckpointError(CheckpointError):
    """The file holds pickled Python objects; loading it could run arbitrary code."""


class WrongCheckpointKindError(CheckpointError):
    """A readable PyTorch file, but not the kind of checkpoint asked for."""
