"""Draw the cells of a genotype: `python visualize.py DARTS_PADDLE [--format png] [--out DIR]`.

ARCH is a name from genotypes.py, a Genotype(...) literal, or the path of a genotype JSON.
"""

import sys

from darts_paddle.visualize import main

if __name__ == '__main__':
    sys.exit(main())
