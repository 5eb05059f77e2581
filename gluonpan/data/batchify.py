"""Batching: pad to a multiple of 32, pad instances with -1, split a batch over contexts."""
import math

import mxnet as mx
import numpy as np

from .categories import IGNORE_LABEL

__all__ = ['train_batchify', 'val_batchify', 'split_and_load', 'pad_to_multiple']

_SHARED = mx.Context('cpu_shared', 0)
#: per-slot targets: padded to the batch's largest count (at least 1) along their first axis with
#: these values; PanopticFCN's (level, instance) slots and Panoptic SegFormer's things (a class of
#: -1 marks a padded slot in both)
SLOT_KEYS = {'inst_masks': 0, 'inst_guide': 0, 'inst_classes': -1,
             'thing_classes': -1, 'thing_boxes': 0, 'thing_masks': 0, 'thing_cost_masks': 0}
#: the keys handled by name; any other array of a sample is stacked as it is (same shape needed)
_NAMED = ('data', 'sem_seg', 'gt_boxes', 'gt_classes', 'gt_masks', 'image_id')


def pad_to_multiple(size, multiple=32):
    """Smallest multiple of ``multiple`` that is >= ``size``."""
    return int(math.ceil(size / float(multiple)) * multiple)


def _stack_padded(arrays, shape, fill, dtype):
    out = np.full((len(arrays),) + tuple(shape), fill, dtype=dtype)
    for i, a in enumerate(arrays):
        out[(i,) + tuple(slice(0, s) for s in a.shape)] = a
    return out


def train_batchify(samples, size_divisibility=32):
    """Stack training samples into one batch of NDArrays on ``cpu_shared(0)``.

    Images are padded at the bottom/right to a common size divisible by ``size_divisibility``
    (the semantic map with 255).  Samples with instances (panoptic models: ``gt_boxes`` ...) get
    them padded to the largest count in the batch (at least 1) with -1 boxes and classes and empty
    masks; semantic samples carry ``data`` and ``sem_seg`` only.  RPN targets index anchors of the
    padded input, so samples that carry them must already share one size (the train transform's
    fixed crop).

    Samples with other per-image targets (PanopticFCN's) must share one size too; those are
    stacked as they are, and the per-slot ones (:data:`SLOT_KEYS`) padded to the largest count.

    Returns
    -------
    dict
        ``data`` (B, 3, H, W), ``sem_seg`` (B, H, W) if the samples have it; with instances
        ``gt_boxes`` (B, M, 4), ``gt_classes`` (B, M, 1), ``gt_masks`` (B, M, H, W) uint8, and if
        present ``rpn_cls_targets`` (B, N), ``rpn_box_targets`` (B, N, 4), ``rpn_box_masks``
        (B, N, 4); any other target (B, ...) in its dtype; plus ``image_id`` (list).
    """
    shapes = [s['data'].shape[1:] for s in samples]
    height = pad_to_multiple(max(h for h, _ in shapes), size_divisibility)
    width = pad_to_multiple(max(w for _, w in shapes), size_divisibility)
    stacked = [k for k in samples[0] if k not in _NAMED]
    if stacked and any(s != (height, width) for s in shapes):
        raise ValueError('samples with targets {} must all be {}x{} (a multiple of {}), got {}'
                         .format(stacked, height, width, size_divisibility, shapes))
    batch = {'data': _stack_padded([s['data'] for s in samples], (3, height, width), 0,
                                   np.float32)}
    if 'sem_seg' in samples[0]:
        batch['sem_seg'] = _stack_padded([s['sem_seg'] for s in samples], (height, width),
                                         IGNORE_LABEL, np.float32)
    if 'gt_boxes' in samples[0]:
        num_inst = max(1, max(len(s['gt_boxes']) for s in samples))
        batch.update(
            gt_boxes=_stack_padded([s['gt_boxes'] for s in samples], (num_inst, 4), -1,
                                   np.float32),
            gt_classes=_stack_padded([s['gt_classes'].reshape(-1, 1) for s in samples],
                                     (num_inst, 1), -1, np.float32),  # (B, M, 1)
            gt_masks=_stack_padded([s['gt_masks'] for s in samples], (num_inst, height, width), 0,
                                   np.uint8))
    for key in stacked:
        arrays = [np.asarray(s[key]) for s in samples]
        if key in SLOT_KEYS:
            count = max(1, max(len(a) for a in arrays))
            batch[key] = _stack_padded(arrays, (count,) + arrays[0].shape[1:], SLOT_KEYS[key],
                                       arrays[0].dtype)
        else:
            batch[key] = np.stack(arrays)
    out = {k: mx.nd.array(v, ctx=_SHARED, dtype=v.dtype) for k, v in batch.items()}
    out['image_id'] = [s['image_id'] for s in samples]
    return out


def val_batchify(samples):
    """Validation samples stay a list (one image per context, each at its own size)."""
    return list(samples)


def split_and_load(batch, ctx_list):
    """Split a batch dict along axis 0 over contexts.

    Parameters
    ----------
    batch : dict
        NDArrays / numpy arrays with a leading batch axis; lists (e.g. ``image_id``) are split too.
    ctx_list : list of mx.Context
        Contexts; the batch size must be at least ``len(ctx_list)``.

    Returns
    -------
    list of dict
        One dict per context, NDArrays on that context.
    """
    size = len(batch['data'])
    if size < len(ctx_list):
        raise ValueError('batch of {} cannot be split over {} contexts'.format(size, len(ctx_list)))
    bounds = np.linspace(0, size, len(ctx_list) + 1).round().astype(int)
    parts = []
    for ctx, lo, hi in zip(ctx_list, bounds[:-1], bounds[1:]):
        part = {}
        for key, value in batch.items():
            if isinstance(value, mx.nd.NDArray):
                part[key] = value[int(lo):int(hi)].as_in_context(ctx)
            elif isinstance(value, np.ndarray):
                part[key] = mx.nd.array(value[lo:hi], ctx=ctx, dtype=value.dtype)
            else:
                part[key] = value[lo:hi]
        parts.append(part)
    return parts
