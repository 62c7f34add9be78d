"""Fashion-MNIST from the gzipped idx files, padded from 28x28 to 32x32."""

import gzip
import os

import numpy as np

from .corrupt import DECODE_ERRORS, FormatError, corrupt
from .download import require_file

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
PAD = 2  # 28 + 2 + 2 = 32, the size the CIFAR networks expect


def read_idx(path: str, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = 3 if magic == _IMAGES_MAGIC else 1
    header = np.frombuffer(raw[:4 * (1 + ndim)], dtype=">i4")
    if len(header) != 1 + ndim or header[0] != magic:
        raise FormatError(f"bad magic number (expected {magic})")
    shape = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim))
    if data.size != int(np.prod(shape)):
        raise FormatError(f"{data.size} bytes of data for shape {shape}")
    return data.reshape(shape)


def _find(spec, root, filename, download):
    search = (os.path.join(os.path.abspath(root), "fashion-mnist"), SYSTEM_DIR)
    return require_file(spec, root, filename, download, search_dirs=search)


def load_fashion_mnist(spec, root: str, train: bool, download: bool):
    image_file, label_file = spec.files[0:2] if train else spec.files[2:4]
    decoded = []
    for filename, magic in ((image_file, _IMAGES_MAGIC), (label_file, _LABELS_MAGIC)):
        path = _find(spec, root, filename, download)
        try:
            decoded.append(read_idx(path, magic))
        except DECODE_ERRORS as exc:
            raise corrupt(spec.title, path, exc) from exc
    images, labels = decoded
    if len(images) != len(labels) or images.shape[1:] != (28, 28) \
            or (labels.size and labels.max() >= spec.num_classes):
        raise corrupt(spec.title, path, f"{len(images)} images of {images.shape[1:]} for "
                                        f"{len(labels)} labels in 0..{labels.max(initial=0)}")
    padded = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))[..., None]
    return padded, labels.astype(np.int64)
