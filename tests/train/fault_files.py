"""Files that misbehave, for tests of what the code does then: a full disk, a pickle that runs code."""
import errno
import io
import os


class FullDisk(io.RawIOBase):
    """A file on a device that accepts `room` more bytes, then fails writes with ENOSPC."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self):
        return self.file.fileno()

    def close(self):
        self.file.close()
        super().close()


class Evil:
    """Unpickling this would create a marker file: proof that code from a checkpoint ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class EvilCommand:
    """Unpickling this would run a shell command creating a marker file (os.system, module posix)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))
