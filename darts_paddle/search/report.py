"""What an epoch of the search reports: the architecture the alphas say now (genotype, op
weights, DAAS's and PC-DARTS's edge weights), its lines in the log, its record in
history.json with the signs of collapse (collapse.py), and DARTS-ES's decision on them."""

import logging
from collections import Counter

import numpy as np

from ..run.logs import FILE_ONLY
from . import collapse

log = logging.getLogger("darts_paddle.search")


def architecture(space, programs, runner, max_skip=None):
    """What the architecture parameters say now in `space` (spaces/): {"genotype" (with at
    most `max_skip` skip_connect ops in the normal cell), "op_weights": {cell: array},
    "betas": {cell: [array per node]} (DAAS, PC-DARTS) with their "betas_label",
    "primitives"}; with `max_skip` also "skip_connect_uncapped": the normal cell's
    skip_connect ops without the cap."""
    method, arch = programs.config.method, programs.arch.read(runner)
    now = {"genotype": space.derive(method, arch, max_skip),
           "op_weights": method.op_weights_numpy(arch), "betas": method.betas_numpy(arch),
           "betas_label": method.betas_label, "primitives": list(method.primitives)}
    if max_skip is not None:
        uncapped = space.cell_ops(space.derive(method, arch))["normal"]
        now["skip_connect_uncapped"] = uncapped.count(collapse.SKIP)
    return now


def log_architecture(space, now):
    """The genotype and a line per cell (its ops, the strongest op weight of its edges) on
    the console and in log.txt; the op weights (and the edge weights) in full in log.txt
    only."""
    log.info("genotype = %s", space.genotype_text(now["genotype"]))
    for cell, ops in space.cell_ops(now["genotype"]).items():
        weights = now["op_weights"][cell]
        strongest = weights.max(axis=1)
        log.info("%s cell: %s; strongest op weight per edge %.3f-%.3f (uniform %.3f)", cell,
                 ", ".join(f"{op} x{n}" for op, n in Counter(ops).most_common()),
                 strongest.min(), strongest.max(), 1 / weights.shape[1])
        log.info("op weights (%s cell; columns %s) =\n%s", cell, ", ".join(now["primitives"]),
                 np.array2string(weights, precision=3), extra=FILE_ONLY)
    for cell, nodes in now["betas"].items():
        log.info("%s (%s cell, per node with them) = %s", now["betas_label"], cell,
                 "  ".join(np.array2string(b, precision=3) for b in nodes), extra=FILE_ONLY)


def epoch_record(space, epoch, now, train, valid, eigenvalue=None):
    """One history.json record: accuracies, genotype, op weights per edge (the columns
    are `primitives`: DAAS has no 'none'), the edge weights per node of DAAS
    (softmax(min(beta, 1)), nodes 1-3) and PC-DARTS (softmax(beta), every node), the signs
    of collapse: lambda_max (None when not estimated), the derived cells' skip_connect
    counts and parameter-free shares, the op weights' entropy (collapse.py); and where the
    space has a table (NAS-Bench-201), the derived cell's scores in it ("nb201": {data
    set: mean accuracy %})."""
    record = {"epoch": epoch + 1, "train_loss": train[0], "train_acc": train[1],
              "valid_loss": valid[0], "valid_acc": valid[1],
              "genotype": space.genotype_to_json(now["genotype"]), "primitives": now["primitives"]}
    for cell, weights in now["op_weights"].items():
        record[f"softmax_alphas_{cell}"] = weights.round(6).tolist()
    for cell, nodes in now["betas"].items():
        record[f"softmax_betas_{cell}"] = [b.round(6).tolist() for b in nodes]
    record["hessian_eigenvalue"] = eigenvalue
    record.update(collapse.cell_statistics(space.cell_ops(now["genotype"]), now["op_weights"]))
    if "skip_connect_uncapped" in now:
        record["skip_connect_uncapped"] = {"normal": now["skip_connect_uncapped"]}
    scores = space.scores(now["genotype"])
    if scores is not None:
        record[space.NAME] = scores
    return record


def log_collapse(record):
    """The signs of collapse in an epoch's record, but lambda_max (logged with its cost),
    and a table's scores of the derived cell."""
    before = record.get("skip_connect_uncapped")
    cells = []
    for cell, skips in record["skip_connect"].items():
        capped = f" ({before[cell]} before --max_skip)" if before and cell in before else ""
        cells.append(f"{cell}: skip_connect {skips}{capped}, parameter-free ops "
                     f"{100 * record['parameter_free'][cell]:.0f}%, entropy of the op weights "
                     f"per edge {record['alpha_entropy'][cell]:.3f}")
    log.info("epoch %d %s", record["epoch"], "; ".join(cells))
    if "nb201" in record:
        log.info("epoch %d NAS-Bench-201 validation accuracy of the cell (mean over the "
                 "table's seeds): %s", record["epoch"],
                 ", ".join(f"{d} {v:.2f}%" for d, v in record["nb201"].items()))


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
