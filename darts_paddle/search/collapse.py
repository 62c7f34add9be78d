"""Seeing collapse coming, and stopping it (docs/collapse.md).

A DARTS search tends to end in cells full of parameter-free ops, skip_connect above all,
that train badly (Zela et al., "Understanding and Robustifying DARTS", ICLR 2020; Chen et
al., P-DARTS, ICCV 2019).  After every epoch the search measures:

  lambda_max      the largest eigenvalue of the Hessian of the architect's validation loss
                  with respect to the alphas (Zela et al.), by the Lanczos iteration on
                  exact Hessian-vector products (the search's hessian program: double
                  back-propagation), the mean over a fixed set of validation batches, plus
                  the alphas' weight decay on the diagonal as RobustDARTS adds it;
  skip_connect    the number of skip_connect ops in each derived cell;
  parameter_free  the share of parameter-free ops (none, pools, skip);
  alpha_entropy   the entropy of each edge's op weights, averaged over a cell's edges;

and `darts_es` is the early-stop rule of Zela et al. on the lambda_max of the epochs.  The
cap on skip_connect ops (P-DARTS) belongs to the genotype's derivation (genotype.py).

The products only read the search's state: nothing is written, the BN statistics included.
With the data-parallel programs the products are means over the processes, so every
process computes the same estimate.
"""

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from .methods import ARCH
from .programs import hessian_feed

SKIP = "skip_connect"
# 'none' is never derived in the DARTS space, and is in NAS-Bench-201's
PARAMETER_FREE = ("none", "max_pool_3x3", "avg_pool_3x3", SKIP)
# the Lanczos iteration ends once its error bound is at most this share of its estimate
TOLERANCE = 1e-3


def fixed_batches(loader, count, size=None):
    """The first `count` batches of the loader's pass 0, whose order and augmentation the
    seed fixes: the same validation batches after every epoch, and after a resume; cut
    into batches of at most `size` images (each then has its own BN statistics)."""
    with contextlib.closing(loader.epoch(0)) as batches:
        return cut([next(batches) for _ in range(count)], size)


def cut(batches, size=None):
    """Each (x, y) of `batches` as consecutive batches of at most `size` images."""
    parts = []
    for x, y in batches:
        step = size or len(y)
        parts += [(x[i:i + step], y[i:i + step]) for i in range(0, len(y), step)]
    return parts


class AlphaHessian:
    """u -> H u + weight_decay u (u flat over the alphas), H the Hessian with respect to the
    alphas of the loss the architect follows (its validation pass, `ARCH`: DAAS's and
    DADARTS's terms included) at the current weights, averaged over `batches`; DAAS's and
    PC-DARTS's betas are held where they are.  One run of the hessian program per batch."""

    def __init__(self, architect, batches, weight_decay=0.0):
        self.runner, programs = architect.runner, architect.programs
        self.program = programs.hessian()
        self.batches, self.weight_decay = batches, weight_decay
        self.feeds = architect.feeds(ARCH)
        self.names = programs.arch.group("alphas")
        self.shapes = [self.runner.get(n).shape for n in self.names]
        self.sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.size = sum(self.sizes)
        self.passes = 0

    def __call__(self, u):
        parts = np.split(np.asarray(u, np.float64), np.cumsum(self.sizes)[:-1])
        directions = {hessian_feed(n): p.reshape(s)
                      for n, p, s in zip(self.names, parts, self.shapes)}
        total = 0.0
        for x, y in self.batches:
            _, *products = self.runner.run(self.program, x=x, y=y, **directions, **self.feeds)
            total = total + np.concatenate([p.ravel() for p in products]).astype(np.float64)
        self.passes += len(self.batches)
        return total / len(self.batches) + self.weight_decay * u


@dataclass(frozen=True)
class Ritz:
    value: float  # the largest Ritz value: lambda_max from below
    bound: float  # some eigenvalue lies within +-bound of it (the residual norm)
    steps: int  # products taken


def lanczos(product, start, iterations, tolerance=TOLERANCE):
    """The largest eigenvalue of the symmetric operator `product`: the largest eigenvalue
    (Ritz value) theta of the tridiagonal matrix T the Lanczos iteration from `start`
    builds, after `iterations` products, or fewer once its error bound is at most
    `tolerance` |theta| or the Krylov space is whole.

    The bound is the residual norm ||H y - theta y|| = beta |s_last| of theta's Ritz vector
    y = Q s: for a symmetric H some eigenvalue lies within it of theta, and theta never
    exceeds lambda_max (Cauchy interlacing).  Not the plain power iteration: it
    finds the eigenvalue largest in magnitude, and early in a search the most negative
    eigenvalue is about as large as the most positive one (docs/collapse.md).  Every new
    vector is orthogonalised against all the earlier ones (twice), which keeps the bound
    honest and costs little for a few dozen vectors."""
    basis = [start / np.linalg.norm(start)]
    diagonal, off_diagonal = [], []
    for done in range(1, iterations + 1):
        image = product(basis[-1])
        diagonal.append(float(basis[-1] @ image))
        q = np.array(basis)
        rest = image - q.T @ (q @ image)
        rest = rest - q.T @ (q @ rest)
        norm = np.linalg.norm(rest)
        t = np.diag(diagonal) + np.diag(off_diagonal, 1) + np.diag(off_diagonal, -1)
        values, vectors = np.linalg.eigh(t)
        whole = norm <= 1e-10 * max(np.linalg.norm(image), 1e-300)
        value, bound = float(values[-1]), 0.0 if whole else float(norm * abs(vectors[-1, -1]))
        if whole or bound <= tolerance * abs(value):
            break
        off_diagonal.append(norm)
        basis.append(rest / norm)
    return Ritz(value, bound, done)


@dataclass(frozen=True)
class Estimate:
    value: float  # lambda_max
    bound: float  # an eigenvalue lies within +-bound of it (lanczos)
    iterations: int  # Lanczos steps run
    passes: int  # runs of the hessian program they took
    seconds: float


def lambda_max(architect, batches, iterations, seed, weight_decay=0.0):
    """lambda_max of the Hessian of the architect's validation loss on `batches` with
    respect to the alphas, plus `weight_decay` (`AlphaHessian`), by at most `iterations`
    Lanczos steps from a random start fixed by `seed`."""
    tic = time.time()
    hessian = AlphaHessian(architect, batches, weight_decay)
    start = np.random.default_rng(seed).standard_normal(hessian.size)
    ritz = lanczos(hessian, start, iterations)
    return Estimate(ritz.value, ritz.bound, ritz.steps, hessian.passes, time.time() - tic)


def cell_statistics(cell_ops, op_weights):
    """The derived cells' {"skip_connect": {cell: count}, "parameter_free": {cell: share of
    its ops}} and {"alpha_entropy": {cell: mean over its edges of the entropy (nats) of the
    edge's op weights}} from their ops {cell: [op, ...]} and normalised `op_weights`
    {cell: [edges, ops]}."""
    stats = {"skip_connect": {}, "parameter_free": {}, "alpha_entropy": {}}
    for cell, ops in cell_ops.items():
        stats["skip_connect"][cell] = ops.count(SKIP)
        stats["parameter_free"][cell] = sum(op in PARAMETER_FREE for op in ops) / len(ops)
        p = np.asarray(op_weights[cell], np.float64)
        entropy = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)  # 0 log 0 = 0
        stats["alpha_entropy"][cell] = float(entropy.mean())
    return stats


def darts_es(eigenvalues, window, threshold, start):
    """DARTS-ES after the last of `eigenvalues` (one per epoch from epoch 1; None where not
    estimated).  With e epochs done and k = `window`, the ratio of the mean lambda_max over
    epochs e-k+1..e to that over epochs e-2k+1..e-k; the rule stops the search when the
    ratio exceeds `threshold` and keeps the architecture of epoch e-k, the last of the
    earlier window, if that epoch is `start` or later.  As the authors' code
    (utils.EVLocalAvg.early_stop: current / previous local average > factor).

    -> None while the ratio is undefined (fewer than 2k estimates, or a non-positive mean
    of the earlier window), else {"epoch": e, "kept_epoch": e-k, "ratio", "stop": bool}.
    """
    e, k = len(eigenvalues), window
    if e < 2 * k:
        return None
    earlier, later = eigenvalues[e - 2 * k:e - k], eigenvalues[e - k:]
    if any(v is None for v in earlier + later) or np.mean(earlier) <= 0:
        return None
    ratio = float(np.mean(later) / np.mean(earlier))
    return {"epoch": e, "kept_epoch": e - k, "ratio": ratio,
            "stop": ratio > threshold and e - k >= start}
