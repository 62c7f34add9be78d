"""Search a DARTS cell:  python train_search.py [--unrolled] [--dataset fashion_mnist] ..."""

import sys

from darts_paddle.runtime import configure

configure()  # threads and allocator, before paddle loads

from darts_paddle import cli, search  # noqa: E402


def main(argv=None):
    args = cli.search_parser().parse_args(argv)
    cli.setup_logging(cli.make_save_dir(args, "search"))
    search.run(args)


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
