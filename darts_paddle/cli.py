"""Command-line plumbing shared by the scripts: flags, save directory, logging, errors.

Flag names and defaults are those of the original DARTS scripts, so commands carry over.
"""

import argparse
import logging
import os
import signal
import sys
import time

from .errors import UserError
from .stop import handle_signals

DATASETS = ("cifar10", "cifar100", "svhn", "fashion_mnist")
DATASETS_AND_FOLDER = DATASETS + ("folder",)  # train_search.py and train.py read folders too
SAVE_HELP = ("NAME or DIR/NAME: the run goes to DIR/{kind}-NAME-DATE, DIR being the current "
             "directory for a NAME alone")
LOGGER = "darts_paddle"  # the parent of every module's logger
# `extra` of a record for log.txt alone (detail too long for the console)
FILE_ONLY = {"file_only": True}


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text):
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number, got {text}")
    return value


def image_size(text):
    value = int(text)
    # the networks halve it twice, and FactorizedReduce needs even maps each time
    if value < 4 or value % 4:
        raise argparse.ArgumentTypeError(f"must be a multiple of 4, got {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def search_parser():
    from .search.methods import add_method_flags  # imports Paddle: not before a search

    p = argparse.ArgumentParser(
        description="DARTS architecture search on Paddle static graph",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="./data", help="location of the data corpus")
    p.add_argument("--dataset", default="cifar10", choices=DATASETS_AND_FOLDER)
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


def folder_flags(p):
    """Your own images (data/folder.py); what the images give is recorded with the run."""
    from .data.folder import DEFAULT_IMAGE_SIZE

    g = p.add_argument_group("your own images: --dataset folder --data DIR, with "
                             "DIR/train/<class>/* and DIR/val/<class>/*")
    g.add_argument("--image_size", type=image_size, default=DEFAULT_IMAGE_SIZE,
                   help="side of the square each image is resized (shorter side) and "
                        "centre-cropped to; a multiple of 4")
    g.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="per channel mean of the pixels on [0, 1]; when not given, computed "
                        "from the training images (either way stored with the run)")
    g.add_argument("--std", type=positive_float, nargs="+", default=None, metavar="S",
                   help="per channel standard deviation, likewise")
    p.set_defaults(classes=None, in_channels=None)  # recorded by data.run_spec


def add_visualdl_flag(p):
    """--visualdl, of the three scripts (vdl.py); free on --resume, so give it again."""
    p.add_argument("--visualdl", action="store_true", default=False,
                   help="also write scalars and cell pictures to SAVE_DIR/vdl for "
                        "`visualdl --logdir SAVE_DIR/vdl` (needs pip install visualdl)")


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


def given_flags(parser, argv=None):
    """The destinations of the flags named on the command line, as opposed to those left at
    their defaults (a resumed run takes those from its checkpoint: state/resume.py)."""
    unset = object()
    # argparse sets a default only where the namespace lacks the attribute
    blank = argparse.Namespace(**dict.fromkeys(vars(parser.parse_args([])), unset))
    return {k for k, v in vars(parser.parse_args(argv, blank)).items() if v is not unset}


def make_save_dir(args, kind):
    """--save NAME: ./search-NAME-20261123-201500, as the original; --save DIR/NAME:
    DIR/search-NAME-20261123-201500 (DIR created if need be).  Never reuses an existing
    directory."""
    parent, name = os.path.split(args.save)
    if not name:
        raise UserError(f"--save {args.save} names no run: give NAME or DIR/NAME (the run "
                        f"goes to DIR/{kind}-NAME-DATE)")
    path = os.path.join(parent, f"{kind}-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.makedirs(path, exist_ok=False)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {path}: {exc.strerror}; pick "
                        "another --save") from None
    args.save = path
    return path


def setup_logging(save_dir=None, console_level=logging.INFO):
    """INFO (or `console_level`) to stdout but the records logged with extra=FILE_ONLY,
    everything to <save_dir>/log.txt (appended, so a resumed run keeps one log).  Not
    propagated: Paddle installs a handler on the root logger."""
    fmt = logging.Formatter("%(asctime)s %(message)s", "%m/%d %I:%M:%S %p")
    root = logging.getLogger(LOGGER)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(console_level)
    console.setFormatter(fmt)
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    root.handlers[:] = [console]
    if save_dir is not None:
        logfile = logging.FileHandler(os.path.join(save_dir, "log.txt"))
        logfile.setFormatter(fmt)
        root.handlers.append(logfile)


def setup_process_logging(save_dir, is_main):
    """Under data parallel, rank 0 logs as a single process does; the other processes only
    report problems, on the console."""
    if is_main:
        setup_logging(save_dir)
    else:
        setup_logging(console_level=logging.WARNING)


def run_main(fn, argv=None):
    """Run a script's body: user mistakes become one `error:` line and exit status 2; Ctrl-C
    and SIGTERM exit with 128 + the signal's number (stop.py)."""
    try:
        with handle_signals():
            fn(argv)
        return 0
    except UserError as e:
        _report(f"error: {e}")
        return 2
    except KeyboardInterrupt as e:
        _report("interrupted")
        return getattr(e, "exit_status", 128 + signal.SIGINT)


def _report(line):
    """`line` to stderr and, if setup_logging opened one, to the run's log.txt, so that the
    log of a failed run says why it ended (not through the logger: the console would get
    the line twice)."""
    print(line, file=sys.stderr)
    logger = logging.getLogger(LOGGER)
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
