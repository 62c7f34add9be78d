"""What each supported data set is: shape, classes, normalisation, files and their sources."""

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from darts_paddle.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    name: str                      # the name users type (--dataset)
    title: str                     # the name in messages
    num_classes: int
    in_channels: int
    image_size: int                # side of the square the network sees
    mean: Tuple[float, ...]        # per channel, on [0, 1] pixel values
    std: Tuple[float, ...]
    files: Tuple[str, ...]         # what must be in the data root (empty: a directory layout)
    urls: Dict[str, str] = field(default_factory=dict)
    md5: Dict[str, str] = field(default_factory=dict)
    flip: bool = True              # horizontal flip is a valid augmentation
    in_memory: bool = True         # whole set decoded into one uint8 array
    # In-memory 32x32 sets: batching in the main process costs far less than a search step,
    # and less than handing the batches over from worker processes, so no workers
    # (docs/paddle.md section 10); ImageNet decodes JPEGs per sample and gets 2.
    default_workers: int = 0
    classes: Tuple[str, ...] = ()  # class names, where the data name them (folder)
    eval_split: str = "test"       # the name of the split train.py evaluates on

    def url(self, filename: str) -> Optional[str]:
        return self.urls.get(filename)


_CIFAR10_FILE = "cifar-10-python.tar.gz"
_CIFAR100_FILE = "cifar-100-python.tar.gz"
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
_FMNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

SPECS: Dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        name="cifar10", title="CIFAR-10", num_classes=10, in_channels=3, image_size=32,
        mean=(0.49139968, 0.48215827, 0.44653124),
        std=(0.24703233, 0.24348505, 0.26158768),
        files=(_CIFAR10_FILE,),
        urls={_CIFAR10_FILE: "https://www.cs.toronto.edu/~kriz/" + _CIFAR10_FILE},
        md5={_CIFAR10_FILE: "c58f30108f718f92721af3b95e74349a"},
    ),
    "cifar100": DatasetSpec(
        name="cifar100", title="CIFAR-100", num_classes=100, in_channels=3, image_size=32,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
        files=(_CIFAR100_FILE,),
        urls={_CIFAR100_FILE: "https://www.cs.toronto.edu/~kriz/" + _CIFAR100_FILE},
        md5={_CIFAR100_FILE: "eb9058c3a382ffc7106e4002c42a8d85"},
    ),
    "svhn": DatasetSpec(
        name="svhn", title="SVHN", num_classes=10, in_channels=3, image_size=32,
        mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
        files=_SVHN_FILES,
        urls={f: "http://ufldl.stanford.edu/housenumbers/" + f for f in _SVHN_FILES},
        md5={"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
             "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"},
        flip=False,  # a mirrored digit is a different (or no) digit
    ),
    # Fashion-MNIST is 28x28, padded with zeros to 32x32 at load time so the CIFAR
    # networks (two reductions, stride arithmetic) apply unchanged.  The usual
    # statistics (0.2860 / 0.3530) are those of the 28x28 images; the 64 % border of
    # zeros changes them, and it is the padded image the network sees, so we use the
    # statistics of the padded training set (computed from the 60000 images):
    # mean 0.2190 (= 0.2860 * 784/1024), std 0.3318.  The input is then standardised
    # like the CIFAR inputs are.
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist", title="Fashion-MNIST", num_classes=10, in_channels=1,
        image_size=32, mean=(0.2190,), std=(0.3318,),
        files=_FMNIST_FILES,
        urls={f: _FMNIST_URL + f for f in _FMNIST_FILES},
    ),
    "imagenet": DatasetSpec(
        name="imagenet", title="ImageNet", num_classes=1000, in_channels=3, image_size=224,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        files=(), in_memory=False, default_workers=2, eval_split="val",
    ),
}


def known_names():
    return sorted(SPECS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise UserError(
            f"unknown data set {name!r}: choose one of {', '.join(known_names())}"
        ) from None
