"""Draw the cells of a genotype: `python visualize.py DARTS_PADDLE [--format png] [--out DIR]`.

ARCH is a name from genotypes.py, a Genotype(...) literal, or the path of a genotype JSON.
`python visualize.py search-EXP-DATE` draws a search's evolution from its history.json:
networks.gif (both cells, epoch by epoch), alphas_normal.png / alphas_reduce.png and
collapse.png (lambda_max, skip_connect counts, entropy per epoch).
"""

import sys

from darts_paddle.viz.command import main

if __name__ == '__main__':
    sys.exit(main())
