"""The data flags the scripts share: the named data sets and your own images' flags."""

from ..cli import image_size, positive_float
from .folder import DEFAULT_IMAGE_SIZE

DATASETS = ("cifar10", "cifar100", "svhn", "fashion_mnist")
DATASETS_AND_FOLDER = DATASETS + ("folder",)  # train_search.py and train.py read folders too


def folder_flags(p):
    """Your own images (data/folder.py); what the images give is recorded with the run."""
    g = p.add_argument_group("your own images: --dataset folder --data DIR, with "
                             "DIR/train/<class>/* and DIR/val/<class>/*")
    g.add_argument("--image_size", type=image_size, default=DEFAULT_IMAGE_SIZE,
                   help="side of the square each image is resized (shorter side) and "
                        "centre-cropped to; a multiple of 4")
    g.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="per channel mean of the pixels on [0, 1]; when not given, computed "
                        "from the training images (either way stored with the run)")
    g.add_argument("--std", type=positive_float, nargs="+", default=None, metavar="S",
                   help="per channel standard deviation, likewise")
    p.set_defaults(classes=None, in_channels=None)  # recorded by data.run_spec
