"""Data sets, transforms and loaders of darts_paddle.data, on tiny format-exact files."""

import gzip
import io
import os
import stat
import tarfile
import urllib.error

import numpy as np
import pytest

from darts_paddle.data import (
    BatchLoader, Normalize, PadCropFlip, build_transform, cutout, describe, endless_batches,
    get_spec, load_dataset, search_split)
from darts_paddle.data import download as download_mod
from darts_paddle.data import fashion_mnist as fmnist_mod
from darts_paddle.data.__main__ import main
from darts_paddle.data.imagenet_transforms import (
    ImageNetEval, ImageNetTrain, random_resized_box, shift_hue)
from darts_paddle.data.loader import sample_rng
from darts_paddle.errors import UserError

from tests.helpers import data_fixtures as fx

CIFAR10 = get_spec("cifar10")


@pytest.fixture
def no_system_fmnist(monkeypatch, tmp_path):
    """Hide the machine's Fashion-MNIST so 'missing file' paths are reachable."""
    monkeypatch.setattr(fmnist_mod, "SYSTEM_DIR", str(tmp_path / "no-such-dir"))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, timeout=None):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    monkeypatch.setattr(download_mod.urllib.request, "urlopen", refuse)


def _paddle_mode(dynamic):
    """Paddle in dynamic or static mode for one test, then back in the mode it was in
    (other test files leave it in either)."""
    import paddle

    def switch(to_dynamic):
        if to_dynamic:
            paddle.disable_static()
        else:
            paddle.enable_static()

    was_dynamic = paddle.in_dynamic_mode()
    switch(dynamic)
    try:
        yield
    finally:
        switch(was_dynamic)


@pytest.fixture
def static_mode():
    yield from _paddle_mode(dynamic=False)


@pytest.fixture
def dynamic_mode():
    yield from _paddle_mode(dynamic=True)


def pixel_row(r, g, b, h, w):
    """A CIFAR row (R plane, G plane, B plane, each 32x32 row-major) with one coloured pixel."""
    row = np.zeros(3072, np.uint8)
    row[0 * 1024 + h * 32 + w], row[1 * 1024 + h * 32 + w], row[2 * 1024 + h * 32 + w] = r, g, b
    return row


# --- CIFAR -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    train = fx.random_uint8((10, 3072), 1)
    train[7] = pixel_row(11, 22, 33, h=5, w=9)       # lands in data_batch_4
    test = fx.random_uint8((3, 3072), 2)
    fx.write_cifar10(str(root), train, np.arange(10) % 10, test, np.array([9, 0, 4]))
    return root, train, test


def test_cifar10_pixel_planes_and_labels(cifar10_root):
    root, train_rows, test_rows = cifar10_root
    ds = load_dataset("cifar10", str(root), train=True, download=False)
    assert ds.images.shape == (10, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == list(range(10))
    assert ds.images[7, 5, 9].tolist() == [11, 22, 33]
    assert int(ds.images[7].sum()) == 66                     # nothing else lit
    # every pixel, by the published index formula
    n, h, w, c = 3, 17, 4, 2
    assert ds.images[n, h, w, c] == train_rows[n, c * 1024 + h * 32 + w]
    test = load_dataset("cifar10", str(root), train=False, download=False)
    assert test.labels.tolist() == [9, 0, 4]
    assert test.images[2, 31, 0, 1] == test_rows[2, 1024 + 31 * 32 + 0]


def test_cifar10_from_extracted_directory(cifar10_root, tmp_path):
    root, _, _ = cifar10_root
    with tarfile.open(root / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    ds = load_dataset("cifar10", str(tmp_path), train=True, download=False)
    ref = load_dataset("cifar10", str(root), train=True, download=False)
    np.testing.assert_array_equal(ds.images, ref.images)
    np.testing.assert_array_equal(ds.labels, ref.labels)


def test_cifar100_fine_labels(tmp_path):
    train = fx.random_uint8((4, 3072), 3)
    train[2] = pixel_row(200, 100, 50, h=31, w=0)
    fx.write_cifar100(str(tmp_path), train, np.array([99, 0, 57, 3]),
                      fx.random_uint8((2, 3072), 4), np.array([1, 98]))
    ds = load_dataset("cifar100", str(tmp_path), train=True, download=False)
    assert ds.labels.tolist() == [99, 0, 57, 3] and ds.num_classes == 100
    assert ds.images[2, 31, 0].tolist() == [200, 100, 50]
    assert load_dataset("cifar100", str(tmp_path), False, False).labels.tolist() == [1, 98]


def _cifar_with_member(root, name, data):
    rows = fx.random_uint8((5, 3072), 0)
    return fx.write_cifar10(str(root), rows, np.zeros(5, int), rows[:1], [0],
                            members={name: data})


def test_cifar_not_a_pickle(tmp_path):
    path = _cifar_with_member(tmp_path, "data_batch_2", b"this is not a pickle")
    with pytest.raises(UserError, match="cifar-10-python.tar.gz.*data_batch_2.*delete"):
        load_dataset("cifar10", str(tmp_path), True, False)
    assert os.path.exists(path)


def test_cifar_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "owned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    _cifar_with_member(tmp_path, "test_batch", evil)
    with pytest.raises(UserError, match="test_batch.*forbidden global os.system"):
        load_dataset("cifar10", str(tmp_path), False, False)
    assert not marker.exists()


def test_cifar_truncated_tarball(cifar10_root, tmp_path):
    raw = (cifar10_root[0] / "cifar-10-python.tar.gz").read_bytes()
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=f"{tmp_path}.*cifar-10-python.tar.gz.*delete it"):
        load_dataset("cifar10", str(tmp_path), True, False)


def test_cifar_wrong_row_size(tmp_path):
    bad = fx.py2_pickle({b"data": fx.random_uint8((2, 100), 0), b"labels": [0, 1]})
    _cifar_with_member(tmp_path, "data_batch_1", bad)
    with pytest.raises(UserError, match="data_batch_1.*3072"):
        load_dataset("cifar10", str(tmp_path), True, False)


# --- missing files and downloads -------------------------------------------------------

def test_missing_file_without_download(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", str(tmp_path / "data"), True, download=False)
    msg = str(err.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "data") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg


def test_missing_file_download_fails(tmp_path, no_network):
    with pytest.raises(UserError) as err:
        load_dataset("svhn", str(tmp_path), train=False, download=True)
    msg = str(err.value)
    assert "test_32x32.mat" in msg and str(tmp_path) in msg and "download failed" in msg
    assert "Connection refused" in msg
    assert os.listdir(tmp_path) == []                         # no partial file left


class _FakeResponse(io.BytesIO):
    headers = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_writes_fashion_mnist(tmp_path, monkeypatch, no_system_fmnist):
    src = tmp_path / "server"
    images = fx.random_uint8((3, 28, 28), 5)
    fx.write_fashion_mnist(str(src), images, np.array([1, 2, 3], np.uint8),
                           images[:1], np.array([4], np.uint8))
    asked = []

    def serve(url, timeout=None):
        asked.append(url)
        return _FakeResponse((src / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(download_mod.urllib.request, "urlopen", serve)
    root = tmp_path / "data"
    ds = load_dataset("fashion_mnist", str(root), train=True, download=True)
    assert ds.labels.tolist() == [1, 2, 3]
    assert sorted(os.listdir(root)) == ["train-images-idx3-ubyte.gz",
                                        "train-labels-idx1-ubyte.gz"]
    assert asked[0] == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
                        "train-images-idx3-ubyte.gz")


def test_download_md5_mismatch_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(download_mod.urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse(b"payload"))
    dest = tmp_path / "f.bin"
    with pytest.raises(ValueError, match="md5"):
        download_mod.download("http://x/f.bin", str(dest), md5="0" * 32)
    assert os.listdir(tmp_path) == []
    old = os.umask(0o022)
    try:
        download_mod.download("http://x/f.bin", str(dest), md5="321c3cf486ed509164edec1e1981fec8")
    finally:
        os.umask(old)
    assert dest.read_bytes() == b"payload"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644  # what the umask gives, not 0600


def test_unknown_name_lists_known():
    with pytest.raises(UserError, match="cifar10, cifar100, fashion_mnist, imagenet, svhn"):
        load_dataset("mnist", "/nonexistent", True, False)


# --- SVHN ------------------------------------------------------------------------------

def test_svhn_layout_and_label_ten(tmp_path):
    x = fx.random_uint8((32, 32, 3, 4), 6)
    x[3, 30, :, 2] = [1, 2, 3]                                # image 2, row 3, column 30
    fx.write_svhn(str(tmp_path / "train_32x32.mat"), x, [10, 1, 9, 10])
    ds = load_dataset("svhn", str(tmp_path), train=True, download=False)
    assert ds.images.shape == (4, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.images[2, 3, 30].tolist() == [1, 2, 3]
    assert ds.labels.tolist() == [0, 1, 9, 0] and ds.labels.dtype == np.int64


def test_svhn_bad_mat(tmp_path):
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 50)
    with pytest.raises(UserError, match="test_32x32.mat.*delete"):
        load_dataset("svhn", str(tmp_path), train=False, download=False)


def test_svhn_wrong_shape(tmp_path):
    fx.write_svhn(str(tmp_path / "test_32x32.mat"), fx.random_uint8((28, 28, 3, 2), 0), [1, 2])
    with pytest.raises(UserError, match="test_32x32.mat.*32, 32, 3"):
        load_dataset("svhn", str(tmp_path), train=False, download=False)


# --- Fashion-MNIST ---------------------------------------------------------------------

def _fmnist(directory, n=5):
    images = fx.random_uint8((n, 28, 28), 7)
    images[1, 0, 27] = 77
    fx.write_fashion_mnist(str(directory), images, np.arange(n, dtype=np.uint8) % 10,
                           images[:2], np.array([9, 8], np.uint8))
    return images


def test_fashion_mnist_padding(tmp_path, no_system_fmnist):
    images = _fmnist(tmp_path / "fashion-mnist")               # found in the sub-folder
    ds = load_dataset("fashion_mnist", str(tmp_path), train=True, download=False)
    assert ds.images.shape == (5, 32, 32, 1) and ds.images.dtype == np.uint8
    assert ds.images[1, 2, 29, 0] == 77                        # (0, 27) shifted by the pad of 2
    np.testing.assert_array_equal(ds.images[:, 2:30, 2:30, 0], images)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not ds.images[:, border].any()
    assert ds.labels.tolist() == [0, 1, 2, 3, 4]
    assert load_dataset("fashion_mnist", str(tmp_path), False, False).labels.tolist() == [9, 8]


def test_fashion_mnist_truncated_gzip(tmp_path, no_system_fmnist):
    _fmnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz.*delete"):
        load_dataset("fashion_mnist", str(tmp_path), True, False)


def test_fashion_mnist_bad_magic(tmp_path, no_system_fmnist):
    _fmnist(tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x02\x00\x00\x00\x02\x09\x08")  # magic 2050
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz.*magic"):
        load_dataset("fashion_mnist", str(tmp_path), False, False)


def test_fashion_mnist_missing(tmp_path, no_system_fmnist):
    with pytest.raises(UserError, match=f"train-images-idx3-ubyte.gz.*into {tmp_path}"):
        load_dataset("fashion_mnist", str(tmp_path), True, False)


@pytest.mark.skipif(not os.path.isdir(fmnist_mod.SYSTEM_DIR), reason="dataset-fashion-mnist absent")
def test_fashion_mnist_system_copy(tmp_path):
    train = describe(load_dataset("fashion_mnist", str(tmp_path), True, download=False))
    test = describe(load_dataset("fashion_mnist", str(tmp_path), False, download=False))
    assert (train.size, test.size) == (60000, 10000)
    assert train.counts == [6000] * 10 and test.counts == [1000] * 10
    assert str(train).startswith("fashion_mnist train: 60000 images 1x32x32, 10 classes, "
                                 "counts [6000, 6000,")


def test_main_prints_both_splits(tmp_path, capsys, no_system_fmnist):
    _fmnist(tmp_path)
    assert main(["fashion_mnist", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["fashion_mnist train: 5 images 1x32x32, 10 classes, "
                   "counts [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]",
                   "fashion_mnist test: 2 images 1x32x32, 10 classes, "
                   "counts [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]"]
    assert main(["nope", "--data", str(tmp_path)]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err


# --- ImageNet --------------------------------------------------------------------------

def _imagenet_folder(root):
    colours = {"n02": (255, 0, 0), "n01": (0, 0, 255)}
    for split, count in (("train", 2), ("val", 1)):
        for name, rgb in colours.items():
            for k in range(count):
                img = np.zeros((20 + k, 30, 3), np.uint8) + np.array(rgb, np.uint8)
                fx.write_image(str(root / split / name / f"im{k}.JPEG"), img)
    (root / "train" / "n01" / "notes.txt").write_text("not an image")


def test_imagenet_folder_layout(tmp_path):
    _imagenet_folder(tmp_path)
    ds = load_dataset("imagenet", str(tmp_path), train=True)
    assert ds.num_classes == 2 and ds.labels.tolist() == [0, 0, 1, 1]   # n01 sorts first
    assert all(p.endswith(".JPEG") for p in ds.paths)
    img, label = ds.load(3)
    assert img.mode == "RGB" and img.size == (30, 21) and label == 1
    assert np.asarray(img)[10, 10, 0] > 200                     # n02 is red (JPEG-lossy)
    val = load_dataset("imagenet", str(tmp_path), train=False)
    assert val.labels.tolist() == [0, 1] and describe(val).split == "val"


def test_imagenet_list_layout(tmp_path):
    fx.write_image(str(tmp_path / "imgs" / "a.png"), np.full((8, 9), 128, np.uint8))  # gray
    fx.write_image(str(tmp_path / "imgs" / "b c.png"), np.zeros((5, 5, 3), np.uint8))
    (tmp_path / "train_list.txt").write_text("imgs/a.png 3\nimgs/b c.png 0\n\n")
    (tmp_path / "val_list.txt").write_text("imgs/a.png 7\n")
    ds = load_dataset("imagenet", str(tmp_path), train=True)
    assert ds.labels.tolist() == [3, 0] and ds.num_classes == 8
    assert ds.paths[1] == str(tmp_path / "imgs" / "b c.png")
    img, _ = ds.load(0)
    assert img.mode == "RGB" and np.asarray(img)[0, 0].tolist() == [128, 128, 128]


def test_imagenet_missing_explains_layouts(tmp_path):
    with pytest.raises(UserError, match="never downloaded.*train/<class>.*train_list.txt"):
        load_dataset("imagenet", str(tmp_path), train=True, download=True)


def test_imagenet_broken_image_in_worker(tmp_path, static_mode):
    _imagenet_folder(tmp_path)
    (tmp_path / "val" / "n01" / "im0.JPEG").write_bytes(b"\xff\xd8 truncated")
    ds = load_dataset("imagenet", str(tmp_path), train=False)
    loader = BatchLoader(ds, batch_size=2, shuffle=False, num_workers=2)
    with pytest.raises(UserError) as err:
        list(loader.epoch(0))
    msg = str(err.value)
    assert "\n" not in msg and "im0.JPEG" in msg and "cannot be decoded" in msg


# --- transforms ------------------------------------------------------------------------

def test_eval_normalisation_by_hand():
    img = fx.random_uint8((32, 32, 3), 8)
    out = build_transform(CIFAR10, train=False)(img)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    for c in range(3):
        expected = (img[:, :, c] / 255.0 - CIFAR10.mean[c]) / CIFAR10.std[c]
        np.testing.assert_allclose(out[c], expected, atol=2e-6)


def _windows(img, pad):
    """Every pad-crop window of the zero-padded image, plain and mirrored."""
    h, w = img.shape[:2]
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy:dy + h, dx:dx + w]
            yield crop, False
            yield crop[:, ::-1], True


def test_pad_crop_flip_is_a_window_and_deterministic():
    img = fx.random_uint8((32, 32, 3), 9)
    tr = build_transform(CIFAR10, train=True)
    norm = Normalize(CIFAR10.mean, CIFAR10.std)
    outs, flips = [], set()
    for epoch in range(6):
        out = tr(img, sample_rng(0, epoch, 5))
        assert out.shape == (3, 32, 32) and out.dtype == np.float32
        np.testing.assert_array_equal(out, tr(img, sample_rng(0, epoch, 5)))
        matches = [f for crop, f in _windows(img, 4) if np.array_equal(norm(crop), out)]
        assert len(matches) == 1
        flips.add(matches[0])
        outs.append(out)
    assert flips == {True, False}                               # both happen in 6 epochs
    assert len({o.tobytes() for o in outs}) == 6                # epochs differ


def test_svhn_never_flips():
    spec = get_spec("svhn")
    img = fx.random_uint8((32, 32, 3), 10)
    tr = build_transform(spec, train=True)
    norm = Normalize(spec.mean, spec.std)
    for i in range(12):
        out = tr(img, sample_rng(1, 0, i))
        assert [f for crop, f in _windows(img, 4) if np.array_equal(norm(crop), out)] == [False]


class _FixedRng:
    """Stands in for a Generator: integers() returns queued values."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, *args, **kwargs):
        return self.values.pop(0)


@pytest.mark.parametrize("cy,cx,rows,cols", [(16, 16, (8, 24), (8, 24)),
                                             (0, 31, (0, 8), (23, 32)),
                                             (31, 2, (23, 32), (0, 10))])
def test_cutout_zeroes_a_clipped_square(cy, cx, rows, cols):
    out = np.full((3, 32, 32), 0.5, np.float32)
    cutout(out, 16, _FixedRng(cy, cx))
    expected = np.full((3, 32, 32), 0.5, np.float32)
    expected[:, rows[0]:rows[1], cols[0]:cols[1]] = 0
    np.testing.assert_array_equal(out, expected)


def test_train_cutout_after_normalisation():
    img = np.full((32, 32, 3), 250, np.uint8)                    # normalises far from 0
    tr = PadCropFlip(CIFAR10.mean, CIFAR10.std, pad=0, flip=False, cutout_length=16)
    out = tr(img, np.random.default_rng(3))
    zero = out == 0
    assert zero.all(axis=0).sum() == zero.any(axis=0).sum()     # same square on all channels
    ys, xs = np.nonzero(zero[0])
    assert zero[0].sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)     # a solid rectangle
    assert 8 <= np.ptp(ys) + 1 <= 16 and 8 <= np.ptp(xs) + 1 <= 16
    for c in range(3):                                            # the rest is untouched
        expected = (250 / 255 - CIFAR10.mean[c]) / CIFAR10.std[c]
        np.testing.assert_allclose(out[c][~zero[c]], expected, rtol=1e-6)


def test_random_resized_box_bounds_and_fallback():
    rng = np.random.default_rng(0)
    for _ in range(50):
        left, top, w, h = random_resized_box(200, 150, rng)
        assert 0 <= left and left + w <= 200 and 0 <= top and top + h <= 150
        assert 0.08 * 30000 * 0.95 <= w * h <= 30000
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # a 1000x10 strip admits no crop of area >= 8 % with aspect <= 4/3: centred fallback
    assert random_resized_box(1000, 10, rng) == (493, 0, 13, 10)


def test_shift_hue_red_to_green():
    from PIL import Image

    red = Image.new("RGB", (4, 4), (255, 0, 0))
    out = np.asarray(shift_hue(red, 1 / 3))
    assert np.abs(out[0, 0].astype(int) - [0, 255, 0]).max() <= 8


def test_imagenet_transforms():
    from PIL import Image

    spec = get_spec("imagenet")
    img = Image.fromarray(fx.random_uint8((180, 260, 3), 11))
    tr = ImageNetTrain(spec.mean, spec.std)
    out = tr(img, sample_rng(0, 0, 1))
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_array_equal(out, tr(img, sample_rng(0, 0, 1)))
    assert not np.array_equal(out, tr(img, sample_rng(0, 1, 1)))
    # eval: 512x256 stays 512x256 (short side 256); the centre crop starts at column 144, so
    # the red|blue edge at column 256 falls between crop columns 111 and 112
    half = np.zeros((256, 512, 3), np.uint8)
    half[:, :256, 0] = 255
    half[:, 256:, 2] = 255
    ev = ImageNetEval(spec.mean, spec.std)(Image.fromarray(half))
    assert ev.shape == (3, 224, 224)
    m, s = spec.mean, spec.std
    red = [(1 - m[0]) / s[0], -m[1] / s[1], -m[2] / s[2]]
    blue = [-m[0] / s[0], -m[1] / s[1], (1 - m[2]) / s[2]]
    np.testing.assert_allclose(ev[:, 100, 111], red, atol=1e-5)
    np.testing.assert_allclose(ev[:, 100, 112], blue, atol=1e-5)
    small = ImageNetEval(spec.mean, spec.std)(Image.fromarray(fx.random_uint8((300, 200, 3), 1)))
    assert small.shape == (3, 224, 224)


# --- splits and loaders ----------------------------------------------------------------

def test_search_split():
    train, valid = search_split(10, 0.5)
    assert train.tolist() == [0, 1, 2, 3, 4] and valid.tolist() == [5, 6, 7, 8, 9]
    train, valid = search_split(50000, 0.7)
    assert (len(train), len(valid)) == (35000, 15000) and valid[0] == 35000
    with pytest.raises(UserError, match="between 0 and 1"):
        search_split(10, 1.0)


def _indexed_dataset(n=23):
    """Labels equal the sample index, so batches reveal which samples they hold."""
    from darts_paddle.data import ArrayDataset

    return ArrayDataset(CIFAR10, True, fx.random_uint8((n, 32, 32, 3), 12),
                        np.arange(n, dtype=np.int64))


def test_loader_batches_static_mode(static_mode):
    ds = _indexed_dataset()
    _, valid = search_split(len(ds), 0.5)                        # indices 11..22
    loader = BatchLoader(ds, valid, batch_size=5, transform=build_transform(CIFAR10, True),
                         seed=3, num_workers=0)
    assert len(loader) == 3
    batches = list(loader.epoch(0))
    assert [b[0].shape for b in batches] == [(5, 3, 32, 32), (5, 3, 32, 32), (2, 3, 32, 32)]
    assert all(type(x) is np.ndarray for b in batches for x in b)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == valid.tolist()               # each sample exactly once
    again = np.concatenate([b[1] for b in loader.epoch(0)])
    other = np.concatenate([b[1] for b in loader.epoch(1)])
    assert again.tolist() == seen.tolist() and other.tolist() != seen.tolist()
    # the image of a sample is the transform of that sample with its own (seed, epoch, i)
    i = int(batches[1][1][2])
    expected = build_transform(CIFAR10, True)(ds.images[i], sample_rng(3, 0, i))
    np.testing.assert_array_equal(batches[1][0][2], expected)
    dropped = BatchLoader(ds, valid, batch_size=5, shuffle=False, drop_last=True)
    assert len(dropped) == 2 and [len(b[1]) for b in dropped.epoch(0)] == [5, 5]
    assert np.concatenate([b[1] for b in dropped.epoch(4)]).tolist() == list(range(11, 21))


def test_loader_workers_give_identical_batches(static_mode):
    ds = _indexed_dataset(30)
    tr = build_transform(CIFAR10, True, cutout_length=16)
    single = list(BatchLoader(ds, None, 8, tr, seed=7, num_workers=0).epoch(2))
    multi = list(BatchLoader(ds, None, 8, tr, seed=7, num_workers=2).epoch(2))
    assert len(single) == len(multi) == 4
    for (a, la), (b, lb) in zip(single, multi):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(a, b)


def test_loader_dynamic_mode_also_numpy(dynamic_mode):
    batches = list(BatchLoader(_indexed_dataset(6), batch_size=4, shuffle=False).epoch(0))
    assert type(batches[0][0]) is np.ndarray and batches[1][1].tolist() == [4, 5]


def test_epoch_start_and_endless_resume(static_mode):
    ds = _indexed_dataset(10)
    loader = BatchLoader(ds, None, batch_size=4, seed=1)         # 3 batches per pass
    full = [b[1].tolist() for b in loader.epoch(5)]
    assert [b[1].tolist() for b in loader.epoch(5, start=1)] == full[1:]
    stream = endless_batches(loader, start_epoch=5)
    labels = [next(stream)[1].tolist() for _ in range(8)]
    assert labels[:3] == full
    assert labels[3:6] == [b[1].tolist() for b in loader.epoch(6)]
    assert stream.state() == (7, 2)
    stream.close()
    first = endless_batches(loader, start_epoch=5)
    for _ in range(4):
        next(first)
    resumed = endless_batches(loader, *first.state())
    assert [next(resumed)[1].tolist() for _ in range(4)] == labels[4:8]


def test_describe_counts():
    ds = _indexed_dataset(12)
    ds.labels = ds.labels % 10
    d = describe(ds)
    assert d.shape == (3, 32, 32) and d.counts == [2, 2] + [1] * 8 and d.num_classes == 10
