"""Fixtures shared by several test files."""

import numpy as np
import pytest

from tests.helpers import data_fixtures as fx


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A tiny CIFAR-10 in the published python-pickle format: 40 training and 16 test
    images, labels 0..9 in turn."""
    root = tmp_path_factory.mktemp("cifar")
    fx.write_cifar10(str(root), fx.random_uint8((40, 3072), 1), np.arange(40) % 10,
                     fx.random_uint8((16, 3072), 2), np.arange(16) % 10)
    return str(root)


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A tiny Fashion-MNIST in the published idx format: 48 training and 8 test images."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    fx.write_fashion_mnist(str(root), rng.integers(0, 256, (48, 28, 28), dtype=np.uint8),
                           (np.arange(48) % 10).astype(np.uint8),
                           rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
                           (np.arange(8) % 10).astype(np.uint8))
    return str(root)
