"""The DARTS search network (supernet) with its mixed ops fused per source state.

The paper's cell has 14 edges; each edge is a mixed op sum_k softmax(alpha_edge)[k] op_k(x)
over the 8 PRIMITIVES.  Written edge by edge that is 14 x 8 ops per cell and a graph Paddle
needs minutes to build.  Here all edges leaving one state are computed together, which is
numerically the same thing (tests/test_search_core.py checks it against the per-edge
network of tests/helpers/search_reference.py, loss and alpha gradients):

- the weightless ops (max pool + BN, avg pool + BN, identity) depend only on the state, so
  they run once per state.  A non-affine BN in training mode normalises with the batch
  statistics, so one BN serves every edge;
- the four conv primitives (sep 3x3/5x5, dil 3x3/5x5) of the E edges leaving a state run
  as two stages (`ConvOps`): ReLU, one depthwise op with the four kernels (our kernel
  reads each op's kernel size and dilation; 4*E*C output channels, op-major then
  edge-major, channel o reading input channel o % C), one 1x1 conv with groups = 4E and
  one BN over the 4*E*C channels (per-channel statistics, as 4E BNs); then the second half
  of the two sep convs the same way over their 2*E*C channels.  Every op and edge keeps
  its own weights and statistics: fusing changes the graph, not the function;
- the op weights softmax(alpha) scale the last BN of each weighted op (a non-affine BN
  times a per-channel factor is a BN with that scale): no extra pass over the activations;
  the first BN of the sep convs gets the factor 1;
- 'none' contributes zero: it needs no kernel, only its column in the softmax;
- the op weights are cut per source state with a handful of ops per cell type
  (`CellWeights`): one gather puts the edges in source order, one gather and one split
  per channel count give every BN's per-channel scale.

Partial channel connections (PC-DARTS, k > 1): only the first C/k channels of a state go
through the mixed ops of its edges (every conv, pool and FactorizedReduce is C/k wide);
the other channels bypass them (max-pooled 2x2 on the stride-2 edges of a reduction cell),
are concatenated behind the mixed op's output and the whole is channel-shuffled in groups
of k, as the authors' MixedOp.  The edge weight beta of the edge normalisation scales the
whole edge output: inside the op weights W (W = beta x softmax(alpha)) for the mixed op,
and as W's extra column BYPASS for the bypass.  All E edges of a state are concatenated
and shuffled at once (`with_bypass`).

Parameter names keep the edge structure: `cells.3.from_1.sep_conv_3x3.dw_1` holds the
first depthwise weights of the sep_conv_3x3 ops of all edges leaving state 1 of cell 3,
edge-major (edge e owns rows e*C .. (e+1)*C - 1; C/k with partial channels);
`cells.3.from_1.pw_1` the first 1x1 weights of all four conv primitives, op-major in
CONV_OPS order (op i, edge e: rows (i*E + e)*C ..), `pw_2` the second of the sep convs.
"""

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..genotype import CELLS, MULTIPLIER, PRIMITIVES, STEPS, reduction_layers
from ..nets.ops import (BatchNorm, Context, FactorizedReduce, ReLUConvBN, conv, depthwise,
                       max_pool)
from ..paddle_static import F, paddle
from ..nets.params import ParamStore, SharedVars, StatsStore

CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
SEP_OPS = CONV_OPS[:2]  # first: stage 1's leading channels feed their second stage (ConvOps)
KERNEL = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
DILATION = {"sep_conv_3x3": 1, "sep_conv_5x5": 1, "dil_conv_3x3": 2, "dil_conv_5x5": 2}
ALPHAS = tuple(f"alphas_{c}" for c in CELLS)
COL = {name: i for i, name in enumerate(PRIMITIVES)}
BYPASS = len(PRIMITIVES)  # W's column of the bypass factor with partial channels


def total(tensors):
    """Sum by chained adds: add_n's backward costs two extra ops per input in Paddle."""
    return functools.reduce(lambda a, b: a + b, tensors)


def edge_index(source, node):
    """Row of alpha for the edge source -> node (edges are numbered node by node)."""
    return node * (node + 3) // 2 + source


def targets(source, steps=STEPS):
    """Nodes fed by a state: node i reads states 0 .. i+1."""
    return list(range(max(0, source - 1), steps))


def with_bypass(mixed, bypass, factor, k):
    """PC-DARTS's edge outputs: channel_shuffle(concat(mixed op, factor x bypass), k) of
    all E edges leaving a state at once.  The shuffle views an edge's C channels as
    [k, C/k] and transposes them; mixed [B, E*C/k, h, w], bypass [B, C - C/k, h, w],
    factor [E, 1, 1, 1] -> [B, E*C, h, w]."""
    E, (c, h, w) = factor.shape[0], bypass.shape[1:]
    c //= k - 1
    parts = [paddle.reshape(mixed, [-1, E, 1, c, h * w]),
             paddle.reshape(bypass, [-1, 1, k - 1, c, h * w]) * factor]
    shuffled = paddle.transpose(paddle.concat(parts, axis=2), [0, 1, 3, 2, 4])
    return paddle.reshape(shuffled, [-1, E * k * c, h, w])


class ConvOps:
    """The four conv primitives (CONV_OPS) of the E edges leaving a state, in two stages.

    Stage 1, all four: depthwise (their kernels and dilations, stride of the edges), 1x1
    (groups 4E), BN over 4*E*C channels: op-major, then edge-major.  A dil conv ends there;
    a sep conv (the first two ops: stage 1's first 2*E*C channels) repeats ReLU, depthwise,
    1x1 and BN at stride 1 over those channels.  No concatenation of the large activations:
    each stage is one tensor from its depthwise op on.
    """

    def __init__(self, params, stats, name, C, E):
        self.E, self.C = E, C
        self.dw_1 = [params.declare(f"{name}.{op}.dw_1", [E * C, 1, KERNEL[op], KERNEL[op]])
                     for op in CONV_OPS]
        self.pw_1 = params.declare(name + ".pw_1", [len(CONV_OPS) * E * C, C, 1, 1])
        self.bn_1 = BatchNorm(params, stats, name + ".bn_1", len(CONV_OPS) * E * C,
                              affine=False)
        self.dw_2 = [params.declare(f"{name}.{op}.dw_2", [E * C, 1, KERNEL[op], KERNEL[op]])
                     for op in SEP_OPS]
        self.pw_2 = params.declare(name + ".pw_2", [len(SEP_OPS) * E * C, C, 1, 1])
        self.bn_2 = BatchNorm(params, stats, name + ".bn_2", len(SEP_OPS) * E * C,
                              affine=False)

    def __call__(self, x, stride, weights, ctx):
        """sum over the four ops of w[e, op] * op(x) for every edge e: [B, E*C, h, w]."""
        h = depthwise(F.relu(x), self.dw_1, stride, [DILATION[op] for op in CONV_OPS])
        h = self.bn_1(conv(h, self.pw_1, groups=len(CONV_OPS) * self.E), ctx,
                      scale=weights.stage_1)
        sep, dil = paddle.split(h, [len(SEP_OPS) * self.E * self.C, -1], axis=1)
        h = depthwise(F.relu(sep), self.dw_2, 1, [DILATION[op] for op in SEP_OPS])
        h = self.bn_2(conv(h, self.pw_2, groups=len(SEP_OPS) * self.E), ctx,
                      scale=weights.stage_2)
        return total(paddle.split(h + dil, 2, axis=1))  # [sep 3x3 + dil 3x3, 5x5 + 5x5]


class EdgesFromState:
    """The mixed ops of every edge leaving one state, fused (see module docstring)."""
    def __init__(self, params, stats, name, C, nodes, stride, k=1):
        E, C_op = len(nodes), C // k
        self.C, self.C_op, self.E, self.k, self.nodes, self.stride = C, C_op, E, k, nodes, stride
        self.pool_bn = BatchNorm(params, stats, name + ".pool_bn", 2 * C_op, affine=False)
        self.convs = ConvOps(params, stats, name, C_op, E)
        self.reduce = (FactorizedReduce(params, stats, name + ".skip_connect", C_op, C_op,
                                        affine=False, copies=E) if stride == 2 else None)

    def _mixed(self, x, weights, ctx):
        """sum_k w[e, k] op_k(x) of every edge e: [B, E*C, h, w], edge-major (C: the op width)."""
        E, C = self.E, self.C_op
        pools = [max_pool(x, 3, self.stride, 1),
                 F.avg_pool2d(x, 3, self.stride, 1, exclusive=True)]
        pooled = self.pool_bn(paddle.concat(pools, axis=1), ctx)
        h, w = pooled.shape[2], pooled.shape[3]
        # weightless ops shared by all edges: one [E, k] x [k, C*h*w] product per sample
        shared = [paddle.reshape(pooled, [-1, 2, C * h * w])]
        if self.reduce is None:
            shared.append(paddle.reshape(x, [-1, 1, C * h * w]))
        mixed = [paddle.reshape(paddle.matmul(weights.shared, paddle.concat(shared, axis=1)),
                                [-1, E * C, h, w]),
                 self.convs(x, self.stride, weights, ctx)]
        if self.reduce is not None:  # stride-2 skip_connect: one FactorizedReduce per edge
            mixed.append(self.reduce(x, ctx, scale=weights.skip_scale))
        return total(mixed)

    def __call__(self, x, weights, ctx):
        """Edge outputs, one [B, C, h, w] tensor per target node: sum_k w[e, k] op_k(x), or
        with partial channels the shuffled concatenation above.

        weights: the `EdgeWeights` of this state's edges (`CellWeights.per_source`).
        """
        if self.k == 1:
            mixed = self._mixed(x, weights, ctx)
        else:
            ops_in, bypass = paddle.split(x, [self.C_op, self.C - self.C_op], axis=1)
            if self.stride == 2:  # the authors' MixedOp max-pools the bypass to the new size
                bypass = max_pool(bypass, 2, 2)
            mixed = with_bypass(self._mixed(ops_in, weights, ctx), bypass, weights.bypass, self.k)
        return paddle.split(mixed, self.E, axis=1) if self.E > 1 else [mixed]


@dataclass
class EdgeWeights:
    """The op weights of the edges leaving one state, cut to the shapes used above."""
    shared: object  # [E, 2 or 3]: max pool, avg pool (, identity when stride 1)
    stage_1: object  # [4*E*C]: ConvOps's first BN scale: 1 (sep convs), w[e, dil conv]
    stage_2: object  # [2*E*C]: the sep convs' last BN scale, w[e, sep conv]
    skip_scale: object = None  # [E*C]: stride-2 skip_connect (FactorizedReduce)
    bypass: object = None  # [E, 1, 1, 1]: the bypass's factor (partial channels)


class CellWeights:
    """The op weights W of one cell type cut per source state: what does not depend on the
    channel count once, the per-channel BN scales once per channel count (`per_source`).

    W [edges, 8] (+ the BYPASS column with partial channels): the factor of every op on
    every edge, softmax(alpha) in DARTS (methods/ computes it for each search method)."""

    def __init__(self, op_weights, reduction, partial):
        self.sizes = [len(targets(j)) for j in range(STEPS + 1)]
        order = [edge_index(j, i) for j in range(STEPS + 1) for i in targets(j)]
        rows = paddle.gather(op_weights, paddle.assign(np.array(order, np.int64)))
        shared = paddle.split(rows[:, COL["max_pool_3x3"]:COL["skip_connect"] + 1], self.sizes)
        # stride 2: no identity (skip_connect is a FactorizedReduce, scaled per channel)
        self.strided = [reduction and j < 2 for j in range(len(shared))]
        self.shared = [s[:, :2] if strided else s for s, strided in zip(shared, self.strided)]
        self.bypass = (paddle.split(paddle.reshape(rows[:, BYPASS], [-1, 1, 1, 1]), self.sizes)
                       if partial else [None] * len(self.sizes))
        # every BN scale of every state, one factor per (op, edge), in the order the
        # per-channel vectors are cut (`layout`); the last element of `flat` is 1
        self.layout = self._scale_layout()
        columns = op_weights.shape[1]
        flat = paddle.concat([paddle.reshape(op_weights, [-1]), paddle.ones([1], op_weights.dtype)])
        index = [columns * edge + COL[op] if op else flat.shape[0] - 1
                 for piece in self.layout for op, edge in piece]
        self.factors = paddle.unsqueeze(
            paddle.gather(flat, paddle.assign(np.array(index, np.int64))), -1)
        self._by_channels = {}

    def _scale_layout(self):
        """Per state: its BN scales (stage 1, stage 2, and the FactorizedReduce's when
        strided), each a list of (op column or None for the factor 1, edge row of W),
        op-major then edge-major as the channels they scale."""
        pieces = []
        for j, strided in enumerate(self.strided):
            edges = [edge_index(j, i) for i in targets(j)]
            pieces.append([(op if op not in SEP_OPS else None, e)
                           for op in CONV_OPS for e in edges])
            pieces.append([(op, e) for op in SEP_OPS for e in edges])
            if strided:
                pieces.append([("skip_connect", e) for e in edges])
        return pieces

    def per_source(self, C):
        """[EdgeWeights of the edges leaving state j] for j = 0..STEPS, for ops C channels
        wide: each factor repeated per channel, one expand and one split for all."""
        if C not in self._by_channels:
            flat = paddle.reshape(paddle.expand(self.factors, [self.factors.shape[0], C]), [-1])
            scales = iter(paddle.split(flat, [len(p) * C for p in self.layout]))
            self._by_channels[C] = [
                EdgeWeights(shared=self.shared[j], stage_1=next(scales), stage_2=next(scales),
                            skip_scale=next(scales) if self.strided[j] else None,
                            bypass=self.bypass[j])
                for j in range(len(self.sizes))]
        return self._by_channels[C]


class SearchCell:
    def __init__(self, params, stats, name, C_pp, C_p, C, reduction, reduction_prev, k=1):
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(params, stats, name + ".preprocess0",
                                                C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(params, stats, name + ".preprocess0",
                                          C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(params, stats, name + ".preprocess1", C_p, C, 1, 1, 0,
                                      affine=False)
        self.reduction, self.C, self.k, self.C_op = reduction, C, k, C // k
        self.sources = [
            EdgesFromState(params, stats, f"{name}.from_{j}", C, targets(j),
                           2 if reduction and j < 2 else 1, k)
            for j in range(STEPS + 1)]  # the last node feeds no edge

    def __call__(self, s0, s1, source_weights, ctx):
        """source_weights[j]: the EdgeWeights of the edges leaving state j."""
        states = [self.preprocess0(s0, ctx), self.preprocess1(s1, ctx)]
        if self.reduction and self.k > 1 and states[0].shape[2] % 2:
            raise UserError(f"PC-DARTS max-pools the bypass of a reduction cell 2x2, which "
                            f"needs an even size: this cell gets {states[0].shape[2]} pixels; "
                            "use images whose side divides by 4, or --pc_k 1")
        incoming = [[] for _ in range(STEPS)]
        for j, source in enumerate(self.sources):
            for node, out in zip(source.nodes, source(states[j], source_weights[j], ctx)):
                incoming[node].append(out)
            node = j - 1  # state j + 1 (= node j - 1) now has all its inputs
            if j >= 1:
                states.append(total(incoming[node]))
        return paddle.concat(states[-MULTIPLIER:], axis=1)


class SearchNetwork:
    """Stem, `layers` search cells (reductions at L/3 and 2L/3), global pool, classifier.
    k > 1: partial channel connections (PC-DARTS), C/k channels of each edge's input
    through its mixed op; C must divide by k."""
    def __init__(self, C=16, num_classes=10, layers=8, in_channels=3, stem_multiplier=3, k=1):
        if C % k:
            raise ValueError(f"{C} channels do not split into {k} parts")
        self.C, self.num_classes, self.layers, self.k = C, num_classes, layers, k
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
                                         reduction, reduction_prev, k))
            reduction_prev = reduction
            C_pp, C_p = C_p, MULTIPLIER * C_curr
        self.classifier_w = p.declare("classifier.weight", [C_p, num_classes])
        self.classifier_b = p.declare("classifier.bias", [num_classes], fan_in=C_p)

    def __call__(self, x, op_weights, ctx):
        """Logits; op_weights: {"normal", "reduce": the op weights W [edges, 8] of that
        cell type} (with partial channels [edges, 9]: the BYPASS column last)."""
        weights = {}  # reduction -> CellWeights, shared by the cells of that type
        s0 = s1 = self.stem_bn(conv(x, self.stem_conv, padding=1), ctx)
        for cell in self.cells:
            if cell.reduction not in weights:  # only the types present: no unused ops
                weights[cell.reduction] = CellWeights(
                    op_weights["reduce" if cell.reduction else "normal"], cell.reduction,
                    self.k > 1)
            s0, s1 = s1, cell(s0, s1, weights[cell.reduction].per_source(cell.C_op), ctx)
        # reshape, not flatten: flatten's gradient cannot be differentiated again (hessian)
        pooled = paddle.reshape(F.adaptive_avg_pool2d(s1, 1), [-1, s1.shape[1]])
        return paddle.matmul(pooled, self.classifier_w.value) + self.classifier_b.value

    def materialize(self, shared: SharedVars):
        """Bind weights and BN statistics in the program being built; returns the banks.
        (The architecture parameters belong to the search method: methods.py.)"""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        return banks


__all__ = ["SearchNetwork", "SearchCell", "EdgesFromState", "Context", "edge_index", "targets"]
