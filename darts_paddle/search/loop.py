"""The search loop (train_search.py), in the original's order: per step the architect
updates alpha on a validation batch, then the weights take one SGD step on a training
batch; per epoch the validation accuracy, lambda_max, the derived genotype and the signs of
collapse (report.py), DARTS-ES's decision; at the end the genotype, as a literal for
genotypes.py and as JSON that `train.py --arch=PATH` accepts.

Around it the run context (run/context.py) keeps the directory, the log, VisualDL, Ctrl-C
and SIGTERM, the data-parallel start and the end of each epoch; the checkpoint is this
package's state.py.  Data order and augmentation are functions of (seed, epoch, index), so
`--resume DIR` continues exactly; a step whose loss or alphas are not finite stops the
search with the last good checkpoint kept and no genotype written.
"""

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import data, distributed, runtime
from ..errors import UserError
from ..run import vdl
from ..run.context import RunContext
from ..run.meter import Meter
from ..run.progress import epoch_bar, epoch_steps
from ..runner import Runner
from . import collapse, report, spaces, state
from .architect import Architect
from .methods import FLAGS, WEIGHTS, make_method

log = logging.getLogger("darts_paddle.search")

SCRIPT = "train_search.py"
NOTHING = {"losses": [], "accs": []}  # the steps done of an epoch not yet begun


def main(args, given):
    """What train_search.py runs after parsing its flags, in every launched process;
    `given`: the flags named on the command line (cli.given_flags), which a resumed run
    checks against its own."""
    if args.resume and args.init_from:
        raise UserError("--resume continues a run with its own state; drop --init_from")
    world = distributed.world_from_env()
    resumed, changes = None, ()
    if args.resume:
        if not os.path.isdir(args.resume):
            raise UserError(f"--resume {args.resume}: no such directory; pass the "
                            "search-EXP-DATE directory of the run to continue")
        ctx = RunContext.resumed(args.resume, SCRIPT, world)
        *resumed, changes = state.load_state(args, given, ctx.save_dir)
    space, applied = spaces.of(args.space), None
    if not args.resume:  # before anything is written
        space.check_flags(args)
        applied = space.set_run_flags(args, given)
    method_of(args, None if args.resume else given)
    if args.early_stop_eigen and not args.eigen_batches:
        raise UserError("--early_stop_eigen watches the Hessian eigenvalue, which "
                        "--eigen_batches 0 turns off: give --eigen_batches 1 or more")
    distributed.check_batch_size(args.batch_size, world)
    vdl.check_available(args.visualdl)
    if not args.resume:
        ctx = RunContext.new(args.save, "search", SCRIPT, world)
    ctx.log_args(args, changes)
    if applied:
        log.info("%s", applied)
    return run(args, ctx, resumed)


def run(args, ctx, resumed=None):
    """The whole search, or the rest of a resumed one (resumed: the checkpoint's arrays and
    metadata, state.load_state), in this process; returns the final genotype.

    Under paddle.distributed.launch every process takes its part of each batch and the
    programs average the gradients, so weights, alphas and optimizer buffers stay
    bit-identical across processes."""
    spec, space = data.run_spec(args), spaces.of(args.space)
    initial = state.read_initial_state(args.init_from) if args.init_from else None
    if initial:
        state.check_initial_shape(args, spec, initial[1], args.init_from)
    batches = make_loaders(args, spec, ctx.world)
    programs, runner, architect = build(args, spec, ctx.world, ctx.start_processes(args.batch_size))
    epoch, done, position = start_state(args, ctx, programs, runner, resumed, initial)
    ctx.read_history(epoch)
    batches.valid_batches = data.endless_batches(batches.valid, *position)
    stopped = None
    try:
        with ctx.epochs(args.visualdl, epoch_steps(batches.train, args.max_steps)):
            while epoch < args.epochs and not stopped:
                stopped = search_epoch(epoch, args, programs, architect, batches, ctx, done)
                epoch, done = epoch + 1, NOTHING
    finally:
        batches.valid_batches.close()
    if stopped:  # the architecture of the epoch DARTS-ES points to, as derived then
        genotype = space.genotype_from_json(ctx.history[stopped["kept_epoch"] - 1]["genotype"])
    else:
        genotype = report.architecture(space, programs, runner, args.max_skip)["genotype"]
    if ctx.is_main:
        path = ctx.path("genotype.json")
        space.save_genotype(genotype, path)
        print(f"genotype = {space.genotype_text(genotype)}")
        scores = space.scores(genotype)
        if scores:
            print(f"{space.NAME} table (validation accuracy, mean over its seeds): "
                  + ", ".join(f"{dataset} {value:.2f}%" for dataset, value in scores.items()))
        print(f"saved to {path}: train with  python train.py --arch={path}")
    return genotype


def search_epoch(epoch, args, programs, architect, batches, ctx, done):
    """One epoch (after the steps `done` of a resumed one): train, validate, lambda_max,
    report, save.  Returns DARTS-ES's decision when it ends the search, else None."""
    runner, space = architect.runner, spaces.of(args.space)
    feeds = architect.set_epoch(epoch, args.epochs)
    rates = learning_rates(programs, epoch)
    if not done["losses"]:
        log_epoch_start(epoch, args, programs, runner, feeds, rates["lr"])
    losses, accs = train_epoch(epoch, args, programs, architect, batches, ctx=ctx, done=done)
    if ctx.stop.requested:
        ctx.stop_in_epoch(lambda: state.save_state(
            args, ctx.save_dir, programs, runner, epoch, {"losses": losses, "accs": accs},
            batches.valid_batches))
    train = float(np.mean(losses)), float(np.mean(accs))
    valid = evaluate(epoch, args, programs, runner, batches.valid,
                     architect.feeds(WEIGHTS, training=False), ctx.world)
    check_finite(ctx, args, epoch, len(losses), {"the validation loss": valid[0]})
    log.info("epoch %d train_acc %.2f%% valid_acc %.2f%%", epoch + 1, 100 * train[1],
             100 * valid[1])
    eigenvalue = hessian_eigenvalue(epoch, len(losses), args, architect, batches.eigen, ctx)
    programs.next_epoch()
    now = report.architecture(space, programs, runner, args.max_skip)
    record = report.epoch_record(space, epoch, now, train, valid, eigenvalue)
    report.log_collapse(record)
    stopped = report.darts_es(args, ctx.history + [record])
    if stopped:
        record["early_stop"] = stopped
    ctx.board.epoch({**record, **rates})
    ctx.board.cells(space.pictures(now["genotype"]), epoch + 1)
    ctx.end_epoch(epoch + 1, record=record, last=bool(stopped) or epoch + 1 == args.epochs,
                  save=lambda: state.save_state(args, ctx.save_dir, programs, runner, epoch + 1,
                                                NOTHING, batches.valid_batches, stopped))
    return stopped


def train_epoch(epoch, args, programs, architect, batches, *, ctx, done):
    """Search steps of one epoch after those `done` ({"losses": [...], "accs": [...]});
    returns the epoch's (losses, accuracies) so far.  Stops after a whole step if a stop
    was requested.  Every --report_freq steps the step goes to the log and the board."""
    eta = programs.lr_scheduler()
    losses, accs = list(done["losses"]), list(done["accs"])
    first = len(losses)
    bar = epoch_bar(batches.train, epoch, args.max_steps,
                    f"epoch {epoch + 1}/{args.epochs} search", start=first,
                    disable=not ctx.is_main)
    for step, train_batch in enumerate(bar, first):
        if ctx.stop.requested:
            break
        tic = time.time()
        valid = architect.step(train_batch, next(batches.valid_batches), eta)  # None: warm-up
        loss, acc = architect.weight_step(train_batch)
        check_finite(ctx, args, epoch, step, {
            **({"the validation loss": valid[0]} if valid else {}), "the training loss": loss,
            **programs.arch.read(architect.runner)})
        losses.append(loss)
        accs.append(acc)
        seconds = time.time() - tic
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{100 * np.mean(accs):.1f}%",
                        step=f"{seconds:.1f}s", refresh=False)
        if step % args.report_freq == 0:
            log.debug("train %03d loss %.4f acc %.2f%%", step, np.mean(losses),
                      100 * np.mean(accs))
            ctx.board.step(epoch, step, loss=loss, accuracy=acc, seconds=seconds)
    bar.close()
    return losses, accs


def evaluate(epoch, args, programs, runner, loader, feeds, world=distributed.SINGLE):
    """Validation (loss, accuracy) with BN in inference mode (the original's infer());
    every process evaluates its part of each batch, the program averages over them."""
    meter = Meter(2)
    bar = epoch_bar(loader, epoch, args.max_steps, f"epoch {epoch + 1}/{args.epochs} valid ",
                    disable=not world.is_main)
    for x, y in bar:
        loss, acc = runner.run(programs["evaluate"], x=x, y=y, **feeds)
        meter.update(len(y), float(loss), float(acc))
    bar.close()
    return tuple(float(m) for m in meter.means)


def hessian_eigenvalue(epoch, step, args, architect, batches, ctx):
    """lambda_max after `epoch` on the fixed validation `batches` (None without them),
    logged with what it cost."""
    if not batches:
        return None
    decay = eigen_weight_decay(args)
    estimate = collapse.lambda_max(architect, batches, args.eigen_iterations, args.seed, decay)
    check_finite(ctx, args, epoch, step, {"the Hessian eigenvalue": estimate.value})
    log.info("epoch %d lambda_max %.6g +- %.2g (Hessian of L_val in the alphas%s on %d "
             "validation images in %d batch%s: %d Lanczos steps, %d Hessian-vector products, "
             "%.1f s)", epoch + 1, estimate.value, estimate.bound,
             f" + {decay:g} I" if decay else "", sum(len(y) for _, y in batches),
             len(batches), "" if len(batches) == 1 else "es", estimate.iterations,
             estimate.passes, estimate.seconds)
    return estimate.value


def check_finite(ctx, args, epoch, step, values):
    """A diverged search stops: the last good checkpoint stays, no genotype is written."""
    ctx.check_finite(values, epoch, step, "the search", written=" and no genotype is written",
                     advice=f"Lower --learning_rate ({args.learning_rate}) or "
                            f"--arch_learning_rate ({args.arch_learning_rate}), or keep "
                            f"--grad_clip ({args.grad_clip}) small")


# --------------------------------------------------------------------------- set-up

def method_of(args, given=None):
    """The search method of the flags (methods/); with `given` (a new run's flags named on
    the command line) the flags left out first take the method's defaults.  Contradictory
    flags are a UserError."""
    try:
        method = make_method(args.method, spaces.of(args.space).LAYOUT,
                             **{k: getattr(args, k) for k in FLAGS})
        if given is not None:
            method.set_run_flags(args, given)
        return method
    except ValueError as exc:
        raise UserError(str(exc)) from None


@dataclass
class SearchBatches:
    """The search's data: the two halves of the training set (weights learn on `train`,
    alphas on `valid`), the fixed batches of lambda_max, and the endless validation stream
    the architect draws from (set once the run knows where it resumes)."""
    train: data.BatchLoader
    valid: data.BatchLoader
    eigen: list
    valid_batches: object = None


def make_loaders(args, spec, world=distributed.SINGLE):
    """The search's batches (SearchBatches); each process takes its part of every batch."""
    dataset = data.load_dataset(spec, args.data, train=True)
    log.info("%s", data.describe(dataset))
    train_idx, valid_idx = data.search_split(len(dataset.labels), args.train_portion)
    # both halves use the training transform, as the original
    transform = data.build_transform(spec, train=True,
                                     cutout_length=args.cutout_length if args.cutout else 0)
    make = lambda idx, seed: data.BatchLoader(  # noqa: E731
        dataset, idx, args.batch_size, transform, shuffle=True, seed=seed,
        num_workers=args.workers, drop_last=True, rank=world.rank, world_size=world.size)
    train, valid = make(train_idx, args.seed), make(valid_idx, args.seed + 1)
    if args.eigen_batches > len(valid):
        raise UserError(f"--eigen_batches {args.eigen_batches}: the validation half has "
                        f"{len(valid)} batches of {args.batch_size}; give at most that")
    eigen = collapse.fixed_batches(valid, args.eigen_batches, args.eigen_batch_size)
    return SearchBatches(train, valid, eigen)


def build(args, spec, world=distributed.SINGLE, place=None):
    """Programs built once, a runner (on `place`), initial values from the seed (the same
    in every process), the architect."""
    space = spaces.of(args.space)
    cfg = space.config(args, spec, method_of(args), world.size)
    place = place or runtime.get_place()
    runtime.prefault(place, space.heap_bytes(cfg, args.batch_size // world.size))
    start = time.time()
    programs = space.build_programs(cfg)
    log.info("programs built in %.1f s (gradient program: %d ops)", time.time() - start,
             len(programs["grad"].program.global_block().ops))
    log.info("param size = %.6fMB", programs.network.params.size / 1e6)
    runner = Runner(place)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(args.seed)))
    return programs, runner, Architect(runner, programs, unrolled=args.unrolled)


def start_state(args, ctx, programs, runner, resumed, initial):
    """Where the search starts: (epoch, the steps done in it, the validation position)."""
    if resumed:
        arrays, meta = resumed
        state.restore_state(programs, runner, arrays, ctx.path(state.CHECKPOINT))
        for _ in range(meta["epoch"]):
            programs.next_epoch()
        log.info("resumed %s at epoch %d step %d", ctx.save_dir, meta["epoch"] + 1,
                 meta["step"])
        return meta["epoch"], meta["done"], meta["valid_position"]
    if initial:
        state.init_state(programs, runner, initial[0], args.init_from)
        log.info("weights, BN statistics and alphas from %s", args.init_from)
    return 0, NOTHING, (0, 0)


def log_epoch_start(epoch, args, programs, runner, feeds, lr):
    """The epoch's learning rate and feeds, its warm-up, the architecture it starts from."""
    log.info("epoch %d lr %e %s", epoch + 1, lr,
             " ".join(f"{k} {v.tolist()}" for k, v in feeds.items()))
    warmup = programs.config.method.warmup(args.epochs)
    if epoch < warmup:
        log.info("epoch %d: warm-up, the weights train alone (the architecture from epoch %d "
                 "on)", epoch + 1, warmup + 1)
    space = spaces.of(args.space)
    report.log_architecture(space, report.architecture(space, programs, runner, args.max_skip))


def learning_rates(programs, epoch):
    """{"lr": the weights' learning rate, "arch_lr": the alphas'} in 0-based `epoch` (the
    alphas' follows the method's schedule: DAAS freezes them at first)."""
    cfg = programs.config
    return {"lr": programs.lr_scheduler(),
            "arch_lr": cfg.arch_learning_rate * cfg.method.alpha_lr_factor(epoch)}


def eigen_weight_decay(args):
    """What lambda_max adds to the Hessian's diagonal: --eigen_weight_decay, by default the
    alphas' weight decay (RobustDARTS)."""
    return args.arch_weight_decay if args.eigen_weight_decay is None else args.eigen_weight_decay
