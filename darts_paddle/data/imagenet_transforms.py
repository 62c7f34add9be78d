"""ImageNet augmentation on Pillow images: random-resized crop, flip, colour jitter."""

import math

import numpy as np
from PIL import Image, ImageEnhance

from .normalize import Normalize

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4}
HUE = 0.2
_ENHANCERS = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
              "saturation": ImageEnhance.Color}


def random_resized_box(width: int, height: int, rng, scale=SCALE, ratio=RATIO):
    """(left, top, w, h) of the crop: 10 tries at a random area and aspect ratio, then the
    largest centred box whose aspect ratio is within `ratio`."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def shift_hue(img: Image.Image, fraction: float) -> Image.Image:
    """Rotate the hue by `fraction` of the colour circle (uint8 hue wraps around)."""
    hsv = np.array(img.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(fraction * 255))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def colour_jitter(img: Image.Image, rng) -> Image.Image:
    """Brightness, contrast, saturation and hue changes, in a random order."""
    factors = {k: rng.uniform(max(0.0, 1 - v), 1 + v) for k, v in JITTER.items()}
    hue = rng.uniform(-HUE, HUE)
    for step in rng.permutation(4):
        if step < 3:
            name = ("brightness", "contrast", "saturation")[step]
            img = _ENHANCERS[name](img).enhance(factors[name])
        else:
            img = shift_hue(img, hue)
    return img


class ImageNetTrain(Normalize):
    def __init__(self, mean, std, size=224):
        super().__init__(mean, std)
        self.size = size

    def __call__(self, img: Image.Image, rng) -> np.ndarray:
        left, top, w, h = random_resized_box(img.width, img.height, rng)
        img = img.resize((self.size, self.size), Image.BILINEAR,
                         box=(left, top, left + w, top + h))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = colour_jitter(img, rng)
        return self.array(np.asarray(img))


class ImageNetEval(Normalize):
    """Shorter side to 256 (for 224 crops: the 0.875 ratio), then the centre crop."""

    def __init__(self, mean, std, size=224, resize=256):
        super().__init__(mean, std)
        self.size, self.resize = size, resize

    def __call__(self, img: Image.Image, rng=None) -> np.ndarray:
        return self.array(np.asarray(resize_centre_crop(img, self.size, self.resize)))


def resize_centre_crop(img: Image.Image, size: int, resize: int) -> Image.Image:
    """Shorter side to `resize` (bilinear), then the centre `size` x `size` square."""
    w, h = img.size
    new_w, new_h = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return img.crop((left, top, left + size, top + size))
