"""Means over an epoch's steps."""

import time

import numpy as np


class Meter:
    """Sample-weighted means of a step's values (loss, accuracies) over an epoch, and
    throughput."""

    def __init__(self, count, saved=None):
        """saved: the state() of an epoch's meter to continue (a run stopped mid-epoch)."""
        n, sums = saved or (0, [0.0] * count)
        self.n, self.sums, self.start = n, np.array(sums, np.float64), time.time()

    def state(self):
        return [self.n, self.sums.tolist()]

    def update(self, n, *values):
        self.n += n
        self.sums += n * np.array(values, np.float64)

    @property
    def means(self):
        return self.sums / max(self.n, 1)

    @property
    def images_per_second(self):
        return self.n / max(time.time() - self.start, 1e-9)
