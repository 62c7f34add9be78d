"""A search run's state on disk: the checkpoint (weights, BN statistics, architecture
parameters, both optimizers' buffers, epoch, data positions), the checks before `--resume`
and `--init_from`, and history.json (one record per epoch)."""

import argparse
import os

from .. import data
from ..storage.checkpoint import CHECKPOINT, load_checkpoint, load_into, save_checkpoint
from ..storage.resume import adopt_run_flags, check_unfinished
from ..errors import UserError
from .methods import FLAGS as METHOD_FLAGS

# /2: the supernet's 1x1 weights and BN statistics are stacked per source state
# (supernet.ConvOps), so the banks of a /1 file hold the same weights in another order
FORMAT = "darts-paddle-search/2"
# weights, BN statistics and alphas only: a supernet converted from PyTorch (convert_torch.py)
WEIGHTS_FORMAT = "darts-paddle-search-weights/2"
OLD_LAYOUT = ("darts-paddle-search/1", "darts-paddle-search-weights/1")
# DAAS and DADARTS compute what their authors' code computes from revision 2 on (before: our
# own reading); a search is not continued under other math
METHODS_REVISION = 2
# flags that change what a search computes, and where its data are: a resumed run takes
# them from its checkpoint
RUN_FLAGS = ("data", "dataset", "space", "batch_size", "learning_rate", "learning_rate_min", "momentum",
             "weight_decay", "epochs", "init_channels", "layers", "cutout", "cutout_length",
             "seed", "grad_clip", "train_portion", "unrolled", "arch_learning_rate",
             "arch_weight_decay", "max_steps", "method", *METHOD_FLAGS,
             "eigen_batches", "eigen_batch_size", "eigen_iterations", "eigen_weight_decay",
             "early_stop_eigen", "early_stop_window", "early_stop_threshold", "early_stop_start",
             "max_skip", *data.FOLDER_FLAGS)


def save_state(args, save_dir, programs, runner, epoch, done, valid_batches, early_stop=None):
    """done: the losses and accuracies of the steps already taken in `epoch`; early_stop:
    DARTS-ES's decision when it ended the search (collapse.darts_es), which ends it for
    good."""
    arrays = {k: runner.get(name) for k, name in programs.state_names().items()}
    meta = {"format": FORMAT, "epoch": epoch, "step": len(done["losses"]), "done": done,
            "valid_position": list(valid_batches.state()), "methods_revision": METHODS_REVISION,
            "flags": {k: getattr(args, k) for k in RUN_FLAGS}, "early_stop": early_stop}
    save_checkpoint(os.path.join(save_dir, CHECKPOINT), arrays, meta)


def load_state(args, given, save_dir):
    """The checkpoint of the run directory `save_dir`; `args` take the run's flags
    (resume.py; `given`: the flags on the command line).  -> (arrays, meta, the allowed
    flag changes as log text)"""
    path = os.path.join(save_dir, CHECKPOINT)
    if not os.path.isfile(path):
        raise UserError(f"--resume {save_dir}: no {CHECKPOINT} in it: the search stopped "
                        "before its first checkpoint (written after every epoch and when "
                        "Ctrl-C or SIGTERM stops it); start a new search")
    arrays, meta = load_checkpoint(path)
    _refuse_old_layout(path, meta)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a search checkpoint (format {meta.get('format')!r}); "
                        "pass the directory of a train_search.py run to --resume")
    revision = meta.get("methods_revision", 1)
    if revision != METHODS_REVISION and _discretization_aware(meta["flags"]):
        raise UserError(f"{path} is a {meta['flags']['method']} search of methods revision "
                        f"{revision}, which computed DAAS/DADARTS differently from their authors; "
                        f"this darts-paddle runs revision {METHODS_REVISION}: start a new search")
    stopped = meta.get("early_stop")
    if stopped:
        raise UserError(f"--resume {save_dir}: DARTS-ES stopped this search after epoch "
                        f"{stopped['epoch']} and kept the architecture of epoch "
                        f"{stopped['kept_epoch']} ({os.path.join(save_dir, 'genotype.json')}); "
                        "to search on, start a new search")
    changes = adopt_run_flags(args, given, meta["flags"], save_dir)
    check_unfinished(meta["epoch"], args, save_dir,
                     f"its genotype: {os.path.join(save_dir, 'genotype.json')}")
    return arrays, meta, changes


def _refuse_old_layout(path, meta):
    """A file of an earlier supernet layout: the same array names and shapes with the
    weights in another order, so loading it would not fail, only compute nonsense."""
    if meta.get("format") in OLD_LAYOUT:
        raise UserError(f"{path} was written by an earlier darts-paddle, whose supernet "
                        "stored its weights in another order; start a new search (or convert "
                        "the PyTorch checkpoint again with python -m darts_paddle.convert_torch)")


def _discretization_aware(flags):
    """Do a checkpoint's flags select a method other than plain DARTS (methods/make_method)?
    (PC-DARTS came after revision 1: its checkpoints all have revision 2.)"""
    from .methods import Darts, make_method

    method = make_method(flags["method"], **{k: flags[k] for k in METHOD_FLAGS if k in flags})
    return type(method) is not Darts


def restore_state(programs, runner, arrays, path):
    load_into(runner, programs.state_names(), arrays,
              lambda key, *_: f"{path} does not fit this network ({key}); resume with the "
                              "flags the run was started with")


def read_initial_state(path):
    """The weights, BN statistics and alphas to start a search from, with the network's shape:
    a converted supernet (WEIGHTS_FORMAT) or a search's own checkpoint (or its directory).
    -> (arrays, {"C", "layers", "num_classes", "in_channels"})"""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    arrays, meta = load_checkpoint(path)
    _refuse_old_layout(path, meta)
    if meta.get("format") == WEIGHTS_FORMAT:
        return arrays, meta["config"]
    if meta.get("format") == FORMAT:
        flags = meta["flags"]
        spec = data.run_spec(argparse.Namespace(**flags))
        return arrays, dict(C=flags["init_channels"], layers=flags["layers"],
                            num_classes=spec.num_classes, in_channels=spec.in_channels)
    raise UserError(f"{path} holds no search network (format {meta.get('format')!r}); pass a "
                    "file written by python -m darts_paddle.convert_torch --search, or a "
                    "search's checkpoint.npz")


def check_initial_shape(args, spec, shape, path):
    """Refuse --init_from of another supernet before anything is built."""
    ours = dict(C=args.init_channels, layers=args.layers, num_classes=spec.num_classes,
                in_channels=spec.in_channels)
    if shape != ours:
        raise UserError(f"--init_from {path} holds a supernet with --init_channels {shape['C']} "
                        f"--layers {shape['layers']}, {shape['num_classes']} classes and "
                        f"{shape['in_channels']} input channels; this run has --init_channels "
                        f"{args.init_channels} --layers {args.layers}, {spec.num_classes} "
                        f"classes and {spec.in_channels} input channels: pass the flags (and a "
                        "data set) that match")


def init_state(programs, runner, arrays, path):
    """Start from another run's weights, BN statistics and alphas; optimizers stay fresh."""
    names = programs.state_names()
    keys = [*programs.network.params.banks, "bn.mean", "bn.var", *programs.arch.names]
    load_into(runner, {k: names[k] for k in keys}, arrays,
              lambda key, *_: f"--init_from {path}: {key} is missing or has another shape; "
                              "the file was written for a different supernet")
