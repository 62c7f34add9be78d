"""Convolution and pooling in numpy, float64, written from their definitions: the
references the network tests compare Paddle's cells with (test_networks.py,
test_nb201_train.py)."""

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def np_conv(x, w, stride=1, pad=0, dilation=1, groups=1):
    (sh, sw), (ph, pw) = _pair(stride), _pair(pad)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_c, in_per_group, kh, kw = w.shape
    oh = (x.shape[2] - dilation * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] - dilation * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], out_c, oh, ow))
    per_group = out_c // groups
    for g in range(groups):
        xs = x[:, g * in_per_group:(g + 1) * in_per_group]
        ws = w[g * per_group:(g + 1) * per_group]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dilation:i * dilation + sh * (oh - 1) + 1:sh,
                           j * dilation:j * dilation + sw * (ow - 1) + 1:sw]
                out[:, g * per_group:(g + 1) * per_group] += np.einsum(
                    "nchw,oc->nohw", patch, ws[:, :, i, j])
    return out


def _windows(x, stride, fill):
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)
    oh, ow = (x.shape[2] - 1) // stride + 1, (x.shape[3] - 1) // stride + 1
    return np.stack([p[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                     for i in range(3) for j in range(3)])


def np_max_pool(x, stride):
    return _windows(x, stride, -np.inf).max(0)


def np_avg_pool(x, stride):  # padding not counted
    return _windows(x, stride, 0.0).sum(0) / _windows(np.ones_like(x), stride, 0.0).sum(0)


def relu(x):
    return np.maximum(x, 0)


def np_batch_norm(x, weight, bias, eps, stats=None):
    """Affine BN over the channels of x: the batch's statistics, or `stats` (mean, var) in
    inference mode."""
    mean, var = (x.mean((0, 2, 3)), x.var((0, 2, 3))) if stats is None else stats
    c = (1, -1, 1, 1)
    return ((x - mean.reshape(c)) / np.sqrt(var.reshape(c) + eps) * weight.reshape(c)
            + bias.reshape(c))
