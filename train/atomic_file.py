"""Write a file atomically: into a temporary file in the destination's folder, then os.replace.

A reader, or a crash, sees either no file / the previous file or the complete new one.
"""
import contextlib
import json
import os
import tempfile


def refuse_overwrite(path, overwrite, option):
    """FileExistsError when `path` exists and the user did not ask to replace it."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{option} {path} already exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, obj):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
