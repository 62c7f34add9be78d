"""Flags of train_search.py: the original script's names and defaults, plus --dataset,
--max_steps, --resume, --init_from, --workers, --visualdl, the search methods' flags
(methods/) and the collapse flags (collapse.py)."""

import argparse
import os

from ..cli import (SAVE_HELP, add_visualdl_flag, fraction, non_negative_float,
                   non_negative_int, positive_float, positive_int)
from ..data.flags import DATASETS_AND_FOLDER, folder_flags
from .methods import add_method_flags
from .spaces import DEFAULT as DEFAULT_SPACE, SPACES


def search_parser():
    p = argparse.ArgumentParser(
        description="DARTS architecture search on Paddle static graph",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    # absolute, so that a resumed run finds the data from any directory
    p.add_argument("--data", default="./data", type=os.path.abspath,
                   help="location of the data corpus")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS_AND_FOLDER)
    p.add_argument("--space", default=DEFAULT_SPACE, choices=tuple(SPACES),
                   help="the search space: darts (the paper's cells) or nb201 "
                        "(NAS-Bench-201's cell and network, whose found cells are scored "
                        "from its table: pip install 'darts-paddle[nb201]'; --layers is "
                        "then the cells per stage, default 5, and --weight_decay 5e-4)")
    p.add_argument("--batch_size", type=positive_int, default=64)
    p.add_argument("--learning_rate", type=float, default=0.025, help="init weight lr")
    p.add_argument("--learning_rate_min", type=float, default=0.001, help="min weight lr")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight_decay", type=float, default=3e-4)
    p.add_argument("--report_freq", type=positive_int, default=50, help="log every N steps")
    p.add_argument("--epochs", type=positive_int, default=50)
    p.add_argument("--init_channels", type=positive_int, default=16)
    p.add_argument("--layers", type=positive_int, default=8, help="total number of cells")
    p.add_argument("--cutout", action="store_true", default=False)
    p.add_argument("--cutout_length", type=positive_int, default=16)
    p.add_argument("--save", default="EXP", help=SAVE_HELP.format(kind="search"))
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--grad_clip", type=float, default=5.0)
    p.add_argument("--train_portion", type=fraction, default=0.5)
    p.add_argument("--unrolled", action="store_true", default=False,
                   help="second-order approximation of the architecture gradient")
    p.add_argument("--arch_learning_rate", type=float, default=3e-4)
    p.add_argument("--arch_weight_decay", type=float, default=1e-3)
    p.add_argument("--max_steps", type=positive_int, default=None,
                   help="cap the steps per epoch (smoke runs)")
    p.add_argument("--workers", type=int, default=None, help="data loader processes")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the search saved in DIR (a search-EXP-DATE directory)")
    p.add_argument("--init_from", default=None, metavar="PATH",
                   help="start from the weights, BN statistics and alphas of a converted "
                        "PyTorch supernet (convert_torch --search) or of a search checkpoint")
    folder_flags(p)
    add_visualdl_flag(p)
    add_method_flags(p)
    _collapse_flags(p)
    return p


def _collapse_flags(p):
    """Signs of collapse and two remedies (docs/collapse.md, search/collapse.py)."""
    g = p.add_argument_group("collapse: lambda_max, DARTS-ES, the skip cap")
    # defaults measured against cost: docs/collapse.md
    g.add_argument("--eigen_batches", type=non_negative_int, default=1,
                   help="after every epoch, estimate the largest eigenvalue of the Hessian "
                        "of the validation loss in the alphas on this many validation "
                        "batches (the first of a fixed order); 0: no estimate")
    g.add_argument("--eigen_iterations", type=positive_int, default=10,
                   help="at most this many Lanczos steps per estimate, each eigen_batches "
                        "exact Hessian-vector products (fewer once its error bound is at "
                        "most 0.1%% of it)")
    g.add_argument("--eigen_batch_size", type=positive_int, default=16,
                   help="the products run on the eigen batches cut into batches of at most "
                        "this many images (per process), each with its own BN statistics: "
                        "their memory grows with it (12 GB at 16 on the default supernet, "
                        "more than 23 GB at 64; RobustDARTS: one batch of 64)")
    g.add_argument("--eigen_weight_decay", type=non_negative_float, default=None,
                   help="added to the Hessian's diagonal, so to lambda_max, as RobustDARTS "
                        "adds the alphas' weight decay (default: --arch_weight_decay, "
                        "1e-3); 0: the bare Hessian")
    g.add_argument("--early_stop_eigen", action="store_true", default=False,
                   help="DARTS-ES: stop when the mean eigenvalue of the last "
                        "--early_stop_window epochs exceeds --early_stop_threshold times "
                        "that of the window before, and keep the architecture of the last "
                        "epoch of that earlier window")
    g.add_argument("--early_stop_window", type=positive_int, default=5,
                   help="epochs per window (k)")
    g.add_argument("--early_stop_threshold", type=positive_float, default=1.3,
                   help="ratio of the two windows' means above which the search stops")
    g.add_argument("--early_stop_start", type=positive_int, default=11,
                   help="the earliest epoch (1-based, as the log counts) whose architecture "
                        "DARTS-ES may keep: the authors' es_start_epoch 10, counted from 0")
    g.add_argument("--max_skip", type=non_negative_int, default=None,
                   help="P-DARTS: the derived normal cell keeps at most this many "
                        "skip_connect ops; the weakest others bring their edge's next op")
