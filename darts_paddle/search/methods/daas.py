"""DAAS (--method daas), as its authors' code computes it (docs/methods.md):

  search space without 'none' (7 ops; W's 'none' column is 0)
  W = softmax(f(alpha)) x softmax(min(beta, 1)) x inputs for the nodes with 3, 4, 5 inputs,
      f(t) = 2t, cubed below -1 (weak ops fall away faster)
  loss + 0.1 w1 (w2 H(alpha) + 4 sum_nodes [0.2 (sum_{beta>0} min(beta, 1) - 2)^2
      + H(softmax(min(beta, 1)))]), H(alpha) summed over every edge of both cells,
      in every pass; w1, w2 ramped per epoch
  alpha's learning rate 0 for the first 7 epochs while beta trains
  genotype: each node keeps its 2 inputs of highest raw beta
"""

import math

import numpy as np

from ...genotype import CELLS, PRIMITIVES, softmax
from ...paddle_static import F, paddle
from ..arch_params import ArchParameters, split_per_node
from . import graph, registry
from .darts import Darts

BETA_NODES = (1, 2, 3)  # nodes with 3, 4, 5 inputs carry edge weights
BETA_INIT = {1: 0.666, 2: 0.5, 3: 0.4}
ALPHA_FROZEN = 7  # alpha's learning rate is 0 in epochs 1..7
LOSS_WEIGHT, NODE_WEIGHT, EDGES_WEIGHT = 0.1, 4.0, 0.2


def strengthen(alpha):
    """DAAS's f: x = 2 alpha; x^3 where x < -1, else x."""
    x = 2 * alpha
    return np.where(x < -1, x ** 3, x)


def loss_weights(epoch, epochs):
    """(w1, w2) at 0-based `epoch` of `epochs`: the authors' linear and log_ of
    dimension.py, whose 50 epochs become `epochs` here (equal at 50)."""
    e = epoch + 1
    w1 = (e - 1) / (epochs - 1) if epochs > 1 else 1.0
    if e <= ALPHA_FROZEN:
        return w1, 0.0
    base = epochs - ALPHA_FROZEN - 1
    return w1, math.log(e - ALPHA_FROZEN) / math.log(base) if base > 1 else 1.0


@registry.register_method
class Daas(Darts):
    name = "daas"
    summary = "DAAS (no 'none', edge weights beta, entropy and two-edge loss)"
    primitives = PRIMITIVES[1:]
    # each node keeps 2 of its inputs (betas and their loss): a cell where every edge is
    # kept (NAS-Bench-201's) has no such choice (docs/methods.md)
    spaces = ("darts",)
    alpha_frozen_epochs = ALPHA_FROZEN
    betas_label = "softmax(min(beta, 1))"

    def arch_parameters(self):
        """alphas [14, 7] ~ 1e-4 N(0, 1); betas [12] per cell, 0.666 / 0.5 / 0.4 (nodes
        with 3, 4, 5 inputs) + 1e-4 N(0, 1)."""
        start = np.concatenate([[BETA_INIT[n]] * (n + 2) for n in BETA_NODES])
        return (ArchParameters.alphas(self.layout, len(self.primitives), 1e-4)
                + ArchParameters.betas(self.layout, BETA_NODES, start, 1e-4))

    def epoch_feeds(self, epoch, epochs):
        return {"daas_w": np.array(loss_weights(epoch, epochs))}

    def feed_shapes(self, training):
        return {"daas_w": [2]} if training else {}

    def op_weights(self, arch, feeds):
        """Both cells at once, per node on a padded [nodes, 5] table of betas (graph.by_node).
        Without the loss weights (the inference program) no extra loss."""
        layout = self.layout
        alpha, beta = graph.stacked(arch, "alphas", layout), graph.stacked(arch, "betas", layout)
        dtype, n_edges = alpha.dtype, alpha.shape[0]
        x = 2 * alpha
        op_weights = F.softmax(paddle.where(x < -1, x * x * x, x), axis=-1)
        edge_share = F.softmax(graph.by_node(paddle.minimum(beta, paddle.ones_like(beta)),
                                             layout, BETA_NODES, -1e30), axis=1)
        inputs = graph.table([[n + 2.0] for n in BETA_NODES] * len(CELLS), dtype)
        edge_factor = graph.to_edges(edge_share * inputs, layout, BETA_NODES, 1.0)  # node 0: 1
        weights = paddle.concat([paddle.zeros([n_edges, 1], dtype), op_weights], axis=1) * edge_factor
        if "daas_w" not in feeds:
            return graph.per_cell(weights, layout), None
        w = feeds["daas_w"]
        h_alpha = paddle.sum(graph.entropy(op_weights))  # summed over edges (MinEntropyLoss.py)
        two_edges = paddle.sum(graph.by_node(paddle.clip(beta, min=0.0, max=1.0), layout,
                                             BETA_NODES, 0.0), axis=1) - 2
        nodes = paddle.sum(graph.const(EDGES_WEIGHT, dtype) * two_edges * two_edges
                           + graph.entropy(edge_share))
        term = graph.const(LOSS_WEIGHT, dtype) * w[0] * (w[1] * h_alpha + NODE_WEIGHT * nodes)
        return graph.per_cell(weights, layout), paddle.reshape(term, [])

    def op_weights_numpy(self, arch):
        return {c: softmax(strengthen(np.asarray(arch[f"alphas_{c}"], np.float64)))
                for c in CELLS}

    def betas_numpy(self, arch, normalised=True):
        """{cell: [the betas of nodes 1, 2, 3]}: softmax(min(beta, 1)), the edge weights
        the cells use, or the raw betas (normalised=False, what the genotype ranks: the
        softmax would tie every beta above 1)."""
        return {c: [softmax(np.minimum(p, 1.0)) if normalised else p
                    for p in split_per_node(arch[f"betas_{c}"], self.layout, BETA_NODES)]
                for c in CELLS}

