"""Panoptic SegFormer's inference post-processing in numpy (the reference's
``PanformerHead.get_bboxes``): mask-wise merging of the thing and stuff masks into a panoptic map.

1. Masks: the thing candidates' and the stuff queries' stride-8 masks (ReLU values, no sigmoid)
   resized bilinearly straight to the output (original image) size, no crop
   (:class:`ResizedMasks`; one mask at a time, so the full-size stack is never held).
2. Scores (:func:`fused_scores`): ``class score * seg_score ** 2`` with ``seg_score`` the mean
   mask value over its pixels ``> mask_threshold`` (``+ 1`` in the denominator, as the
   reference).  A candidate whose class score times its peak mask value squared (a bound of its
   fused score) is below its quality threshold cannot be placed: its masks are not resized.
   Thing class scores are the location decoder's sigmoid scores of the top-k (query, class)
   pairs, stuff scores the sigmoid of the stuff decoder's last class branch.
3. Mask-wise merging (:func:`mask_wise_merge`): candidates by decreasing score; skip one scoring
   below its quality threshold, with an empty binary mask, or whose fraction already taken exceeds
   its overlap threshold; otherwise it takes its free pixels.  Things get one segment each, a
   stuff class one segment.  Pixels left are void.

Every array is float32 as in the reference; thresholds are compared in float32.
"""
import logging

import cv2
import mxnet as mx
import numpy as np

from ...data.categories import OFFSET
from ...data.transforms import denormalize, normalize
from ...utils.resize import resize_bilinear

__all__ = ['DEFAULT_INFERENCE_OPTIONS', 'ResizedMasks', 'fused_scores', 'mask_wise_merge',
           'panoptic_ids', 'panoptic_from_outputs', 'inference_options', 'keep_ratio_size',
           'resize_for_test', 'predict_panoptic']

logger = logging.getLogger(__name__)

#: the reference's thresholds (``PanformerHead.__init__``; the mask threshold and the exponent
#: are hard-coded there); ``stuff_area_threshold`` is ours (the reference has no stuff area
#: limit: 0 keeps every stuff segment)
DEFAULT_INFERENCE_OPTIONS = dict(
    mask_threshold=0.5,
    quality_threshold_things=0.25,
    quality_threshold_stuff=0.25,
    overlap_threshold_things=0.4,
    overlap_threshold_stuff=0.2,
    stuff_area_threshold=0,
)


class ResizedMasks(object):
    """A stack of small masks read one at a time at the output size.

    ``masks[i]`` is mask ``i`` resized (PyTorch's bilinear, ``align_corners=False``) from its
    (h, w) straight to ``size``; ``shape`` is ``(N,) + size``.

    Parameters
    ----------
    masks : np.ndarray
        (N, h, w) masks.
    size : tuple of int
        (H, W) of the output.
    """

    def __init__(self, masks, size):
        self.masks = np.asarray(masks, np.float32)
        self.shape = (len(self.masks),) + tuple(int(s) for s in size)

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        return resize_bilinear(self.masks[i], *self.shape[1:])  # (H, W)


def fused_scores(masks, class_scores, mask_threshold=0.5):
    """The reference's mask-wise confidence ``class score * seg_score ** 2``.

    Parameters
    ----------
    masks : np.ndarray or ResizedMasks
        (N, H, W) mask values at the output size.
    class_scores : np.ndarray
        (N,) class probabilities.
    mask_threshold : float
        A pixel belongs to a mask where its value is ``> mask_threshold``.

    Returns
    -------
    np.ndarray
        (N,) float32, ``seg_score = sum(m * (m > t)) / (count(m > t) + 1)``.
    """
    threshold = np.float32(mask_threshold)
    seg = np.zeros(len(masks), np.float32)
    for i in range(len(masks)):
        m = np.asarray(masks[i], np.float32)
        fg = m > threshold
        seg[i] = (m * fg).sum(dtype=np.float32) / np.float32(fg.sum() + 1)
    return np.asarray(class_scores, np.float32) * seg ** 2


def mask_wise_merge(masks, scores, is_thing, mask_threshold=0.5, quality_threshold_things=0.25,
                    quality_threshold_stuff=0.25, overlap_threshold_things=0.4,
                    overlap_threshold_stuff=0.2, stuff_area_threshold=0):
    """The reference's mask-wise merging (module docstring, step 3).

    Parameters
    ----------
    masks : np.ndarray or ResizedMasks
        (N, H, W) mask values at the output size.
    scores : np.ndarray
        (N,) fused scores (:func:`fused_scores`).
    is_thing : np.ndarray
        (N,) bool: the candidate is a thing.
    mask_threshold : float
        Binarisation (``> mask_threshold``).
    quality_threshold_things, quality_threshold_stuff : float
        A candidate scoring ``<`` its threshold is skipped.
    overlap_threshold_things, overlap_threshold_stuff : float
        A candidate whose binary mask is taken by ``>`` this fraction is skipped.
    stuff_area_threshold : int
        A stuff candidate with fewer free pixels is skipped (0: none, as the reference).

    Returns
    -------
    segment_map : np.ndarray
        (H, W) int32: ``k`` for the pixels of the k-th placed segment (1-based), 0 void.
    placed : list of (int, int)
        ``(candidate index, area)`` of the placed segments, in placing order.
    """
    scores = np.asarray(scores, np.float32)
    is_thing = np.asarray(is_thing, bool)
    if not len(scores) == len(is_thing) == len(masks):
        raise ValueError('{} masks, {} scores and {} thing flags'.format(
            len(masks), len(scores), len(is_thing)))
    segment_map = np.zeros(tuple(masks.shape[1:]), np.int32)
    placed = []
    for i in np.argsort(-scores, kind='stable'):
        quality, overlap = ((quality_threshold_things, overlap_threshold_things) if is_thing[i]
                            else (quality_threshold_stuff, overlap_threshold_stuff))
        if scores[i] < np.float32(quality):
            continue
        binary = np.asarray(masks[i]) > np.float32(mask_threshold)
        area = int(binary.sum())
        if area == 0 or int((binary & (segment_map > 0)).sum()) / area > overlap:
            continue
        free = binary & (segment_map == 0)
        free_area = int(free.sum())
        if free_area == 0 or (not is_thing[i] and free_area < stuff_area_threshold):
            continue
        segment_map[free] = len(placed) + 1
        placed.append((int(i), free_area))
    return segment_map, placed


def panoptic_ids(segment_map, placed, labels, scores, categories):
    """Placed segments -> panoptic ids in the dataset's categories.

    Parameters
    ----------
    segment_map, placed
        :func:`mask_wise_merge`'s outputs.
    labels : np.ndarray
        (N,) candidate classes: ``0..T-1`` things (contiguous), ``T + s`` stuff class ``s``.
    scores : np.ndarray
        (N,) fused scores.
    categories : gluonpan.data.PanopticCategories

    Returns
    -------
    pan_ids : np.ndarray
        (H, W) int32: ``category_id * 1000 + k`` for the k-th instance of a thing category,
        ``category_id`` for stuff, 0 void.
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score`` (fused), ``area`` per segment.
    """
    num_things = categories.num_things
    lut = np.zeros(len(placed) + 1, np.int32)
    segments, per_category = [], {}
    for k, (i, area) in enumerate(placed, start=1):
        label = int(labels[i])
        if label < num_things:
            category = categories.thing_ids[label]
            index = per_category.get(category, 0)
            per_category[category] = index + 1
            segment_id = category * OFFSET + index
        else:
            category = segment_id = categories.stuff_ids[label - num_things]
        lut[k] = segment_id
        segments.append(dict(id=int(segment_id), category_id=int(category),
                             isthing=int(label < num_things), score=float(scores[i]),
                             area=int(area)))
    return lut[segment_map], segments


def _per_image(outputs, categories):
    """The five outputs of ``net.predict`` without their batch axis of one, checked."""
    names = ('thing_scores', 'thing_labels', 'thing_masks', 'stuff_scores', 'stuff_masks')
    if len(outputs) != len(names):
        raise ValueError('expected the {} outputs {} of net.predict, got {}'.format(
            len(names), names, len(outputs)))
    arrays = []
    for name, x in zip(names, outputs):
        x = x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)
        if x.ndim < 2 or x.shape[0] != 1:
            raise ValueError('{} must hold one image, got shape {}'.format(name, x.shape))
        arrays.append(x[0])
    scores, labels, masks, stuff_scores, stuff_masks = arrays
    if stuff_masks.shape[0] != categories.num_stuff or masks.shape[0] != len(scores) or \
            masks.shape[1:] != stuff_masks.shape[1:]:
        raise ValueError('thing masks {} / scores {} and stuff masks {} do not fit {} stuff '
                         'classes'.format(masks.shape, scores.shape, stuff_masks.shape,
                                          categories.num_stuff))
    return scores, np.rint(labels).astype(np.int64), masks, stuff_scores, stuff_masks


def panoptic_from_outputs(outputs, output_size, categories, **options):
    """Panoptic map of one image from ``net.predict``'s outputs.

    Parameters
    ----------
    outputs : sequence of NDArray or np.ndarray
        ``(thing_scores (1, K), thing_labels (1, K), thing_masks (1, K, h0, w0), stuff_scores
        (1, S), stuff_masks (1, S, h0, w0))``.
    output_size : tuple of int
        (H, W) of the result (the original image).
    categories : gluonpan.data.PanopticCategories
    **options
        :data:`DEFAULT_INFERENCE_OPTIONS` overrides.

    Returns
    -------
    pan_ids, segments_info
        See :func:`panoptic_ids`.
    """
    options = dict(DEFAULT_INFERENCE_OPTIONS, **options)
    scores, labels, masks, stuff_scores, stuff_masks = _per_image(outputs, categories)
    num_things, num_stuff = categories.num_things, categories.num_stuff
    labels = np.concatenate([labels, num_things + np.arange(num_stuff)])  # (K + S,)
    is_thing = labels < num_things
    small = np.concatenate([masks, stuff_masks]).astype(np.float32)  # (K + S, h0, w0)
    scores = np.concatenate([scores, stuff_scores]).astype(np.float32)  # (K + S,)
    # fused <= score * peak ** 2 (a resized value is at most the peak): a candidate whose bound is
    # below its quality threshold would be skipped by the merging, so its masks are not resized
    quality = np.where(is_thing, options['quality_threshold_things'],
                       options['quality_threshold_stuff']).astype(np.float32)
    peak = small.reshape(len(small), -1).max(axis=1, initial=0)  # (K + S,)
    bound = scores * peak ** 2
    possible = (bound >= quality) & (peak > np.float32(options['mask_threshold']))
    masks = ResizedMasks(small, output_size)  # (K + S, H, W), read one at a time
    fused = np.zeros_like(scores)
    fused[possible] = fused_scores(ResizedMasks(small[possible], output_size), scores[possible],
                                   options['mask_threshold'])
    segment_map, placed = mask_wise_merge(masks, fused, is_thing, **options)
    logger.debug('%d candidates, %d segments placed', len(labels), len(placed))
    return panoptic_ids(segment_map, placed, labels, fused, categories)


def inference_options(net, score_threshold=None, overlap_threshold=None,
                      stuff_area_threshold=None, **overrides):
    """The thresholds of :func:`panoptic_from_outputs` for ``net``.

    :data:`DEFAULT_INFERENCE_OPTIONS`, updated by ``net.inference_options``, then by the generic
    fusion thresholds of the eval / demo flags (``score_threshold``: both quality thresholds,
    ``overlap_threshold``: the things' overlap threshold, ``stuff_area_threshold``), then by
    ``overrides`` with this module's own names; None values are ignored.
    """
    options = dict(DEFAULT_INFERENCE_OPTIONS)
    options.update((k, v) for k, v in (getattr(net, 'inference_options', None) or {}).items()
                   if k in options)
    unknown = set(overrides) - set(options)
    if unknown:
        raise ValueError('unknown Panoptic SegFormer inference options {}; known: {} and '
                         'score_threshold, overlap_threshold, stuff_area_threshold'.format(
                             sorted(unknown), sorted(options)))
    generic = dict(quality_threshold_things=score_threshold,
                   quality_threshold_stuff=score_threshold,
                   overlap_threshold_things=overlap_threshold,
                   stuff_area_threshold=stuff_area_threshold)
    for values in (generic, overrides):
        options.update((k, v) for k, v in values.items() if v is not None)
    return options


def keep_ratio_size(height, width, short, long):
    """mmcv's ``rescale_size`` of ``Resize(img_scale=(long, short), keep_ratio=True)``: the
    largest scale with the long side ``<= long`` and the short side ``<= short``, sizes rounded
    half up -> (h, w)."""
    scale = min(long / max(height, width), short / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_for_test(data, test_size):
    """A normalised image (1, 3, H, W) resized as the reference's test pipeline: the uint8 pixels
    (recovered exactly from ``data``) resized by ``cv2.resize`` (bilinear) to
    :func:`keep_ratio_size`, normalised again."""
    h, w = keep_ratio_size(*data.shape[2:], *test_size)
    if (h, w) == tuple(data.shape[2:]):
        return data
    pixels = denormalize(data[0].asnumpy())  # (H, W, 3) uint8
    resized = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_LINEAR)  # (h, w, 3)
    return mx.nd.array(normalize(resized)[None], ctx=data.context)  # (1, 3, h, w)


def predict_panoptic(net, data, score_threshold=None, overlap_threshold=None,
                     stuff_area_threshold=None, **options):
    """Panoptic prediction of one image in the dataset's category ids.

    The image is resized when ``net.inference_options['test_size']`` says so (the reference's
    COCO test size), run through ``net.predict`` *without padding* (the reference pads nothing
    at test time) and post-processed at the input's size by :func:`panoptic_from_outputs`.

    Parameters
    ----------
    net : PanopticSegFormer
    data : mx.nd.NDArray
        (1, 3, H, W) normalised image, any H and W.
    score_threshold, overlap_threshold, stuff_area_threshold : float or None
        The generic fusion thresholds (see :func:`inference_options`).
    **options
        This model's own thresholds (:data:`DEFAULT_INFERENCE_OPTIONS`), which take precedence.

    Returns
    -------
    pan_ids : np.ndarray
        (H, W) int32 segment ids.
    segments_info : list of dict
    """
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError('predict_panoptic takes one image (1, 3, H, W), got {}'
                         .format(data.shape))
    options = inference_options(net, score_threshold, overlap_threshold, stuff_area_threshold,
                                **options)
    size = tuple(data.shape[2:])
    test_size = (getattr(net, 'inference_options', None) or {}).get('test_size')
    if test_size:
        data = resize_for_test(data, test_size)
    return panoptic_from_outputs(net.predict(data), size, net.categories, **options)
