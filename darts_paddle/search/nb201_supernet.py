"""NAS-Bench-201's search network (--space nb201): its skeleton (nets/nb201.py) around
search cells, every cell weighting its ops with the one op-weight table W [6 edges, 5 ops]
of the "normal" cell type (one alpha shared by all cells, as NAS-Bench-201's own DARTS).

A search cell has 4 nodes: node 0 its input, node j = sum over i < j of the mixed op of
edge i -> j, node 3 its output; a mixed op is sum_k W[edge, k] op_k(x) over the 5 ops
none (zero), skip_connect (identity), nor_conv_1x1 and nor_conv_3x3 (ReLU, conv, BN),
avg_pool_3x3 (exclusive of the padding).  The BNs are not affine.  NAS-Bench-201's convs
there carry a bias, which the BN after them removes (it subtracts the channel's mean, the
batch's in training, the running one in inference), so they have none here.

Fused per source node, as the DARTS supernet: node i feeds E = 3 - i edges, whose convs
read the same ReLU(x), so each conv kind of all E edges is one conv with E*C output
channels (edge-major) and one BN over them, the op weights scaling the BN per channel (a
non-affine BN times a per-channel factor); identity and average pool do not depend on the
edge, so they run once per node and one [E, 2] x [2, C*h*w] product weights them for every
edge.  'none' adds nothing: it needs only its column in the softmax.
tests/test_nb201_search.py checks the network against a per-edge one written from the
definitions above (float64, loss and every gradient).

Partial channels (PC-DARTS, k > 1): the first C/k channels of a node go through the mixed
ops of its edges, the others bypass them and are shuffled in behind the ops' output
(supernet.with_bypass); W's last column is the edge's factor on the bypass.

Parameter names keep the edge structure: `cells.3.from_0.nor_conv_3x3` holds the 3x3
weights of the edges 0->1, 0->2, 0->3 of cell 3, edge e's rows e*C .. (e+1)*C - 1.
"""

import numpy as np

from ..nb201.arch import NODES, OPS
from ..nets.nb201 import Skeleton
from ..nets.ops import BatchNorm, conv
from ..nets.params import ParamStore, SharedVars, StatsStore
from ..paddle_static import F, paddle
from .supernet import total, with_bypass

COL = {op: i for i, op in enumerate(OPS)}
CONVS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}  # op -> kernel size
WEIGHTLESS = ("skip_connect", "avg_pool_3x3")  # the order of the shared product's rows
BYPASS = len(OPS)  # W's column of the bypass factor with partial channels
CELL = "normal"  # the one cell type: its alphas are alphas_normal


def targets(source):
    """The nodes a node feeds."""
    return list(range(source + 1, NODES))


def edge_index(source, node):
    """Row of W of the edge source -> node (the arch string's order, node by node)."""
    return node * (node - 1) // 2 + source


class EdgesFromNode:
    """The mixed ops of every edge leaving one node, fused (see module docstring)."""

    def __init__(self, params, stats, name, C, source, k=1):
        self.E, self.C, self.k = len(targets(source)), C, k
        self.C_op = C // k
        E, c = self.E, self.C_op
        self.convs = {op: params.declare(f"{name}.{op}", [E * c, c, size, size])
                      for op, size in CONVS.items()}
        self.bns = {op: BatchNorm(params, stats, f"{name}.{op}.bn", E * c, affine=False)
                    for op in CONVS}

    def _mixed(self, x, weights, ctx):
        """sum_k W[e, k] op_k(x) for every edge e: [B, E*C_op, h, w], edge-major."""
        E, c, (h, w) = self.E, self.C_op, x.shape[2:]
        relu = F.relu(x)
        convs = [self.bns[op](conv(relu, self.convs[op], padding=size // 2), ctx,
                              scale=weights.scales[op]) for op, size in CONVS.items()]
        pooled = F.avg_pool2d(x, 3, 1, 1, exclusive=True)
        shared = paddle.concat([paddle.reshape(x, [-1, 1, c * h * w]),
                                paddle.reshape(pooled, [-1, 1, c * h * w])], axis=1)
        weightless = paddle.reshape(paddle.matmul(weights.weightless, shared),
                                    [-1, E * c, h, w])
        return total([weightless, *convs])

    def __call__(self, x, weights, ctx):
        """The edge outputs, one [B, C, h, w] tensor per target node."""
        if self.k == 1:
            out = self._mixed(x, weights, ctx)
        else:
            ops_in, bypass = paddle.split(x, [self.C_op, self.C - self.C_op], axis=1)
            out = with_bypass(self._mixed(ops_in, weights, ctx), bypass, weights.bypass, self.k)
        return paddle.split(out, self.E, axis=1) if self.E > 1 else [out]


class NodeWeights:
    """W's rows of the edges leaving one node, cut to the shapes EdgesFromNode reads:
    weightless [E, 2] (skip_connect, avg_pool_3x3), scales {conv op: [E*C] per channel},
    bypass [E, 1, 1, 1] (partial channels)."""

    def __init__(self, op_weights, source, C, partial):
        E = len(targets(source))
        rows = paddle.gather(op_weights, paddle.assign(
            np.array([edge_index(source, j) for j in targets(source)], np.int64)))
        self.weightless = paddle.concat([rows[:, COL[op]:COL[op] + 1] for op in WEIGHTLESS],
                                        axis=1)
        self.scales = {op: paddle.reshape(paddle.expand(rows[:, COL[op]:COL[op] + 1], [E, C]),
                                          [E * C]) for op in CONVS}
        self.bypass = paddle.reshape(rows[:, BYPASS], [E, 1, 1, 1]) if partial else None


class SearchCell:
    def __init__(self, params, stats, name, C, k=1):
        self.C_op = C // k
        self.edges = [EdgesFromNode(params, stats, f"{name}.from_{i}", C, i, k)
                      for i in range(NODES - 1)]

    def __call__(self, x, ctx, weights):
        """weights(C_op) -> [NodeWeights of the edges leaving node i] for i = 0, 1, 2."""
        per_node = weights(self.C_op)
        inputs = {j: [] for j in range(1, NODES)}
        state = x
        for i, (edges, w) in enumerate(zip(self.edges, per_node)):
            if i:
                state = total(inputs[i])
            for j, out in zip(targets(i), edges(state, w, ctx)):
                inputs[j].append(out)
        return total(inputs[NODES - 1])


class NB201SearchNetwork:
    """NAS-Bench-201's supernet: C channels in the first stage, N cells per stage.
    k > 1: partial channel connections (PC-DARTS); C must divide by k."""

    def __init__(self, C=16, num_classes=10, N=5, in_channels=3, k=1):
        if C % k:
            raise ValueError(f"{C} channels do not split into {k} parts")
        self.C, self.num_classes, self.N, self.k = C, num_classes, N, k
        self.params = ParamStore("weights")
        self.stats = StatsStore("bn")
        self.skeleton = Skeleton(self.params, self.stats, C, N, num_classes, in_channels,
                                 lambda name, width: SearchCell(self.params, self.stats, name,
                                                                width, k))

    def __call__(self, x, op_weights, ctx):
        """Logits; op_weights: {"normal": W [6, 5]} (with partial channels [6, 6]: the
        bypass column last)."""
        W = op_weights[CELL]
        cache = {}  # op width -> the per-node weights, shared by the cells of that width

        def weights(C):
            if C not in cache:
                cache[C] = [NodeWeights(W, i, C, self.k > 1) for i in range(NODES - 1)]
            return cache[C]

        return self.skeleton(x, ctx, weights)

    def materialize(self, shared: SharedVars):
        """Bind weights and BN statistics in the program being built; returns the banks."""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        return banks
