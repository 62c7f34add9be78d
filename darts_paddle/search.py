"""The search loop (train_search.py): data, programs, architect, epochs, logs, the result.

Per step, as the original: the architect updates alpha on a validation batch, then the
weights take one SGD step on the training batch.  Per epoch: train and validation accuracy,
the derived genotype and softmax(alpha) are logged; at the end the genotype is printed as
a literal for genotypes.py and saved as JSON that `train.py --arch=PATH` accepts.

No lost work: after every epoch the whole state (weights, BN statistics, alphas, both
optimizers' buffers, epoch, data positions) goes into an atomic checkpoint and the epoch's
record into history.json; Ctrl-C finishes the current step and saves too.  Data order and
augmentation are functions of (seed, epoch, index), so `--resume DIR` continues exactly.
"""

import json
import logging
import os
import signal
import time

import numpy as np

from . import data
from .state.checkpoint import load_checkpoint, save_checkpoint
from .errors import UserError
from .cli import METHOD_FLAGS
from .genotype import format_genotype, genotype_to_json, save_genotype_json
from .progress import epoch_bar
from .runtime import import_paddle

log = logging.getLogger("darts_paddle.search")

FORMAT = "darts-paddle-search/1"
# weights, BN statistics and alphas only: a supernet converted from PyTorch (convert_torch.py)
WEIGHTS_FORMAT = "darts-paddle-search-weights/1"
CHECKPOINT, HISTORY = "checkpoint.npz", "history.json"
# flags that change what a search computes: a resumed run must be given the same ones
RUN_FLAGS = ("dataset", "batch_size", "learning_rate", "learning_rate_min", "momentum",
             "weight_decay", "epochs", "init_channels", "layers", "cutout", "cutout_length",
             "seed", "grad_clip", "train_portion", "unrolled", "arch_learning_rate",
             "arch_weight_decay", "max_steps", *METHOD_FLAGS)


class StopRequest:
    """Ctrl-C asks the loop to stop after the current step (a step interrupted half-way
    would leave w' or w +- Rv in the weights); a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.info("stopping after this step (Ctrl-C again to abort without saving)")

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)


def make_loaders(args, spec):
    """The two halves of the training set: weights learn on one, alphas on the other."""
    dataset = data.load_dataset(args.dataset, args.data, train=True)
    log.info("%s", data.describe(dataset))
    train_idx, valid_idx = data.search_split(len(dataset.labels), args.train_portion)
    # both halves use the training transform, as the original
    transform = data.build_transform(spec, train=True,
                                     cutout_length=args.cutout_length if args.cutout else 0)
    make = lambda idx, seed: data.BatchLoader(  # noqa: E731
        dataset, idx, args.batch_size, transform, shuffle=True, seed=seed,
        num_workers=args.workers, drop_last=True)
    return make(train_idx, args.seed), make(valid_idx, args.seed + 1)


def method_config(args):
    """The search method of the flags (methods.py); contradictory flags are a UserError."""
    from .methods import MethodConfig

    try:
        return MethodConfig(**{k: getattr(args, k) for k in METHOD_FLAGS})
    except ValueError as exc:
        raise UserError(f"{exc}: drop the DADARTS flags or use --method darts") from None


def build(args, spec):
    """Programs built once, a runner, initial values from the seed, the architect."""
    from .architect import Architect
    from .programs import SearchConfig, build_search_programs
    from .runner import Runner

    cfg = SearchConfig(method=method_config(args), C=args.init_channels, layers=args.layers, num_classes=spec.num_classes,
                       in_channels=spec.in_channels, image_size=spec.image_size,
                       epochs=args.epochs, learning_rate=args.learning_rate,
                       learning_rate_min=args.learning_rate_min, momentum=args.momentum,
                       weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                       arch_learning_rate=args.arch_learning_rate,
                       arch_weight_decay=args.arch_weight_decay, unrolled=args.unrolled)
    start = time.time()
    programs = build_search_programs(cfg)
    log.info("programs built in %.1f s (gradient program: %d ops)", time.time() - start,
             len(programs["grad"].program.global_block().ops))
    log.info("param size = %.6fMB", programs.network.params.size / 1e6)
    runner = Runner()
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(args.seed)))
    return programs, runner, Architect(runner, programs, unrolled=args.unrolled)


def arch_values(programs, runner):
    """{name: array} of the architecture parameters (alphas, and DAAS's betas)."""
    return {name: runner.get(name) for name in programs.config.arch_names}


def current_genotype(programs, runner):
    return programs.config.method.genotype(arch_values(programs, runner))


def log_architecture(programs, runner):
    method = programs.config.method
    arch = arch_values(programs, runner)
    log.info("genotype = %s", format_genotype(method.genotype(arch)))
    for cell, weights in method.op_weights_numpy(arch).items():
        log.info("op weights (%s cell; columns %s) =\n%s", cell, ", ".join(method.primitives),
                 np.array2string(weights, precision=3))
    for cell, nodes in method.betas_numpy(arch).items():
        log.info("softmax(min(beta, 1)) (%s cell, nodes 1-3) = %s", cell,
                 "  ".join(np.array2string(b, precision=3) for b in nodes))


def train_epoch(epoch, args, programs, architect, train_loader, valid_batches, done, stop):
    """Search steps of one epoch after those `done` ({"losses": [...], "accs": [...]});
    returns the epoch's (losses, accuracies) so far.  Stops after a whole step if
    `stop.requested`.
    """
    eta = programs.lr_scheduler()
    losses, accs = list(done["losses"]), list(done["accs"])
    first = len(losses)
    bar = epoch_bar(train_loader, epoch, args.max_steps, f"epoch {epoch + 1}/{args.epochs} search",
                    start=first)
    for step, train_batch in enumerate(bar, first):
        if stop.requested:
            break
        tic = time.time()
        architect.step(train_batch, next(valid_batches), eta)
        loss, acc = architect.weight_step(train_batch)
        losses.append(loss)
        accs.append(acc)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{100 * np.mean(accs):.1f}%",
                        step=f"{time.time() - tic:.1f}s", refresh=False)
        if step % args.report_freq == 0:
            log.debug("train %03d loss %.4f acc %.2f%%", step, np.mean(losses),
                      100 * np.mean(accs))
    bar.close()
    return losses, accs


def evaluate(epoch, args, programs, runner, loader, knobs):
    """Validation accuracy with BN in inference mode (the original's infer())."""
    total, loss_sum, correct = 0, 0.0, 0.0
    bar = epoch_bar(loader, epoch, args.max_steps, f"epoch {epoch + 1}/{args.epochs} valid ")
    for x, y in bar:
        loss, acc = runner.run(programs["evaluate"], x=x, y=y, **knobs)
        total += len(y)
        loss_sum += float(loss) * len(y)
        correct += float(acc) * len(y)
    bar.close()
    return loss_sum / max(total, 1), correct / max(total, 1)


def save_state(args, programs, runner, epoch, done, valid_batches):
    """done: the losses and accuracies of the steps already taken in `epoch`."""
    arrays = {k: runner.get(name) for k, name in programs.state_names().items()}
    meta = {"format": FORMAT, "epoch": epoch, "step": len(done["losses"]), "done": done,
            "valid_position": list(valid_batches.state()),
            "flags": {k: getattr(args, k) for k in RUN_FLAGS}}
    save_checkpoint(os.path.join(args.save, CHECKPOINT), arrays, meta)


def load_state(args):
    """The checkpoint of a run directory, checked against this run's flags."""
    path = os.path.join(args.save, CHECKPOINT)
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a search checkpoint (format {meta.get('format')!r}); "
                        "pass the directory of a train_search.py run to --resume")
    changed = [f"--{k} {getattr(args, k)} (checkpoint: {v})"
               for k, v in meta["flags"].items() if getattr(args, k, None) != v]
    if changed:
        raise UserError(f"--resume {args.save}: the flags differ from the run's: "
                        + "; ".join(changed) + ". Resume with the run's flags.")
    return arrays, meta


def restore_state(programs, runner, arrays, path):
    names = programs.state_names()
    for key, name in names.items():
        if key not in arrays or arrays[key].shape != runner.get(name).shape:
            raise UserError(f"{path} does not fit this network ({key}); resume with the flags "
                            "the run was started with")
        runner.set(name, arrays[key])


def read_initial_state(path):
    """The weights, BN statistics and alphas to start a search from, with the network's shape:
    a converted supernet (WEIGHTS_FORMAT) or a search's own checkpoint (or its directory).
    -> (arrays, {"C", "layers", "num_classes", "in_channels"})"""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    arrays, meta = load_checkpoint(path)
    if meta.get("format") == WEIGHTS_FORMAT:
        return arrays, meta["config"]
    if meta.get("format") == FORMAT:
        flags, spec = meta["flags"], data.get_spec(meta["flags"]["dataset"])
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
    for key in [*programs.network.params.banks, "bn.mean", "bn.var", *programs.config.arch_names]:
        if key not in arrays or arrays[key].shape != runner.get(names[key]).shape:
            raise UserError(f"--init_from {path}: {key} is missing or has another shape; the "
                            "file was written for a different supernet")
        runner.set(names[key], arrays[key])


def append_history(args, history, record):
    """history.json: one record per epoch, rewritten atomically."""
    history.append(record)
    path = os.path.join(args.save, HISTORY)
    with open(path + ".tmp", "w") as f:
        json.dump(history, f, indent=1)
    os.replace(path + ".tmp", path)


def read_history(args, epochs):
    path = os.path.join(args.save, HISTORY)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)[:epochs]


def epoch_record(epoch, programs, runner, train, valid):
    """One history.json record: accuracies, genotype, op weights per edge (the columns
    are `primitives`: DAAS has no 'none'), and DAAS's softmax(min(beta, 1)) per node."""
    method = programs.config.method
    arch = arch_values(programs, runner)
    record = {"epoch": epoch + 1, "train_loss": train[0], "train_acc": train[1],
              "valid_loss": valid[0], "valid_acc": valid[1],
              "genotype": genotype_to_json(method.genotype(arch)),
              "primitives": list(method.primitives)}
    for cell, weights in method.op_weights_numpy(arch).items():
        record[f"softmax_alphas_{cell}"] = weights.round(6).tolist()
    for cell, nodes in method.betas_numpy(arch).items():
        record[f"softmax_betas_{cell}"] = [b.round(6).tolist() for b in nodes]
    return record


def run(args):
    """The whole search (or the rest of a resumed one); returns the final genotype."""
    import_paddle()
    spec = data.get_spec(args.dataset)
    resumed = load_state(args) if args.resume else None
    initial = read_initial_state(args.init_from) if getattr(args, "init_from", None) else None
    if initial:
        check_initial_shape(args, spec, initial[1], args.init_from)
    train_loader, valid_loader = make_loaders(args, spec)
    programs, runner, architect = build(args, spec)
    nothing = {"losses": [], "accs": []}
    epoch, done, position = 0, nothing, (0, 0)
    if resumed:
        arrays, meta = resumed
        restore_state(programs, runner, arrays, os.path.join(args.save, CHECKPOINT))
        epoch, done, position = meta["epoch"], meta["done"], meta["valid_position"]
        for _ in range(epoch):
            programs.next_epoch()
        log.info("resumed %s at epoch %d step %d", args.save, epoch + 1, meta["step"])
    elif initial:
        init_state(programs, runner, initial[0], args.init_from)
        log.info("weights, BN statistics and alphas from %s", args.init_from)
    history = read_history(args, epoch)
    valid_batches = data.endless_batches(valid_loader, *position)
    try:
        with StopRequest() as stop:
            while epoch < args.epochs:
                knobs = programs.config.method.knobs(epoch, args.epochs)
                architect.set_knobs(knobs)
                if not done["losses"]:
                    log.info("epoch %d lr %e %s", epoch + 1, programs.lr_scheduler(),
                             " ".join(f"{k} {v.tolist()}" for k, v in knobs.items()))
                    log_architecture(programs, runner)
                losses, accs = train_epoch(epoch, args, programs, architect, train_loader,
                                              valid_batches, done, stop)
                if stop.requested:
                    save_state(args, programs, runner, epoch, {"losses": losses, "accs": accs},
                               valid_batches)
                    log.info("saved; continue with  python train_search.py --resume %s", args.save)
                    raise KeyboardInterrupt
                train = float(np.mean(losses)), float(np.mean(accs))
                valid = evaluate(epoch, args, programs, runner, valid_loader, architect.refresh())
                log.info("epoch %d train_acc %.2f%% valid_acc %.2f%%", epoch + 1,
                         100 * train[1], 100 * valid[1])
                append_history(args, history,
                               epoch_record(epoch, programs, runner, train, valid))
                programs.next_epoch()
                epoch, done = epoch + 1, nothing
                save_state(args, programs, runner, epoch, done, valid_batches)
    finally:
        valid_batches.close()
    genotype = current_genotype(programs, runner)
    path = os.path.join(args.save, "genotype.json")
    save_genotype_json(genotype, path)
    print(f"genotype = {format_genotype(genotype)}")
    print(f"saved to {path}: train with  python train.py --arch={path}")
    return genotype
