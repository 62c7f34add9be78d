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

Its BNs outside the cells are affine; a cell keeps its input's channel count and size."""

from ..paddle_static import F, paddle
from .ops import BatchNorm, ReLUConvBN, conv

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
