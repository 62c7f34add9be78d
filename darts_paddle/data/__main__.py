"""python -m darts_paddle.data NAME [--data ROOT]: load both splits and summarise them.

`folder --data DIR [--image_size S]` checks your own images as train_search.py and
train.py would read them: layout, every image decodes, class names, channels, mean and
std of the training images."""

import argparse
import sys

from darts_paddle.cli import run_main

from . import FOLDER, describe, known_names, load_dataset, run_spec
from .flags import folder_flags


def _main(argv):
    parser = argparse.ArgumentParser(prog="python -m darts_paddle.data",
                                     description="Load a data set and print its summary.")
    parser.add_argument("dataset", metavar="name",
                        help="one of: " + ", ".join(known_names() + [FOLDER]))
    parser.add_argument("--data", default="data", help="data root (default: ./data)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading missing files")
    folder_flags(parser)
    parser.set_defaults(image_size=None)  # each named data set has its own
    args = parser.parse_args(argv)
    spec = run_spec(args)
    for train in (True, False):
        print(describe(load_dataset(spec, args.data, train, not args.no_download)))


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
