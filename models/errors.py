"""Exceptions raised when a checkpoint cannot be turned into a network.

Every one is a CheckpointError (a ValueError) whose message names the file and says what was
found and what was expected; the subclasses let a caller tell the cases apart.
"""


class CheckpointError(ValueError):
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
