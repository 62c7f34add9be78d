"""Training an evaluation network (train.py, train_imagenet.py): data, programs, epochs,
--eval_only.  Checkpoints, --resume and --init_from: train/state.py; the inference
model: export.py.

Reproducibility: the batch order and augmentation are functions of (seed, epoch, index)
(data/loader.py), the drop-path masks of (seed, epoch, step), the initial weights of the
seed, so a resumed run computes exactly what the uninterrupted one does.

Under `python -m paddle.distributed.launch` (distributed.py) every process trains on its
part of each global batch with gradients averaged over the processes; rank 0 alone logs to
the file, shows progress, evaluates on the whole test set (the others wait) and writes
checkpoints.  A run can be resumed with any number of processes that divides --batch_size.
"""

import dataclasses
import logging
import os
import time

import numpy as np

from .. import data, distributed
from ..distributed import SINGLE
from ..errors import UserError
from ..nets.networks import drop_path_masks
from ..run import vdl
from ..run.context import RunContext
from ..run.meter import Meter
from ..run.logs import setup_logging
from ..run.progress import epoch_bar, epoch_steps
from ..runner import Runner
from ..storage.checkpoint import CHECKPOINT
from . import state
from .export import check_onnx_available, export_inference_model
from ..viz.cells import genotype_pictures
from .flags import NB201_FLAGS
from .programs import (NB201, TrainConfig, build_eval_network, build_train_programs,
                       multiply_adds, op_count)

log = logging.getLogger("darts_paddle.train")

# --------------------------------------------------------------------------- set-up

def make_config(args, spec, kind):
    imagenet = kind == "imagenet"
    return TrainConfig(
        kind=kind, C=args.init_channels, layers=args.layers, num_classes=spec.num_classes,
        in_channels=spec.in_channels, image_size=spec.image_size, auxiliary=args.auxiliary,
        auxiliary_weight=args.auxiliary_weight, drop_path_prob=args.drop_path_prob,
        label_smooth=args.label_smooth if imagenet else 0.0, epochs=args.epochs,
        learning_rate=args.learning_rate, momentum=args.momentum, nesterov=kind == NB201,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        schedule="step" if imagenet else "cosine",
        decay_period=getattr(args, "decay_period", 1), gamma=getattr(args, "gamma", 0.97))


def nb201_schedule(args, given):
    """A new run of a NAS-Bench-201 cell takes NAS-Bench-201's schedule (flags.NB201_FLAGS)
    for the flags the command line leaves out (`given`: those it names).  Its network has
    no auxiliary head and no drop path: asking for one is a UserError."""
    if args.auxiliary:
        raise UserError("--auxiliary: NAS-Bench-201's network has no auxiliary head; "
                        "train the cell without --auxiliary")
    if "drop_path_prob" in given and args.drop_path_prob:
        raise UserError(f"--drop_path_prob {args.drop_path_prob}: NAS-Bench-201's network has "
                        "no drop path; train the cell without --drop_path_prob")
    taken = {flag: value for flag, value in NB201_FLAGS.items() if flag not in given}
    for flag, value in taken.items():
        setattr(args, flag, value)
    log.info("a NAS-Bench-201 cell: NAS-Bench-201's schedule (its paper's section 2.3) for "
             "the flags not given: %s; Nesterov momentum",
             " ".join(f"--{flag} {value:g}" for flag, value in taken.items()) or "none")


def make_loaders(args, spec, train=True, world=SINGLE):
    """(train loader or None, test loader or None); the test set in a fixed order, for
    rank 0 only; the train loader serves this process's part of every batch."""
    test = None
    if world.is_main:
        test_set = data.load_dataset(spec, args.data, train=False)
        log.info("%s", data.describe(test_set))
        test = data.BatchLoader(test_set, None, args.batch_size,
                                data.build_transform(spec, False), shuffle=False,
                                seed=args.seed, num_workers=args.workers)
    if not train:
        return None, test
    train_set = data.load_dataset(spec, args.data, train=True)
    log.info("%s", data.describe(train_set))
    cutout = args.cutout_length if getattr(args, "cutout", False) else 0
    transform = data.build_transform(spec, True, cutout_length=cutout)
    return data.BatchLoader(train_set, None, args.batch_size, transform, shuffle=True,
                            seed=args.seed, num_workers=args.workers, rank=world.rank,
                            world_size=world.size), test


def build(cfg, genotype, seed, train=True, world=SINGLE, place=None):
    """Programs built once, a runner (on `place`) with the seeded initial values."""
    log.info("param size = %.6fMB", _param_size(cfg, genotype) / 1e6)
    start = time.time()
    programs = build_train_programs(cfg, genotype, train=train, world_size=world.size)
    built = f"train program: {op_count(programs.train)} ops, " if train else ""
    log.info("programs built in %.1f s (%sinference program: %d ops)", time.time() - start,
             built, op_count(programs.infer))
    log.info("multiply-adds = %.2fM per image", multiply_adds(programs.infer) / 1e6)
    runner = Runner(place)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(seed)))
    return programs, runner


def _param_size(cfg, genotype):
    net = build_eval_network(dataclasses.replace(cfg, auxiliary=False), genotype)
    return net.params.size  # the auxiliary head is excluded, as the papers count


# --------------------------------------------------------------------------- epochs

def drop_prob_at(cfg, epoch):
    """Drop path probability ramps linearly from 0 at epoch 0 towards drop_path_prob."""
    return cfg.drop_path_prob * epoch / cfg.epochs


def drop_rng(seed, epoch, step):
    # the trailing 7 keeps this stream apart from the loader's (seed, epoch, index) ones
    return np.random.default_rng([seed, epoch, step, 7])


def postfix(meter):
    """A progress bar's figures: mean loss, top-1 and top-5 so far, images per second."""
    loss, top1, top5 = meter.means
    return dict(loss=f"{loss:.3f}", top1=f"{100 * top1:.2f}%", top5=f"{100 * top5:.2f}%",
                img_s=f"{meter.images_per_second:.1f}")


def train_epoch(epoch, args, programs, runner, loader, *, ctx, start=0, meter=None):
    """The SGD steps of one epoch from step `start` (`meter` holds those before); stops
    after a whole step once a stop is requested; every --report_freq steps the step goes
    to the log and the board.  Returns (the meter, the step it stopped before, or None when
    the epoch is complete)."""
    cfg, net, world = programs.config, programs.network, ctx.world
    drop_prob = drop_prob_at(cfg, epoch)
    meter = meter or Meter(3)
    bar = epoch_bar(loader, epoch, args.max_steps, f"epoch {epoch + 1}/{cfg.epochs} train",
                    start=start, disable=not world.is_main)
    for step, (x, y) in enumerate(bar, start):
        if ctx.stop.requested:
            bar.close()
            return meter, step
        tic = time.time()
        feed = dict(x=x, y=y)
        batch = len(y) * world.size
        if "drop_mask" in programs.train.feeds:
            # the global batch's masks, so any number of processes drops the same paths
            masks = drop_path_masks(drop_rng(args.seed, epoch, step), net.drop_paths, batch,
                                    drop_prob)
            feed["drop_mask"] = masks[:, world.part(batch)]
        loss, top1, top5 = runner.run(programs.train, **feed)
        ctx.check_finite({"the training loss": loss}, epoch, step, "training",
                         advice="Lower --learning_rate or keep --grad_clip")
        meter.update(batch, float(loss), float(top1), float(top5))
        bar.set_postfix(postfix(meter))
        if step % args.report_freq == 0:
            log.debug("train %03d %e %f %f", step, *meter.means)
            ctx.board.step(epoch, step, loss=loss, accuracy=top1, seconds=time.time() - tic)
    bar.close()
    return meter, None


def evaluate(args, programs, runner, loader, desc):
    """Mean (loss, top-1, top-5) on the test set, BN in inference mode."""
    meter = Meter(3)
    bar = epoch_bar(loader, 0, args.max_steps, desc)
    for x, y in bar:
        loss, top1, top5, _ = runner.run(programs.infer, x=x, y=y)
        meter.update(len(y), float(loss), float(top1), float(top5))
        bar.set_postfix(postfix(meter))
    bar.close()
    return meter.means


# --------------------------------------------------------------------------- runs

def train(args, kind, ctx, given=()):
    """The whole training run (fresh or resumed) of this process; returns the final
    metadata (None on ranks other than 0)."""
    genotype, resume, initial = state.arch_and_start(args, given)
    log.info("genotype = %s", state.arch_text(genotype))
    kind = state.arch_kind(genotype, kind)
    if kind == NB201 and not resume:
        nb201_schedule(args, given)
    spec = data.run_spec(args)
    distributed.check_batch_size(args.batch_size, ctx.world)
    train_loader, test_loader = make_loaders(args, spec, world=ctx.world)
    cfg = (state.config_from_meta(resume[2], args.epochs) if resume
           else make_config(args, spec, kind))
    if initial:
        state.check_init(cfg, initial[1], args.init_from)  # before the programs are built
    ctx.log_args(args)
    programs, runner = build(cfg, genotype, args.seed, world=ctx.world,
                             place=ctx.start_processes(args.batch_size))
    progress, (step, saved_meter) = dict(state.START), (0, None)
    if resume:
        progress, (step, saved_meter) = state.continue_from(resume, programs, runner)
    elif initial:
        state.init_weights(programs, runner, *initial, args.init_from)
        log.info("weights and BN statistics from %s; a fresh run from epoch 1", args.init_from)
    if ctx.world.distributed:
        distributed.barrier(ctx.world, "start")  # builds take unequal time; gloo waits 30 s
        broadcast_state(programs, runner)
    checkpoint = lambda progress, **extra: state.metadata(  # noqa: E731
        args, cfg, genotype, progress, **extra)
    with ctx.epochs(args.visualdl, epoch_steps(train_loader, args.max_steps)):
        if progress["epoch"] == 0 and step == 0 and kind != NB201:  # no NB201 cell drawings
            ctx.board.cells(genotype_pictures(genotype), 0)
        for epoch in range(progress["epoch"], cfg.epochs):
            rates = {"lr": programs.lr_scheduler(), "drop_path_prob": drop_prob_at(cfg, epoch)}
            log.info("epoch %d lr %e drop_path_prob %f", epoch + 1, *rates.values())
            meter, stopped_at = train_epoch(epoch, args, programs, runner, train_loader, ctx=ctx,
                                            start=step, meter=Meter(3, saved_meter))
            step, saved_meter = 0, None
            if stopped_at is not None:
                ctx.stop_in_epoch(
                    lambda: save(ctx, programs, runner, checkpoint(
                        progress, step=stopped_at, meter=meter.state())),
                    f"stopped after step {stopped_at} of epoch {epoch + 1}: ")
            log.info("train_acc %f", 100 * meter.means[1])
            programs.lr_scheduler.step()
            best = False
            if ctx.is_main:  # the others wait at the barrier while rank 0 evaluates
                test = evaluate(args, programs, runner, test_loader,
                                f"epoch {epoch + 1}/{cfg.epochs} test ")
                log.info("valid_acc %f top5 %f", 100 * test[1], 100 * test[2])
                progress, best = after_epoch(progress, test, meter)
                ctx.board.epoch(board_record(epoch, rates, meter.means, test))
            ctx.end_epoch(epoch + 1, last=epoch + 1 == cfg.epochs,
                          save=lambda: save(ctx, programs, runner, checkpoint(progress), best))
    if not ctx.is_main:
        return None
    if args.export:
        x, _ = next(iter(test_loader.epoch(0)))
        export_inference_model(programs, runner, ctx.path("inference"), x,
                               onnx=args.export == "onnx")
    log.info("done: best test accuracy %.2f%% (epoch %d), last %.2f%% (epoch %d)",
             100 * progress["best_acc"], progress["best_epoch"], 100 * progress["test_acc"],
             progress["epoch"])
    return checkpoint(progress)


def broadcast_state(programs, runner):
    """Every process continues from rank 0's weights, BN statistics and momentum."""
    names = programs.variable_names().values()
    runner.run(distributed.build_broadcast_program({n: runner.get(n) for n in names}))


def after_epoch(progress, test, meter):
    """The progress after an epoch with its test (loss, top-1, top-5) and training meter,
    and whether the epoch is the best so far (the first one is)."""
    test_acc, done = float(test[1]), progress["epoch"] + 1
    best = test_acc > progress["best_acc"] or done == 1
    return {"epoch": done,
            "best_acc": test_acc if best else progress["best_acc"],
            "best_epoch": done if best else progress["best_epoch"],
            "test_acc": test_acc, "train_acc": float(meter.means[1])}, best


def save(ctx, programs, runner, meta, best=False):
    """The run's checkpoint, and best.npz too when the epoch is the best so far."""
    state.save(ctx.path(CHECKPOINT), programs, runner, meta)
    if best:
        state.save(ctx.path(state.BEST), programs, runner, meta)


def board_record(epoch, rates, train, test):
    """An epoch's values for vdl.Board.epoch: rates {"lr", "drop_path_prob"}, the train
    and test (loss, top-1, top-5)."""
    record = {"epoch": epoch + 1, **rates}
    for split, means in (("train", train), ("test", test)):
        record.update(zip((f"{split}_loss", f"{split}_acc", f"{split}_top5"), means))
    return record


def eval_only(args):
    """Evaluate the checkpoint --model_path on the test set of --data (the data set the run
    trained on, seen as the run saw it: for a folder its image size, classes, mean and
    std); returns (loss, top-1, top-5)."""
    if not args.model_path:
        raise UserError("--eval_only needs --model_path PATH of a checkpoint.npz or best.npz")
    arrays, meta = state.read_checkpoint(args.model_path)
    genotype = state.arch_from_json(meta["genotype"])
    cfg = state.config_from_meta(meta)
    run = meta["args"]
    args.dataset = run["dataset"]
    for key in data.FOLDER_FLAGS:
        setattr(args, key, run.get(key, getattr(args, key, None)))
    spec = data.run_spec(args)
    _, test_loader = make_loaders(args, spec, train=False)
    programs, runner = build(cfg, genotype, args.seed, train=False)
    state.restore(programs, runner, arrays, args.model_path)
    loss, top1, top5 = evaluate(args, programs, runner, test_loader, "test")
    log.info("checkpoint %s (epoch %d): test loss %f, top-1 %.2f%%, top-5 %.2f%%",
             args.model_path, meta["epoch"], loss, 100 * top1, 100 * top5)
    if args.export:
        x, _ = next(iter(test_loader.epoch(0)))
        directory = os.path.join(os.path.dirname(os.path.abspath(args.model_path)), "inference")
        export_inference_model(programs, runner, directory, x, onnx=args.export == "onnx")
    return loss, top1, top5


def main(args, kind, given=()):
    """What the scripts run after parsing their flags (in every launched process); `given`:
    the flags named on the command line (cli.given_flags), which --resume checks."""
    if args.init_from and (args.resume or args.eval_only):
        raise UserError("--init_from starts a new run: it goes with neither --resume (which "
                        "continues a run) nor --eval_only (which takes --model_path)")
    world = distributed.world_from_env()
    if args.export == "onnx":
        check_onnx_available()
    if args.eval_only:
        if world.distributed:
            raise UserError("--eval_only runs in one process: start it without "
                            "paddle.distributed.launch")
        if args.visualdl:
            raise UserError("--visualdl logs a training run; --eval_only writes no run "
                            "directory: drop --visualdl")
        setup_logging()  # stdout only: --eval_only writes no run directory
        return eval_only(args)
    vdl.check_available(args.visualdl)
    script = state.script_for(kind)
    if args.resume:
        path = state.resume_point(args)
        if not os.path.isfile(path):
            raise UserError(f"cannot resume: {path} does not exist; pass a checkpoint.npz or "
                            "the run directory holding one")
        ctx = RunContext.resumed(os.path.dirname(os.path.abspath(path)), script, world)
    else:
        ctx = RunContext.new(args.save, "eval", script, world)
    return train(args, kind, ctx, given)
