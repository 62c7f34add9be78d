"""The DARTS search network (supernet) with its mixed ops fused per source state.

The paper's cell has 14 edges; each edge is a mixed op sum_k softmax(alpha_edge)[k] op_k(x)
over the 8 PRIMITIVES.  Written edge by edge that is 14 x 8 ops per cell and a graph Paddle
needs minutes to build.  Here all edges leaving one state are computed together, which is
numerically the same thing (tests/test_search_core.py checks it against the per-edge
network of tests/search_reference.py, loss and alpha gradients):

- the weightless ops (max pool + BN, avg pool + BN, identity) depend only on the state, so
  they run once per state.  A non-affine BN in training mode normalises with the batch
  statistics, so one BN serves every edge;
- each conv primitive (sep 3x3/5x5, dil 3x3/5x5) of the E edges leaving a state runs once:
  depthwise convs with E*C output channels, channel o reading input channel o % C (our
  kernel reads the input so; Paddle's conv2d gets it tiled E times, groups = E*C), 1x1
  convs with groups = E, and one BN over the E*C channels (per-channel statistics, as E BNs);
- the op weights softmax(alpha) scale the last BN of each weighted op (a non-affine BN
  times a per-channel factor is a BN with that scale): no extra pass over the activations;
- 'none' contributes zero: it needs no kernel, only its column in the softmax;
- the op weights are cut per source state with a handful of ops per cell type
  (`CellWeights`): one gather puts the edges in source order, the per-channel BN scales
  of all sources come from one expand and one split per channel count.

Partial channel connections (PC-DARTS, k > 1): only the first C/k channels of a state go
through the mixed ops of its edges (every conv, pool and FactorizedReduce is C/k wide);
the other channels bypass them (max-pooled 2x2 on the stride-2 edges of a reduction cell),
are concatenated behind the mixed op's output and the whole is channel-shuffled in groups
of k, as the authors' MixedOp.  The edge weight beta of the edge normalisation scales the
whole edge output: inside the op weights W (W = beta x softmax(alpha)) for the mixed op,
and as W's extra column BYPASS for the bypass.  All E edges of a state are concatenated
and shuffled at once (`EdgesFromState._with_bypass`).

Parameter names keep the edge structure: `cells.3.from_1.sep_conv_3x3.dw_1` holds the
first depthwise weights of the sep_conv_3x3 ops of all edges leaving state 1 of cell 3,
edge-major (edge e owns rows e*C .. (e+1)*C - 1; C/k with partial channels).
"""

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..genotype import CELLS, MULTIPLIER, PRIMITIVES, STEPS, reduction_layers
from ..nets.ops import (BatchNorm, Context, FactorizedReduce, ReLUConvBN, conv, depthwise,
                        depthwise_input)
from ..paddle_static import F, paddle
from ..nets.params import ParamStore, SharedVars, StatsStore

CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
KERNEL = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
DILATION = {"sep_conv_3x3": 1, "sep_conv_5x5": 1, "dil_conv_3x3": 2, "dil_conv_5x5": 2}
ALPHAS = tuple(f"alphas_{c}" for c in CELLS)
COL = {name: i for i, name in enumerate(PRIMITIVES)}
# the ops whose weight scales a BN's output per channel (skip_connect: at stride 2); W's
# columns skip_connect .. BYPASS - 1, in this order (CellWeights slices them)
SCALED = ("skip_connect", *CONV_OPS)
assert [COL[op] for op in SCALED] == list(range(COL["skip_connect"], len(PRIMITIVES)))
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


class FusedConvOp:
    """One conv primitive (sep or dil conv) for the E edges leaving a state.

    Input: ReLU(x) as `depthwise_input` gives it for E copies.  Each op has its own convs
    and BNs: no concatenation of the large activations (a copy Paddle would keep alive for
    the backward pass).
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
        h = depthwise(x, dw, stride, self.padding, self.dilation)
        return conv(h, pw, groups=self.E)

    def __call__(self, source, stride, scale, ctx):
        """w[e] * op_e(x) for every edge e; `scale` [E*C] carries the op weights w."""
        h = self._dw_pw(source, self.dw_1, self.pw_1, stride)
        if not self.separable:
            return self.bn_1(h, ctx, scale=scale)
        h = F.relu(self.bn_1(h, ctx))
        return self.bn_2(self._dw_pw(h, self.dw_2, self.pw_2, 1), ctx, scale=scale)


class EdgesFromState:
    """The mixed ops of every edge leaving one state, fused (see module docstring)."""
    def __init__(self, params, stats, name, C, nodes, stride, k=1):
        E, C_op = len(nodes), C // k
        self.C, self.C_op, self.E, self.k, self.nodes, self.stride = C, C_op, E, k, nodes, stride
        self.pool_bn = BatchNorm(params, stats, name + ".pool_bn", 2 * C_op, affine=False)
        self.convs = {op: FusedConvOp(params, stats, f"{name}.{op}", op, C_op, E)
                      for op in CONV_OPS}
        self.reduce = (FactorizedReduce(params, stats, name + ".skip_connect", C_op, C_op,
                                        affine=False, copies=E) if stride == 2 else None)

    def _conv_ops(self, x, weights, ctx):
        """sum over sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5 of w * op(x).

        All edges at once: the depthwise convs have E*C output channels (edge-major), the
        1x1 convs groups = E.  Returns [B, E*C, h, w].
        """
        source = depthwise_input(F.relu(x), self.E)
        return total([self.convs[op](source, self.stride, weights.conv[op], ctx)
                      for op in CONV_OPS])

    def _mixed(self, x, weights, ctx):
        """sum_k w[e, k] op_k(x) of every edge e: [B, E*C, h, w], edge-major (C: the op width)."""
        E, C = self.E, self.C_op
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
        return total(mixed)

    def _with_bypass(self, mixed, bypass, factor):
        """PC-DARTS's edge outputs: channel_shuffle(concat(mixed op, factor x bypass), k) of
        every edge at once.  The shuffle views an edge's C channels as [k, C/k] and
        transposes them; mixed [B, E*C/k, h, w], bypass [B, C - C/k, h, w], factor
        [E, 1, 1, 1] -> [B, E*C, h, w]."""
        k, c, (h, w) = self.k, self.C_op, mixed.shape[2:]
        parts = [paddle.reshape(mixed, [-1, self.E, 1, c, h * w]),
                 paddle.reshape(bypass, [-1, 1, k - 1, c, h * w]) * factor]
        shuffled = paddle.transpose(paddle.concat(parts, axis=2), [0, 1, 3, 2, 4])
        return paddle.reshape(shuffled, [-1, self.E * self.C, h, w])

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
                bypass = F.max_pool2d(bypass, 2, 2)
            mixed = self._with_bypass(self._mixed(ops_in, weights, ctx), bypass, weights.bypass)
        return paddle.split(mixed, self.E, axis=1) if self.E > 1 else [mixed]


@dataclass
class EdgeWeights:
    """The op weights of the edges leaving one state, cut to the shapes used above."""
    shared: object  # [E, 2 or 3]: max pool, avg pool (, identity when stride 1)
    conv: dict  # op name -> [E*C]: that op's weight per edge, repeated per channel
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
        # [ops, edges, 1]: the weights of the SCALED ops, op-major
        self.scaled = paddle.unsqueeze(paddle.transpose(rows[:, COL[SCALED[0]]:BYPASS], [1, 0]), -1)
        self.bypass = (paddle.split(paddle.reshape(rows[:, BYPASS], [-1, 1, 1, 1]), self.sizes)
                       if partial else [None] * len(self.sizes))
        self._by_channels = {}

    def per_source(self, C):
        """[EdgeWeights of the edges leaving state j] for j = 0..STEPS, for ops C channels
        wide: each SCALED op's weight repeated per channel (edge-major), one expand and one
        split for all of them."""
        if C not in self._by_channels:
            n_ops, edges = self.scaled.shape[0], self.scaled.shape[1]
            flat = paddle.reshape(paddle.expand(self.scaled, [n_ops, edges, C]), [-1])
            scales = iter(paddle.split(flat, [E * C for _ in SCALED for E in self.sizes]))
            per_op = {op: [next(scales) for _ in self.sizes] for op in SCALED}
            self._by_channels[C] = [
                EdgeWeights(shared=self.shared[j], conv={op: per_op[op][j] for op in CONV_OPS},
                            skip_scale=per_op["skip_connect"][j] if self.strided[j] else None,
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

    def __call__(self, x, weights_normal, weights_reduce, ctx):
        """Logits; weights_*: the op weights W [edges, 8] of the normal / reduction cells
        (with partial channels [edges, 9]: the BYPASS column last)."""
        weights = {}  # reduction -> CellWeights, shared by the cells of that type
        s0 = s1 = self.stem_bn(conv(x, self.stem_conv, padding=1), ctx)
        for cell in self.cells:
            if cell.reduction not in weights:  # only the types present: no unused ops
                weights[cell.reduction] = CellWeights(
                    weights_reduce if cell.reduction else weights_normal, cell.reduction,
                    self.k > 1)
            s0, s1 = s1, cell(s0, s1, weights[cell.reduction].per_source(cell.C_op), ctx)
        pooled = paddle.flatten(F.adaptive_avg_pool2d(s1, 1), 1)
        return paddle.matmul(pooled, self.classifier_w.value) + self.classifier_b.value

    def materialize(self, shared: SharedVars):
        """Bind weights and BN statistics in the program being built; returns the banks.
        (The architecture parameters belong to the search method: methods.py.)"""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        return banks


__all__ = ["SearchNetwork", "SearchCell", "EdgesFromState", "Context", "edge_index", "targets"]
