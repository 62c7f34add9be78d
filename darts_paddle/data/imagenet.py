"""ImageNet-style directories: ImageFolder (train/<class>/*) or Paddle list files.

Only paths and labels are held; each image is decoded when its sample is loaded, so
worker processes share the work and the 1.28 M JPEGs never sit in memory.
"""

import os

import numpy as np

from darts_paddle.errors import UserError

from .folder import SPLITS, class_folders, image_files

_LIST_FILES = {True: "train_list.txt", False: "val_list.txt"}


def _layouts_help(root: str) -> str:
    return (f"ImageNet is never downloaded: put it under {root} either as "
            f"train/<class>/*.JPEG and val/<class>/*.JPEG, or as train_list.txt and "
            f"val_list.txt with lines 'relative/path label' (paths relative to {root})")


def _class_names(root: str):
    """Class folders of train/ (falling back to val/), so both splits share one labelling."""
    for split in SPLITS.values():
        folder = os.path.join(root, split)
        if os.path.isdir(folder):
            return class_folders(folder)
    return []


def _read_folder(root: str, train: bool):
    classes = _class_names(root)
    folder = os.path.join(root, SPLITS[train])
    paths, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(folder, name)
        if os.path.isdir(class_dir):
            files = image_files(class_dir)
            paths += files
            labels += [label] * len(files)
    return paths, labels, len(classes)


def _read_list(root: str, list_path: str):
    paths, labels = [], []
    with open(list_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
                raise UserError(f"{list_path} line {number}: expected 'relative/path label', "
                                f"got {line.strip()!r}: fix or regenerate the list file")
            paths.append(os.path.join(root, parts[0].strip()))
            labels.append(int(parts[1]))
    return paths, labels


def _list_classes(root: str, train: bool, labels) -> int:
    """Classes in the list layout: one more than the largest label in either list."""
    other = os.path.join(root, _LIST_FILES[not train])
    if os.path.isfile(other):
        labels = list(labels) + _read_list(root, other)[1]
    return max(labels) + 1


def load_imagenet(spec, root: str, train: bool, download: bool):
    """(paths, labels int64, num_classes); `download` is accepted and ignored."""
    root = os.path.abspath(root)
    list_path = os.path.join(root, _LIST_FILES[train])
    if os.path.isfile(list_path):
        paths, labels = _read_list(root, list_path)
        num_classes = _list_classes(root, train, labels) if labels else 0
    elif os.path.isdir(os.path.join(root, SPLITS[train])):
        paths, labels, num_classes = _read_folder(root, train)
    else:
        raise UserError(f"ImageNet {SPLITS[train]} split not found. " + _layouts_help(root))
    if not paths:
        raise UserError(f"ImageNet {SPLITS[train]} split under {root} holds no images. "
                        + _layouts_help(root))
    return paths, np.asarray(labels, dtype=np.int64), num_classes

