"""Ctrl-C / SIGTERM during training: finish the step, save, stop. A second signal aborts."""
import signal
import sys


class GracefulStop:
    """Context manager installing the handlers (in the main thread); `.signal` is the first
    signal received, or None."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

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
    """DataLoader worker_init_fn: Ctrl-C is handled by the main process (save, then exit);
    the workers must not die first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
