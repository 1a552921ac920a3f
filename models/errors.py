"""The exception raised when a checkpoint cannot be turned into a network."""


class CheckpointError(ValueError):
    """A file or dict that is not a loadable generator checkpoint; the message says what was
    found and what was expected."""
