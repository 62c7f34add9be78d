"""The NAS-Bench-201 search space (--space nb201; Dong & Yang, ICLR 2020): one cell of 4
nodes and 6 edges over 5 ops, 'none' included, in NB201's skeleton (nb201_supernet.py).
What NB201 fixes and DARTS does not follows NB201's own DARTS search (xautodl, docs/nb201.md)
unless a flag says otherwise: N = 5 cells per stage (--layers), weight decay 5e-4 with
Nesterov's momentum, non-affine BNs that track running statistics, the cell derived as
the strongest op of every edge.  A derived cell is the op of every edge (arch.EDGES order),
written as NB201's arch string; with the table installed (pip install
'darts-paddle[nb201]') `scores` looks it up."""

import dataclasses

import numpy as np

from ...errors import UserError
from ...nb201 import table
from ...nb201.arch import OPS, format_arch, from_json, save_json, to_json
from ..methods.layout import Layout
from ..nb201_supernet import CELL, NB201SearchNetwork
from ..programs import build_search_programs, search_heap_bytes
from . import darts

NAME = "nb201"
# node j = 1, 2, 3 reads nodes 0 .. j-1: the methods' nodes 0, 1, 2 have 1, 2, 3 inputs
LAYOUT = Layout(NAME, (CELL,), tuple(range(1, 4)), OPS)
# NAS-Bench-201's search (DARTS-V1/V2 scripts) where it differs from train_search.py's
DEFAULTS = {"layers": 5, "weight_decay": 5e-4}
# what runtime.prefault touches ahead, as a share of the DARTS supernet's estimate at the
# same width and images: the NB201 supernet's first steps took 0.24-0.28 of the DARTS
# supernet's heap (bench/search_bench.py --space nb201 --no_prefault, docs/performance.md)
HEAP_SHARE = 0.3

genotype_text = format_arch
genotype_to_json = to_json
genotype_from_json = from_json
save_genotype = save_json


def check_flags(args):
    """Refuse flags that have no meaning in this space, before anything is written."""
    if args.max_skip is not None:
        raise UserError("--max_skip caps the skip_connect ops of the DARTS space's normal "
                        "cell; NAS-Bench-201's cells keep every edge: drop it with --space nb201")


def set_run_flags(args, given):
    """NAS-Bench-201's search settings where the command line is silent; returns what
    was set, as a line for the log (None: nothing)."""
    applied = {flag: value for flag, value in DEFAULTS.items() if flag not in given}
    for flag, value in applied.items():
        setattr(args, flag, value)
    if applied:
        return ("NAS-Bench-201's search settings (xautodl's DARTS search; give the flags to "
                "change them): " + " ".join(f"--{k} {v}" for k, v in applied.items()))
    return None


def config(args, spec, method, world_size):
    """The supernet (C channels, --layers cells per stage) and optimizers of the flags: the
    DARTS space's reading of them, with Nesterov's momentum."""
    return dataclasses.replace(darts.config(args, spec, method, world_size), nesterov=True)


def build_programs(cfg):
    net = NB201SearchNetwork(cfg.C, cfg.num_classes, cfg.layers, cfg.in_channels,
                             k=cfg.method.partial_channels)
    return build_search_programs(cfg, net)


def heap_bytes(cfg, batch):
    """What runtime.prefault may touch ahead: a share of the DARTS supernet's estimate."""
    return int(HEAP_SHARE * search_heap_bytes(cfg, batch))


def derive(method, arch, max_skip=None):
    """The strongest op of every edge, 'none' included (NAS-Bench-201's genotype), by the
    method's op weights (PC-DARTS's edge weights scale a whole edge: no change)."""
    weights = method.op_weights_numpy(arch)[CELL]
    return tuple(OPS[k] for k in np.argmax(weights[:, :len(OPS)], axis=1))


def cell_ops(ops):
    """{cell: its ops}, whose collapse is watched (collapse.cell_statistics)."""
    return {CELL: list(ops)}


def scores(ops):
    """{data set: the table's mean validation accuracy (%) over its seeds} of the cell, or
    None without the table (pip install 'darts-paddle[nb201]')."""
    if not table.available():
        return None
    return {dataset: round(table.lookup(ops, dataset).mean, 4) for dataset in table.DATASETS}


def pictures(ops):
    """No drawings of this space's cells: its arch string is in the log."""
    return {}
