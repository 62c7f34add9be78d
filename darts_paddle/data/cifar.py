"""CIFAR-10 / CIFAR-100 from the python-pickle tarballs (or their extracted directory)."""

import os
import tarfile

import numpy as np

from .corrupt import DECODE_ERRORS, FormatError, corrupt
from .download import require_file
from .safe_pickle import safe_loads

# (directory inside the tarball, train members, test members, label key)
_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def _read_members(source: str, folder: str, names):
    """Raw bytes of `names` from a tarball (one sequential pass) or an extracted folder."""
    if os.path.isdir(source):
        out = {}
        for name in names:
            with open(os.path.join(source, name), "rb") as f:
                out[name] = f.read()
        return out
    wanted = {f"{folder}/{n}": n for n in names}
    out = {}
    with tarfile.open(source, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                out[wanted[member.name]] = tar.extractfile(member).read()
    missing = [n for n in names if n not in out]
    if missing:
        raise FormatError(f"member {folder}/{missing[0]} missing")
    return out


def _decode_batch(raw: bytes, label_key: bytes, num_classes: int):
    batch = safe_loads(raw)
    rows = batch[b"data"]
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 \
            or rows.shape[1] != 3072 or len(rows) != len(labels):
        raise FormatError("data is not a uint8 [N, 3072] array matching the labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise FormatError(f"labels outside 0..{num_classes - 1}")
    # each row holds the R plane, then G, then B, each 32x32 row-major
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar(spec, root: str, train: bool, download: bool):
    folder, train_names, test_names, label_key = _LAYOUT[spec.name]
    names = train_names if train else test_names
    extracted = os.path.join(os.path.abspath(root), folder)
    if os.path.isdir(extracted):
        source = extracted
    else:
        source = require_file(spec, root, spec.files[0], download)
    try:
        raw = _read_members(source, folder, names)
    except DECODE_ERRORS as exc:
        raise corrupt(spec.title, source, exc) from exc
    parts = []
    for name in names:
        where = (os.path.join(source, name) if os.path.isdir(source)
                 else f"{source} (member {folder}/{name})")
        try:
            parts.append(_decode_batch(raw[name], label_key, spec.num_classes))
        except DECODE_ERRORS as exc:
            raise corrupt(spec.title, where, exc) from exc
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
