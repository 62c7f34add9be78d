"""SVHN cropped digits from train_32x32.mat / test_32x32.mat (MATLAB v5)."""

import numpy as np

from .corrupt import DECODE_ERRORS, FormatError, corrupt
from .download import require_file


def _decode(path: str):
    import scipy.io

    mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.shape[:3] != (32, 32, 3) or x.ndim != 4 or x.shape[3] != len(y):
        raise FormatError("X is not uint8 [32, 32, 3, N] matching y")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise FormatError("labels outside 1..10")
    images = np.ascontiguousarray(x.transpose(3, 0, 1, 2))
    return images, np.where(y == 10, 0, y)  # the files store digit 0 as label 10


def load_svhn(spec, root: str, train: bool, download: bool):
    path = require_file(spec, root, spec.files[0 if train else 1], download)
    try:
        return _decode(path)
    except DECODE_ERRORS as exc:
        raise corrupt(spec.title, path, exc) from exc
