"""Small program-building helpers that the methods share."""

import numpy as np

from ...genotype import CELLS
from ...paddle_static import paddle


def const(value, dtype):
    """A tensor constant: a Python float in an op would be stored as a float32 attribute."""
    return paddle.full([1], value, dtype)


def table(values, dtype):
    """A constant array in the program's float type (float64 in the gradient tests)."""
    return paddle.assign(np.asarray(values, "float64" if dtype == paddle.float64 else "float32"))


def index(array):
    """A constant int64 index vector."""
    return paddle.assign(np.asarray(array, np.int64).reshape(-1))


def select(gate, when_on, when_off):
    """gate (a fed [1] of 0 or 1) ? when_on : when_off, exactly (no arithmetic blend)."""
    return paddle.where(paddle.expand(gate > 0.5, when_on.shape), when_on, when_off)


def stacked(arch, prefix):
    """Both cells' `<prefix>_<cell>` stacked along axis 0."""
    return paddle.concat([arch[f"{prefix}_{c}"] for c in CELLS])


def per_cell(rows):
    """{cell: its rows} of both cells' rows stacked."""
    return dict(zip(CELLS, paddle.split(rows, len(CELLS))))


def entropy(p, axis=-1):
    """Entropy of each distribution along `axis`; padding entries (p = 0) add nothing."""
    tiny = paddle.full([1], 1e-30, p.dtype)
    return -paddle.sum(p * paddle.log(paddle.maximum(p, tiny)), axis=axis)
