"""The training targets of a PanopticFCN from an augmented panoptic sample (data workers)."""
import numpy as np

from ...data.categories import IGNORE_LABEL

__all__ = ['FCNSampleTargets']


class FCNSampleTargets(object):
    """``sample -> targets``: the ``targets`` of :class:`~gluonpan.data.PanopticTrainTransform`.

    Takes the sample's semantic map in the ``'separated'`` order (stuff classes, then one
    "things" class), maps it to the stuff head's order ("things" first, then stuff), and returns
    what :class:`gluonpan.data.fcn_targets.FCNTargets` makes of it and the instances, restricted
    to the keys the training graph takes.

    Parameters
    ----------
    targets : gluonpan.data.fcn_targets.FCNTargets
        The target maker, built for the network's classes and levels.
    num_stuff : int
        Stuff categories (the "things" class of the sample's map is ``num_stuff``).
    keys : tuple of str
        The keys kept (the training inputs besides ``data``).
    """

    def __init__(self, targets, num_stuff, keys):
        self.targets = targets
        self.keys = tuple(keys)
        lut = np.full(256, IGNORE_LABEL, np.uint8)
        lut[:num_stuff] = np.arange(1, num_stuff + 1)
        lut[num_stuff] = 0  # "things"
        self._lut = lut

    def __call__(self, sample):
        semantic = self._lut[sample['sem_seg']]  # (H, W) in the stuff head's order
        out = self.targets(semantic, sample['gt_masks'], sample['gt_classes'])
        return {k: out[k] for k in self.keys}
