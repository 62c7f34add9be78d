"""An independent, per-edge DARTS supernet for the tests, written the way the paper reads
(and PC-DARTS's, the way its authors' model_search.py computes it).

Every edge is a mixed op sum_k softmax(alpha)[k] * op_k(x) over the 8 primitives, every op
has its own weights and its own BN, nothing is shared or fused.  The weights are fed as
plain data, cut out of the fused network's banks by `edge_weights()` below, so the two
networks compute the same function if (and only if) the fusion is right.  `make_search`
sets up the fused search the tests compare with it.
"""

import numpy as np

import paddle
import paddle.nn.functional as F

from darts_paddle.genotype import PRIMITIVES
from darts_paddle.paddle_static import fast_build

CONVS = {"sep_conv_3x3": (3, 1), "sep_conv_5x5": (5, 1), "dil_conv_3x3": (3, 2),
         "dil_conv_5x5": (5, 2)}
ORDER = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


class Feeds:
    """Collects numpy weights and declares a data variable for each."""

    def __init__(self, dtype):
        self.values, self.dtype = {}, dtype

    def __call__(self, name, array):
        self.values[name] = np.ascontiguousarray(array)
        return paddle.static.data(name, list(array.shape), self.dtype)


def bn(x):
    """Non-affine BN in training mode: normalise with the batch statistics."""
    c = x.shape[1]
    zeros = paddle.zeros([c], x.dtype)
    ones = paddle.ones([c], x.dtype)
    return F.batch_norm(x, zeros, ones, training=True, epsilon=1e-5)


def relu_conv_bn(x, w):
    return bn(F.conv2d(F.relu(x), w))


def factorized_reduce(x, w1, w2):
    x = F.relu(x)
    return bn(paddle.concat([F.conv2d(x, w1, stride=2), F.conv2d(x[:, :, 1:, 1:], w2, stride=2)],
                            axis=1))


def conv_op(x, op, stride, w):
    k, d = CONVS[op]
    pad = d * (k // 2)
    c = x.shape[1]
    h = F.conv2d(F.relu(x), w["dw_1"], stride=stride, padding=pad, dilation=d, groups=c)
    h = bn(F.conv2d(h, w["pw_1"]))
    if op.startswith("dil"):
        return h
    h = F.conv2d(F.relu(h), w["dw_2"], padding=pad, groups=c)
    return bn(F.conv2d(h, w["pw_2"]))


def mixed_op(x, weights, stride, w):
    """sum_k weights[k] * op_k(x); 'none' contributes zero."""
    outs = {
        "max_pool_3x3": bn(F.max_pool2d(x, 3, stride, 1)),
        "avg_pool_3x3": bn(F.avg_pool2d(x, 3, stride, 1, exclusive=True)),
        "skip_connect": x if stride == 1 else factorized_reduce(x, w["fr_1"], w["fr_2"]),
    }
    for op in ORDER:
        outs[op] = conv_op(x, op, stride, w[op])
    return paddle.add_n([weights[PRIMITIVES.index(op)] * out for op, out in outs.items()])


def edge_weights(banks_by_name, cell, source, e, C, stride):
    """Weights of edge number `e` among the edges leaving `source`, cut from fused tensors:
    edge e owns rows e*C .. (e+1)*C - 1 of each op's depthwise weights; the 1x1 weights of
    the four conv ops are stacked op by op (ORDER; the sep convs' second 1x1 in pw_2)."""
    W = banks_by_name
    p = f"cells.{cell}.from_{source}"
    E = 4 - max(0, source - 1)  # the edges leaving a state: to nodes max(0, j - 1) .. 3
    rows = slice(e * C, (e + 1) * C)

    def pointwise(part, i):  # op i of ORDER, edge e
        return W[f"{p}.{part}"][(i * E + e) * C:(i * E + e + 1) * C]

    w = {}
    for i, op in enumerate(ORDER):
        w[op] = {"dw_1": W[f"{p}.{op}.dw_1"][rows], "pw_1": pointwise("pw_1", i)}
        if op.startswith("sep"):
            w[op].update(dw_2=W[f"{p}.{op}.dw_2"][rows], pw_2=pointwise("pw_2", i))
    if stride == 2:
        half = slice(e * C // 2, (e + 1) * C // 2)
        w["fr_1"] = W[p + ".skip_connect.conv_1"][half]
        w["fr_2"] = W[p + ".skip_connect.conv_2"][half]
    return w


def _feed_tree(feed, prefix, tree):
    if isinstance(tree, dict):
        return {k: _feed_tree(feed, f"{prefix}.{k}", v) for k, v in tree.items()}
    return feed(prefix, tree)


def channel_shuffle(x, groups):
    """The PC-DARTS authors' channel_shuffle: view [B, groups, C/groups, h, w], swap the
    two channel axes, flatten."""
    b, c, h, w = x.shape
    x = paddle.reshape(x, [b, groups, c // groups, h, w])
    return paddle.reshape(paddle.transpose(x, [0, 2, 1, 3, 4]), [b, c, h, w])


def pc_mixed_op(x, weights, stride, w, k):
    """The PC-DARTS authors' MixedOp.forward: the ops see the first C/k channels, the rest
    is concatenated behind (max-pooled 2x2 where the ops halve the size), then shuffled."""
    c = x.shape[1]
    xtemp, xtemp2 = x[:, :c // k], x[:, c // k:]
    temp1 = mixed_op(xtemp, weights, stride, w)
    if temp1.shape[2] != x.shape[2]:  # reduction cell needs pooling before concat
        xtemp2 = F.max_pool2d(xtemp2, 2, 2)
    return channel_shuffle(paddle.concat([temp1, xtemp2], axis=1), k)


def node_softmax(betas, steps=4):
    """The PC-DARTS authors' weights2: softmax(betas[0:2]), then softmax over the 3, 4, 5
    betas of each later node, concatenated."""
    parts, start = [], 0
    for n in range(2, steps + 2):
        parts.append(F.softmax(betas[start:start + n], axis=0))
        start += n
    return paddle.concat(parts)


def build_reference(weights, net, x_shape, dtype, pc_k=None):
    """Per-edge supernet over the fused network's weights.

    weights: {weight name: array} of the fused network (ParamStore.unbank).
    pc_k: the PC-DARTS network instead (the authors' model_search.py): partial channels
    (`pc_mixed_op`), and every edge output times its node's softmax of `betas_<cell>`.
    Returns (feeds dict, x, y, {architecture parameter: its data variable}, loss) in the
    current program.
    """
    feed = Feeds(dtype)
    x = paddle.static.data("x", list(x_shape), dtype)
    y = paddle.static.data("y", [x_shape[0]], "int64")
    arch = {f"alphas_{c}": paddle.static.data(f"alphas_{c}", [14, 8], dtype)
            for c in ("normal", "reduce")}
    if pc_k:
        arch.update({f"betas_{c}": paddle.static.data(f"betas_{c}", [14], dtype)
                     for c in ("normal", "reduce")})
    for a in arch.values():
        a.stop_gradient = False
    s = F.conv2d(x, feed("stem.conv", weights["stem.conv"]), padding=1)
    s = F.batch_norm(s, paddle.zeros([s.shape[1]], dtype), paddle.ones([s.shape[1]], dtype),
                     weight=feed("stem.w", weights["stem.bn.weight"]),
                     bias=feed("stem.b", weights["stem.bn.bias"]), training=True)
    s0 = s1 = s
    for i, cell in enumerate(net.cells):
        name, C = f"cells.{i}", cell.C
        kind = "reduce" if cell.reduction else "normal"
        if hasattr(cell.preprocess0, "conv_1"):  # the previous cell reduced
            t0 = factorized_reduce(s0, feed(name + ".p0.1", weights[name + ".preprocess0.conv_1"]),
                                   feed(name + ".p0.2", weights[name + ".preprocess0.conv_2"]))
        else:
            t0 = relu_conv_bn(s0, feed(name + ".p0", weights[name + ".preprocess0.conv"]))
        t1 = relu_conv_bn(s1, feed(name + ".p1", weights[name + ".preprocess1.conv"]))
        soft = F.softmax(arch[f"alphas_{kind}"], axis=-1)
        edge_scale = node_softmax(arch[f"betas_{kind}"]) if pc_k else None
        states, offset = [t0, t1], 0
        for node in range(4):
            terms = []
            for j in range(node + 2):
                stride = 2 if cell.reduction and j < 2 else 1
                e = node - max(0, j - 1)  # position of this edge among those leaving j
                w = edge_weights(weights, i, j, e, C // (pc_k or 1), stride)
                w = _feed_tree(feed, f"{name}.{j}.{e}", w)
                if pc_k:
                    terms.append(edge_scale[offset + j]
                                 * pc_mixed_op(states[j], soft[offset + j], stride, w, pc_k))
                else:
                    terms.append(mixed_op(states[j], soft[offset + j], stride, w))
            offset += node + 2
            states.append(paddle.add_n(terms))
        s0, s1 = s1, paddle.concat(states[2:], axis=1)
    pooled = paddle.flatten(F.adaptive_avg_pool2d(s1, 1), 1)
    logits = paddle.matmul(pooled, feed("fc.w", weights["classifier.weight"])) + feed(
        "fc.b", weights["classifier.bias"])
    loss = F.cross_entropy(logits, paddle.unsqueeze(y, 1))
    return feed.values, x, y, arch, loss


@fast_build
def reference_run(weights, net, x, y, arch_values, pc_k=None):
    """The per-edge network's loss and the gradients of the architecture parameters
    `arch_values` ({name: array}) on the batch x, y, in float64: (loss, [gradients])."""
    names = list(arch_values)
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        feeds, _, _, arch, loss = build_reference(weights, net, x.shape, "float64", pc_k)
        grads = paddle.static.gradients([loss], [arch[n] for n in names])
    out = paddle.static.Executor(paddle.CPUPlace()).run(
        main, feed={**feeds, "x": x, "y": y, **arch_values}, fetch_list=[loss, *grads],
        scope=paddle.static.Scope())
    return float(out[0]), out[1:]


def make_search(cfg, build=None, groups=("alphas",)):
    """The search programs of `cfg` on a fresh Runner, weights from seed 0 and the
    architecture parameters of `groups` far from uniform (seed 1, in their order), so that
    a wrong op or edge weighting cannot hide.  build: the space's program builder
    (spaces/; None: the DARTS space's)."""
    from darts_paddle.runner import Runner
    from darts_paddle.search.programs import build_search_programs

    programs = (build or build_search_programs)(cfg)
    runner = Runner(paddle.CPUPlace(), dtype=cfg.dtype)
    runner.run_startup(programs.startup)
    runner.set_all(programs.initial_values(np.random.default_rng(0)))
    rng = np.random.default_rng(1)
    for name in programs.arch.names:
        if any(name in programs.arch.group(g) for g in groups):
            runner.set(name, rng.standard_normal(runner.get(name).shape))
    return programs, runner
