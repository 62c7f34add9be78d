"""Per-sample augmentation for the in-memory sets (CIFAR, SVHN, Fashion-MNIST, folders).

A transform is `transform(image, rng) -> float32 [C, H, W]`: every random choice comes
from the `rng` it is handed (the loader derives it from (seed, epoch, index)), never from
global state, so a sample is augmented identically whatever process or worker runs it.
"""

import numpy as np

from .normalize import Normalize


def cutout(chw: np.ndarray, length: int, rng) -> np.ndarray:
    """Zero a length x length square around a uniformly random centre, clipped at the borders."""
    _, h, w = chw.shape
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    half = length // 2
    chw[:, max(cy - half, 0):min(cy + half, h), max(cx - half, 0):min(cx + half, w)] = 0.0
    return chw


class PadCropFlip(Normalize):
    """Train transform: pad with zeros + random crop, optional horizontal flip,
    normalise, then optional cutout (after normalisation, as the original: the square
    becomes the mean colour, not black)."""

    def __init__(self, mean, std, pad=4, flip=True, cutout_length=0):
        super().__init__(mean, std)
        self.pad, self.flip, self.cutout_length = pad, flip, cutout_length

    def __call__(self, image: np.ndarray, rng) -> np.ndarray:
        h, w = image.shape[:2]
        p = self.pad
        dy, dx = (int(v) for v in rng.integers(0, 2 * p + 1, size=2))
        padded = np.pad(image, ((p, p), (p, p), (0, 0)))
        crop = padded[dy:dy + h, dx:dx + w]
        if self.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        out = self.array(crop)
        if self.cutout_length > 0:
            cutout(out, self.cutout_length, rng)
        return out


def build_transform(spec, train: bool, cutout_length: int = 0):
    """The transform the published recipes use for `spec` (train or evaluation)."""
    if not spec.in_memory:
        from .imagenet_transforms import ImageNetEval, ImageNetTrain

        return (ImageNetTrain if train else ImageNetEval)(spec.mean, spec.std, spec.image_size)
    if not train:
        return Normalize(spec.mean, spec.std)
    # 4 pixels on CIFAR's 32, as the original; in proportion on other sizes (folders)
    return PadCropFlip(spec.mean, spec.std, pad=spec.image_size // 8, flip=spec.flip,
                       cutout_length=cutout_length)
