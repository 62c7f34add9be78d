"""The last step of every transform: uint8 pixels to normalised float32 channels.

A module of its own so that the 32x32 transforms (transforms.py) and the ImageNet ones
(imagenet_transforms.py) both build on it without importing each other.
"""

import numpy as np


class Normalize:
    """uint8 [H, W, C] -> float32 [C, H, W], (x / 255 - mean) / std per channel."""

    def __init__(self, mean, std):
        std = np.asarray(std, dtype=np.float64)
        # one multiply-add per pixel instead of divide, subtract, divide
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.shift = (np.asarray(mean, dtype=np.float64) / std).astype(np.float32)

    def array(self, image: np.ndarray) -> np.ndarray:
        out = image.astype(np.float32) * self.scale - self.shift
        return np.ascontiguousarray(out.transpose(2, 0, 1))

    def __call__(self, image: np.ndarray, rng=None) -> np.ndarray:
        return self.array(image)
