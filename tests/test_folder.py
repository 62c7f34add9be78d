"""--dataset folder on image folders written here with Pillow (several source sizes,
grayscale and colour): layout, decoding, channels, statistics, the search split, the
errors, `python -m darts_paddle.data folder`, and a tiny search and training run end to
end."""

import argparse
import glob
import os

import numpy as np
import pytest
from PIL import Image

from darts_paddle.data import (BatchLoader, build_transform, describe, load_dataset, run_spec,
                               search_split)
from darts_paddle.data.__main__ import main as data_main
from darts_paddle.errors import UserError

SIZES = [(20, 30), (64, 48), (9, 7), (33, 33)]  # (width, height), upscaled ones included


def write(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode).save(path)


def noise(h, w, channels, seed):
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_folder(root, classes=("cat", "dog"), per_class=4, val_per_class=2, channels=3):
    """root/train/<class>/i.png (and .jpg, .bmp) at the sizes of SIZES, root/val likewise."""
    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            for i in range(count):
                w, h = SIZES[i % len(SIZES)]
                ext = (".png", ".jpg", ".bmp")[i % 3]
                write(os.path.join(root, split, name, f"{i}{ext}"),
                      noise(h, w, channels, 100 * c + i + (50 if split == "val" else 0)))
    return str(root)


def folder_args(root, **flags):
    defaults = dict(dataset="folder", data=str(root), image_size=16, mean=None, std=None,
                    classes=None, in_channels=None)
    return argparse.Namespace(**{**defaults, **flags})


# --- reading ---------------------------------------------------------------------------

def test_any_source_size_is_resized_and_centre_cropped(tmp_path):
    # 64 wide, 32 high: left half red, right half blue; the shorter side goes to 16, so the
    # image becomes 32x16 and the centre 16 columns are source columns 16..47: red then blue
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)
    img[:, 32:] = (0, 0, 255)
    write(str(tmp_path / "train" / "a" / "halves.png"), img)
    # smaller than the network's input: upscaled, a flat colour stays flat
    write(str(tmp_path / "train" / "b" / "tiny.bmp"), np.full((5, 3, 3), (10, 200, 30), np.uint8))
    spec = run_spec(folder_args(tmp_path))
    ds = load_dataset(spec, str(tmp_path), train=True)
    assert ds.images.shape == (2, 16, 16, 3) and ds.labels.tolist() == [0, 1]
    halves, tiny = ds.images
    assert (halves[:, :6] == (255, 0, 0)).all() and (halves[:, 10:] == (0, 0, 255)).all()
    assert (tiny == (10, 200, 30)).all()


def test_classes_channels_and_counts(tmp_path):
    root = make_folder(tmp_path, classes=("zebra", "ant", "moth"), per_class=4)
    args = folder_args(root)
    spec = run_spec(args)
    assert spec.classes == ("ant", "moth", "zebra") and spec.num_classes == 3
    assert spec.in_channels == 3 and args.classes == ["ant", "moth", "zebra"]
    train = load_dataset(spec, root, train=True)
    val = load_dataset(spec, root, train=False)
    assert train.images.shape == (12, 16, 16, 3) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [4, 4, 4]
    d = describe(val)
    assert d.split == "val" and d.counts == [2, 2, 2] and d.shape == (3, 16, 16)
    assert "classes ant, moth, zebra" in str(d)


def test_grayscale_folder_gives_one_channel_and_one_colour_image_three(tmp_path):
    root = make_folder(tmp_path, channels=1)
    write(os.path.join(root, "train", "cat", "la.png"),
          np.stack([noise(12, 12, 1, 5), np.full((12, 12), 255, np.uint8)], -1), "LA")
    spec = run_spec(folder_args(root))
    assert spec.in_channels == 1 and len(spec.mean) == 1
    assert load_dataset(spec, root, train=True).images.shape == (9, 16, 16, 1)

    write(os.path.join(root, "train", "dog", "colour.png"), noise(16, 16, 3, 6))
    spec = run_spec(folder_args(root))
    assert spec.in_channels == 3 and len(spec.std) == 3
    images = load_dataset(spec, root, train=True).images.astype(int)
    # every grayscale source became R = G = B; the one colour image did not
    gray = [(im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()
            for im in images]
    assert len(gray) == 10 and sum(gray) == 9


def test_mean_and_std_from_the_training_images(tmp_path):
    root = make_folder(tmp_path)
    args = folder_args(root)
    spec = run_spec(args)
    pixels = load_dataset(spec, root, train=True).images.astype(np.float64) / 255.0
    expected_mean = pixels.mean(axis=(0, 1, 2))
    expected_std = pixels.std(axis=(0, 1, 2))
    np.testing.assert_allclose(spec.mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(spec.std, expected_std, rtol=1e-12)
    assert args.mean == list(spec.mean) and args.std == list(spec.std)  # what the run stores
    # the evaluation transform normalises with them
    x = build_transform(spec, train=False)(load_dataset(spec, root, train=False).images[0])
    raw = load_dataset(spec, root, train=False).images[0].astype(np.float64) / 255.0
    np.testing.assert_allclose(x, ((raw - expected_mean) / expected_std).transpose(2, 0, 1),
                               rtol=1e-5, atol=1e-5)


def test_given_mean_and_std_are_used_and_checked(tmp_path):
    root = make_folder(tmp_path)
    spec = run_spec(folder_args(root, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.25]))
    assert spec.mean == (0.5, 0.4, 0.3) and spec.std == (0.2, 0.2, 0.25)
    with pytest.raises(UserError, match="--mean has 1 values.*3 channels: give 3"):
        run_spec(folder_args(root, mean=[0.5], std=[0.2]))
    with pytest.raises(UserError, match="--std alone"):
        run_spec(folder_args(root, std=[0.2, 0.2, 0.2]))


def test_train_transform_pads_in_proportion_and_keeps_the_size(tmp_path):
    root = make_folder(tmp_path)
    spec = run_spec(folder_args(root, image_size=24))
    transform = build_transform(spec, train=True)
    assert transform.pad == 3 and transform.flip
    ds = load_dataset(spec, root, train=True)
    assert transform(ds.images[0], np.random.default_rng(0)).shape == (3, 24, 24)


def test_search_halves_hold_every_class_in_proportion(tmp_path):
    root = make_folder(tmp_path, classes=("a", "b", "c"), per_class=6)
    for i in range(6, 12):  # class a twice as large
        write(os.path.join(root, "train", "a", f"x{i}.png"), noise(8, 8, 3, i))
    ds = load_dataset(run_spec(folder_args(root)), root, train=True)
    first, second = search_split(len(ds), 0.5)
    assert np.bincount(ds.labels[first]).tolist() == [6, 3, 3]
    assert np.bincount(ds.labels[second]).tolist() == [6, 3, 3]


def test_named_data_sets_refuse_folder_flags():
    with pytest.raises(UserError, match="CIFAR-10 images are 32x32; --image_size is for"):
        run_spec(argparse.Namespace(dataset="cifar10", image_size=64, mean=None, std=None))
    with pytest.raises(UserError, match="--mean/--std are for --dataset folder"):
        run_spec(argparse.Namespace(dataset="svhn", image_size=32, mean=[0.5], std=[0.2]))


# --- errors ----------------------------------------------------------------------------

def test_no_train_folder(tmp_path):
    with pytest.raises(UserError) as err:
        run_spec(folder_args(tmp_path))
    assert f"no train/ folder in {tmp_path}" in str(err.value)
    assert "train/<class>/*.png" in str(err.value)


def test_no_class_folders_and_an_empty_one(tmp_path):
    (tmp_path / "train").mkdir()
    write(str(tmp_path / "train" / "loose.png"), noise(8, 8, 3, 0))
    with pytest.raises(UserError, match="holds no class folders"):
        run_spec(folder_args(tmp_path))
    root = make_folder(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(UserError) as err:
        run_spec(folder_args(root))
    msg = str(err.value)
    assert f"class folder {tmp_path / 'train' / 'empty'} holds no images" in msg
    assert "add some or remove the folder" in msg and "\n" not in msg


def test_an_unreadable_image_is_named(tmp_path):
    root = make_folder(tmp_path)
    broken = tmp_path / "train" / "dog" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(UserError) as err:
        run_spec(folder_args(root))
    assert f"image {broken} cannot be decoded" in str(err.value)
    # a truncated file whose header reads: the error comes when it is decoded
    good = tmp_path / "train" / "dog" / "0.png"
    broken.unlink()
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=f"image {good} cannot be decoded"):
        run_spec(folder_args(root))


def test_a_class_only_in_val(tmp_path):
    root = make_folder(tmp_path)
    write(str(tmp_path / "val" / "eel" / "0.png"), noise(8, 8, 3, 1))
    spec = run_spec(folder_args(root))
    with pytest.raises(UserError) as err:
        load_dataset(spec, root, train=False)
    msg = str(err.value)
    assert "class 'eel' is in" in msg and str(tmp_path / "val" / "eel") in msg


def test_no_val_folder_and_changed_classes(tmp_path):
    root = make_folder(tmp_path, val_per_class=0)
    assert not os.path.exists(tmp_path / "val")
    spec = run_spec(folder_args(root))
    with pytest.raises(UserError, match="no val/ folder.*the search needs only train/"):
        load_dataset(spec, root, train=False)
    write(str(tmp_path / "train" / "eel" / "0.png"), noise(8, 8, 3, 1))
    with pytest.raises(UserError, match=r"\(cat, dog, eel\) are not the run's \(cat, dog\)"):
        load_dataset(spec, root, train=True)


def test_the_data_command_checks_a_folder(tmp_path, capsys):
    root = make_folder(tmp_path, channels=1)
    assert data_main(["folder", "--data", root, "--image_size", "8"]) == 0
    train, val = capsys.readouterr().out.splitlines()
    assert train.startswith("folder train: 8 images 1x8x8, 2 classes, counts [4, 4]; "
                            "classes cat, dog; mean (")
    assert val.startswith("folder val: 4 images 1x8x8, 2 classes, counts [2, 2]")
    os.mkdir(tmp_path / "train" / "bird")
    assert data_main(["folder", "--data", root]) == 2
    assert "bird holds no images" in capsys.readouterr().err
    assert data_main(["cifar10", "--image_size", "64", "--data", str(tmp_path)]) == 2
    assert "--image_size is for --dataset folder" in capsys.readouterr().err


def test_batches_from_a_folder(tmp_path):
    root = make_folder(tmp_path)
    spec = run_spec(folder_args(root))
    ds = load_dataset(spec, root, train=True)
    loader = BatchLoader(ds, batch_size=4, transform=build_transform(spec, True), seed=3)
    images, labels = next(iter(loader.epoch(0)))
    assert images.shape == (4, 3, 16, 16) and images.dtype == np.float32
    assert set(labels.tolist()) <= {0, 1}


# --- end to end ------------------------------------------------------------------------

def test_search_then_train_then_eval_only_on_a_folder(tmp_path, monkeypatch, capsys):
    from darts_paddle import cli
    from darts_paddle.search.flags import search_parser
    from darts_paddle.search import state as search_state
    from darts_paddle.storage.checkpoint import load_checkpoint

    import train as train_script
    import train_search

    monkeypatch.chdir(tmp_path)
    root = make_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=4,
                       channels=1)
    assert cli.run_main(train_search.main, [
        "--dataset", "folder", "--data", root, "--image_size", "16", "--save", "runs/s",
        "--layers", "3", "--init_channels", "2", "--batch_size", "4", "--epochs", "1",
        "--max_steps", "2", "--eigen_batches", "0"]) == 0
    (search,) = glob.glob("runs/search-s-*")
    _, meta = load_checkpoint(os.path.join(search, "checkpoint.npz"))
    flags = meta["flags"]
    assert flags["classes"] == ["a", "b", "c"] and flags["in_channels"] == 1
    assert flags["image_size"] == 16 and len(flags["mean"]) == len(flags["std"]) == 1
    out = capsys.readouterr().out
    assert "folder train: 12 images 1x16x16, 3 classes" in out
    # a resumed search normalises as the run did, though train/ has changed since
    white = os.path.join(root, "train", "a", "white.png")
    write(white, np.full((16, 16), 255, np.uint8))
    argv = ["--resume", search, "--epochs", "2"]
    args = search_parser().parse_args(argv)
    search_state.load_state(args, cli.given_flags(search_parser(), argv), search)
    spec = run_spec(args)
    assert list(spec.mean) == flags["mean"] and list(spec.std) == flags["std"]
    assert run_spec(folder_args(root, image_size=16)).mean != spec.mean
    os.remove(white)

    genotype = os.path.join(search, "genotype.json")
    assert cli.run_main(train_script.main, [
        "--dataset", "folder", "--data", root, "--image_size", "16", "--save", "runs/e",
        "--arch", genotype, "--layers", "3", "--init_channels", "4", "--batch_size", "4",
        "--epochs", "1", "--seed", "1"]) == 0
    (run,) = glob.glob("runs/eval-e-*")
    _, meta = load_checkpoint(os.path.join(run, "best.npz"))
    assert meta["args"]["mean"] == flags["mean"] and meta["config"]["in_channels"] == 1
    capsys.readouterr()

    # --eval_only sees the data as the run did: its statistics and classes, from val/ alone
    for name in ("a", "b", "c"):
        for path in glob.glob(os.path.join(root, "train", name, "*")):
            os.remove(path)
    assert cli.run_main(train_script.main, ["--eval_only", "--model_path",
                                            os.path.join(run, "best.npz"), "--data", root]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {100 * meta['test_acc']:.2f}%" in out
    assert "inference program" in out and "train program" not in out
