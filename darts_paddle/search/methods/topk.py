"""The soft top-k of DADARTS, as the authors' TopK (functional.py): TopK(x, k, t) =
sigmoid((x + tau) t) per row, tau making the row sum to k.  The host finds tau (their
bisection, in float64) and feeds it; the program computes the factors and attaches their
gradient (the authors' backward, or the exact one)."""

import functools
from dataclasses import dataclass

import numpy as np

from ...genotype import CELLS, PRIMITIVES, STEPS, num_edges
from ...paddle_static import F, paddle
from . import graph

# The authors' threshold search (_find_ts): tau in [-max x - 10, -min x + 10], 64 halvings.
BISECTION_STEPS, BRACKET = 64, 10.0


@dataclass(frozen=True)
class TopkLayout:
    """The rows of one soft top-k over both cells' softmax weights stacked [2 * edges, 8] and
    flattened (entry e * 8 + k; one zero slot appended for padding):
    an edge row per edge (k = 1 over its 8 ops), then a node row per node of each cell (k = 2
    over its edges x 8 ops flattened), all padded to the widest node.
    index [rows, width]: the entries of each row; k [rows, 1]; valid [rows, width];
    edge_at, node_at [2 * edges * 8]: where an entry's edge and node factors are in the
    rows flattened."""
    index: np.ndarray
    k: np.ndarray
    valid: np.ndarray
    edge_at: np.ndarray
    node_at: np.ndarray


@functools.lru_cache(maxsize=None)
def layout(steps=STEPS):
    n_ops, total = len(PRIMITIVES), len(CELLS) * num_edges(steps)
    width = (steps + 1) * n_ops  # the last node's inputs x ops
    rows = [range(e * n_ops, (e + 1) * n_ops) for e in range(total)]
    first = np.cumsum([0] + [n + 2 for n in range(steps)] * len(CELLS))[:-1]
    rows += [range(f * n_ops, (f + node + 2) * n_ops)
             for f, node in zip(first, list(range(steps)) * len(CELLS))]
    index = np.full((len(rows), width), total * n_ops)
    for i, r in enumerate(rows):
        index[i, :len(r)] = r
    valid = (index < total * n_ops).astype(np.float64)
    place = np.arange(index.size).reshape(index.shape)  # position in the rows flattened
    edge_at, node_at = place[:total, :n_ops].reshape(-1), np.empty(total * n_ops, np.int64)
    node_at[index[total:][valid[total:] > 0]] = place[total:][valid[total:] > 0]
    k = np.array([[1.0]] * total + [[2.0]] * (len(rows) - total))
    return TopkLayout(index, k, valid, edge_at, node_at)


def rows_numpy(soft):
    """(x, k, valid) of the soft top-k rows (`layout`) from both cells' softmax weights
    stacked [2 * edges, 8]: the host's copy of what `factor` ranks."""
    rows = layout()
    return np.append(soft.reshape(-1), 0.0)[rows.index], rows.k, rows.valid


def thresholds(x, k, t, valid):
    """tau per row such that sum_i valid_i sigmoid((x_i + tau) t) = k: the authors' bisection
    (_find_ts), in float64.  At t = 0 no tau solves it and every factor is 0.5, as theirs.
    x, valid: [G, n]; k: [G, 1] -> [G, 1]."""
    from scipy.special import expit

    x, valid = np.asarray(x, np.float64), np.asarray(valid) > 0
    lo = -np.where(valid, x, -np.inf).max(axis=1, keepdims=True) - BRACKET
    hi = -np.where(valid, x, np.inf).min(axis=1, keepdims=True) + BRACKET
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        below = (expit((x + mid) * t) * valid).sum(axis=1, keepdims=True) < k
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def soft_topk(x, tau, t, valid, exact=False):
    """TopK(x, k, t) = sigmoid((x + tau) t) per row, the fed tau making each row sum to k.
    x, valid: [G, n] (valid 0 for padding); tau: [G, 1]; t: [1].

    Its gradient is the authors' TopK.backward: J = diag(v) - v v^T / sum(v),
    v = sigmoid'((x + tau) t), which leaves out the chain rule's factor t; exact=True keeps
    it (t J, the implicit function's gradient).  Attached as v (r - stop_gradient(r)) with
    r = x - sum(v x) / sum(v): zero in value, J in the backward pass.
    """
    p = F.sigmoid((x.detach() + tau) * t) * valid
    v = p * (1 - p)  # 0 on the padding
    s = paddle.maximum(paddle.sum(v, axis=1, keepdim=True), paddle.full([1], 1e-30, x.dtype))
    r = x - paddle.sum(v * x, axis=1, keepdim=True) / s
    jvp = v * (r - r.detach())
    return p + (t * jvp if exact else jvp)


def factor(soft, t, tau, exact):
    """TopK_edge(k=1) x TopK_node(k=2) of both cells' softmax weights stacked [2 * edges, 8],
    as a factor of the same shape: all rows (`layout`) in one soft top-k."""
    rows = layout()
    flat = paddle.concat([paddle.reshape(soft, [-1]), paddle.zeros([1], soft.dtype)])
    x = paddle.reshape(paddle.gather(flat, graph.index(rows.index)), list(rows.index.shape))
    mask = paddle.reshape(soft_topk(x, tau, t, graph.table(rows.valid, soft.dtype), exact), [-1])
    edge = paddle.gather(mask, graph.index(rows.edge_at))
    node = paddle.gather(mask, graph.index(rows.node_at))
    return paddle.reshape(edge * node, soft.shape)
