"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal or ssh session) during training: finish the
step, save, stop. A second signal before that save aborts without saving (the last checkpoint
written is kept); any signal once the final checkpoint is written skips the final samples,
evaluation and report."""
import signal
import sys


class StopNow(Exception):
    """A signal after the final checkpoint was written: what is left to do is skipped."""


class GracefulStop:
    """Context manager installing the handlers (in the main thread); `.signal` is the first
    signal received, or None. Set `.saved` once the final checkpoint is written."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, log):
        self.log = log
        self.signal = None
        self.saved = False
        self._previous = {}

    def _handle(self, signum, _frame):
        name = signal.Signals(signum).name
        if self.saved or self.signal is not None:
            signal.signal(signum, signal.SIG_DFL)  # one more: the default action, at once
        if self.saved:
            self.signal = self.signal or signum
            self.log(f"\n{name}: the checkpoint is saved; skipping the final samples, evaluation and report",
                     file=sys.stderr)
            raise StopNow
        if self.signal is not None:
            self.log(f"\n{name} again: stopping at once, without saving (the last checkpoint written is kept)",
                     file=sys.stderr)
            raise KeyboardInterrupt
        self.signal = signum
        self.log(f"\n{name}: finishing this step, saving, then stopping "
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
