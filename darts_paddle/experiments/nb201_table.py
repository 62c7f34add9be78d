"""The NAS-Bench-201 results table of the READMEs, in one resumable command:

    python -m darts_paddle.experiments.nb201_table [--seeds 0 1 2] [--out nb201-results]
                                                   [-- train_search.py flags]

searches the NAS-Bench-201 space (train_search.py --space nb201) once per method and seed
on a reduced budget (BUDGET: a 2-core CPU finishes in hours), each run in its own
directory under --out (train_search.py flags after `--` come last, so they win), then looks every found cell up in the table and writes
results.md and results.json there: per method the cells' validation accuracy on the three
data sets (mean +- std over the seeds), how many cells collapsed (every edge a
parameter-free op), beside cells drawn at random from the table and the published CIFAR-10
searches.  Run it again after a stop: finished searches are kept, unfinished ones resume.

Searched on Fashion-MNIST (the real images a machine here has) and scored on NAS-Bench-201's
entries, which were trained on CIFAR-10, CIFAR-100 and ImageNet16-120, this is a transfer
measurement, not NAS-Bench-201's protocol: that is --dataset cifar10 with CIFAR-10 on disk
(and NAS-Bench-201's own budget: --budget paper).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

from .. import cli
from ..errors import UserError
from ..nb201 import arch, table
from ..search import collapse
from ..storage.atomic import write_atomic

# the searches of the table: name -> train_search.py flags
METHODS = {"darts": [], "darts-2nd": ["--unrolled"], "pcdarts": ["--method", "pcdarts"]}
# a budget a 2-core CPU runs in hours: NB201's supernet at C 8, 10 epochs of 25 steps of 64
# images, no lambda_max (one estimate costs more than an epoch here); "paper":
# NAS-Bench-201's own (C 16, 50 epochs over the whole split)
BUDGETS = {
    "reduced": ["--init_channels", "8", "--batch_size", "64", "--epochs", "10",
                "--max_steps", "25", "--eigen_batches", "0"],
    "paper": [],
}
# published searches on CIFAR-10 (NAS-Bench-201, table 5; PC-DARTS and DrNAS as the DrNAS
# paper reports them): data set -> (validation, test) accuracy %, None where not published
PUBLISHED = {
    "DARTS 1st order (NB201)": {"cifar10": (39.77, 54.30), "cifar100": (15.03, 15.61),
                                "imagenet": (16.43, 16.32)},
    "DARTS 2nd order (NB201)": {"cifar10": (39.77, 54.30), "cifar100": (15.03, 15.61),
                                "imagenet": (16.43, 16.32)},
    "PC-DARTS (DrNAS paper)": {"cifar10": (None, 93.41)},
    "DrNAS": {"cifar10": (None, 94.36)},
}
RANDOM_CELLS = 1000


def search_flags(args, method, seed):
    return ["--space", "nb201", "--dataset", args.dataset, "--data", args.data,
            "--seed", str(seed), *BUDGETS[args.budget], *METHODS[method], *args.search_flags]


def script():
    """train_search.py of the clone this package runs from."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "train_search.py")
    if not os.path.isfile(path):
        raise UserError(f"{path} is missing: run this from a clone of darts-paddle")
    return path


def run_dir(out, name):
    """The run directory of search `name` under `out`, or None before it started."""
    found = sorted(glob.glob(os.path.join(out, f"search-{name}-*")))
    return found[-1] if found else None


def finished(path):
    return path is not None and os.path.isfile(os.path.join(path, "genotype.json"))


def run_search(args, method, seed):
    """Search `method` with `seed` unless done: a new run, or the resumed one; a run that
    stopped before its first checkpoint starts again.  Returns its directory."""
    name = f"{method}-seed{seed}"
    path = run_dir(args.out, name)
    if finished(path):
        print(f"{name}: done ({path})", flush=True)
        return path
    if path is not None and os.path.isfile(os.path.join(path, "checkpoint.npz")):
        argv = ["--resume", path]
        print(f"{name}: resuming {path}", flush=True)
    else:
        argv = ["--save", os.path.join(args.out, name), *search_flags(args, method, seed)]
        print(f"{name}: searching", flush=True)
    tic = time.time()
    status = subprocess.call([sys.executable, script(), *argv])
    if status:
        raise UserError(f"the search {name} ended with status {status} (its log.txt says "
                        f"why); run the same command again to continue")
    path = run_dir(args.out, name)
    print(f"{name}: finished in {(time.time() - tic) / 60:.1f} min ({path})", flush=True)
    return path


def cell_of(path):
    with open(os.path.join(path, "genotype.json")) as f:
        return arch.from_json(json.load(f))


def collapsed(ops):
    """Is every edge a parameter-free op (the cell learns nothing of its own)?"""
    return all(op in collapse.PARAMETER_FREE for op in ops)


def summary(cells):
    """{data set: (mean, std) over the cells of their table means}."""
    return {d: (float(np.mean([table.lookup(c, d).mean for c in cells])),
                float(np.std([table.lookup(c, d).mean for c in cells])))
            for d in table.DATASETS}


def random_cells(count, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple(arch.OPS[i] for i in rng.integers(0, len(arch.OPS), len(arch.EDGES)))
            for _ in range(count)]


def results(args, paths):
    """The table's rows: per method its cells and scores, the random cells, as JSON."""
    rows = {}
    for method in args.methods:
        cells = [cell_of(paths[method, seed]) for seed in args.seeds]
        rows[method] = {"cells": [arch.format_arch(c) for c in cells],
                        "runs": [paths[method, seed] for seed in args.seeds],
                        "accuracy": summary(cells),
                        "collapsed": sum(collapsed(c) for c in cells)}
    randoms = random_cells(RANDOM_CELLS)
    rows["random"] = {"cells": len(randoms), "accuracy": summary(randoms),
                      "collapsed": sum(collapsed(c) for c in randoms)}
    return {"budget": args.budget, "flags": BUDGETS[args.budget] + args.search_flags,
            "dataset": args.dataset,
            "seeds": args.seeds, "rows": rows, "published": PUBLISHED}


def markdown(res):
    datasets = list(table.DATASETS)
    head = ("| search | " + " | ".join(datasets) + " | collapsed |\n|---|"
            + "---|" * (len(datasets) + 1) + "\n")
    lines = []
    for name, row in res["rows"].items():
        n = len(res["seeds"]) if name != "random" else row["cells"]
        label = (f"{name}, {n} seeds" if name != "random"
                 else f"a random cell ({n} drawn from the table)")
        lines.append(f"| {label} | " + " | ".join(
            f"{row['accuracy'][d][0]:.2f} +- {row['accuracy'][d][1]:.2f}" for d in datasets)
            + f" | {row['collapsed']} of {n} |")
    for name, values in res["published"].items():
        cells = []
        for d in datasets:
            valid, test = values.get(d, (None, None))
            cells.append(" / ".join(p for p in (valid is not None and f"{valid:.2f}",
                                                test is not None and f"test {test:.2f}") if p)
                         or "")
        lines.append(f"| published: {name} on CIFAR-10 | " + " | ".join(cells) + " | |")
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m darts_paddle.experiments.nb201_table",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="nb201-results", help="where the runs and the table go")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data", default="./data", type=os.path.abspath)
    p.add_argument("--budget", default="reduced", choices=list(BUDGETS),
                   help="reduced: " + " ".join(BUDGETS["reduced"]) + "; paper: NAS-Bench-201's")

    def body(argv):
        argv = list(sys.argv[1:] if argv is None else argv)
        cut = argv.index("--") if "--" in argv else len(argv)
        args = p.parse_args(argv[:cut])
        args.search_flags = argv[cut + 1:]
        if not table.available():
            table.rows("cifar10")  # the error naming the extra to install
        os.makedirs(args.out, exist_ok=True)
        paths = {(m, s): run_search(args, m, s) for m in args.methods for s in args.seeds}
        res = results(args, paths)
        text = markdown(res)
        write_atomic(os.path.join(args.out, "results.json"),
                     lambda f: f.write(json.dumps(res, indent=1)), mode="w")
        write_atomic(os.path.join(args.out, "results.md"), lambda f: f.write(text), mode="w")
        print(text)

    return cli.run_main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
