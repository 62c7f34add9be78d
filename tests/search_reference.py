"""An independent, per-edge DARTS supernet for the tests, written the way the paper reads.

Every edge is a mixed op sum_k softmax(alpha)[k] * op_k(x) over the 8 primitives, every op
has its own weights and its own BN, nothing is shared or fused.  The weights are fed as
plain data, cut out of the fused network's banks by `edge_weights()` below, so the two
networks compute the same function if (and only if) the fusion is right.
"""

import numpy as np

import paddle
import paddle.nn.functional as F

from darts_paddle.genotype import PRIMITIVES

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
    """Weights of edge number `e` among the edges leaving `source`, cut from fused tensors."""
    W = banks_by_name
    p = f"cells.{cell}.from_{source}"
    rows = slice(e * C, (e + 1) * C)  # edge e owns rows e*C .. (e+1)*C - 1 of every conv
    w = {op: {part: W[f"{p}.{op}.{part}"][rows]
              for part in (("dw_1", "pw_1", "dw_2", "pw_2") if op.startswith("sep")
                           else ("dw_1", "pw_1"))}
         for op in ORDER}
    if stride == 2:
        half = slice(e * C // 2, (e + 1) * C // 2)
        w["fr_1"] = W[p + ".skip_connect.conv_1"][half]
        w["fr_2"] = W[p + ".skip_connect.conv_2"][half]
    return w


def _feed_tree(feed, prefix, tree):
    if isinstance(tree, dict):
        return {k: _feed_tree(feed, f"{prefix}.{k}", v) for k, v in tree.items()}
    return feed(prefix, tree)


def build_reference(weights, net, x_shape, dtype):
    """Per-edge supernet over the fused network's weights.

    weights: {weight name: array} of the fused network (ParamStore.unbank).
    Returns (feeds dict, x, y, alphas_normal, alphas_reduce, loss) in the current program.
    """
    feed = Feeds(dtype)
    x = paddle.static.data("x", list(x_shape), dtype)
    y = paddle.static.data("y", [x_shape[0]], "int64")
    a_normal = paddle.static.data("alphas_normal", [14, 8], dtype)
    a_reduce = paddle.static.data("alphas_reduce", [14, 8], dtype)
    for a in (a_normal, a_reduce):
        a.stop_gradient = False
    s = F.conv2d(x, feed("stem.conv", weights["stem.conv"]), padding=1)
    s = F.batch_norm(s, paddle.zeros([s.shape[1]], dtype), paddle.ones([s.shape[1]], dtype),
                     weight=feed("stem.w", weights["stem.bn.weight"]),
                     bias=feed("stem.b", weights["stem.bn.bias"]), training=True)
    s0 = s1 = s
    for i, cell in enumerate(net.cells):
        name, C = f"cells.{i}", cell.C
        if hasattr(cell.preprocess0, "conv_1"):  # the previous cell reduced
            t0 = factorized_reduce(s0, feed(name + ".p0.1", weights[name + ".preprocess0.conv_1"]),
                                   feed(name + ".p0.2", weights[name + ".preprocess0.conv_2"]))
        else:
            t0 = relu_conv_bn(s0, feed(name + ".p0", weights[name + ".preprocess0.conv"]))
        t1 = relu_conv_bn(s1, feed(name + ".p1", weights[name + ".preprocess1.conv"]))
        soft = F.softmax(a_reduce if cell.reduction else a_normal, axis=-1)
        states, offset = [t0, t1], 0
        for node in range(4):
            terms = []
            for j in range(node + 2):
                stride = 2 if cell.reduction and j < 2 else 1
                e = node - max(0, j - 1)  # position of this edge among those leaving j
                w = edge_weights(weights, i, j, e, C, stride)
                w = _feed_tree(feed, f"{name}.{j}.{e}", w)
                terms.append(mixed_op(states[j], soft[offset + j], stride, w))
            offset += node + 2
            states.append(paddle.add_n(terms))
        s0, s1 = s1, paddle.concat(states[2:], axis=1)
    pooled = paddle.flatten(F.adaptive_avg_pool2d(s1, 1), 1)
    logits = paddle.matmul(pooled, feed("fc.w", weights["classifier.weight"])) + feed(
        "fc.b", weights["classifier.bias"])
    loss = F.cross_entropy(logits, paddle.unsqueeze(y, 1))
    return feed.values, x, y, a_normal, a_reduce, loss
