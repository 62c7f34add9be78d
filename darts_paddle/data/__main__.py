"""python -m darts_paddle.data NAME [--data ROOT]: load both splits and summarise them."""

import argparse
import sys

from darts_paddle.cli import run_main

from . import describe, known_names, load_dataset


def _main(argv):
    parser = argparse.ArgumentParser(prog="python -m darts_paddle.data",
                                     description="Load a data set and print its summary.")
    parser.add_argument("name", help="one of: " + ", ".join(known_names()))
    parser.add_argument("--data", default="data", help="data root (default: ./data)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading missing files")
    args = parser.parse_args(argv)
    for train in (True, False):
        print(describe(load_dataset(args.name, args.data, train, not args.no_download)))


def main(argv=None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
