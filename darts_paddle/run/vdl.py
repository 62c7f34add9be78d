"""A run's scalars and cell pictures for VisualDL (--visualdl): SAVE_DIR/vdl, shown by
`visualdl --logdir SAVE_DIR/vdl`.

The loops hand over what they already have (an epoch's record, a step's loss and time);
this module alone knows VisualDL, and imports it only when --visualdl is given.  Rank 0
alone writes.  Steps: per-epoch tags count epochs (1-based, as the log), per-step tags
count steps over the whole run (epoch x steps per epoch + step); both follow from where
the run is, so a resumed run continues them.  A run keeps one log file that a resumed run
appends to: VisualDL shows only the newest file of a directory, so a second file would
hide the first part of the run.
"""

import io
import logging
import os

import numpy as np

from ..errors import UserError

log = logging.getLogger("darts_paddle.vdl")

SUBDIR = "vdl"
# VisualDL reads the files whose names hold 'vdlrecords', and appends to one that exists
FILE = "vdlrecords.darts_paddle.log"

# record field -> tag; accuracies are fractions, as in history.json and the checkpoints
EPOCH_TAGS = {
    "train_loss": "loss/train", "valid_loss": "loss/valid", "test_loss": "loss/test",
    "train_acc": "accuracy/train", "valid_acc": "accuracy/valid", "test_acc": "accuracy/test",
    "train_top5": "accuracy/train_top5", "test_top5": "accuracy/test_top5",
    "lr": "lr/weights", "arch_lr": "lr/arch", "drop_path_prob": "drop_path_prob",
    "hessian_eigenvalue": "collapse/hessian_eigenvalue",
}
# record fields that hold one number per cell (search/collapse.py) -> <field>/<cell>
# {name: number} fields of a record, each number its own tag <field>/<name>: the cells'
# signs of collapse, and NAS-Bench-201's table scores per data set
PER_CELL = ("skip_connect", "skip_connect_uncapped", "parameter_free", "alpha_entropy", "nb201")


class Board:
    """Writes a run's tags; without a writer (no --visualdl, or not rank 0) it does
    nothing, so the loops call it unconditionally."""

    def __init__(self, writer=None, steps_per_epoch=1):
        self.writer, self.steps_per_epoch = writer, steps_per_epoch
        self.draw = writer is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def scalars(self, values, step):
        """{tag: number} at `step`; None values (not measured) are left out."""
        if self.writer is None:
            return
        for tag, value in values.items():
            if value is not None:
                self.writer.add_scalar(tag, float(value), step)

    def epoch(self, record):
        """An epoch's record (a history.json record of the search, or the training's
        equivalent) at step record["epoch"]: the EPOCH_TAGS and PER_CELL fields it has."""
        values = {tag: record[key] for key, tag in EPOCH_TAGS.items() if key in record}
        for key in PER_CELL:
            for cell, value in record.get(key, {}).items():
                values[f"{key}/{cell}"] = value
        self.scalars(values, record["epoch"])

    def step(self, epoch, step, **values):
        """A training step's values (train_step/<name>) at the run's step count."""
        self.scalars({f"train_step/{k}": v for k, v in values.items()},
                     epoch * self.steps_per_epoch + step)

    def cells(self, pictures, step):
        """Cell pictures ({cell: a function returning PNG bytes}) as images cells/<cell>
        at `step`; without graphviz's `dot` a warning, once, and no pictures."""
        if self.writer is None or not self.draw:
            return
        from PIL import Image

        for cell, draw in pictures.items():
            try:
                png = draw()
            except UserError as exc:
                log.warning("VisualDL: no cell pictures: %s", exc)
                self.draw = False
                return
            image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            self.writer.add_image(f"cells/{cell}", image, step)


OFF = Board()


def check_available(enabled):
    """With --visualdl, fail before the run starts when VisualDL is missing."""
    if enabled:
        _log_writer()


def open_board(enabled, save_dir, steps_per_epoch, is_main=True):
    """The run's Board: writing into save_dir/vdl when `enabled` (--visualdl) in the main
    process, else OFF."""
    if not (enabled and is_main):
        return OFF
    logdir = os.path.join(save_dir, SUBDIR)
    log.info("VisualDL log in %s: visualdl --logdir %s", logdir, logdir)
    return Board(_log_writer()(logdir=logdir, file_name=FILE, flush_secs=30), steps_per_epoch)


def _log_writer():
    try:
        from visualdl import LogWriter
    except ImportError:
        raise UserError("--visualdl needs VisualDL: pip install visualdl "
                        "(or pip install darts-paddle[visualdl])") from None
    return LogWriter
