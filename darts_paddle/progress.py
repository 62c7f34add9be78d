"""Progress bars for long loops: tqdm on a terminal, quiet periodic lines in logs/CI."""

import sys

from tqdm import tqdm


def progress(iterable, total, desc):
    # mininterval keeps redirected output (CI, nohup) to a handful of lines per epoch
    interactive = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, leave=True, dynamic_ncols=True,
                mininterval=0.5 if interactive else 30.0, file=sys.stderr)
