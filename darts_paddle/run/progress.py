"""Progress bars for long loops: tqdm on a terminal, quiet periodic lines in logs/CI."""

import itertools
import sys

from tqdm import tqdm


def progress(iterable, total, desc, disable=False):
    # mininterval keeps redirected output (CI, nohup) to a handful of lines per epoch
    interactive = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, leave=True, dynamic_ncols=True,
                mininterval=0.5 if interactive else 30.0, file=sys.stderr, disable=disable)


def epoch_steps(loader, max_steps):
    """The steps of an epoch: the loader's batches, at most `max_steps` (smoke runs)."""
    return min(len(loader), max_steps or len(loader))


def epoch_bar(loader, epoch, max_steps, desc, start=0, disable=False):
    """The batches of one epoch from batch `start`, at most `max_steps` per epoch (smoke
    runs), behind a progress bar (none with disable=True).  Iterate with
    enumerate(bar, start)."""
    remaining = max(epoch_steps(loader, max_steps) - start, 0)
    return progress(itertools.islice(loader.epoch(epoch, start), remaining), remaining, desc,
                    disable)
