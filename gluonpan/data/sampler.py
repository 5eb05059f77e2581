"""A sampler whose order and augmentation seeds depend only on (seed, epoch, position).

That makes training resumable exactly: after a restart, ``set_epoch(epoch, start_batch=k)`` yields
the same keys the interrupted run would have yielded from batch ``k`` on, without loading the
batches before it.  Each key is ``(index, sample_seed)``; :class:`~gluonpan.data.PanopticDataset`
accepts such keys, so augmentation does not depend on which worker process loads the sample.
"""
import numpy as np
from mxnet.gluon.data import Sampler

__all__ = ['EpochSampler', 'sample_seed']


def sample_seed(seed, epoch, position):
    """A 32-bit seed for one sample of one epoch."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(position)]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Shuffled (or sequential) keys ``(index, sample_seed)``, reproducible per epoch.

    Parameters
    ----------
    num_samples : int
        Dataset length.
    shuffle : bool
        Shuffle each epoch.
    seed : int
        Base seed.
    num_parts, part_index : int
        Shard for distributed training: part ``part_index`` of ``num_parts`` takes every
        ``num_parts``-th key of the epoch's order.  The parts are disjoint and of equal length (the
        last ``num_samples % num_parts`` keys of each epoch's order are left out), so every worker
        runs the same number of steps.
    """

    def __init__(self, num_samples, shuffle=True, seed=0, num_parts=1, part_index=0):
        if not 0 <= part_index < num_parts:
            raise ValueError('part_index {} not in [0, {})'.format(part_index, num_parts))
        self.num_samples = int(num_samples)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_parts = int(num_parts)
        self.part_index = int(part_index)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch, start_batch=0, batch_size=1):
        """Select the epoch and skip its first ``start_batch`` batches of ``batch_size`` keys."""
        self.epoch = int(epoch)
        self.start = int(start_batch) * int(batch_size)

    def keys(self):
        """All keys of the current epoch for this part (before skipping)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        return [(int(order[p]), sample_seed(self.seed, self.epoch, p))
                for p in range(self.part_index, self._used(), self.num_parts)]

    def _used(self):
        """Keys of an epoch's order that are shared out: a multiple of ``num_parts``."""
        return self.num_samples - self.num_samples % self.num_parts

    def __iter__(self):
        return iter(self.keys()[self.start:])

    def __len__(self):
        return max(0, self._used() // self.num_parts - self.start)
