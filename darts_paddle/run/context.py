"""The run context: what a search and a training run do around their algorithm, in one place.

A run has a directory (new, or the one of the run it resumes) with its log.txt, a world of
processes (one, or those of paddle.distributed.launch, rank 0 alone writing), a VisualDL
board and a stop request (Ctrl-C, SIGTERM) while its epochs run; it ends each epoch with its
history record, its checkpoint and a barrier, and a stop in mid-epoch with a checkpoint and
the command that continues it.  The loops keep what differs: what is saved and when.
"""

import contextlib
import logging
import os
import time

import numpy as np

from .. import distributed
from ..errors import UserError
from ..storage.atomic import remove_stale_temporaries
from ..storage.checkpoint import CHECKPOINT
from ..storage.history import read_history, write_history
from . import vdl
from .logs import setup_process_logging
from .stop import StopRequest

log = logging.getLogger("darts_paddle.run")


def make_save_dir(save, kind):
    """--save NAME: ./search-NAME-20261123-201500, as the original; --save DIR/NAME:
    DIR/search-NAME-20261123-201500 (DIR created if need be).  Never reuses an existing
    directory."""
    parent, name = os.path.split(save)
    if not name:
        raise UserError(f"--save {save} names no run: give NAME or DIR/NAME (the run "
                        f"goes to DIR/{kind}-NAME-DATE)")
    path = os.path.join(parent, f"{kind}-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.makedirs(path, exist_ok=False)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {path}: {exc.strerror}; pick "
                        "another --save") from None
    return path


class RunContext:
    """One run's directory, processes, log, board, stop request and epoch ends."""

    def __init__(self, save_dir, script, world=distributed.SINGLE):
        self.save_dir, self.script, self.world = save_dir, script, world
        self.history = []  # the finished epochs' records (search runs keep them)
        self.stop = self.board = None  # while `epochs` runs

    @classmethod
    def new(cls, save, kind, script, world=distributed.SINGLE):
        """A fresh run: rank 0 creates its directory (`make_save_dir`) and logs there."""
        save_dir = make_save_dir(save, kind) if world.is_main else None
        setup_process_logging(save_dir, world.is_main)
        return cls(save_dir, script, world)

    @classmethod
    def resumed(cls, save_dir, script, world=distributed.SINGLE):
        """The run in `save_dir` continued: its log.txt goes on (a refused resume logs why
        too) and rank 0 clears what a killed save left behind."""
        setup_process_logging(save_dir, world.is_main)
        if world.is_main:
            remove_stale_temporaries(save_dir)
        return cls(save_dir, script, world)

    @property
    def is_main(self):
        return self.world.is_main

    @property
    def resume_command(self):
        return f"python {self.script} --resume {self.save_dir}"

    def path(self, name):
        return os.path.join(self.save_dir, name)

    def log_args(self, args, changes=()):
        """The flags that run (a resumed run's own) and what the command line changed."""
        log.info("args = %s", vars(args))
        for change in changes:
            log.info("changed on resume: %s", change)

    def start_processes(self, batch_size):
        """Under paddle.distributed.launch: the communicator, and this process's place;
        None in a single process (the runner picks the place).  The loops have checked
        that `batch_size` divides over the processes before writing anything."""
        if not self.world.distributed:
            return None
        place = distributed.start(self.world)
        log.info("data parallel: %d processes (rank 0 on %s), %d images each per step",
                 self.world.size, place, batch_size // self.world.size)
        return place

    def read_history(self, epochs):
        """The records of the epochs a resumed run has done (every process keeps them)."""
        self.history = read_history(self.save_dir, epochs) if epochs else []
        return self.history

    @contextlib.contextmanager
    def epochs(self, visualdl, steps_per_epoch):
        """While the epochs run: the VisualDL board (rank 0's) and the stop request, which
        under data parallel is off (processes stopping after different steps would wait
        for each other forever: a signal stops them at once)."""
        board = vdl.open_board(visualdl, self.save_dir, steps_per_epoch, self.is_main)
        with StopRequest(active=not self.world.distributed) as stop, board:
            self.stop, self.board = stop, board
            try:
                yield self
            finally:
                self.stop = self.board = None

    def stop_in_epoch(self, save, where=""):
        """A stop was requested in mid-epoch: `save()` (rank 0), say how to continue, end
        the run as the signal asked."""
        if self.is_main:
            save()
        self._stop_saved(where)

    def end_epoch(self, done, save, record=None, last=False):
        """After epoch `done` (1-based): the record into history.json and `save()` (rank 0),
        then, unless it is the `last`, the processes wait for rank 0; a stop requested
        during evaluation ends the run here, saved."""
        if record is not None:
            self.history.append(record)
        if self.is_main:
            if record is not None:
                write_history(self.save_dir, self.history)
            save()
        if self.stop.requested:
            self._stop_saved()
        if not last:
            distributed.barrier(self.world, f"epoch-{done}")

    def _stop_saved(self, where=""):
        """End the run as the signal asked, once it is saved, saying how to continue."""
        log.info("%ssaved; continue with  %s", where, self.resume_command)
        self.stop.stop()

    def check_finite(self, values, epoch, step, what, advice, written=""):
        """Stop at the first value that is not finite ({name: value}): the run diverged.
        The last good checkpoint is kept; `written`: what else the run does not write."""
        bad = next((name for name, value in values.items() if not np.all(np.isfinite(value))),
                   None)
        if bad is None:
            return
        path = self.path(CHECKPOINT) if self.save_dir else None
        kept = (f"the last good checkpoint {path} is kept" if path and os.path.exists(path)
                else "no checkpoint was written yet")
        raise UserError(f"{what} diverged: {bad} is not finite at epoch {epoch + 1} step {step}; "
                        f"{kept}{written}. {advice}")
