"""Seeing collapse coming, and stopping it (docs/collapse.md).

A DARTS search tends to end in cells full of parameter-free ops, skip_connect above all,
that train badly (Zela et al., "Understanding and Robustifying DARTS", ICLR 2020; Chen et
al., P-DARTS, ICCV 2019).  After every epoch the search measures:

  lambda_max      the largest eigenvalue of the Hessian of the architect's validation loss
                  with respect to the alphas (Zela et al.), by the Lanczos iteration on
                  Hessian-vector products that are central differences of the gradient,
                  H u = (g(alpha + eps u) - g(alpha - eps u)) / (2 eps),  |u| = 1,
                  g the mean alpha gradient over a fixed set of validation batches;
  skip_connect    the number of skip_connect ops in each derived cell;
  parameter_free  the share of parameter-free ops (pools, skip; 'none' is never derived);
  alpha_entropy   the entropy of each edge's op weights, averaged over a cell's edges;

and `darts_es` is the early-stop rule of Zela et al. on the lambda_max of the epochs.  The
cap on skip_connect ops (P-DARTS) belongs to the genotype's derivation (genotype.py).

Plain numpy around runs of the search's gradient program: no program of its own.  With the
data-parallel programs the gradients are already means over the processes, so every
process computes the same estimate.
"""

import contextlib
import time
from dataclasses import dataclass

import numpy as np

from ..genotype import CELLS
from .architect import OFF
from .methods import ARCH

SKIP = "skip_connect"
PARAMETER_FREE = ("none", "max_pool_3x3", "avg_pool_3x3", SKIP)
# the Lanczos iteration ends early once its estimate moves by at most this, relatively:
# above the finite differences' float32 noise, well below what DARTS-ES compares
TOLERANCE = 1e-3


def fixed_batches(loader, count):
    """The first `count` batches of the loader's pass 0, whose order and augmentation the
    seed fixes: the same validation batches after every epoch, and after a resume."""
    with contextlib.closing(loader.epoch(0)) as batches:
        return [next(batches) for _ in range(count)]


class AlphaHessian:
    """u -> H u, H the Hessian with respect to the alphas of the loss the architect follows
    (its validation pass, `ARCH`: DAAS's and DADARTS's terms included) at the current
    weights, averaged over `batches`.  DAAS's and PC-DARTS's betas stay where they are.

    Only the alphas move, and `restore` sets them back from a saved copy; the weights are
    never written and the passes leave the BN statistics alone (bn_update = 0).  The step
    eps is the architect's finite-difference radius (config.hessian_r, 0.01) over |u|.
    """

    def __init__(self, architect, batches):
        self.architect, self.batches = architect, batches
        self.runner, programs = architect.runner, architect.p
        self.names = programs.arch.group("alphas")
        self.gradient_names = [programs.gradient_name(n) for n in self.names]
        self.saved = {n: self.runner.get(n) for n in self.names}
        self.at = np.concatenate([self.saved[n].ravel() for n in self.names]).astype(np.float64)
        self.eps = programs.config.hessian_r
        self.passes = 0

    def __call__(self, u):
        norm = np.linalg.norm(u)
        step = self.eps / norm * u
        plus, minus = self.gradient(self.at + step), self.gradient(self.at - step)
        return (plus - minus) * norm / (2 * self.eps)

    def gradient(self, alphas):
        """The mean over the batches of dL/dalpha at `alphas` (flat), the weights as they are."""
        values = np.split(alphas, np.cumsum([self.saved[n].size for n in self.names])[:-1])
        self._set({n: v.reshape(self.saved[n].shape) for n, v in zip(self.names, values)})
        total = 0.0
        for batch in self.batches:
            self.architect.gradient(batch, OFF, ARCH)
            total = total + np.concatenate([self.runner.get(g).ravel()
                                            for g in self.gradient_names])
        self.passes += len(self.batches)
        return total / len(self.batches)

    def restore(self):
        self._set(self.saved)

    def _set(self, alphas):
        self.runner.set_all(alphas)
        self.architect.refresh()  # DADARTS's fed values follow the alphas


def lanczos(product, start, iterations, tolerance=TOLERANCE):
    """(lambda_max, products): the largest eigenvalue of the symmetric operator `product`,
    as the largest eigenvalue (Ritz value) of the tridiagonal matrix T the Lanczos iteration
    from `start` builds, after `iterations` products, or fewer once it moves by at most
    `tolerance` of itself or the Krylov space is whole.

    Not the plain power iteration: it finds the eigenvalue largest in magnitude, and early
    in a search, where the Hessian's most negative eigenvalue is about as large as its most
    positive one, it swings between the two (measured: docs/collapse.md).  Lanczos gets
    lambda_max from the same products, and faster.  Every new vector is orthogonalised
    against all the earlier ones (twice), which a few dozen vectors make cheap."""
    basis = [start / np.linalg.norm(start)]
    diagonal, off_diagonal, value = [], [], None
    for done in range(1, iterations + 1):
        image = product(basis[-1])
        diagonal.append(float(basis[-1] @ image))
        t = np.diag(diagonal) + np.diag(off_diagonal, 1) + np.diag(off_diagonal, -1)
        previous, value = value, float(np.linalg.eigvalsh(t)[-1])
        q = np.array(basis)
        rest = image - q.T @ (q @ image)
        rest = rest - q.T @ (q @ rest)
        norm = np.linalg.norm(rest)
        if norm <= 1e-10 * np.linalg.norm(image) or (
                previous is not None and abs(value - previous) <= tolerance * abs(value)):
            break
        off_diagonal.append(norm)
        basis.append(rest / norm)
    return value, done


@dataclass(frozen=True)
class Estimate:
    value: float  # lambda_max
    iterations: int  # Lanczos steps run
    passes: int  # gradient passes they took
    seconds: float


def lambda_max(architect, batches, iterations, seed):
    """lambda_max of the Hessian of the architect's validation loss on `batches` with
    respect to the alphas (`AlphaHessian`), by at most `iterations` Lanczos steps from a
    random start fixed by `seed`; the alphas end exactly where they were."""
    tic = time.time()
    hessian = AlphaHessian(architect, batches)
    start = np.random.default_rng(seed).standard_normal(hessian.at.size)
    try:
        value, done = lanczos(hessian, start, iterations)
    finally:
        hessian.restore()
    return Estimate(value, done, hessian.passes, time.time() - tic)


def cell_statistics(genotype, op_weights):
    """The derived cells' {"skip_connect": {cell: count}, "parameter_free": {cell: share of
    its ops}} and {"alpha_entropy": {cell: mean over its edges of the entropy (nats) of the
    edge's op weights}} from normalised `op_weights` {cell: [edges, ops]}."""
    stats = {"skip_connect": {}, "parameter_free": {}, "alpha_entropy": {}}
    for cell in CELLS:
        pairs = getattr(genotype, cell)
        stats["skip_connect"][cell] = skip_count(pairs)
        stats["parameter_free"][cell] = sum(op in PARAMETER_FREE for op, _ in pairs) / len(pairs)
        p = np.asarray(op_weights[cell], np.float64)
        entropy = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)  # 0 log 0 = 0
        stats["alpha_entropy"][cell] = float(entropy.mean())
    return stats


def skip_count(pairs):
    """The skip_connect ops among a cell's (op, input) pairs."""
    return sum(op == SKIP for op, _ in pairs)


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
