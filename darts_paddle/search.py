"""The search loop (train_search.py): data, programs, architect, epochs, logs, the result.

Per step, as the original: the architect updates alpha on a validation batch, then the
weights take one SGD step on the training batch.  Per epoch: train and validation accuracy,
the derived genotype and softmax(alpha) are logged; at the end the genotype is printed as
a literal for genotypes.py and saved as JSON that `train.py --arch=PATH` accepts.
"""

import logging
import os
import time

import numpy as np

from . import data
from .genotype import format_genotype, genotype_from_alphas, save_genotype_json, softmax
from .progress import progress
from .runtime import import_paddle

log = logging.getLogger("darts_paddle.search")


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


def build(args, spec):
    """Programs built once, a runner, initial values from the seed, the architect."""
    from .architect import Architect
    from .programs import SearchConfig, build_search_programs
    from .runner import Runner

    cfg = SearchConfig(C=args.init_channels, layers=args.layers, num_classes=spec.num_classes,
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


def current_genotype(runner):
    return genotype_from_alphas(runner.get("alphas_normal"), runner.get("alphas_reduce"))


def train_epoch(epoch, args, programs, architect, train_loader, valid_batches):
    """One epoch of search steps; returns mean training (loss, accuracy)."""
    eta = programs.lr_scheduler()
    steps = min(len(train_loader), args.max_steps or len(train_loader))
    losses, accs = [], []
    bar = progress(train_loader.epoch(epoch), steps, f"epoch {epoch + 1}/{args.epochs} search")
    for step, train_batch in enumerate(bar):
        if step >= steps:
            break
        start = time.time()
        architect.step(train_batch, next(valid_batches), eta)
        loss, acc = architect.weight_step(train_batch)
        losses.append(loss)
        accs.append(acc)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{100 * np.mean(accs):.1f}%",
                        step=f"{time.time() - start:.1f}s", refresh=False)
        if step % args.report_freq == 0:
            log.debug("train %03d loss %.4f acc %.2f%%", step, np.mean(losses),
                      100 * np.mean(accs))
    bar.close()
    return float(np.mean(losses)), float(np.mean(accs))


def evaluate(epoch, args, programs, runner, loader):
    """Validation accuracy with BN in inference mode (the original's infer())."""
    steps = min(len(loader), args.max_steps or len(loader))
    total, loss_sum, correct = 0, 0.0, 0.0
    bar = progress(loader.epoch(epoch), steps, f"epoch {epoch + 1}/{args.epochs} valid ")
    for step, (x, y) in enumerate(bar):
        if step >= steps:
            break
        loss, acc = runner.run(programs["evaluate"], x=x, y=y)
        total += len(y)
        loss_sum += float(loss) * len(y)
        correct += float(acc) * len(y)
    bar.close()
    return loss_sum / max(total, 1), correct / max(total, 1)


def run(args):
    """The whole search; returns the final genotype."""
    import_paddle()
    spec = data.get_spec(args.dataset)
    train_loader, valid_loader = make_loaders(args, spec)
    programs, runner, architect = build(args, spec)
    valid_batches = data.endless_batches(valid_loader)
    try:
        for epoch in range(args.epochs):
            log.info("epoch %d lr %e", epoch + 1, programs.lr_scheduler())
            log.info("genotype = %s", format_genotype(current_genotype(runner)))
            for name in ("alphas_normal", "alphas_reduce"):
                log.debug("softmax(%s) =\n%s", name,
                          np.array2string(softmax(runner.get(name)), precision=3))
            _, train_acc = train_epoch(epoch, args, programs, architect, train_loader,
                                       valid_batches)
            _, valid_acc = evaluate(epoch, args, programs, runner, valid_loader)
            log.info("epoch %d train_acc %.2f%% valid_acc %.2f%%", epoch + 1,
                     100 * train_acc, 100 * valid_acc)
            programs.lr_scheduler.step()
    finally:
        valid_batches.close()
    genotype = current_genotype(runner)
    path = os.path.join(args.save, "genotype.json")
    save_genotype_json(genotype, path)
    print(f"genotype = {format_genotype(genotype)}")
    print(f"saved to {path}: train with  python train.py --arch={path}")
    return genotype
