"""NAS-Bench-201's macro network around its cells (Dong & Yang, ICLR 2020, section 2.1),
shared by the search supernet (search/nb201_supernet.py) and the network that trains a
found cell (train.py):

  stem       3x3 conv (no bias), BN
  stage 1    N cells at C channels
  reduction  a ResNet basic block, stride 2, to 2C: ReLU-conv3x3(stride 2)-BN, then
             ReLU-conv3x3-BN, plus the input average-pooled 2x2 and 1x1-convolved
  stage 2    N cells at 2C
  reduction  the same to 4C
  stage 3    N cells at 4C
  head       BN, ReLU, global average pool, linear classifier

Its BNs outside the cells are affine; a cell keeps its input's channel count and size.

`NB201Network` is the network the benchmark trained for each cell (xautodl's TinyNetwork
with InferCells): the same cell everywhere, every BN affine and tracking running
statistics."""

from ..nb201.arch import EDGES, NODES
from ..paddle_static import F, paddle
from .eval_ops import AvgPool, Identity
from .networks import BN_PREFIX, PREFIX
from .ops import BatchNorm, ReLUConvBN, conv
from .params import ParamStore, StatsStore, initial_values

STAGES = 3  # C, 2C, 4C


class ResNetBlock:
    """The basic block between stages: the residual path halves the size and doubles the
    channels, the shortcut is a 2x2 average pool and a 1x1 conv (no BN)."""

    def __init__(self, params, stats, name, c_in, c_out):
        self.conv_a = ReLUConvBN(params, stats, name + ".conv_a", c_in, c_out, 3, 2, 1, True)
        self.conv_b = ReLUConvBN(params, stats, name + ".conv_b", c_out, c_out, 3, 1, 1, True)
        self.shortcut = params.declare(name + ".downsample", [c_out, c_in, 1, 1])

    def __call__(self, x, ctx):
        residual = self.conv_b(self.conv_a(x, ctx), ctx)
        return conv(F.avg_pool2d(x, 2, 2), self.shortcut) + residual


class Skeleton:
    """Stem, three stages of N cells joined by ResNet blocks, head.  `make_cell(name, C)`
    declares one cell of C channels and returns it; a cell is called as cell(x, ctx, *extra)
    with what the caller passes (the search cells take their op weights)."""

    def __init__(self, params, stats, C, N, num_classes, in_channels, make_cell):
        self.stem_conv = params.declare("stem.conv", [C, in_channels, 3, 3])
        self.stem_bn = BatchNorm(params, stats, "stem.bn", C, affine=True)
        self.layers = []  # (is a cell, block), in order; names count them as xautodl does
        width = C
        for stage in range(STAGES):
            if stage:
                name = f"cells.{len(self.layers)}"
                self.layers.append((False, ResNetBlock(params, stats, name, width, 2 * width)))
                width *= 2
            for _ in range(N):
                self.layers.append((True, make_cell(f"cells.{len(self.layers)}", width)))
        self.head_bn = BatchNorm(params, stats, "lastact.bn", width, affine=True)
        self.classifier_w = params.declare("classifier.weight", [width, num_classes])
        self.classifier_b = params.declare("classifier.bias", [num_classes], fan_in=width)

    @property
    def cells(self):
        return [block for is_cell, block in self.layers if is_cell]

    def __call__(self, x, ctx, *cell_args):
        """Logits; `cell_args` go to every cell."""
        h = self.stem_bn(conv(x, self.stem_conv, padding=1), ctx)
        for is_cell, block in self.layers:
            h = block(h, ctx, *cell_args) if is_cell else block(h, ctx)
        h = F.relu(self.head_bn(h, ctx))
        # reshape, not flatten: flatten's gradient cannot be differentiated again (hessian)
        pooled = paddle.reshape(F.adaptive_avg_pool2d(h, 1), [-1, h.shape[1]])
        return paddle.matmul(pooled, self.classifier_w.value) + self.classifier_b.value


def cell_op(op, params, stats, name, C):
    """One edge's op of a trained cell on C channels, stride 1; None for 'none', which
    contributes nothing to its node."""
    if op == "none":
        return None
    if op == "skip_connect":
        return Identity()
    if op == "avg_pool_3x3":
        return AvgPool(1)  # no BN after it; the padding is not counted in the mean
    if op in ("nor_conv_1x1", "nor_conv_3x3"):
        k = int(op[-1])
        return ReLUConvBN(params, stats, name, C, C, k, 1, k // 2, affine=True)
    raise ValueError(f"no NAS-Bench-201 op {op!r}")


class Cell:
    """A cell of fixed ops: node j is the sum over i < j of op_{i->j}(node i), its output
    node 3.  A node all of whose inputs are 'none' is zeros of the input's shape.  Edge k
    (arch.EDGES order) declares its weights as `<name>.layers.<k>`, xautodl's InferCell
    numbering, which counts every edge."""

    def __init__(self, params, stats, name, C, ops):
        self.edges = [(i, j, cell_op(op, params, stats, f"{name}.layers.{k}", C))
                      for k, ((i, j), op) in enumerate(zip(EDGES, ops))]

    def __call__(self, x, ctx):
        nodes = [x]
        for j in range(1, NODES):
            terms = [op(nodes[i], ctx) for i, to, op in self.edges if to == j and op is not None]
            nodes.append(paddle.add_n(terms) if terms else paddle.zeros_like(x))
        return nodes[-1]


class NB201Network:
    """NAS-Bench-201's network of one cell (`ops`, arch.EDGES order) with N cells per stage.
    It offers the training loop what the DARTS evaluation networks (networks.py) do, under
    the same variable names, without an auxiliary head or drop path: called, it returns
    (logits, None)."""

    def __init__(self, ops, C=16, N=5, num_classes=10, in_channels=3):
        self.ops = tuple(ops)
        self.params, self.stats = ParamStore(PREFIX), StatsStore(BN_PREFIX)
        self.skeleton = Skeleton(
            self.params, self.stats, C, N, num_classes, in_channels,
            lambda name, width: Cell(self.params, self.stats, name, width, self.ops))

    @property
    def cells(self):
        return self.skeleton.cells

    def __call__(self, x, ctx, drop=None):
        if drop is not None:
            raise ValueError("NAS-Bench-201's network has no drop path")
        return self.skeleton(x, ctx), None

    def materialize(self, shared, training):
        """Bind weights and statistics in the program being built; returns the weight
        banks (the same in training and inference: there is no auxiliary head)."""
        banks = self.params.materialize(shared)
        self.stats.materialize(shared)
        return banks

    def stores(self):
        return [(self.params, self.stats)]

    def initial_values(self, rng):
        return initial_values(self.stores(), rng)
