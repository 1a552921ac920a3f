"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal or ssh session) during training: finish the
step, save, stop. A second signal aborts."""
import signal
import sys


class GracefulStop:
    """Context manager installing the handlers (in the main thread); `.signal` is the first
    signal received, or None."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, log):
        self.log = log
        self.signal = None
        self._previous = {}

    def _handle(self, signum, _frame):
        if self.signal is not None:  # second Ctrl-C: give up at once
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self.signal = signum
        self.log(f"\n{signal.Signals(signum).name}: finishing this step, saving, then stopping "
                 f"(press again to abort without saving)", file=sys.stderr)

    def __enter__(self):
        for s in self.SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


def ignore_sigint_in_worker(_worker_id):
    """DataLoader worker_init_fn: Ctrl-C, a closed terminal and a SIGTERM sent to the process
    group (kill -TERM -PGID, a job scheduler) reach every process, and the main process handles
    them (finish the step, save, then stop its workers); a worker must not die first: the
    DataLoader would raise in the main process wherever it happens to be."""
    for signum in GracefulStop.SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
