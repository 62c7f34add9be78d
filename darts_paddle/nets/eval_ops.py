"""The ops a genotype can name, as used in the evaluation networks (docs/algorithm.md section 1).

Unlike the fused search cell, an evaluation cell is small: each of its ops is built on its
own.  All BNs are affine; pools have no BN after them (that BN exists only in the search's
mixed op).  Each op declares its weights when constructed and builds ops when called with
a `Context`, like the blocks in ops.py.
"""

from ..paddle_static import F
from .ops import BatchNorm, FactorizedReduce, conv, depthwise


class Identity:
    is_identity = True  # drop path leaves identities alone

    def __call__(self, x, ctx):
        return x


class MaxPool:
    is_identity = False

    def __init__(self, stride):
        self.stride = stride

    def __call__(self, x, ctx):

        return F.max_pool2d(x, 3, self.stride, 1)


class AvgPool:
    """3x3 average; the zero padding is not counted in the mean (count_include_pad=False)."""

    is_identity = False

    def __init__(self, stride):
        self.stride = stride

    def __call__(self, x, ctx):

        return F.avg_pool2d(x, 3, self.stride, 1, exclusive=True)


class DilConv:
    """ReLU, depthwise k x k (dilation d), 1x1 conv, BN; sep convs are two of these."""

    is_identity = False

    def __init__(self, params, stats, name, C, kernel, stride, dilation):
        self.depthwise = params.declare(name + ".dw", [C, 1, kernel, kernel])
        self.pointwise = params.declare(name + ".pw", [C, C, 1, 1])
        self.bn = BatchNorm(params, stats, name + ".bn", C, affine=True)
        self.stride, self.dilation = stride, dilation

    def __call__(self, x, ctx):

        h = depthwise(F.relu(x), [self.depthwise], self.stride, [self.dilation])
        return self.bn(conv(h, self.pointwise), ctx)


class SepConv:
    """Two stacked depthwise-separable blocks; only the first has the stride."""

    is_identity = False

    def __init__(self, params, stats, name, C, kernel, stride):
        self.first = DilConv(params, stats, name + ".1", C, kernel, stride, 1)
        self.second = DilConv(params, stats, name + ".2", C, kernel, 1, 1)

    def __call__(self, x, ctx):
        return self.second(self.first(x, ctx), ctx)


class Conv7x1_1x7:
    """AmoebaNet's ReLU, 1x7 conv, 7x1 conv, BN (the stride split over the two convs)."""

    is_identity = False

    def __init__(self, params, stats, name, C, stride):
        self.conv_1x7 = params.declare(name + ".conv_1x7", [C, C, 1, 7])
        self.conv_7x1 = params.declare(name + ".conv_7x1", [C, C, 7, 1])
        self.bn = BatchNorm(params, stats, name + ".bn", C, affine=True)
        self.stride = stride

    def __call__(self, x, ctx):

        h = conv(F.relu(x), self.conv_1x7, (1, self.stride), (0, 3))
        return self.bn(conv(h, self.conv_7x1, (self.stride, 1), (3, 0)), ctx)


class Reduce(FactorizedReduce):
    """skip_connect with stride 2: a FactorizedReduce, which drop path does drop."""

    is_identity = False

    def __call__(self, x, ctx):
        return super().__call__(x, ctx)


def make_op(op, params, stats, name, C, stride):
    """The op a genotype names, on C channels; stride 2 on a reduction cell's input edges."""
    if op == "skip_connect":
        return Identity() if stride == 1 else Reduce(params, stats, name, C, C, affine=True)
    if op == "max_pool_3x3":
        return MaxPool(stride)
    if op == "avg_pool_3x3":
        return AvgPool(stride)
    if op.startswith("sep_conv_"):
        return SepConv(params, stats, name, C, int(op[-1]), stride)
    if op.startswith("dil_conv_"):
        return DilConv(params, stats, name, C, int(op[-1]), stride, 2)
    if op == "conv_7x1_1x7":
        return Conv7x1_1x7(params, stats, name, C, stride)
    # genotypes are validated against KNOWN_OPS before they get here
    raise ValueError(f"no evaluation op {op!r}")
