"""Search a DARTS cell:  python train_search.py [--unrolled] [--dataset fashion_mnist] ..."""

import sys

from darts_paddle.runtime import configure

configure()  # threads and allocator, before paddle loads

from darts_paddle import cli  # noqa: E402
from darts_paddle.search import flags, loop  # noqa: E402


def main(argv=None):
    parser = flags.search_parser()
    return loop.main(parser.parse_args(argv), cli.given_flags(parser, argv))


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
