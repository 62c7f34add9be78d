"""Your own images (--dataset folder): DIR/train/<class>/* and DIR/val/<class>/*.

The class names are the folder names of train/, sorted (val/ may hold fewer).  Each image
is decoded once: its shorter side resized to --image_size and the centre square cut out,
the split then held in memory as uint8, so the 32x32 sets' transforms (pad, crop, flip,
cutout) apply unchanged.  The data set is grayscale (1 input channel) when every image
of train/ is stored grayscale, otherwise colour (3 channels; grayscale images are
repeated).  Mean and standard deviation per channel come from the training images as the
network sees them (after the resize), unless given.
"""

import functools
import os

import numpy as np

from darts_paddle.errors import UserError

from .specs import DatasetSpec

NAME = "folder"
DEFAULT_IMAGE_SIZE = 32  # CIFAR's: the networks' defaults (and the auxiliary head) fit it
EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
SPLITS = {True: "train", False: "val"}


def class_folders(split_dir: str):
    """The class folders of a split, sorted; hidden ones (.ipynb_checkpoints, ...) are no
    classes."""
    return sorted(e.name for e in os.scandir(split_dir)
                  if e.is_dir() and not e.name.startswith("."))


def image_files(class_dir: str):
    """The images of one class folder, sorted by name; other files are ignored."""
    return [os.path.join(class_dir, f) for f in sorted(os.listdir(class_dir))
            if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]


def _broken(path, exc) -> UserError:
    return UserError(f"image {path} cannot be decoded ({exc}): replace or remove it")


def open_image(path: str, mode: str, at_least: int = 0):
    """Decode one image converted to `mode`; a broken file is named so the user can replace
    it.  `at_least`: a JPEG may be decoded at a reduced scale whose shorter side stays at
    least that (many times faster for photos far larger than the network's input)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if at_least:
                img.draft(mode, (at_least, at_least))
            return img.convert(mode)
    except (OSError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise _broken(path, exc) from exc


def is_grayscale(path: str) -> bool:
    """Is the image stored grayscale (L, LA, 1, I, F, ...)?  Reads the header only."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return Image.getmodebase(img.mode) == "L"
    except (OSError, ValueError) as exc:
        raise _broken(path, exc) from exc


def _split_dir(root: str, train: bool) -> str:
    split_dir = os.path.join(root, SPLITS[train])
    if os.path.isdir(split_dir):
        return split_dir
    if train:
        raise UserError(f"no train/ folder in {root}: --dataset folder reads "
                        f"{root}/train/<class>/*.png (jpg, jpeg, bmp) and, for train.py, "
                        f"{root}/val/<class>/*: create them or pass the right --data")
    raise UserError(f"no val/ folder in {root}: train.py validates on {root}/val/<class>/* "
                    "(the search needs only train/): add it")


def _stratified(labels: np.ndarray) -> np.ndarray:
    """An order of the samples that interleaves the classes in proportion: the j-th of n
    images of a class at (j + 0.5) / n.  Any leading part of the split (the search's
    --train_portion) then holds the same share of every class, which the folders' class
    by class order would not."""
    position = np.empty(len(labels))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.argsort(position, kind="stable")


def split_files(root: str, train: bool, classes=None):
    """(paths, labels int64, class names) of train/ (train=True) or val/, the classes
    interleaved (_stratified).  `classes`: the run's class names; train/ must hold exactly
    those, val/ no others."""
    split_dir = _split_dir(root, train)
    found = class_folders(split_dir)
    if not found:
        raise UserError(f"{split_dir} holds no class folders: put the images of each class "
                        f"in {split_dir}/<class>/")
    if classes is None:
        classes = found
    elif train and found != list(classes):
        raise UserError(f"the class folders of {split_dir} ({', '.join(found)}) are not the "
                        f"run's ({', '.join(classes)}): restore them or start a new run")
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise UserError(f"class {unknown[0]!r} is in {split_dir} but not in "
                        f"{os.path.join(root, 'train')}: add training images for it or remove "
                        f"{os.path.join(split_dir, unknown[0])}")
    paths, labels = [], []
    for name in found:
        files = image_files(os.path.join(split_dir, name))
        if not files:
            raise UserError(f"class folder {os.path.join(split_dir, name)} holds no images "
                            f"({', '.join(EXTENSIONS)}): add some or remove the folder")
        paths += files
        labels += [classes.index(name)] * len(files)
    labels = np.asarray(labels, dtype=np.int64)
    order = _stratified(labels)
    return [paths[i] for i in order], labels[order], list(classes)


def decode_images(paths, image_size: int, channels: int) -> np.ndarray:
    """uint8 [N, S, S, channels]: each image resized (shorter side S) and centre-cropped.
    Read-only: a new run decodes train/ for its mean and std and then for its batches, so
    the second call returns the first one's array (unless a file changed in between)."""
    stamps = tuple((p, s.st_size, s.st_mtime_ns) for p, s in ((p, os.stat(p)) for p in paths))
    return _decode(stamps, image_size, channels)


@functools.lru_cache(maxsize=2)
def _decode(stamps, image_size, channels):
    from darts_paddle.run.progress import progress

    from .imagenet_transforms import resize_centre_crop

    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(stamps), image_size, image_size, channels), np.uint8)
    for i, (path, *_) in enumerate(progress(stamps, len(stamps), "decoding images")):
        img = resize_centre_crop(open_image(path, mode, image_size), image_size, image_size)
        images[i] = np.asarray(img).reshape(image_size, image_size, channels)
    images.setflags(write=False)
    return images


def channel_stats(images: np.ndarray):
    """(mean, std) per channel of uint8 [N, H, W, C] images on [0, 1] pixel values, from
    each channel's histogram: exact, in float64, without a float copy of the images."""
    levels = np.arange(256) / 255.0
    mean, std = [], []
    for c in range(images.shape[-1]):
        p = np.bincount(images[..., c].ravel(), minlength=256) / images[..., c].size
        m = float(p @ levels)
        mean.append(m)
        std.append(float(np.sqrt(p @ (levels - m) ** 2)))
    return mean, std


def folder_spec(root, image_size, classes=None, in_channels=None, mean=None, std=None):
    """The DatasetSpec of the folder data set under `root`; what is not given (a new run)
    is read from train/: class names, channels (one pass over the headers), mean and std
    (one over the decoded images)."""
    if (mean is None) != (std is None):
        raise UserError(f"{'--std' if mean is None else '--mean'} alone: give --mean and "
                        "--std together, or neither to compute them from the training images")
    if classes is None or in_channels is None or mean is None:
        paths, _, classes = split_files(root, True, classes)
        if in_channels is None:
            in_channels = 1 if all(is_grayscale(p) for p in paths) else 3
        if mean is None:
            mean, std = channel_stats(decode_images(paths, image_size, in_channels))
    for flag, values in (("--mean", mean), ("--std", std)):
        if len(values) != in_channels:
            raise UserError(f"{flag} has {len(values)} values, the images of {root} have "
                            f"{in_channels} channel{'s' if in_channels > 1 else ''}: give "
                            f"{in_channels}")
    return DatasetSpec(name=NAME, title=f"image folder {root}", num_classes=len(classes),
                       in_channels=in_channels, image_size=image_size, mean=tuple(mean),
                       std=tuple(std), files=(), classes=tuple(classes), eval_split="val")


def load_folder(spec, root: str, train: bool, download: bool):
    """(images uint8 [N, S, S, C], labels int64) of train/ or val/; `download` is accepted
    and ignored."""
    paths, labels, _ = split_files(root, train, spec.classes)
    return decode_images(paths, spec.image_size, spec.in_channels), labels
