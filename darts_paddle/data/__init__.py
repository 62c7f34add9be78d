"""Real data sets (CIFAR-10/100, SVHN, Fashion-MNIST, ImageNet, your own image folders),
their transforms and loaders.

Importing this package does not import paddle; only iterating a BatchLoader does.
"""

from .datasets import (FOLDER, FOLDER_FLAGS, ArrayDataset, Description, ImageListDataset,
                       describe, load_dataset, run_spec, search_split)
from .loader import BatchLoader, EndlessBatches, endless_batches, order_rng, sample_rng
from .normalize import Normalize
from .specs import SPECS, DatasetSpec, get_spec, known_names
from .transforms import PadCropFlip, build_transform, cutout

__all__ = [
    "FOLDER", "FOLDER_FLAGS", "ArrayDataset", "BatchLoader", "DatasetSpec", "Description",
    "EndlessBatches", "ImageListDataset", "Normalize", "PadCropFlip", "SPECS",
    "build_transform", "cutout", "describe", "endless_batches", "get_spec", "known_names",
    "load_dataset", "order_rng", "run_spec", "sample_rng", "search_split",
]
