"""Write tiny data files in the exact published formats, for tests/test_data.py.

The CIFAR batches were pickled by Python 2 cPickle (protocol 2): str values are
BINSTRINGs and numpy arrays are rebuilt through numpy.core.multiarray._reconstruct.
Pickling from Python 3 would produce different opcodes (unicode strings, numpy._core
names), so the opcodes are emitted here by hand to match the real files.
"""

import gzip
import io
import os
import struct
import tarfile

import numpy as np


# --- Python-2-style pickle -------------------------------------------------------------

def _p2_str(b: bytes) -> bytes:
    if len(b) < 256:
        return b"U" + bytes([len(b)]) + b                   # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(b)) + b            # BINSTRING


def _p2_int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])                            # BININT1
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)                  # BININT2
    return b"J" + struct.pack("<i", v)                      # BININT


def _p2_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"                    # MARK ... TUPLE


def _p2_array(a: np.ndarray) -> bytes:
    assert a.dtype == np.uint8
    dtype = (b"cnumpy\ndtype\n" + _p2_str(b"u1") + _p2_int(0) + _p2_int(1) + b"\x87R"
             + _p2_tuple([_p2_int(3), _p2_str(b"|"), b"N", b"N", b"N",
                          b"J\xff\xff\xff\xff", b"J\xff\xff\xff\xff", _p2_int(0)]) + b"b")
    state = _p2_tuple([_p2_int(1), _p2_tuple([_p2_int(d) for d in a.shape]), dtype,
                       b"\x89", _p2_str(a.tobytes())])
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
            + _p2_int(0) + b"\x85" + _p2_str(b"b") + b"\x87R" + state + b"b")


def _p2_value(v) -> bytes:
    if isinstance(v, np.ndarray):
        return _p2_array(v)
    if isinstance(v, bytes):
        return _p2_str(v)
    if isinstance(v, int):
        return _p2_int(v)
    if isinstance(v, list):
        return b"](" + b"".join(_p2_value(x) for x in v) + b"e"   # EMPTY_LIST MARK APPENDS
    raise TypeError(type(v))


def py2_pickle(d: dict) -> bytes:
    body = b"".join(_p2_str(k) + _p2_value(v) for k, v in d.items())
    return b"\x80\x02}(" + body + b"u."                     # EMPTY_DICT MARK SETITEMS STOP


# --- CIFAR -----------------------------------------------------------------------------

def random_uint8(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_cifar10(root, train_rows, train_labels, test_rows, test_labels, members=None):
    """cifar-10-python.tar.gz with the train rows split over data_batch_1..5; `members`
    adds or replaces raw member files (by name inside cifar-10-batches-py/)."""
    path = os.path.join(root, "cifar-10-python.tar.gz")
    chunks = np.array_split(np.arange(len(train_rows)), 5)
    files = {}
    for b, idx in enumerate(chunks, 1):
        files[f"data_batch_{b}"] = py2_pickle({
            b"batch_label": b"training batch %d of 5" % b,
            b"labels": [int(x) for x in train_labels[idx]],
            b"data": train_rows[idx],
            b"filenames": [b"img%d.png" % i for i in idx],
        })
    files["test_batch"] = py2_pickle({
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(x) for x in test_labels],
        b"data": test_rows,
        b"filenames": [b"t%d.png" % i for i in range(len(test_rows))],
    })
    files["batches.meta"] = py2_pickle({
        b"label_names": [b"c%d" % i for i in range(10)],
        b"num_cases_per_batch": 10000, b"num_vis": 3072})
    files.update(members or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            _add(tar, "cifar-10-batches-py/" + name, data)
    return path


def write_cifar100(root, train_rows, train_labels, test_rows, test_labels):
    path = os.path.join(root, "cifar-100-python.tar.gz")

    def batch(rows, labels):
        return py2_pickle({
            b"filenames": [b"x%d.png" % i for i in range(len(rows))],
            b"batch_label": b"batch",
            b"fine_labels": [int(x) for x in labels],
            b"coarse_labels": [int(x) // 5 for x in labels],
            b"data": rows,
        })

    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "cifar-100-python/train", batch(train_rows, train_labels))
        _add(tar, "cifar-100-python/test", batch(test_rows, test_labels))
        _add(tar, "cifar-100-python/meta", py2_pickle({
            b"fine_label_names": [b"f%d" % i for i in range(100)],
            b"coarse_label_names": [b"k%d" % i for i in range(20)]}))
    return path


# --- SVHN ------------------------------------------------------------------------------

def write_svhn(path, x, y):
    """train_32x32.mat / test_32x32.mat: X uint8 [32, 32, 3, N], y [N, 1] (digit 0 stored as 10)."""
    import scipy.io

    scipy.io.savemat(path, {"X": x, "y": np.asarray(y, dtype=np.uint8).reshape(-1, 1)})


# --- Fashion-MNIST ---------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(directory, train_images, train_labels, test_images, test_labels):
    os.makedirs(directory, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte.gz", train_images),
                        ("train-labels-idx1-ubyte.gz", train_labels),
                        ("t10k-images-idx3-ubyte.gz", test_images),
                        ("t10k-labels-idx1-ubyte.gz", test_labels)):
        with gzip.open(os.path.join(directory, name), "wb") as f:
            f.write(idx_bytes(array))


# --- ImageNet --------------------------------------------------------------------------

def write_image(path, rgb: np.ndarray):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rgb).save(path)
