"""Panoptic SegFormer's training targets: made per sample in the data workers
(:class:`SegFormerSampleTargets`, the ``targets`` of ``PanopticTrainTransform``), read per batch
in the training step (:class:`BatchTargets`), and the loss normalisation of the reference
(:func:`loss_normalizers`).

Per sample (M things, S stuff classes, an H x W crop, ``h0, w0 = ceil(H / 8), ceil(W / 8)``):

================== ==================== =====================================================
key                shape, dtype          content
================== ==================== =====================================================
thing_classes      (M,) int32           contiguous thing class (crowd regions are not things)
thing_boxes        (M, 4) float32       x1, y1, x2, y2 in pixels, x2 / y2 *exclusive* (mmdet)
thing_masks        (M, 2h0, 2w0) f32    binary mask resized bilinearly to stride 4: the
                                        dice-loss target (the reference resizes the padded
                                        ground truth to the x2-upsampled prediction)
thing_cost_masks   (M, h0, w0) f32      the same resized to stride 8: the matcher's dice cost
stuff_masks        (S, 2h0, 2w0) f32    every stuff class's mask at stride 4 (0 if absent)
stuff_present      (S,) float32         1 where the class has a pixel in the crop
================== ==================== =====================================================

The four ``thing_*`` keys have one row per thing and are padded to the batch's largest count
by the batchify function (``gluonpan.data.batchify.SLOT_KEYS``: ``-1`` classes mark the padding).
"""
import collections
import math

import mxnet as mx
import numpy as np

from ...nn.set_losses import avg_factor_for_context, thing_stuff_ratios
from ...utils.resize import resize_bilinear

__all__ = ['MASK_STRIDE', 'TARGET_KEYS', 'mask_size', 'SegFormerSampleTargets',
           'batch_counts', 'BatchTargets', 'LossNormalizers', 'loss_normalizers']

#: stride of the predicted masks (the stride-8 level of the memory)
MASK_STRIDE = 8
#: the keys of a training batch besides ``data``
TARGET_KEYS = ('thing_classes', 'thing_boxes', 'thing_masks', 'thing_cost_masks', 'stuff_masks',
               'stuff_present')


def mask_size(height, width, stride=MASK_STRIDE):
    """(h0, w0) of the stride-8 masks of an H x W input (a ResNet's C3: every stride-2 layer
    rounds up)."""
    return int(math.ceil(height / stride)), int(math.ceil(width / stride))


def _resized(masks, height, width):
    """(N, H, W) binary masks -> (N, height, width) float32 (PyTorch's bilinear resize)."""
    if not len(masks):
        return np.zeros((0, height, width), np.float32)
    return resize_bilinear(masks.astype(np.float32), height, width)


class SegFormerSampleTargets(object):
    """``sample -> targets`` (the module docstring's keys), run by the data workers.

    Takes the sample of :func:`gluonpan.data.targets.panoptic_targets`: ``sem_seg`` (H, W) in the
    ``'separated'`` classes (stuff 0..S-1, "things" S, 255 void), ``gt_masks`` (M, H, W),
    ``gt_classes`` (M,) and ``gt_boxes`` (M, 4) with x2 / y2 the last pixel (inclusive).

    Parameters
    ----------
    num_stuff : int
        Stuff classes S.
    """

    def __init__(self, num_stuff):
        self.num_stuff = int(num_stuff)

    def __call__(self, sample):
        sem = np.asarray(sample['sem_seg'])
        height, width = sem.shape
        h0, w0 = mask_size(height, width)
        masks = np.asarray(sample['gt_masks'])
        boxes = np.asarray(sample['gt_boxes'], np.float32).reshape(-1, 4)  # (M, 4) inclusive
        stuff = np.zeros((self.num_stuff, 2 * h0, 2 * w0), np.float32)
        present = np.zeros(self.num_stuff, np.float32)
        for s in np.unique(sem):
            if s < self.num_stuff:
                stuff[s] = _resized((sem == s)[None], 2 * h0, 2 * w0)[0]
                present[s] = 1
        classes = np.asarray(sample['gt_classes'], np.int32).reshape(-1)  # (M,)
        return {'thing_classes': classes,
                'thing_boxes': boxes + np.array([0, 0, 1, 1], np.float32),  # exclusive x2, y2
                'thing_masks': _resized(masks, 2 * h0, 2 * w0),
                'thing_cost_masks': _resized(masks, h0, w0),
                'stuff_masks': stuff, 'stuff_present': present}


def _check_batch(batch, num_stuff):
    """Shapes of a per-context batch against its data; a ValueError naming what does not fit."""
    missing = [k for k in ('data',) + TARGET_KEYS if k not in batch]
    if missing:
        raise KeyError('training batch lacks {} (Panoptic SegFormer trains on the targets of '
                       'net.train_targets()); it has {}'.format(missing, sorted(batch)))
    B, _, H, W = batch['data'].shape
    h0, w0 = mask_size(H, W)
    G = batch['thing_classes'].shape[1] if batch['thing_classes'].ndim == 2 else -1
    expected = dict(thing_classes=(B, G), thing_boxes=(B, G, 4),
                    thing_masks=(B, G, 2 * h0, 2 * w0), thing_cost_masks=(B, G, h0, w0),
                    stuff_masks=(B, num_stuff, 2 * h0, 2 * w0), stuff_present=(B, num_stuff))
    wrong = {k: batch[k].shape for k, v in expected.items() if batch[k].shape != v}
    if wrong:
        raise ValueError('batch shapes {} do not fit data {} ({} stuff classes, masks at stride '
                         '{}: {}x{}); expected {}'.format(wrong, batch['data'].shape, num_stuff,
                                                          MASK_STRIDE, h0, w0,
                                                          {k: expected[k] for k in wrong}))


def batch_counts(batch, num_queries):
    """``{'things', 'stuff', 'images'}`` of a training batch: the things the matching will pair
    (``sum min(G_i, Q)``), the stuff segments, the images.

    Parameters
    ----------
    batch : dict
        With ``thing_classes`` (B, G) (-1 for padding) and ``stuff_present`` (B, S), NDArrays or
        numpy arrays.
    num_queries : int
        Q.
    """
    classes, present = [np.asarray(x.asnumpy() if hasattr(x, 'asnumpy') else x)
                        for x in (batch['thing_classes'], batch['stuff_present'])]
    things = np.minimum((classes >= 0).sum(axis=1), num_queries).sum()
    return {'things': int(things), 'stuff': int(present.sum()), 'images': int(len(classes))}


class BatchTargets(object):
    """The targets of one per-context training batch, as the matching (numpy) and the losses
    (NDArrays on the data's context) use them.

    Parameters
    ----------
    batch : dict
        ``data`` (B, 3, H, W) and the :data:`TARGET_KEYS` NDArrays (thing rows padded with class
        -1).
    num_stuff : int
        S, checked against the stuff arrays.

    Attributes
    ----------
    classes : np.ndarray
        (B, G) int64 thing classes, -1 for padding; ``valid`` (B, G) bool.
    boxes : np.ndarray
        (B, G, 4) float64 exclusive xyxy pixel boxes.
    image_sizes : np.ndarray
        (B, 2) (H, W) of every image: the crop (boxes are normalised by it).
    cost_masks : np.ndarray
        (B, G, h0, w0) float32.
    boxes_cxcywh, image_wh, thing_masks, stuff_masks, stuff_present, stuff_index : NDArray
        (B, G, 4) normalised cx, cy, w, h; (B, 1, 4) ``[W, H, W, H]``; the mask targets;
        (B, S) float32; (2, B, S) int32 ``[image, stuff query]`` (query s is class s).
    """

    def __init__(self, batch, num_stuff):
        _check_batch(batch, num_stuff)
        data = batch['data']
        ctx, (B, _, H, W) = data.context, data.shape
        self.classes = batch['thing_classes'].asnumpy().astype(np.int64)  # (B, G)
        self.valid = self.classes >= 0
        self.boxes = batch['thing_boxes'].asnumpy().astype(np.float64)  # (B, G, 4)
        self.image_sizes = np.tile(np.array([[H, W]], np.int64), (B, 1))  # (B, 2)
        self.cost_masks = batch['thing_cost_masks'].asnumpy()  # (B, G, h0, w0)
        scale = np.array([W, H, W, H], np.float64)
        x1, y1, x2, y2 = np.moveaxis(self.boxes / scale, -1, 0)  # (B, G) each
        cxcywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)
        self.boxes_cxcywh = mx.nd.array(cxcywh * self.valid[..., None], ctx=ctx)  # (B, G, 4)
        self.image_wh = mx.nd.array(np.tile(scale, (B, 1, 1)), ctx=ctx)  # (B, 1, 4)
        self.thing_masks = batch['thing_masks'].astype('float32')
        self.stuff_masks = batch['stuff_masks'].astype('float32')
        self.stuff_present = batch['stuff_present'].astype('float32')  # (B, S)
        index = np.stack(np.meshgrid(np.arange(B), np.arange(num_stuff), indexing='ij'))
        self.stuff_index = mx.nd.array(index, ctx=ctx, dtype='int32')  # (2, B, S)

    def counts(self, num_queries):
        """:func:`batch_counts` of this batch."""
        return batch_counts({'thing_classes': self.classes,
                             'stuff_present': self.stuff_present}, num_queries)


#: the losses' normalisation: average factors and the dynamic thing / stuff weights
LossNormalizers = collections.namedtuple(
    'LossNormalizers', 'things stuff things_ratio stuff_ratio has_things')


def loss_normalizers(counts, totals=None):
    """The reference's normalisation of one context's losses.

    Parameters
    ----------
    counts : dict
        This context's :meth:`BatchTargets.counts`.
    totals : dict, optional
        The same summed over every context and worker of the step (the engine's hook); default
        ``counts`` (one context).

    Returns
    -------
    LossNormalizers
        ``things`` / ``stuff``: :func:`~gluonpan.nn.set_losses.avg_factor_for_context` of the
        matched things and stuff segments (the reference's ``num_total_pos_thing`` /
        ``num_total_pos_stuff``); their ratios (``things_ratio = things / (things + stuff)``);
        ``has_things``: a thing was matched on this context.
    """
    totals = counts if totals is None else totals
    things = avg_factor_for_context(totals['things'], counts['images'], totals['images'])
    stuff = avg_factor_for_context(totals['stuff'], counts['images'], totals['images'])
    return LossNormalizers(things, stuff, *thing_stuff_ratios(things, stuff),
                           has_things=counts['things'] > 0)
