"""Deterministic mini-batches as numpy arrays, built with paddle.io.DataLoader.

Every random choice is a function of (seed, epoch, sample index): the epoch's order comes
from `order_rng(seed, epoch)` and the augmentation of sample i from
`sample_rng(seed, epoch, i)`.  Batches are therefore identical whatever the number of
worker processes, and a run resumed at (epoch, batch) sees exactly the batches it would
have seen.

Data-parallel training and search (distributed.py) gives each of N processes (`rank`,
`world_size`) a contiguous 1/N of every batch of the same seeded order, so the processes
of one step together see exactly the batch a single process would, with the same
augmentation.  The last batch of an epoch is cut to a multiple of N (at most N - 1 images
are skipped).

Paddle 3.3 in static mode: DataLoader(return_list=True) with a custom batch sampler and
collate_fn works; it yields a list of core DenseTensor per batch (not numpy), which
np.array converts.  Placement is pinned to the CPU so a GPU build does not copy each
batch to the device and back before the Executor feeds it.  Three defects are worked
around: an exception while loading a sample is lost (see _Samples); an abandoned
iterator keeps its reader thread and workers until garbage collection, so each epoch's
iterator is shut down explicitly; and workers that pass batches through shared memory
hang now and then (see _iterate), so they pass numpy arrays.
"""

import traceback

import numpy as np

from darts_paddle.errors import UserError


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def order_rng(seed: int, epoch: int) -> np.random.Generator:
    # SeedSequence pads short entropy with zeros, so [seed, epoch] would equal
    # [seed, epoch, 0] (sample 0's stream); the trailing 1 keeps the streams apart
    return np.random.default_rng([seed, epoch, 0, 1])


class _Failure:
    """Stands in for a sample whose loading raised (see _Samples)."""

    def __init__(self, exc: BaseException):
        self.user = isinstance(exc, UserError)
        self.text = str(exc) if self.user else traceback.format_exc()


class _Samples:
    """Map-style data set for paddle.io.DataLoader; keys are (epoch, index) pairs.

    Never raises: paddle 3.3's DataLoader loses a sample's exception (num_workers=0: the
    reader thread dies and the consumer waits forever; workers: the consumer gets a
    generic "Blocking queue is killed" SystemError).  Failures travel as data instead
    and BatchLoader raises them in the caller's thread."""

    def __init__(self, dataset, transform, seed):
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        try:
            image, label = self.dataset.load(index)
            return self.transform(image, sample_rng(self.seed, epoch, index)), label
        except Exception as exc:
            return _Failure(exc)


def _encode_failure(failure: _Failure):
    # a 1-D image array marks the batch as a failure (a batch's images are 4-D; not an
    # empty array: Paddle's transports have rejected empty tensors); the labels carry the text
    text = ("U" if failure.user else "E") + failure.text
    return np.zeros(1, np.float32), np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _raise_failure(encoded: np.ndarray):
    text = encoded.astype(np.uint8).tobytes().decode("utf-8")
    if text[0] == "U":
        raise UserError(text[1:])
    raise RuntimeError("loading a batch failed in the data loader:\n" + text[1:])


def _collate(samples):
    for s in samples:
        if isinstance(s, _Failure):
            return _encode_failure(s)
    try:
        images = np.stack([s[0] for s in samples])
        labels = np.asarray([s[1] for s in samples], dtype=np.int64)
    except Exception as exc:  # e.g. a transform returning mismatched shapes
        return _encode_failure(_Failure(exc))
    return images, labels


class _EpochBatches:
    """Batch sampler: lists of (epoch, index) keys, for the epoch and start set before iter()."""

    def __init__(self, batches):
        self.batches, self.epoch, self.start = batches, 0, 0

    def __iter__(self):
        for batch in self.batches(self.epoch)[self.start:]:
            yield [(self.epoch, int(i)) for i in batch]

    def __len__(self):
        return len(self.batches(self.epoch)) - self.start


class BatchLoader:
    """Batches of `dataset[indices]`: (images float32 [B, C, H, W], labels int64 [B])."""

    def __init__(self, dataset, indices=None, batch_size=64, transform=None, shuffle=True,
                 seed=0, num_workers=None, drop_last=False, rank=0, world_size=1):
        if batch_size < 1:
            raise UserError(f"batch size {batch_size} must be at least 1")
        if batch_size % world_size or not 0 <= rank < world_size:
            raise ValueError(f"batch size {batch_size} cannot be shared by {world_size} "
                             f"processes (rank {rank})")
        if seed < 0:
            raise UserError(f"seed {seed} must be a non-negative integer")
        if num_workers is not None and num_workers < 0:
            raise UserError(f"num_workers {num_workers} must be 0 (main process) or more")
        self.dataset = dataset
        self.indices = np.arange(len(dataset), dtype=np.int64) if indices is None \
            else np.asarray(indices, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        if transform is None:
            from .transforms import build_transform
            transform = build_transform(dataset.spec, train=False)
        self.transform = transform
        self.num_workers = dataset.spec.default_workers if num_workers is None else num_workers

    def __len__(self) -> int:
        full, rest = divmod(len(self.indices), self.batch_size)
        # a last batch smaller than the number of processes leaves nothing to share
        return full + (0 if self.drop_last or rest < self.world_size else 1)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of `epoch` in the order they are served."""
        if not self.shuffle:
            return self.indices
        return order_rng(self.seed, epoch).permutation(self.indices)

    def batches(self, epoch: int):
        """This process's part of every batch of `epoch` (the whole batch in one process)."""
        order = self.order(epoch)
        batches = [order[s:s + self.batch_size] for s in range(0, len(self) * self.batch_size,
                                                                 self.batch_size)]
        if self.world_size == 1:
            return batches
        return [self._part(b) for b in batches]

    def _part(self, batch):
        per = len(batch) // self.world_size
        return batch[self.rank * per:(self.rank + 1) * per]

    def epoch(self, epoch: int, start: int = 0):
        """Iterator over the batches of `epoch`, beginning with batch number `start`."""
        if not 0 <= start <= len(self):
            raise UserError(f"batch {start} is outside an epoch of {len(self)} batches")
        if start == len(self):
            return iter(())
        return self._iterate(epoch, start)

    def _iterate(self, epoch, start):
        # here, not at the top: the data package works without Paddle (downloads, checks)
        import paddle

        sampler = _EpochBatches(self.batches)
        sampler.epoch, sampler.start = epoch, start
        # no shared memory: a worker would move each batch into it from its queue's feeder
        # thread, a thread born after the fork, whose first Paddle free registers with a
        # lock the fork may have copied locked (the "hang now and then"); pickled numpy
        # arrays touch no Paddle code outside the worker's main thread
        loader = paddle.io.DataLoader(
            _Samples(self.dataset, self.transform, self.seed), batch_sampler=sampler,
            collate_fn=_collate, num_workers=self.num_workers, return_list=True,
            places=paddle.CPUPlace(), use_shared_memory=False)
        batches = iter(loader)
        try:
            for images, labels in batches:
                images, labels = np.array(images), np.array(labels)
                if images.ndim == 1:
                    _raise_failure(labels)
                yield images, labels
        finally:
            # stop the reader thread and worker processes now, not whenever the garbage
            # collector gets to an abandoned iterator (a traceback can keep it alive)
            shutdown = getattr(batches, "_try_shutdown_all", None)
            if shutdown is not None:
                shutdown()


class EndlessBatches:
    """Batches forever: pass after pass over a BatchLoader, reshuffled at each pass.

    `state()` is (pass, position) of the next batch; EndlessBatches(loader, *state)
    continues from exactly there (the search's persistent validation iterator)."""

    def __init__(self, loader: BatchLoader, start_epoch: int = 0, start_position: int = 0):
        if len(loader) == 0:
            raise UserError("the data set has fewer images than one batch: lower the batch "
                            "size or use more images")
        self.loader = loader
        self.pass_, self.position = start_epoch, start_position
        self._it = None

    def state(self):
        return self.pass_, self.position

    def close(self):
        """Stop the current pass's worker processes (also done when garbage-collected)."""
        if self._it is not None and hasattr(self._it, "close"):
            self._it.close()
        self._it = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.position >= len(self.loader):
            self.pass_, self.position, self._it = self.pass_ + 1, 0, None
        if self._it is None:
            self._it = self.loader.epoch(self.pass_, self.position)
        batch = next(self._it)
        self.position += 1
        return batch


def endless_batches(loader: BatchLoader, start_epoch: int = 0, start_position: int = 0):
    return EndlessBatches(loader, start_epoch, start_position)
