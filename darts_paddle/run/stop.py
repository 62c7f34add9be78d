"""Stopping a long run without losing work.

Ctrl-C (SIGINT) and SIGTERM (what schedulers and `timeout` send) are one request: inside a
loop (StopRequest) the current step finishes, the loop saves and the script exits with
128 + the signal's number; a second signal stops at once.  Outside the loops (start-up,
evaluation) a signal stops at once (`handle_signals`), with one line instead of Paddle's
own SIGTERM report.
"""

import contextlib
import logging
import signal

log = logging.getLogger("darts_paddle")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run stopped on a signal (after saving, when a loop caught it)."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self):
        return 128 + self.signum


def _interrupt(signum, _frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def _handlers(handler):
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def handle_signals():
    """For a whole script: a signal raises Interrupted wherever the run is."""
    return _handlers(_interrupt)


class StopRequest:
    """Inside a loop: a signal asks the loop to stop after the current step (a step
    interrupted half-way would leave w' or w +- Rv in the weights, or half an update).

    active=False never asks (its signals keep stopping at once): under
    paddle.distributed.launch, processes that stopped after different steps would wait for
    each other forever."""

    def __init__(self, active=True):
        self.active = active
        self.signum = None
        self._guard = contextlib.nullcontext()

    @property
    def requested(self):
        return self.signum is not None

    def __enter__(self):
        if self.active:
            self._guard = _handlers(self._handle)
        self._guard.__enter__()
        return self

    def _handle(self, signum, _frame):
        if self.requested:
            raise Interrupted(signum)
        self.signum = signum
        log.info("%s: stopping after this step (send it again to stop at once, without "
                 "saving)", signal.Signals(signum).name)

    def __exit__(self, *exc):
        self._guard.__exit__(*exc)

    def stop(self):
        """After the loop has saved: end the run as the signal asked."""
        raise Interrupted(self.signum)


NEVER = StopRequest(active=False)  # for loops run without one (tests, benchmarks)
