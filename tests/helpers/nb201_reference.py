"""An independent, per-edge NAS-Bench-201 supernet for the tests, written from the paper
(Dong & Yang, ICLR 2020, section 2.1) and the definitions of its search code (xautodl 1.0.0:
NAS201SearchCell, TinyNetworkDarts, cell_operations), and for PC-DARTS from its authors'
MixedOp (partial channels, channel_shuffle) and Cell (edge normalisation).

Every edge of every cell is its own mixed op sum_k W[k] op_k(x) with its own conv weights
and its own non-affine BN (training mode: batch statistics); nothing is shared or fused.
The 3x3 average pool that counts only the pixels inside the image and the ResNet block's
2x2 average pool are written here from their definitions, not taken from the pool op the
fused network runs.  The weights are fed as plain data, cut out of the fused network's
weights by `cut()`, and the gradients go back to the fused names by `paste()`, so the two
networks compute the same function if (and only if) the fusion is right.
"""

import numpy as np

import paddle
import paddle.nn.functional as F

from darts_paddle.paddle_static import fast_build

from .search_reference import Feeds, channel_shuffle

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # alpha's columns
KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
NODES = 4
# the edges i -> j, node by node and each node's inputs in order: the rows of alpha and beta
EDGES = [(i, j) for j in range(1, NODES) for i in range(j)]
EPS = 1e-5  # BN's epsilon (PyTorch's default, which xautodl keeps)
DTYPE = "float64"  # the reference runs in float64 only: it checks gradients


def layers(N):
    """The skeleton's layers in order, numbered together as xautodl's `cells` list:
    [(index, "cell" or "block", width factor)]: N cells, a block, N cells, a block, N cells."""
    kinds = ["cell"] * N + ["block"] + ["cell"] * N + ["block"] + ["cell"] * N
    out, factor = [], 1
    for index, kind in enumerate(kinds):
        factor *= 2 if kind == "block" else 1
        out.append((index, kind, factor))
    return out


def pieces(C, N, k=1):
    """{reference weight: (fused weight name, its rows)} of every weight of the network.
    The cells' conv weights of edge i -> j are rows (j - i - 1) * c .. of the conv of their
    kind over all edges leaving node i (c = the op width: the cell's width / k)."""
    out = {name: (name, slice(None)) for name in
           ("stem.conv", "stem.bn.weight", "stem.bn.bias", "lastact.bn.weight",
            "lastact.bn.bias", "classifier.weight", "classifier.bias")}
    for index, kind, factor in layers(N):
        name = f"cells.{index}"
        if kind == "block":
            for part in ("conv_a.conv", "conv_a.bn.weight", "conv_a.bn.bias", "conv_b.conv",
                         "conv_b.bn.weight", "conv_b.bn.bias", "downsample"):
                out[f"{name}.{part}"] = (f"{name}.{part}", slice(None))
            continue
        c = C * factor // k
        for i, j in EDGES:
            for op in KERNEL:
                out[f"{name}.edge_{i}_{j}.{op}"] = (f"{name}.from_{i}.{op}",
                                                     slice((j - i - 1) * c, (j - i) * c))
    return out


def cut(fused, C, N, k=1):
    """The reference's weights from the fused network's ({name: array}, ParamStore.unbank)."""
    return {ref: fused[name][rows] for ref, (name, rows) in pieces(C, N, k).items()}


def paste(grads, fused, C, N, k=1):
    """{fused weight name: gradient} from the reference's gradients; ValueError unless the
    pieces cover every row of every fused weight exactly once (a weight the reference
    never reads, or reads twice, would otherwise pass unnoticed)."""
    out = {name: np.zeros_like(a) for name, a in fused.items()}
    covered = {name: np.zeros(a.shape[0], int) for name, a in fused.items()}
    for ref, (name, rows) in pieces(C, N, k).items():
        out[name][rows] = grads[ref]
        covered[name][rows] += 1
    wrong = [name for name, count in covered.items() if not np.all(count == 1)]
    if wrong:
        raise ValueError(f"rows not covered exactly once: {wrong}")
    return out


def batch_norm(x, weight=None, bias=None):
    """BN in training mode (the batch's statistics), affine with `weight` and `bias`."""
    zeros, ones = paddle.zeros([x.shape[1]], DTYPE), paddle.ones([x.shape[1]], DTYPE)
    return F.batch_norm(x, zeros, ones, weight=weight, bias=bias, training=True, epsilon=EPS)


def avg_pool_3x3(x):
    """3x3 average, stride 1, over the window's pixels inside the image only
    (count_include_pad=False): the window's sum (a conv with ones over each channel,
    zero-padded) over how many of its pixels are inside."""
    c, h, w = x.shape[1:]
    window = F.conv2d(x, paddle.ones([c, 1, 3, 3], DTYPE), padding=1, groups=c)
    inside = np.pad(np.ones((h, w)), 1)
    count = sum(inside[a:a + h, b:b + w] for a in range(3) for b in range(3))
    return window / paddle.assign(count)


def avg_pool_2x2(x):
    """The shortcut's 2x2 average pool, stride 2: the mean of each 2x2 block."""
    b, c, h, w = x.shape
    return paddle.mean(paddle.reshape(x, [b, c, h // 2, 2, w // 2, 2]), axis=[3, 5])


def relu_conv_bn(x, w):
    """nor_conv_kxk: ReLU, conv ("same" padding, stride 1), non-affine BN.  xautodl's conv
    has a bias there, which the BN's mean subtraction removes: none here."""
    return batch_norm(F.conv2d(F.relu(x), w, padding=w.shape[2] // 2))


def mixed_op(x, weights, w):
    """sum_k weights[k] op_k(x) over the 5 ops; 'none' (zeros) adds nothing."""
    outs = {"skip_connect": x, "avg_pool_3x3": avg_pool_3x3(x),
            **{op: relu_conv_bn(x, w[op]) for op in KERNEL}}
    return paddle.add_n([weights[OPS.index(op)] * out for op, out in outs.items()])


def pc_mixed_op(x, weights, w, k):
    """The PC-DARTS authors' MixedOp: the ops see the first C/k channels, the others are
    concatenated behind their output, then channel_shuffle(k)."""
    c = x.shape[1]
    ops_out = mixed_op(x[:, :c // k], weights, w)
    return channel_shuffle(paddle.concat([ops_out, x[:, c // k:]], axis=1), k)


def cell(x, soft, w, name, edge_share=None, k=1):
    """NAS201SearchCell: node 0 = x, node j = sum over i < j of edge i -> j, output node 3.
    edge_share (PC-DARTS): row e's factor on the whole output of edge e."""
    nodes = [x]
    for j in range(1, NODES):
        terms = []
        for i in range(j):
            e = EDGES.index((i, j))
            ops = {op: w[f"{name}.edge_{i}_{j}.{op}"] for op in KERNEL}
            if edge_share is None:
                terms.append(mixed_op(nodes[i], soft[e], ops))
            else:
                terms.append(edge_share[e] * pc_mixed_op(nodes[i], soft[e], ops, k))
        nodes.append(paddle.add_n(terms))
    return nodes[-1]


def resnet_block(x, w, name):
    """ResNet basic block, stride 2: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN (affine BNs),
    plus the input average-pooled 2x2 and 1x1-convolved (no BN)."""
    h = batch_norm(F.conv2d(F.relu(x), w[name + ".conv_a.conv"], stride=2, padding=1),
                   w[name + ".conv_a.bn.weight"], w[name + ".conv_a.bn.bias"])
    h = batch_norm(F.conv2d(F.relu(h), w[name + ".conv_b.conv"], padding=1),
                   w[name + ".conv_b.bn.weight"], w[name + ".conv_b.bn.bias"])
    return F.conv2d(avg_pool_2x2(x), w[name + ".downsample"]) + h


def node_softmax(betas):
    """PC-DARTS's edge normalisation: the softmax of each node's betas (node j: its j
    input edges, rows in EDGES order), concatenated."""
    parts, start = [], 0
    for j in range(1, NODES):
        parts.append(F.softmax(betas[start:start + j], axis=0))
        start += j
    return paddle.concat(parts)


def build(weights, N, x_shape, pc_k=None):
    """The per-edge supernet of N cells per stage over `weights` ({reference name: array},
    `cut`); pc_k: PC-DARTS's.  Returns (feeds, x, y, {arch parameter: data variable},
    {reference weight: data variable}, loss) in the current program."""
    feed = Feeds(DTYPE)
    w = {name: feed(name, value) for name, value in weights.items()}
    x = paddle.static.data("x", list(x_shape), DTYPE)
    y = paddle.static.data("y", [x_shape[0]], "int64")
    arch = {"alphas_normal": paddle.static.data("alphas_normal", [len(EDGES), len(OPS)], DTYPE)}
    if pc_k:
        arch["betas_normal"] = paddle.static.data("betas_normal", [len(EDGES)], DTYPE)
    for variable in [*arch.values(), *w.values()]:
        variable.stop_gradient = False
    # one alpha for every cell, as NAS-Bench-201's DARTS
    soft = F.softmax(arch["alphas_normal"], axis=-1)
    share = node_softmax(arch["betas_normal"]) if pc_k else None
    h = batch_norm(F.conv2d(x, w["stem.conv"], padding=1), w["stem.bn.weight"],
                   w["stem.bn.bias"])
    for index, kind, _ in layers(N):
        name = f"cells.{index}"
        h = resnet_block(h, w, name) if kind == "block" else cell(h, soft, w, name, share,
                                                                   pc_k or 1)
    h = F.relu(batch_norm(h, w["lastact.bn.weight"], w["lastact.bn.bias"]))
    pooled = paddle.mean(h, axis=[2, 3])
    logits = paddle.matmul(pooled, w["classifier.weight"]) + w["classifier.bias"]
    loss = F.cross_entropy(logits, paddle.unsqueeze(y, 1))
    return feed.values, x, y, arch, w, loss


@fast_build
def reference_run(weights, N, x, y, arch_values, pc_k=None):
    """The per-edge network's loss and gradients on the batch x, y in float64: (loss,
    {arch parameter: dL/d it}, {reference weight: dL/d it}); arch_values: {name: array}
    of alphas_normal (and betas_normal with pc_k)."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        feeds, _, _, arch, w, loss = build(weights, N, x.shape, pc_k)
        names = [*arch, *w]
        grads = paddle.static.gradients([loss], [*arch.values(), *w.values()])
    out = paddle.static.Executor(paddle.CPUPlace()).run(
        main, feed={**feeds, "x": x, "y": y, **arch_values}, fetch_list=[loss, *grads],
        scope=paddle.static.Scope())
    by_name = dict(zip(names, out[1:]))
    return float(out[0]), {n: by_name[n] for n in arch}, {n: by_name[n] for n in w}
