"""Your genotype registry: every module-level Genotype here can be named on the command line,
beside the published ones (darts_paddle/published.py: DARTS_V1, DARTS_V2, DARTS,
DARTS_PADDLE, NASNet, AmoebaNet), which this module re-exports.

Add your own architectures to this file, e.g. the line a search prints at its end:

    MY_ARCH = Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
                       reduce=[...], reduce_concat=[2, 3, 4, 5])

and use it as `--arch MY_ARCH` (or `python visualize.py MY_ARCH`). Instead of editing this
file you can also pass a Genotype(...) literal or the path of a genotype JSON directly.
Op names must be from darts_paddle.genotype.KNOWN_OPS; input index 0 is c_{k-2}, 1 is
c_{k-1}, j >= 2 is intermediate node j - 2.

A NAS-Bench-201 cell is its arch string (docs/nb201.md), for train.py --arch MY_CELL:

    MY_CELL = '|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|'
"""

from darts_paddle.genotype import Genotype, PRIMITIVES  # noqa: F401  (for your entries)
from darts_paddle.published import *  # noqa: F401,F403  (the published genotypes)
