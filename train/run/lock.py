"""One process per run folder: an exclusive flock on its lock file (RunFolder.LOCK) for the run's
whole life.

The kernel drops a flock when its holder dies, however it dies (SIGKILL included), so a lock
file left by a dead run is simply taken over; a run that ends normally deletes it. The file's
contents (pid, host, start time) only serve the messages.
"""
import datetime
import fcntl
import json
import os
import socket
import time

from models.errors import UserError

# A run that has just taken the lock writes its details right after; a second run that finds
# the lock held waits this long for them before reporting "unknown process".
HOLDER_WAIT_S = 2.0


class RunFolderInUse(UserError):
    """Another live process holds the run folder's lock."""


class RunLock:
    def __init__(self, run_dir, lock_file):
        self.run_dir = run_dir
        self.path = lock_file
        self.fd = None
        self._created_folder = False

    def acquire(self, log=print):
        """Take the lock (creating the folder if needed). Raises RunFolderInUse when a live
        process holds it, OSError when the folder cannot be created or written."""
        self._created_folder = not os.path.isdir(self.run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _wait_for_holder(fd)
                os.close(fd)
                raise RunFolderInUse(f"run folder {self.run_dir} is in use by {_describe(holder)}; wait for it "
                                     f"to finish, stop it, or choose another --name") from None
            if _is_current_file(fd, self.path):
                break
            os.close(fd)  # its holder released it by deleting the file: lock the new one
        self.fd, self._stat = fd, os.fstat(fd)
        previous = _read_holder(fd)
        if previous:
            log(f"{self.run_dir}: taking over the lock of {_describe(previous)}, which is no longer running")
        _write_holder(fd)
        return self

    def release(self):
        """Delete the lock file and drop the lock (deleting first: a process that opened the
        file meanwhile sees it is no longer the current one). Removes the folder again if
        this run created it and left nothing else in it."""
        if self.fd is None:
            return
        os.unlink(self.path)
        if self._created_folder and not os.listdir(self.run_dir):
            os.rmdir(self.run_dir)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def close_in_child(self):
        """For forked children (DataLoader workers): drop the inherited descriptor, so that
        the lock dies with the run's own process and not with the last of its workers. Does
        nothing where the descriptor number is not the lock file (a spawned child)."""
        if self.fd is None:
            return
        try:
            same_file = os.path.samestat(os.fstat(self.fd), self._stat)
        except OSError:
            same_file = False
        if same_file:
            os.close(self.fd)
        self.fd = None


def _is_current_file(fd, path):
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _write_holder(fd):
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _read_holder(fd):
    try:
        size = os.fstat(fd).st_size
        return json.loads(os.pread(fd, size, 0).decode()) if size else None
    except (OSError, ValueError):
        return None


def _wait_for_holder(fd):
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        holder = _read_holder(fd)
        if holder or time.monotonic() > deadline:
            return holder
        time.sleep(0.05)


def _describe(holder):
    if not isinstance(holder, dict):
        return "another process"
    here = holder.get("host") == socket.gethostname()
    where = "" if here else f" on {holder.get('host')}"
    return f"process {holder.get('pid')}{where} (started {holder.get('started')})"
