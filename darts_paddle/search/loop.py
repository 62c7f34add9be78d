"""The search loop (train_search.py): data, programs, architect, epochs, logs, the result.

Per step, as the original: the architect updates alpha on a validation batch, then the
weights take one SGD step on the training batch.  Per epoch: train and validation accuracy,
the derived genotype (--max_skip caps its skip_connect ops), the op weights (in full in
log.txt only) and the signs of collapse (collapse.py: lambda_max, skip_connect counts,
entropy) are logged, and with --visualdl written for VisualDL (vdl.py), and
DARTS-ES (--early_stop_eigen) may end the search with an earlier epoch's architecture; at
the end the genotype is printed as a literal for genotypes.py and saved as JSON that
`train.py --arch=PATH` accepts.

No lost work: after every epoch the whole state goes into an atomic checkpoint and the
epoch's record into history.json (state/search_state.py); Ctrl-C and SIGTERM finish the
current step and save too (stop.py).  Data order and augmentation are functions of (seed,
epoch, index), so `--resume DIR` continues exactly, with the run's own flags
(state/resume.py).  A step whose loss or alphas are not finite stops the search: the last
good checkpoint stays, no genotype is written.
"""

import logging
import os
import time
from collections import Counter

import numpy as np

from .. import cli, data, distributed, runtime, vdl
from ..distributed import SINGLE
from ..errors import UserError
from ..genotype import (CELLS, STEPS, check_search_layers, format_genotype, genotype_from_json,
                        genotype_to_json, save_genotype_json)
from ..progress import epoch_bar, epoch_steps
from ..runner import Runner
from ..stop import StopRequest
from ..state import search_state as state
from ..state.atomic import remove_stale_temporaries
from . import collapse
from .architect import Architect
from .methods import FLAGS, WEIGHTS, make_method
from .programs import SearchConfig, build_search_programs, search_heap_bytes

log = logging.getLogger("darts_paddle.search")

NOTHING = {"losses": [], "accs": []}  # the steps done of an epoch not yet begun


def method_of(args, given=None):
    """The search method of the flags (methods/); with `given` (a new run's flags named on
    the command line) the flags left out first take the method's defaults.  Contradictory
    flags are a UserError."""
    try:
        method = make_method(args.method, **{k: getattr(args, k) for k in FLAGS})
        if given is not None:
            method.set_run_flags(args, given)
        return method
    except ValueError as exc:
        raise UserError(str(exc)) from None


def make_loaders(args, spec, world=SINGLE):
    """The two halves of the training set: weights learn on one, alphas on the other; each
    process takes its part of every batch (distributed.py)."""
    dataset = data.load_dataset(spec, args.data, train=True)
    log.info("%s", data.describe(dataset))
    train_idx, valid_idx = data.search_split(len(dataset.labels), args.train_portion)
    # both halves use the training transform, as the original
    transform = data.build_transform(spec, train=True,
                                     cutout_length=args.cutout_length if args.cutout else 0)
    make = lambda idx, seed: data.BatchLoader(  # noqa: E731
        dataset, idx, args.batch_size, transform, shuffle=True, seed=seed,
        num_workers=args.workers, drop_last=True, rank=world.rank, world_size=world.size)
    return make(train_idx, args.seed), make(valid_idx, args.seed + 1)


def build(args, spec, world=SINGLE, place=None):
    """Programs built once, a runner (on `place`), initial values from the seed (the same
    in every process), the architect."""
    cfg = SearchConfig(method=method_of(args), C=args.init_channels, layers=args.layers,
                       num_classes=spec.num_classes, in_channels=spec.in_channels,
                       image_size=spec.image_size, epochs=args.epochs,
                       learning_rate=args.learning_rate, learning_rate_min=args.learning_rate_min,
                       momentum=args.momentum, weight_decay=args.weight_decay,
                       grad_clip=args.grad_clip, arch_learning_rate=args.arch_learning_rate,
                       arch_weight_decay=args.arch_weight_decay, unrolled=args.unrolled,
                       world_size=world.size)
    place = place or runtime.get_place()
    runtime.prefault(place, search_heap_bytes(cfg, args.batch_size // world.size))
    start = time.time()
    programs = build_search_programs(cfg)
    log.info("programs built in %.1f s (gradient program: %d ops)", time.time() - start,
             len(programs["grad"].program.global_block().ops))
    log.info("param size = %.6fMB", programs.network.params.size / 1e6)
    runner = Runner(place)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(args.seed)))
    return programs, runner, Architect(runner, programs, unrolled=args.unrolled)


def architecture(programs, runner, max_skip=None):
    """What the architecture parameters say now: {"genotype" (its normal cell with at most
    `max_skip` skip_connect ops), "op_weights": {cell: array}, "betas": {cell: [array per
    node]} (DAAS, PC-DARTS) with their "betas_label", "primitives"}; with `max_skip` also
    "skip_connect_uncapped": the normal cell's skip_connect ops without the cap."""
    method, arch = programs.config.method, programs.arch.read(runner)
    now = {"genotype": method.genotype(arch, max_skip), "op_weights": method.op_weights_numpy(arch),
           "betas": method.betas_numpy(arch), "betas_label": method.betas_label,
           "primitives": list(method.primitives)}
    if max_skip is not None:
        now["skip_connect_uncapped"] = collapse.skip_count(method.genotype(arch).normal)
    return now


def log_architecture(now):
    """The genotype and a line per cell (its ops, the strongest op weight of its edges) on
    the console and in log.txt; the op weights (and DAAS's betas) in full in log.txt only."""
    log.info("genotype = %s", format_genotype(now["genotype"]))
    for cell, weights in now["op_weights"].items():
        ops = Counter(op for op, _ in getattr(now["genotype"], cell))
        strongest = weights.max(axis=1)
        log.info("%s cell: %s; strongest op weight per edge %.3f-%.3f (uniform %.3f)", cell,
                 ", ".join(f"{op} x{n}" for op, n in ops.most_common()), strongest.min(),
                 strongest.max(), 1 / weights.shape[1])
        log.info("op weights (%s cell; columns %s) =\n%s", cell, ", ".join(now["primitives"]),
                 np.array2string(weights, precision=3), extra=cli.FILE_ONLY)
    for cell, nodes in now["betas"].items():
        log.info("%s (%s cell, nodes %d-%d) = %s", now["betas_label"], cell,
                 STEPS - len(nodes), STEPS - 1,
                 "  ".join(np.array2string(b, precision=3) for b in nodes), extra=cli.FILE_ONLY)


def epoch_record(epoch, now, train, valid, eigenvalue=None):
    """One history.json record: accuracies, genotype, op weights per edge (the columns
    are `primitives`: DAAS has no 'none'), the edge weights per node of DAAS
    (softmax(min(beta, 1)), nodes 1-3) and PC-DARTS (softmax(beta), nodes 0-3), and the
    signs of collapse: lambda_max (None when not estimated), the derived cells' skip_connect
    counts and parameter-free shares, the op weights' entropy (collapse.py)."""
    record = {"epoch": epoch + 1, "train_loss": train[0], "train_acc": train[1],
              "valid_loss": valid[0], "valid_acc": valid[1],
              "genotype": genotype_to_json(now["genotype"]), "primitives": now["primitives"]}
    for cell, weights in now["op_weights"].items():
        record[f"softmax_alphas_{cell}"] = weights.round(6).tolist()
    for cell, nodes in now["betas"].items():
        record[f"softmax_betas_{cell}"] = [b.round(6).tolist() for b in nodes]
    record["hessian_eigenvalue"] = eigenvalue
    record.update(collapse.cell_statistics(now["genotype"], now["op_weights"]))
    if "skip_connect_uncapped" in now:
        record["skip_connect_uncapped"] = {"normal": now["skip_connect_uncapped"]}
    return record


def hessian_eigenvalue(epoch, step, args, architect, batches):
    """lambda_max after `epoch` on the fixed validation `batches` (None without them),
    logged with what it cost."""
    if not batches:
        return None
    decay = eigen_weight_decay(args)
    estimate = collapse.lambda_max(architect, batches, args.eigen_iterations, args.seed, decay)
    check_finite(args, epoch, step, {"the Hessian eigenvalue": estimate.value})
    log.info("epoch %d lambda_max %.6g +- %.2g (Hessian of L_val in the alphas%s on %d "
             "validation images in %d batch%s: %d Lanczos steps, %d Hessian-vector products, "
             "%.1f s)", epoch + 1, estimate.value, estimate.bound,
             f" + {decay:g} I" if decay else "", sum(len(y) for _, y in batches),
             len(batches), "" if len(batches) == 1 else "es", estimate.iterations,
             estimate.passes, estimate.seconds)
    return estimate.value


def eigen_weight_decay(args):
    """What lambda_max adds to the Hessian's diagonal: --eigen_weight_decay, by default the
    alphas' weight decay (RobustDARTS)."""
    return args.arch_weight_decay if args.eigen_weight_decay is None else args.eigen_weight_decay


def log_collapse(record):
    """The signs of collapse in an epoch's record, but lambda_max (logged with its cost)."""
    before = record.get("skip_connect_uncapped")
    capped = f" ({before['normal']} before --max_skip)" if before else ""
    log.info("epoch %d skip_connect normal %d%s reduce %d; parameter-free ops normal %.0f%% "
             "reduce %.0f%%; entropy of the op weights per edge normal %.3f reduce %.3f",
             record["epoch"], record["skip_connect"]["normal"], capped,
             record["skip_connect"]["reduce"],
             *(100 * record["parameter_free"][c] for c in CELLS),
             *(record["alpha_entropy"][c] for c in CELLS))


def darts_es(args, history):
    """DARTS-ES on the epochs' lambda_max so far (collapse.darts_es), logged; the decision
    when the search stops here, else None."""
    k = args.early_stop_window
    verdict = collapse.darts_es([r.get("hessian_eigenvalue") for r in history], k,
                                args.early_stop_threshold, args.early_stop_start)
    if verdict is None:
        return None
    e, ratio = verdict["epoch"], verdict["ratio"]
    early = (f"; epoch {e - k} is before --early_stop_start {args.early_stop_start}"
             if ratio > args.early_stop_threshold and not verdict["stop"] else "")
    log.info("epoch %d DARTS-ES ratio %.3f: the mean lambda_max of epochs %d-%d over that of "
             "epochs %d-%d (stops above %g%s)", e, ratio, e - k + 1, e, e - 2 * k + 1, e - k,
             args.early_stop_threshold, early)
    if not (args.early_stop_eigen and verdict["stop"]):
        return None
    log.info("DARTS-ES stops the search after epoch %d and keeps the alphas of epoch %d: "
             "its genotype is the result", e, verdict["kept_epoch"])
    return verdict


def learning_rates(programs, epoch):
    """{"lr": the weights' learning rate, "arch_lr": the alphas'} in 0-based `epoch` (the
    alphas' follows the method's schedule: DAAS freezes them at first)."""
    cfg = programs.config
    return {"lr": programs.lr_scheduler(),
            "arch_lr": cfg.arch_learning_rate * cfg.method.alpha_lr_factor(epoch)}


def train_epoch(epoch, args, programs, architect, train_loader, valid_batches, done, stop,
                world=SINGLE, board=vdl.OFF):
    """Search steps of one epoch after those `done` ({"losses": [...], "accs": [...]});
    returns the epoch's (losses, accuracies) so far.  Stops after a whole step if
    `stop.requested`.  Every --report_freq steps the step goes to the log and `board`."""
    eta = programs.lr_scheduler()
    losses, accs = list(done["losses"]), list(done["accs"])
    first = len(losses)
    bar = epoch_bar(train_loader, epoch, args.max_steps, f"epoch {epoch + 1}/{args.epochs} search",
                    start=first, disable=not world.is_main)
    for step, train_batch in enumerate(bar, first):
        if stop.requested:
            break
        tic = time.time()
        valid = architect.step(train_batch, next(valid_batches), eta)  # None: warm-up
        loss, acc = architect.weight_step(train_batch)
        check_finite(args, epoch, step, {**({"the validation loss": valid[0]} if valid else {}),
                                         "the training loss": loss,
                                         **programs.arch.read(architect.runner)})
        losses.append(loss)
        accs.append(acc)
        seconds = time.time() - tic
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{100 * np.mean(accs):.1f}%",
                        step=f"{seconds:.1f}s", refresh=False)
        if step % args.report_freq == 0:
            log.debug("train %03d loss %.4f acc %.2f%%", step, np.mean(losses),
                      100 * np.mean(accs))
            board.step(epoch, step, loss=loss, accuracy=acc, seconds=seconds)
    bar.close()
    return losses, accs


def check_finite(args, epoch, step, values):
    """Stop at the first non-finite loss or architecture parameter (a diverged search),
    keeping the last good checkpoint and writing no genotype."""
    bad = next((name for name, value in values.items() if not np.all(np.isfinite(value))), None)
    if bad is None:
        return
    path = os.path.join(args.save, state.CHECKPOINT)
    kept = (f"the last good checkpoint {path} is kept" if os.path.exists(path)
            else "no checkpoint was written yet")
    raise UserError(f"the search diverged: {bad} is not finite at epoch {epoch + 1} step {step}; "
                    f"{kept} and no genotype is written. Lower --learning_rate "
                    f"({args.learning_rate}) or --arch_learning_rate ({args.arch_learning_rate}), "
                    f"or keep --grad_clip ({args.grad_clip}) small")


def evaluate(epoch, args, programs, runner, loader, feeds, world=SINGLE):
    """Validation accuracy with BN in inference mode (the original's infer()); every
    process evaluates its part of each batch, the program averages over them."""
    total, loss_sum, correct = 0, 0.0, 0.0
    bar = epoch_bar(loader, epoch, args.max_steps, f"epoch {epoch + 1}/{args.epochs} valid ",
                    disable=not world.is_main)
    for x, y in bar:
        loss, acc = runner.run(programs["evaluate"], x=x, y=y, **feeds)
        total += len(y)
        loss_sum += float(loss) * len(y)
        correct += float(acc) * len(y)
    bar.close()
    return loss_sum / max(total, 1), correct / max(total, 1)


def main(args, given):
    """What train_search.py runs after parsing its flags, in every launched process;
    `given`: the flags named on the command line (cli.given_flags), which a resumed run
    checks against its own."""
    if args.resume and args.init_from:
        raise UserError("--resume continues a run with its own state; drop --init_from")
    world = distributed.world_from_env()
    args.data = os.path.abspath(args.data)  # a resumed run finds it from anywhere
    resumed = None
    if args.resume:
        if not os.path.isdir(args.resume):
            raise UserError(f"--resume {args.resume}: no such directory; pass the "
                            "search-EXP-DATE directory of the run to continue")
        args.save = args.resume
        cli.setup_process_logging(args.save, world.is_main)  # a refused resume logs why too
        if world.is_main:
            remove_stale_temporaries(args.save)  # what a killed save left behind
        resumed = state.load_state(args, given)
    method_of(args, None if args.resume else given)  # before anything is written
    if args.early_stop_eigen and not args.eigen_batches:
        raise UserError("--early_stop_eigen watches the Hessian eigenvalue, which "
                        "--eigen_batches 0 turns off: give --eigen_batches 1 or more")
    distributed.check_batch_size(args.batch_size, world)
    vdl.check_available(args.visualdl)
    if not args.resume:
        check_search_layers(args.layers)
        if world.is_main:
            cli.make_save_dir(args, "search")
        cli.setup_process_logging(args.save, world.is_main)
    log.info("args = %s", vars(args))  # the values that run (a resumed run's own)
    for change in resumed[2] if resumed else ():
        log.info("changed on resume: %s", change)
    return run(args, resumed and resumed[:2], world)


def start_state(args, programs, runner, resumed, initial):
    """Where the search starts: (epoch, the steps done in it, the validation position)."""
    if resumed:
        arrays, meta = resumed
        state.restore_state(programs, runner, arrays, os.path.join(args.save, state.CHECKPOINT))
        for _ in range(meta["epoch"]):
            programs.next_epoch()
        log.info("resumed %s at epoch %d step %d", args.save, meta["epoch"] + 1, meta["step"])
        return meta["epoch"], meta["done"], meta["valid_position"]
    if initial:
        state.init_state(programs, runner, initial[0], args.init_from)
        log.info("weights, BN statistics and alphas from %s", args.init_from)
    return 0, NOTHING, (0, 0)


def run(args, resumed=None, world=SINGLE):
    """The whole search, or the rest of a resumed one (resumed: the checkpoint's arrays and
    metadata, state.load_state), in this process; returns the final genotype.

    Under paddle.distributed.launch every process takes its part of each batch and the
    programs average the gradients, so weights, alphas and optimizer buffers stay
    bit-identical across processes; rank 0 alone logs and writes files, and a signal stops
    every process at once (stop.py)."""
    spec = data.run_spec(args)
    initial = state.read_initial_state(args.init_from) if args.init_from else None
    if initial:
        state.check_initial_shape(args, spec, initial[1], args.init_from)
    train_loader, valid_loader = make_loaders(args, spec, world)
    if args.eigen_batches > len(valid_loader):
        raise UserError(f"--eigen_batches {args.eigen_batches}: the validation half has "
                        f"{len(valid_loader)} batches of {args.batch_size}; give at most that")
    eigen_batches = collapse.fixed_batches(valid_loader, args.eigen_batches,
                                           args.eigen_batch_size)
    place = None
    if world.distributed:
        place = distributed.start(world)
        log.info("data parallel: %d processes (rank 0 on %s), %d images each per step",
                 world.size, place, args.batch_size // world.size)
    programs, runner, architect = build(args, spec, world, place)
    epoch, done, position = start_state(args, programs, runner, resumed, initial)
    # every process keeps the records: DARTS-ES decides on them in each
    history = state.read_history(args.save, epoch)
    valid_batches = data.endless_batches(valid_loader, *position)
    stopped = None
    board = vdl.open_board(args.visualdl, args.save, epoch_steps(train_loader, args.max_steps),
                           world.is_main)
    try:
        with StopRequest(active=not world.distributed) as stop, board:
            while epoch < args.epochs:
                knobs = architect.set_epoch(epoch, args.epochs)
                rates = learning_rates(programs, epoch)
                if not done["losses"]:
                    log.info("epoch %d lr %e %s", epoch + 1, rates["lr"],
                             " ".join(f"{k} {v.tolist()}" for k, v in knobs.items()))
                    warmup = programs.config.method.warmup(args.epochs)
                    if epoch < warmup:
                        log.info("epoch %d: warm-up, the weights train alone (the architecture "
                                 "from epoch %d on)", epoch + 1, warmup + 1)
                    log_architecture(architecture(programs, runner, args.max_skip))
                losses, accs = train_epoch(epoch, args, programs, architect, train_loader,
                                           valid_batches, done, stop, world, board)
                if stop.requested:
                    state.save_state(args, programs, runner, epoch,
                                     {"losses": losses, "accs": accs}, valid_batches)
                    log.info("saved; continue with  python train_search.py --resume %s", args.save)
                    stop.stop()
                train = float(np.mean(losses)), float(np.mean(accs))
                valid = evaluate(epoch, args, programs, runner, valid_loader,
                                 architect.feeds(WEIGHTS, training=False), world)
                check_finite(args, epoch, len(losses), {"the validation loss": valid[0]})
                log.info("epoch %d train_acc %.2f%% valid_acc %.2f%%", epoch + 1,
                         100 * train[1], 100 * valid[1])
                eigenvalue = hessian_eigenvalue(epoch, len(losses), args, architect, eigen_batches)
                programs.next_epoch()
                now = architecture(programs, runner, args.max_skip)
                record = epoch_record(epoch, now, train, valid, eigenvalue)
                log_collapse(record)
                history.append(record)
                stopped = darts_es(args, history)
                if stopped:
                    record["early_stop"] = stopped
                board.epoch({**record, **rates})
                board.cells(now["genotype"], epoch + 1)
                if world.is_main:
                    state.write_history(args.save, history)
                    state.save_state(args, programs, runner, epoch + 1, NOTHING, valid_batches,
                                     stopped)
                epoch, done = epoch + 1, NOTHING
                distributed.barrier(world, f"epoch-{epoch}")  # while rank 0 writes
                if stopped:
                    break
    finally:
        valid_batches.close()
    if stopped:  # the architecture of the epoch DARTS-ES points to, as derived then
        genotype = genotype_from_json(history[stopped["kept_epoch"] - 1]["genotype"])
    else:
        genotype = architecture(programs, runner, args.max_skip)["genotype"]
    if world.is_main:
        path = os.path.join(args.save, "genotype.json")
        save_genotype_json(genotype, path)
        print(f"genotype = {format_genotype(genotype)}")
        print(f"saved to {path}: train with  python train.py --arch={path}")
    return genotype
