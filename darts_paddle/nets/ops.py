"""Building blocks shared by the search network and the evaluation networks.

Each block declares its weights in a ParamStore and its BN statistics in a StatsStore when
constructed, and builds static-graph ops when called with a `Context`.  Convolutions have no
bias (docs/algorithm.md section 1); BN is non-affine inside search cells and affine elsewhere.

Every conv is built here: `conv` (dense and grouped) and `depthwise`, which runs on our
kernel (kernels/depthwise.py) on the CPU by default and on Paddle's conv2d otherwise
(runtime.depthwise_backend(), a GPU, a failed build, or `stock_convs()`).  Inside
`twice_differentiable()` the ops are built so that Paddle can differentiate their gradient
once more (the exact Hessian-vector product, search/programs.py).
"""

import contextlib
import contextvars
from dataclasses import dataclass

from ..paddle_static import F, paddle
from paddle import _C_ops  # noqa: E402 (after paddle_static: Paddle loads configured)
from ..kernels import depthwise as kernel
from ..runtime import depthwise_backend, get_place
from .params import ParamStore, StatsStore

BN_MOMENTUM = 0.9  # Paddle's convention: running = 0.9 * running + 0.1 * batch (PyTorch 0.1)
BN_EPS = 1e-5


@dataclass
class Context:
    """What a forward pass needs besides its input: the mode."""

    training: bool


STOCK, TWICE = "stock", "twice"  # how the ops built now are made (None: the fastest way)
_building = contextvars.ContextVar("building", default=None)


@contextlib.contextmanager
def _build_as(mode):
    token = _building.set(mode)
    try:
        yield
    finally:
        _building.reset(token)


def stock_convs():
    """Build every depthwise conv as Paddle's conv2d: programs saved for Paddle's inference
    predictor and paddle2onnx, which know no custom ops (train/programs.py)."""
    return _build_as(STOCK)


def twice_differentiable():
    """Build ops whose gradients Paddle 3.3 can differentiate again (docs/paddle.md section
    5): depthwise convs as grouped conv2d (depthwise_conv2d's double grad fails its dtype
    check, and the executor refuses a custom op's double grad), max pools as a gather at the
    pooled indices (max_pool2d has no double grad kernel on the CPU), training-mode BN from
    means and products (its double grad kernel is slow), the cross-entropy from logsumexp
    (cross_entropy_with_softmax has no double grad).  Each is the same function."""
    return _build_as(TWICE)


def _on_kernel():
    """Whether the depthwise convs built now run on our kernel."""
    return (_building.get() is None and depthwise_backend() == "kernel"
            and isinstance(get_place(), paddle.CPUPlace) and kernel.available())


def conv(x, weight, stride=1, padding=0, dilation=1, groups=1):
    return _conv2d(x, weight.value, stride, padding, dilation, groups)


def depthwise(x, weights, stride=1, dilations=(1,)):
    """Depthwise convs with "same" padding, one per weight entry [C_g, 1, k, k] (odd k,
    dilation dilations[g]), stacked along the output channels: output channel o reads x's
    channel o % C_in.  On our kernel that is one op; on Paddle's conv2d one conv per weight
    over the channels it reads (x tiled, or x split), concatenated."""
    if _on_kernel():
        return kernel.depthwise_conv2d(x, [w.value for w in weights], stride, dilations)
    sizes, channels = [w.shape[0] for w in weights], x.shape[1]
    if len(sizes) > 1 and sum(sizes) == channels:  # the weights split x's channels
        sources = paddle.split(x, sizes, axis=1)
    elif _building.get() == TWICE:  # no copies of x: its double backward would keep them all
        outs = [_copies_by_channel(x, w.value, stride, d) for w, d in zip(weights, dilations)]
        return outs[0] if len(outs) == 1 else paddle.concat(outs, axis=1)
    else:  # each weight reads all of x, C_g / C_in times (edge-major copies)
        assert all(n % channels == 0 for n in sizes), "C_g must be a multiple of C_in"
        tiled = {n: x if n == channels else paddle.tile(x, [1, n // channels, 1, 1])
                 for n in set(sizes)}  # one tile per copy count
        sources = [tiled[n] for n in sizes]
    outs = [_conv2d(source, w.value, stride, d * (w.shape[2] // 2), d, w.shape[0])
            for source, w, d in zip(sources, weights, dilations)]
    return outs[0] if len(outs) == 1 else paddle.concat(outs, axis=1)


def _copies_by_channel(x, weight, stride, dilation):
    """The depthwise conv of E edge-major copies of x (weight [E*C, 1, k, k], row e*C + c
    reading channel c) as one conv with groups = C over x itself: the rows reordered
    channel-major, and the output's channels back to edge-major."""
    c, k = x.shape[1], weight.shape[2]
    e = weight.shape[0] // c
    if e > 1:
        weight = paddle.reshape(paddle.transpose(paddle.reshape(weight, [e, c, k, k]),
                                                 [1, 0, 2, 3]), [c * e, 1, k, k])
    y = _conv2d(x, weight, stride, dilation * (k // 2), dilation, c)
    if e == 1:
        return y
    h, w = y.shape[2:]
    return paddle.reshape(paddle.transpose(paddle.reshape(y, [-1, c, e, h, w]), [0, 2, 1, 3, 4]),
                          [-1, e * c, h, w])


def _conv2d(x, weight, stride, padding, dilation, groups):
    """F.conv2d, which builds Paddle's depthwise_conv2d where each group reads one channel;
    inside `twice_differentiable()` always the general conv2d op (the same function)."""
    if _building.get() != TWICE:
        return F.conv2d(x, weight, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)
    return _C_ops.conv2d(x, weight, [stride] * 2, [padding] * 2, "EXPLICIT", [dilation] * 2,
                         groups, "NCHW")


def max_pool(x, kernel_size, stride, padding=0):
    """F.max_pool2d; inside `twice_differentiable()` the input read at the pooled indices."""
    if _building.get() != TWICE:
        return F.max_pool2d(x, kernel_size, stride, padding)
    out, index = F.max_pool2d(x, kernel_size, stride, padding, return_mask=True)
    (c, h, w), (ho, wo) = x.shape[1:], out.shape[2:]  # reshape: flatten has no double grad
    index = paddle.cast(paddle.reshape(index, [-1, c, ho * wo]), "int64")
    picked = paddle.take_along_axis(paddle.reshape(x, [-1, c, h * w]), index, axis=2)
    return paddle.reshape(picked, [-1, c, ho, wo])


def cross_entropy(logits, y):
    """The mean over the batch of -log softmax(logits)[y] for labels y [N] (int64)."""
    label = paddle.unsqueeze(y, 1)
    if _building.get() != TWICE:
        return F.cross_entropy(logits, label)
    picked = paddle.take_along_axis(logits, label, axis=1)
    return paddle.mean(paddle.logsumexp(logits, axis=1, keepdim=True) - picked)


class BatchNorm:
    """BN over `channels`; training mode records the updated running statistics."""

    def __init__(self, params: ParamStore, stats: StatsStore, name, channels, affine):
        self.stats = stats.declare(name, channels)
        self.scale = params.declare(name + ".weight", [channels], "ones", 1) if affine else None
        self.shift = params.declare(name + ".bias", [channels], "zeros", 1) if affine else None

    def __call__(self, x, ctx, scale=None):
        """`scale` (non-affine BN only) multiplies the output per channel, e.g. op weights."""
        s = self.stats
        shift = None
        if self.scale is not None:
            scale, shift = self.scale.value, self.shift.value
        elif scale is not None:
            # the kernel needs a bias beside a scale, and a bias gradient to write into
            shift = paddle.zeros([s.channels], x.dtype)
            shift.stop_gradient = False
        if ctx.training and _building.get() == TWICE:
            return _batch_norm_from_primitives(x, scale, shift)
        out, new_mean, new_var, *_ = _C_ops.batch_norm(
            x, s.mean, s.var, scale, shift,
            not ctx.training, BN_MOMENTUM, BN_EPS, "NCHW", False, False)
        if ctx.training:
            s.new_mean, s.new_var = new_mean, new_var
        return out


def _batch_norm_from_primitives(x, scale, shift):
    """BN in training mode, with the batch's statistics, from means and products: the same
    function, and its gradient's gradient runs in the time of a few more passes, where the
    batch_norm_double_grad CPU kernel took 95 % of a Hessian-vector product (docs/paddle.md).
    The running statistics are not updated (a hessian program never writes them)."""
    mean = paddle.mean(x, axis=[0, 2, 3], keepdim=True)
    centred = x - mean
    out = centred * paddle.rsqrt(paddle.mean(centred * centred, axis=[0, 2, 3], keepdim=True)
                                 + BN_EPS)
    channels = [1, x.shape[1], 1, 1]
    if scale is not None:
        out = out * paddle.reshape(scale, channels)
    if shift is not None:
        out = out + paddle.reshape(shift, channels)
    return out


class ReLUConvBN:
    def __init__(self, params, stats, name, c_in, c_out, kernel, stride, padding, affine):
        self.weight = params.declare(name + ".conv", [c_out, c_in, kernel, kernel])
        self.bn = BatchNorm(params, stats, name + ".bn", c_out, affine)
        self.stride, self.padding = stride, padding

    def __call__(self, x, ctx):

        return self.bn(conv(F.relu(x), self.weight, self.stride, self.padding), ctx)


class FactorizedReduce:
    """Halve the resolution with two 1x1 stride-2 convs, one shifted by a pixel.

    `copies` > 1 computes that many independent FactorizedReduce ops of the same input at
    once (the fused search cell): their convs share the input, so the weights simply
    stack along the output channels.  Output [B, copies * c_out, H/2, W/2], copy-major.
    """

    def __init__(self, params, stats, name, c_in, c_out, affine, copies=1):
        assert c_out % 2 == 0, "FactorizedReduce needs an even channel count"
        half = copies * c_out // 2
        self.conv_1 = params.declare(name + ".conv_1", [half, c_in, 1, 1])
        self.conv_2 = params.declare(name + ".conv_2", [half, c_in, 1, 1])
        self.bn = BatchNorm(params, stats, name + ".bn", copies * c_out, affine)
        self.copies, self.c_out = copies, c_out

    def __call__(self, x, ctx, scale=None):

        x = F.relu(x)
        a = conv(x, self.conv_1, stride=2)
        b = conv(x[:, :, 1:, 1:], self.conv_2, stride=2)
        if self.copies == 1:
            return self.bn(paddle.concat([a, b], axis=1), ctx, scale)
        # interleave per copy: [a_0, b_0, a_1, b_1, ...] so copy e owns channels e*c_out...
        h, w = a.shape[2], a.shape[3]
        half = [-1, self.copies, self.c_out // 2, h, w]
        ab = paddle.concat([paddle.reshape(a, half), paddle.reshape(b, half)], axis=2)
        return self.bn(paddle.reshape(ab, [-1, self.copies * self.c_out, h, w]), ctx, scale)
