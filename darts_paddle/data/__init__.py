"""Real data sets (CIFAR-10/100, SVHN, Fashion-MNIST, ImageNet), their transforms and loaders.

Importing this package does not import paddle; only iterating a BatchLoader does.
"""

from .datasets import (ArrayDataset, Description, ImageListDataset, describe, load_dataset,
                       search_split)
from .loader import BatchLoader, EndlessBatches, endless_batches, order_rng, sample_rng
from .normalize import Normalize
from .specs import SPECS, DatasetSpec, get_spec, known_names
from .transforms import PadCropFlip, build_transform, cutout

__all__ = [
    "ArrayDataset", "BatchLoader", "DatasetSpec", "Description", "EndlessBatches",
    "ImageListDataset", "Normalize", "PadCropFlip", "SPECS", "build_transform", "cutout",
    "describe", "endless_batches", "get_spec", "known_names", "load_dataset", "order_rng",
    "sample_rng", "search_split",
]
