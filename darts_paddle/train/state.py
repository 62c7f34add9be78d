"""An evaluation-training run's state on disk (train.py, train_imagenet.py): the checkpoint
(weights, BN statistics, momentum buffers, finished epochs, best accuracy, genotype, network
config, the flags that fix what the run computes), and the checks before `--resume`,
`--init_from` and `--eval_only`.

A resumed run replays the LR schedule to its epoch, so it computes exactly what the
uninterrupted run does; runs resume at epoch boundaries, where checkpoints are saved.
"""

import dataclasses
import logging
import os

from ..storage.checkpoint import CHECKPOINT, load_checkpoint, load_into, save_checkpoint
from ..data import FOLDER_FLAGS
from ..storage.resume import adopt_run_flags, check_unfinished
from ..errors import UserError
from ..genotype import Genotype, format_genotype, genotype_from_json, genotype_to_json
from ..nb201 import arch as nb201_arch
from ..registry import resolve_arch
from .programs import NB201, TrainConfig

log = logging.getLogger("darts_paddle.train")

FORMAT = "darts-paddle-train/1"
BEST = "best.npz"
# flags that change what a run computes (beside the config's), and where its data are: a
# resumed run takes them from its checkpoint
RUN_FLAGS = ("data", "dataset", "batch_size", "seed", "cutout", "cutout_length", "max_steps",
             "arch", "init_from", *FOLDER_FLAGS)
DEFAULT_ARCH = "DARTS"


# --------------------------------------------------------------------------- the arch

def arch_kind(arch, kind):
    """The TrainConfig kind that trains `arch` in a script of `kind`: NB201 for a
    NAS-Bench-201 cell, which train.py trains; the script's own for a DARTS genotype."""
    if isinstance(arch, Genotype):
        return kind
    if kind == "imagenet":
        raise UserError(f"{arch_text(arch)} is a NAS-Bench-201 cell: train it with "
                        "train.py, which builds NAS-Bench-201's network")
    return NB201


def arch_text(arch):
    """A Genotype(...) literal, or a NAS-Bench-201 cell's arch string."""
    return (format_genotype(arch) if isinstance(arch, Genotype)
            else nb201_arch.format_arch(arch))


def arch_to_json(arch):
    return (genotype_to_json(arch) if isinstance(arch, Genotype)
            else nb201_arch.to_json(arch))


def arch_from_json(obj):
    """`arch_to_json`'s inverse; also from a record holding it under "genotype"."""
    return nb201_arch.from_json(obj) if nb201_arch.is_cell_json(obj) else genotype_from_json(obj)


# where a run is: finished epochs, the best test accuracy and its epoch, the last epoch's
# test and train accuracies (None before the first); a run stopped in mid-epoch adds its
# "step" and "meter"
START = dict(epoch=0, best_acc=0.0, best_epoch=0, test_acc=None, train_acc=None)
PROGRESS = tuple(START)


def metadata(args, cfg, genotype, progress, **extra):
    """What a checkpoint holds beside the arrays: the run's `progress` (PROGRESS), genotype,
    network config and run flags."""
    return dict(format=FORMAT, **progress, genotype=arch_to_json(genotype),
                config=dataclasses.asdict(cfg),
                args={k: getattr(args, k, None) for k in RUN_FLAGS}, **extra)


def save(path, programs, runner, meta):
    arrays = {key: runner.get(name) for key, name in programs.variable_names().items()}
    save_checkpoint(path, arrays, meta)


def read_checkpoint(path):
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not an evaluation-training checkpoint "
                        f"(format {meta.get('format')!r}); pass one written by train.py")
    return arrays, meta


def config_from_meta(meta, epochs=None):
    """The network and optimizer config of a checkpoint (`epochs`: a resumed run's own)."""
    cfg = TrainConfig(**meta["config"])
    return cfg if epochs is None else dataclasses.replace(cfg, epochs=epochs)


def restore(programs, runner, arrays, path):
    """Set every variable the programs have from a checkpoint's arrays."""
    names = programs.variable_names()
    missing = sorted(set(names) - set(arrays))
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing[:3])}: it belongs to a "
                        "different network (check --auxiliary, --layers, --init_channels)")
    load_into(runner, names, arrays,
              lambda key, expected, got: f"checkpoint {path}: {key} has shape {got.shape}, the "
                                         f"network needs {expected}; it was saved for a "
                                         "different network")


# --------------------------------------------------------------------------- --resume

def resume_point(args):
    """The checkpoint file named by --resume (a file or a run directory)."""
    path = args.resume
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    return path


# the flag behind each field of a stored TrainConfig that a flag sets (the others follow
# from the data set and the script)
CONFIG_FLAGS = {"C": "init_channels", "layers": "layers", "auxiliary": "auxiliary",
                "auxiliary_weight": "auxiliary_weight", "drop_path_prob": "drop_path_prob",
                "label_smooth": "label_smooth", "epochs": "epochs",
                "learning_rate": "learning_rate", "momentum": "momentum",
                "weight_decay": "weight_decay", "grad_clip": "grad_clip",
                "decay_period": "decay_period", "gamma": "gamma"}


def run_flags(args, meta):
    """{flag: value} a checkpoint's run was started with (those this script has)."""
    flags = dict(meta["args"])
    flags.update({flag: meta["config"][field] for field, flag in CONFIG_FLAGS.items()
                  if hasattr(args, flag)})
    return flags


def arch_and_start(args, given):
    """(genotype, resume, initial): with --resume, (path, arrays, metadata) of the checkpoint,
    whose flags `args` take (resume.py; `given`: the flags on the command line); with
    --init_from, (arrays, metadata) of the checkpoint whose weights start a fresh run."""
    if args.resume:
        path = resume_point(args)
        arrays, meta = read_checkpoint(path)
        if "converted_from" in meta:
            raise UserError(f"{path} is a converted checkpoint, not an interrupted run: "
                            f"train from it with --init_from {path}")
        for change in adopt_run_flags(args, given, run_flags(args, meta), args.resume):
            log.info("changed on resume: %s", change)
        check_unfinished(meta["epoch"], args, args.resume,
                         f"best test accuracy {100 * meta['best_acc']:.2f}%")
        return arch_from_json(meta["genotype"]), (path, arrays, meta), None
    if args.init_from:
        initial = read_checkpoint(args.init_from)
        return _init_genotype(args, initial[1], args.init_from), None, initial
    return resolve_arch(args.arch or DEFAULT_ARCH, cells=nb201_arch), None, None


def continue_from(resume, programs, runner):
    """Restore a checkpoint read for --resume; returns its progress (PROGRESS) and, for a
    run stopped in mid-epoch, (the step it goes on from, the epoch's Meter state)."""
    path, arrays, meta = resume
    restore(programs, runner, arrays, path)
    for _ in range(meta["epoch"]):  # replay the schedule: the same float the first run had
        programs.lr_scheduler.step()
    log.info("resumed from %s after epoch %d (best test accuracy %.2f%%)", path, meta["epoch"],
             100 * meta["best_acc"])
    return {k: meta[k] for k in PROGRESS}, (meta.get("step", 0), meta.get("meter"))


# --------------------------------------------------------------------------- --init_from

def _init_genotype(args, meta, path):
    """--init_from trains the checkpoint's genotype; an --arch naming another is a mistake."""
    genotype = arch_from_json(meta["genotype"])
    if args.arch is not None and resolve_arch(args.arch, cells=nb201_arch) != genotype:
        raise UserError(f"--arch {args.arch} is not the genotype of --init_from {path} "
                        f"({arch_text(genotype)}): drop --arch")
    return genotype


def script_for(kind):
    """The script that trains a network of `kind` ("cifar" or "imagenet")."""
    return "train_imagenet.py" if kind == "imagenet" else "train.py"


def _init_mismatches(cfg, theirs):
    """Flags of this run that contradict the network stored in a checkpoint."""
    if theirs["kind"] != cfg.kind:
        return [f"it holds a{'n ImageNet' if theirs['kind'] == 'imagenet' else ' CIFAR'} "
                f"network: train it with {script_for(theirs['kind'])}"]
    wrong = [f"--{flag} {theirs[field]} (not {getattr(cfg, field)})"
             for field, flag in (("C", "init_channels"), ("layers", "layers"))
             if theirs[field] != getattr(cfg, field)]
    if (theirs["num_classes"], theirs["in_channels"]) != (cfg.num_classes, cfg.in_channels):
        wrong.append(f"a data set of {theirs['num_classes']} classes and "
                     f"{theirs['in_channels']} input channels (--dataset gives "
                     f"{cfg.num_classes} and {cfg.in_channels})")
    return wrong


def check_init(cfg, meta, path):
    wrong = _init_mismatches(cfg, meta["config"])
    if wrong:
        raise UserError(f"--init_from {path} does not fit this run: {'; '.join(wrong)}; pass "
                        "the flags it was trained with")


def init_weights(programs, runner, arrays, meta, path):
    """Start from a checkpoint's weights and BN statistics: epoch 0, a fresh optimizer.

    The auxiliary head comes along when both have one; a run with --auxiliary from a
    checkpoint without a head starts its head from the seeded initial values."""
    cfg = programs.config
    check_init(cfg, meta, path)
    stores = programs.network.stores()
    if cfg.auxiliary and not meta["config"]["auxiliary"]:
        log.info("the checkpoint has no auxiliary head: the head starts from scratch")
        stores = stores[:1]
    keys = [k for params, stats in stores
            for k in [*params.banks, stats.prefix + ".mean", stats.prefix + ".var"]]
    load_into(runner, {k: k for k in keys}, arrays,
              lambda key, expected, _: f"--init_from {path}: {key} is missing or has another "
                                       f"shape than {expected}; the checkpoint holds a "
                                       "different network")
