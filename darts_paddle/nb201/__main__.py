"""python -m darts_paddle.nb201 'ARCH' (or a search's run directory or genotype.json): a
NAS-Bench-201 cell's entries in the table, per data set (needs pip install
'darts-paddle[nb201]')."""

import argparse
import json
import os
import sys

from ..cli import run_main
from ..errors import UserError
from . import table
from .arch import EXAMPLE, format_arch, from_json, parse

GENOTYPE = "genotype.json"  # what a search writes at its end


def read_cell(text):
    """The cell of an arch string, a cell's JSON file, or a run directory holding one."""
    path = os.path.join(text, GENOTYPE) if os.path.isdir(text) else text
    if not os.path.isfile(path):
        if os.path.isdir(text):
            raise UserError(f"{text} has no {GENOTYPE}: pass the directory of a finished "
                            "--space nb201 search (it writes one at its end), or an arch string")
        return parse(text)
    try:
        with open(path, encoding="utf-8") as f:
            return from_json(json.load(f))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable cell JSON ({exc})") from None


def _main(argv):
    parser = argparse.ArgumentParser(prog="python -m darts_paddle.nb201",
                                     description="A NAS-Bench-201 cell's entries in its table")
    parser.add_argument("arch", help=f"the cell's arch string, such as '{EXAMPLE}', or the "
                                     "run directory (or genotype.json) of a --space nb201 search")
    ops = read_cell(parser.parse_args(argv).arch)
    print(f"cell {format_arch(ops)} (table key {table.key(ops)})")
    for dataset, split in table.DATASETS.items():
        entry = table.lookup(ops, dataset)
        print(f"  {dataset:9s} {entry.mean:6.2f} +- {entry.std:.2f} % over "
              f"{len(entry.accuracies)} seeds; {entry.params_mb:.3f} MB parameters; {split}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
