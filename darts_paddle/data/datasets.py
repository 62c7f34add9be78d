"""The data set objects, the one entry point that loads them, and their summaries."""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from darts_paddle.errors import UserError

from .folder import DEFAULT_IMAGE_SIZE, folder_spec
from .folder import NAME as FOLDER
from .specs import DatasetSpec, get_spec

# what a run on --dataset folder records beside --data (run_spec)
FOLDER_FLAGS = ("image_size", "classes", "in_channels", "mean", "std")


@dataclass
class ArrayDataset:
    """A whole split decoded in memory: images uint8 [N, H, W, C], labels int64 [N]."""

    spec: DatasetSpec
    train: bool
    images: np.ndarray
    labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int):
        return self.images[index], self.labels[index]


@dataclass
class ImageListDataset:
    """Image files decoded one sample at a time: paths [N], labels int64 [N]."""

    spec: DatasetSpec
    train: bool
    paths: List[str]
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int):
        from .folder import open_image

        return open_image(self.paths[index], "RGB"), self.labels[index]


def _reader(name):
    # imported on demand: each reader pulls its own decoder (scipy.io, tarfile, Pillow)
    if name in ("cifar10", "cifar100"):
        from .cifar import load_cifar
        return load_cifar
    if name == "svhn":
        from .svhn import load_svhn
        return load_svhn
    if name == "fashion_mnist":
        from .fashion_mnist import load_fashion_mnist
        return load_fashion_mnist
    if name == FOLDER:
        from .folder import load_folder
        return load_folder
    from .imagenet import load_imagenet
    return load_imagenet


def load_dataset(spec, root: str, train: bool, download: bool = True):
    """The train (train=True) or test/val split of data set `spec` (a DatasetSpec, or the
    name of a built-in one) found under `root`."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    if spec.in_memory:
        images, labels = _reader(spec.name)(spec, root, train, download)
        return ArrayDataset(spec, train, images, labels)
    paths, labels, num_classes = _reader(spec.name)(spec, root, train, download)
    return ImageListDataset(spec, train, paths, labels, num_classes)


def run_spec(args):
    """The DatasetSpec of a run's flags (an argparse namespace, or a checkpoint's flags in
    one).  For --dataset folder, what the run has not recorded yet (a new run: class names,
    channels, mean and std) is read from the images and recorded in `args`, so that the
    checkpoint keeps it and --resume and --eval_only see the data as the run did."""
    flags = {k: getattr(args, k, None) for k in FOLDER_FLAGS}
    if args.dataset != FOLDER:
        spec = get_spec(args.dataset)
        if flags["image_size"] not in (None, spec.image_size):
            raise UserError(f"--image_size {flags['image_size']}: {spec.title} images are "
                            f"{spec.image_size}x{spec.image_size}; --image_size is for "
                            "--dataset folder")
        if flags["mean"] is not None or flags["std"] is not None:
            raise UserError(f"--mean/--std are for --dataset folder; {spec.title} is "
                            "normalised with its published statistics: drop them")
        return spec
    flags["image_size"] = flags["image_size"] or DEFAULT_IMAGE_SIZE
    spec = folder_spec(args.data, **flags)
    args.image_size, args.classes = spec.image_size, list(spec.classes)
    args.in_channels = spec.in_channels
    args.mean, args.std = list(spec.mean), list(spec.std)
    return spec


def search_split(n: int, train_portion: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Indices for the search: the first portion trains the weights, the rest the alphas."""
    if not 0.0 < train_portion < 1.0:
        raise UserError(f"train portion {train_portion} must be strictly between 0 and 1 "
                        f"(the original uses 0.5)")
    split = int(np.floor(train_portion * n))
    if split == 0 or split == n:
        raise UserError(f"train portion {train_portion} of {n} images leaves one search "
                        f"half empty: use a portion nearer 0.5 or more images")
    indices = np.arange(n, dtype=np.int64)
    return indices[:split], indices[split:]


@dataclass
class Description:
    name: str
    split: str
    size: int
    shape: Tuple[int, int, int]    # C, H, W the network sees
    num_classes: int
    counts: List[int]
    classes: Tuple[str, ...] = ()  # a folder's, with its mean and std
    mean: Tuple[float, ...] = ()
    std: Tuple[float, ...] = ()

    def __str__(self) -> str:
        c, h, w = self.shape
        text = (f"{self.name} {self.split}: {self.size} images {c}x{h}x{w}, "
                f"{self.num_classes} classes, counts {self.counts}")
        if self.classes:
            text += (f"; classes {', '.join(self.classes)}; mean {_rounded(self.mean)} "
                     f"std {_rounded(self.std)}")
        return text


def _rounded(values):
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def describe(dataset) -> Description:
    spec = dataset.spec
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    return Description(
        name=spec.name, split="train" if dataset.train else spec.eval_split,
        size=len(dataset),
        shape=(spec.in_channels, spec.image_size, spec.image_size),
        num_classes=dataset.num_classes, counts=[int(c) for c in counts],
        classes=spec.classes, mean=spec.mean, std=spec.std)
