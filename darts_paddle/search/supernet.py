"""The DARTS search network (supernet) with its mixed ops fused per source state.

The paper's cell has 14 edges; each edge is a mixed op sum_k softmax(alpha_edge)[k] op_k(x)
over the 8 PRIMITIVES.  Written edge by edge that is 14 x 8 ops per cell and a graph Paddle
needs minutes to build.  Here all edges leaving one state are computed together, which is
numerically the same thing (tests/test_search_core.py checks it against the per-edge
network of tests/search_reference.py, loss and alpha gradients):

- the weightless ops (max pool + BN, avg pool + BN, identity) depend only on the state, so
  they run once per state.  A non-affine BN in training mode normalises with the batch
  statistics, so one BN serves every edge;
- each conv primitive (sep 3x3/5x5, dil 3x3/5x5) of the E edges leaving a state runs once,
  as grouped convolutions over the input tiled E times (depthwise: groups = E*C; 1x1:
  groups = E), with one BN over the E*C channels (per-channel statistics, as E BNs);
- the op weights softmax(alpha) scale the last BN of each weighted op (a non-affine BN
  times a per-channel factor is a BN with that scale): no extra pass over the activations;
- 'none' contributes zero: it needs no kernel, only its column in the softmax.

Parameter names keep the edge structure: `cells.3.from_1.sep_conv_3x3.dw_1` holds the
first depthwise weights of the sep_conv_3x3 ops of all edges leaving state 1 of cell 3,
edge-major (edge e owns rows e*C .. (e+1)*C - 1).
"""

import functools
from dataclasses import dataclass

import numpy as np

from ..genotype import CELLS, MULTIPLIER, PRIMITIVES, STEPS, reduction_layers
from ..nets.ops import BatchNorm, Context, FactorizedReduce, ReLUConvBN, conv
from ..paddle_static import F, paddle
from ..nets.params import ParamStore, SharedVars, StatsStore

CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
KERNEL = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
DILATION = {"sep_conv_3x3": 1, "sep_conv_5x5": 1, "dil_conv_3x3": 2, "dil_conv_5x5": 2}
ALPHAS = tuple(f"alphas_{c}" for c in CELLS)
COL = {name: i for i, name in enumerate(PRIMITIVES)}


def total(tensors):
    """Sum by chained adds: add_n's backward costs two extra ops per input in Paddle."""
    return functools.reduce(lambda a, b: a + b, tensors)


def edge_index(source, node):
    """Row of alpha for the edge source -> node (edges are numbered node by node)."""
    return node * (node + 3) // 2 + source


def targets(source, steps=STEPS):
    """Nodes fed by a state: node i reads states 0 .. i+1."""
    return list(range(max(0, source - 1), steps))


class FusedConvOp:
    """One conv primitive (sep or dil conv) for the E edges leaving a state.

    Input: ReLU(x) tiled E times.  Each op has its own convs and BNs: no concatenation of
    the large activations (a copy Paddle would keep alive for the backward pass).
    """

    def __init__(self, params, stats, name, op, C, E):
        k, self.dilation, self.E, self.C = KERNEL[op], DILATION[op], E, C
        self.padding = self.dilation * (k // 2)
        self.dw_1 = params.declare(name + ".dw_1", [E * C, 1, k, k])
        self.pw_1 = params.declare(name + ".pw_1", [E * C, C, 1, 1])
        self.bn_1 = BatchNorm(params, stats, name + ".bn_1", E * C, affine=False)
        self.separable = op.startswith("sep")
        if self.separable:  # sep convs repeat ReLU, depthwise, 1x1, BN at stride 1
            self.dw_2 = params.declare(name + ".dw_2", [E * C, 1, k, k])
            self.pw_2 = params.declare(name + ".pw_2", [E * C, C, 1, 1])
            self.bn_2 = BatchNorm(params, stats, name + ".bn_2", E * C, affine=False)

    def _dw_pw(self, x, dw, pw, stride):
        h = conv(x, dw, stride, self.padding, self.dilation, groups=self.E * self.C)
        return conv(h, pw, groups=self.E)

    def __call__(self, tiled, stride, scale, ctx):
        """w[e] * op_e(x) for every edge e; `scale` [E*C] carries the op weights w."""
        h = self._dw_pw(tiled, self.dw_1, self.pw_1, stride)
        if not self.separable:
            return self.bn_1(h, ctx, scale=scale)
        h = F.relu(self.bn_1(h, ctx))
        return self.bn_2(self._dw_pw(h, self.dw_2, self.pw_2, 1), ctx, scale=scale)


class EdgesFromState:
    """The mixed ops of every edge leaving one state, fused (see module docstring)."""
    def __init__(self, params, stats, name, C, nodes, stride):
        E = len(nodes)
        self.C, self.E, self.nodes, self.stride = C, E, nodes, stride
        self.pool_bn = BatchNorm(params, stats, name + ".pool_bn", 2 * C, affine=False)
        self.convs = {op: FusedConvOp(params, stats, f"{name}.{op}", op, C, E) for op in CONV_OPS}
        self.reduce = (FactorizedReduce(params, stats, name + ".skip_connect", C, C,
                                        affine=False, copies=E) if stride == 2 else None)

    def _conv_ops(self, x, weights, ctx):
        """sum over sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5 of w * op(x).

        All edges at once: the input is tiled E times (edge-major channels), the depthwise
        convs use groups = E*C and the 1x1 convs groups = E.  Returns [B, E*C, h, w].
        """
        tiled = paddle.tile(F.relu(x), [1, self.E, 1, 1])
        return total([self.convs[op](tiled, self.stride, weights.conv[op], ctx)
                      for op in CONV_OPS])

    def __call__(self, x, weights, ctx):
        """Edge outputs sum_k w[e, k] op_k(x), one [B, C, h, w] tensor per target node.

        weights: the `EdgeWeights` of this state's edges (softmax(alpha) rows, pre-cut).
        """
        E, C = self.E, self.C
        pools = [F.max_pool2d(x, 3, self.stride, 1),
                 F.avg_pool2d(x, 3, self.stride, 1, exclusive=True)]
        pooled = self.pool_bn(paddle.concat(pools, axis=1), ctx)
        h, w = pooled.shape[2], pooled.shape[3]
        # weightless ops shared by all edges: one [E, k] x [k, C*h*w] product per sample
        shared = [paddle.reshape(pooled, [-1, 2, C * h * w])]
        if self.reduce is None:
            shared.append(paddle.reshape(x, [-1, 1, C * h * w]))
        mixed = [paddle.reshape(paddle.matmul(weights.shared, paddle.concat(shared, axis=1)),
                                [-1, E * C, h, w]),
                 self._conv_ops(x, weights, ctx)]
        if self.reduce is not None:  # stride-2 skip_connect: one FactorizedReduce per edge
            mixed.append(self.reduce(x, ctx, scale=weights.skip_scale))
        mixed = total(mixed)
        return paddle.split(mixed, E, axis=1) if E > 1 else [mixed]


@dataclass
class EdgeWeights:
    """softmax(alpha) rows of the edges leaving one state, cut to the shapes used above."""
    shared: object  # [E, 2 or 3]: max pool, avg pool (, identity when stride 1)
    conv: dict  # op name -> [E*C]: that op's weight per edge, repeated per channel
    skip_scale: object = None  # [E*C]: stride-2 skip_connect (FactorizedReduce)


def _per_channel(column, C):
    """[E] op weights -> [E*C] BN scale (edge-major, each weight repeated per channel)."""
    e_by_1 = paddle.unsqueeze(column, -1)
    return paddle.reshape(paddle.expand(e_by_1, [e_by_1.shape[0], C]), [-1])


def edge_weights(op_weights, reduction, C):
    """Per source state, the EdgeWeights of its edges; once per (cell type, channels).

    op_weights [edges, 8]: the factor of every op on every edge, softmax(alpha) in DARTS
    (methods.py computes it for each search method)."""
    result = []
    for j in range(STEPS + 1):
        index = paddle.assign(np.array([edge_index(j, i) for i in targets(j)], np.int64))
        rows = paddle.gather(op_weights, index)
        strided = reduction and j < 2
        last_shared = COL["avg_pool_3x3"] if strided else COL["skip_connect"]
        result.append(EdgeWeights(
            shared=rows[:, COL["max_pool_3x3"]:last_shared + 1],
            conv={op: _per_channel(rows[:, COL[op]], C) for op in CONV_OPS},
            skip_scale=_per_channel(rows[:, COL["skip_connect"]], C) if strided else None))
    return result


class SearchCell:
    def __init__(self, params, stats, name, C_pp, C_p, C, reduction, reduction_prev):
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(params, stats, name + ".preprocess0",
                                                C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(params, stats, name + ".preprocess0",
                                          C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(params, stats, name + ".preprocess1", C_p, C, 1, 1, 0,
                                      affine=False)
        self.reduction, self.C = reduction, C
        self.sources = [
            EdgesFromState(params, stats, f"{name}.from_{j}", C, targets(j),
                           2 if reduction and j < 2 else 1)
            for j in range(STEPS + 1)]  # the last node feeds no edge

    def __call__(self, s0, s1, source_weights, ctx):
        """source_weights[j]: the EdgeWeights of the edges leaving state j."""
        states = [self.preprocess0(s0, ctx), self.preprocess1(s1, ctx)]
        incoming = [[] for _ in range(STEPS)]
        for j, source in enumerate(self.sources):
            for node, out in zip(source.nodes, source(states[j], source_weights[j], ctx)):
                incoming[node].append(out)
            node = j - 1  # state j + 1 (= node j - 1) now has all its inputs
            if j >= 1:
                states.append(total(incoming[node]))
        return paddle.concat(states[-MULTIPLIER:], axis=1)


class SearchNetwork:
    """Stem, `layers` search cells (reductions at L/3 and 2L/3), global pool, classifier."""
    def __init__(self, C=16, num_classes=10, layers=8, in_channels=3, stem_multiplier=3):
        self.C, self.num_classes, self.layers = C, num_classes, layers
        self.params = ParamStore("weights")
        self.stats = StatsStore("bn")
        p, s = self.params, self.stats
        C_curr = stem_multiplier * C
        self.stem_conv = p.declare("stem.conv", [C_curr, in_channels, 3, 3])
        self.stem_bn = BatchNorm(p, s, "stem.bn", C_curr, affine=True)
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(p, s, f"cells.{i}", C_pp, C_p, C_curr,
                                         reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, MULTIPLIER * C_curr
        self.classifier_w = p.declare("classifier.weight", [C_p, num_classes])
        self.classifier_b = p.declare("classifier.bias", [num_classes], fan_in=C_p)

    def __call__(self, x, weights_normal, weights_reduce, ctx):
        """Logits; weights_*: the [edges, 8] op weights of the normal / reduction cells."""
        weights = {}  # (reduction, C) -> EdgeWeights per source, shared by those cells
        s0 = s1 = self.stem_bn(conv(x, self.stem_conv, padding=1), ctx)
        for cell in self.cells:
            key = (cell.reduction, cell.C)
            if key not in weights:
                weights[key] = edge_weights(weights_reduce if cell.reduction else weights_normal,
                                            cell.reduction, cell.C)
            s0, s1 = s1, cell(s0, s1, weights[key], ctx)
        pooled = paddle.flatten(F.adaptive_avg_pool2d(s1, 1), 1)
        return paddle.matmul(pooled, self.classifier_w.value) + self.classifier_b.value

    def materialize(self, shared: SharedVars):
        """Bind weights and BN statistics in the program being built; returns the banks.
        (The architecture parameters belong to the search method: methods.py.)"""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        return banks


__all__ = ["SearchNetwork", "SearchCell", "EdgesFromState", "Context", "edge_index", "targets"]
