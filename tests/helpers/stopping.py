"""Stopping train.py mid-epoch as a SIGTERM from outside would: the signal arrives while
the chosen step runs; the run finishes that step, saves and exits with 128 + 15."""

import os
import signal

from darts_paddle.train import loop


def sigterm_during(monkeypatch, epoch, step):
    """SIGTERM during 0-based `step` of 0-based `epoch` (drop path on: drop_rng runs every
    step); undo with monkeypatch.undo() or by setting loop.drop_rng back."""
    real_drop_rng = loop.drop_rng

    def signalled(seed, e, s):
        if (e, s) == (epoch, step):
            os.kill(os.getpid(), signal.SIGTERM)
        return real_drop_rng(seed, e, s)

    monkeypatch.setattr(loop, "drop_rng", signalled)
    return real_drop_rng
