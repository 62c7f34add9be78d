"""The data set objects, the one entry point that loads them, and their summaries."""

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from darts_paddle.errors import UserError

from .specs import DatasetSpec, get_spec


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
        from .imagenet import open_rgb

        return open_rgb(self.paths[index]), self.labels[index]


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
    from .imagenet import load_imagenet
    return load_imagenet


def load_dataset(name: str, root: str, train: bool, download: bool = True):
    """The train (train=True) or test/val split of data set `name` found under `root`."""
    spec = get_spec(name)
    if spec.in_memory:
        images, labels = _reader(name)(spec, root, train, download)
        return ArrayDataset(spec, train, images, labels)
    paths, labels, num_classes = _reader(name)(spec, root, train, download)
    return ImageListDataset(spec, train, paths, labels, num_classes)


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

    def __str__(self) -> str:
        c, h, w = self.shape
        return (f"{self.name} {self.split}: {self.size} images {c}x{h}x{w}, "
                f"{self.num_classes} classes, counts {self.counts}")


def describe(dataset) -> Description:
    spec = dataset.spec
    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    return Description(
        name=spec.name, split="train" if dataset.train else ("test" if spec.in_memory else "val"),
        size=len(dataset),
        shape=(spec.in_channels, spec.image_size, spec.image_size),
        num_classes=dataset.num_classes, counts=[int(c) for c in counts])
