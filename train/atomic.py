"""Atomic file writes: a reader, or a crash, sees either the previous file or the complete new
one, never a half-written file.

The new contents go to a temporary file in the same folder, named `.<name>.partial-XXXXXXXX.tmp`,
which is fsynced and then os.replace'd onto the target. A write that fails (disk full, ...)
removes its temporary file and raises AtomicWriteError; a process killed mid-write leaves its
temporary file behind, which `cleanup_stale_temporaries` removes.
"""
import errno
import os
import re
import tempfile

from models.errors import UserError

_TEMP_MARK = ".partial-"
_TEMP_SUFFIX = ".tmp"
# tempfile.mkstemp fills in 8 characters from [a-z0-9_].
_OUR_TEMPORARY = re.compile(r"\..+" + re.escape(_TEMP_MARK) + r"[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class AtomicWriteError(UserError, OSError):
    """Writing a file failed; the previous version of the file (if any) is untouched."""


def atomic_write(path, write, what="file", error_type=AtomicWriteError):
    """Call write(binary_file) on a temporary file next to `path`, fsync it and rename it onto
    `path`. An OSError anywhere in the write becomes `error_type`, saying what happened to the
    device and that the previous `what` at `path` is intact."""
    path = os.fspath(path)
    _refuse_non_regular(path, what, error_type)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + _TEMP_MARK, suffix=_TEMP_SUFFIX, dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; a file open() makes follows the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as failure:
        _remove_quietly(tmp)
        os_error = _os_error_in_chain(failure)
        if os_error is None:
            raise
        error = error_type(_write_failure_message(os_error, path, what))
        error.errno = os_error.errno
        raise error from failure
    _fsync_folder(folder)


def _refuse_non_regular(path, what, error_type):
    """A device node, FIFO, socket or folder at `path` is never replaced (a symlink to a regular
    file is: the link is replaced, its target left alone)."""
    if os.path.lexists(path) and not os.path.isfile(path):
        raise error_type(f"{path} exists and is not a regular file; refusing to replace it with the {what} "
                         "(choose another path)")


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else by
    setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def cleanup_stale_temporaries(folder):
    """Remove the temporary files atomic_write left in `folder` (not its subfolders) when a
    process was killed mid-write. Only names of atomic_write's own pattern are touched. Call it
    when no other process is writing into `folder`. Returns the removed paths."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and _OUR_TEMPORARY.fullmatch(entry.name):
            _remove_quietly(entry.path)
            removed.append(entry.path)
    return sorted(removed)


def _os_error_in_chain(failure):
    """torch.save reports a failed write as RuntimeError('unexpected pos ...') with the
    OSError as its context: look through causes and contexts for it."""
    seen = set()
    while failure is not None and id(failure) not in seen:
        if isinstance(failure, OSError) and failure.errno is not None:
            return failure
        seen.add(id(failure))
        failure = failure.__cause__ or failure.__context__
    return None


def _write_failure_message(os_error, path, what):
    reason = "no space left on device" if os_error.errno in _NO_SPACE else \
        (os_error.strerror or os.strerror(os_error.errno)).lower()
    previous = f"the previous {what} {path} is intact" if os.path.exists(path) else \
        f"there was no previous {what} and nothing was written"
    return f"{reason} while writing {path}; {previous}"


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_folder(folder):
    """Make the rename itself durable (not possible on every platform / filesystem)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
