"""python -m darts_paddle.nb201 'ARCH': a NAS-Bench-201 cell's entries in the table, per
data set (needs pip install 'darts-paddle[nb201]')."""

import argparse
import sys

from ..cli import run_main
from . import table
from .arch import EXAMPLE, format_arch, parse


def _main(argv):
    parser = argparse.ArgumentParser(prog="python -m darts_paddle.nb201",
                                     description="A NAS-Bench-201 cell's entries in its table")
    parser.add_argument("arch", help=f"the cell's arch string, such as '{EXAMPLE}'")
    ops = parse(parser.parse_args(argv).arch)
    print(f"cell {format_arch(ops)} (table key {table.key(ops)})")
    for dataset, split in table.DATASETS.items():
        entry = table.lookup(ops, dataset)
        print(f"  {dataset:9s} {entry.mean:6.2f} +- {entry.std:.2f} % over "
              f"{len(entry.accuracies)} seeds; {entry.params_mb:.3f} MB parameters; {split}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
