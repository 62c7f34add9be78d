"""Fixtures shared by several test files."""

import numpy as np
import pytest

import data_fixtures as fx


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A tiny CIFAR-10 in the published python-pickle format: 40 training and 16 test
    images, labels 0..9 in turn."""
    root = tmp_path_factory.mktemp("cifar")
    fx.write_cifar10(str(root), fx.random_uint8((40, 3072), 1), np.arange(40) % 10,
                     fx.random_uint8((16, 3072), 2), np.arange(16) % 10)
    return str(root)
