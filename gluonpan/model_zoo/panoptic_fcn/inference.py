"""PanopticFCN inference post-processing in numpy: from the network's raw outputs to a panoptic map.

Follows the authors' reference (``panopticfcn/panoptic_seg.py``: ``inference_single_level``,
``inference``, ``process_inst``, ``combine_thing_and_stuff``; ``panopticfcn/head.py``:
``ThingGenerator.kernel_fusion``, ``StuffGenerator.kernel_fusion``; ``panopticfcn/utils.py``:
``topk_score``) step by step:

1. **Thing candidates** (:func:`thing_candidates`): per level the top ``min(h*w, top_num // 2)``
   peak-filtered centre scores over (class, position), kept above ``center_thresh``; all levels
   concatenated and sorted by score.
2. **Thing kernel fusion** (:func:`fuse_thing_kernels`): kernels of (same-class) candidates whose
   cosine similarity reaches ``similarity_thresh`` are averaged.
3. **Instances** (:func:`rescore_things`, :func:`thing_masks`): masks ``sigmoid(K @ encoded)`` at
   stride 4, scores multiplied by the mean probability inside the binary mask, sorted, filtered
   and cut to the top; the surviving masks upsampled x4, cropped to the image, resized to the
   output size and binarised.
4. **Stuff** (:func:`stuff_candidates`, :func:`fuse_stuff_kernels`, :func:`stuff_semantic`):
   per level and class (PanopticFCN's order: 0 = "things", then the stuff classes) the mean
   region probability where that class is the argmax, kept above ``stuff_thresh``; kernels and
   scores averaged over levels per class; the per-class probability maps upsampled like the masks
   and the semantic label taken as the argmax (0 where nothing was predicted).
5. **Fusion**: :func:`gluonpan.postprocess.combine_instances_and_semantics` with the semantic
   labels mapped to our ``'separated'`` classes (:func:`fcn_to_separated`).

Every array here is one image (no batch axis) and float32, as the reference computes.  Thresholds
are compared in float32 as PyTorch compares a float32 tensor with a Python float.
"""
import logging

import mxnet as mx
import numpy as np
from PIL import Image

from ...data.fcn_targets import level_offsets
from ...data.transforms import denormalize, normalize
from ...postprocess import combine_instances_and_semantics
from ...utils.resize import resize_bilinear
from ..panoptic_fpn.inference import pad_input

__all__ = ['DEFAULT_INFERENCE_OPTIONS', 'ENCODED_STRIDE', 'sigmoid', 'level_offsets',
           'select_level_peaks', 'thing_candidates', 'fuse_thing_kernels',
           'kernel_probabilities', 'mask_quality', 'rescore_things', 'upsample_to_image',
           'thing_masks', 'stuff_candidates', 'fuse_stuff_kernels', 'stuff_semantic',
           'fcn_to_separated', 'panoptic_from_outputs', 'inference_options',
           'shortest_edge_size', 'resize_for_test', 'predict_panoptic']

logger = logging.getLogger(__name__)

#: the reference's inference options (``panopticfcn/config.py``); the ``*-FAST`` configs set
#: ``center_thresh`` (THING.THRES) 0.2 and ``stuff_thresh`` (STUFF.THRES) 0.1
DEFAULT_INFERENCE_OPTIONS = dict(
    center_thresh=0.05,         # MODEL.POSITION_HEAD.THING.THRES
    stuff_thresh=0.05,          # MODEL.POSITION_HEAD.STUFF.THRES
    center_top_num=100,         # MODEL.POSITION_HEAD.THING.TOP_NUM
    mask_thresh=0.4,            # MODEL.INFERENCE.INST_THRES
    similarity_thresh=0.9,      # MODEL.INFERENCE.SIMILAR_THRES (SIMILAR_TYPE "cosine")
    class_specific=True,        # MODEL.INFERENCE.CLASS_SPECIFIC
    min_instance_score=0.05,    # hard-coded in process_inst
    score_threshold=0.2,        # MODEL.INFERENCE.COMBINE.INST_THRESH
    overlap_threshold=0.5,      # MODEL.INFERENCE.COMBINE.OVERLAP_THRESH
    stuff_area_threshold=4096,  # MODEL.INFERENCE.COMBINE.STUFF_AREA_LIMIT
)

#: stride of the encoded feature (MODEL.SEMANTIC_FPN.COMMON_STRIDE): masks are upsampled by it
ENCODED_STRIDE = 4


def sigmoid(x):
    """Float32 logistic function ``1 / (1 + exp(-x))`` (0 where ``exp`` overflows)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over='ignore'):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def select_level_peaks(centers, top_k, center_thresh):
    """The reference's ``topk_score`` of one level followed by its score threshold.

    The two-stage ``topk_score`` (top ``top_k`` per class, then top ``top_k`` of those) selects
    the top ``top_k`` over all (class, position) pairs; of those, scores ``> center_thresh`` are
    kept.  Selecting the scores above the threshold first and then the top ``top_k`` gives the same
    set, and is cheaper on the mostly zero peak-filtered maps.

    Parameters
    ----------
    centers : np.ndarray
        ``(T, n)`` peak-filtered centre scores of the level's ``n = h * w`` positions.
    top_k : int
        Number of peaks considered.
    center_thresh : float
        Peaks scoring ``<= center_thresh`` are dropped.

    Returns
    -------
    scores : np.ndarray
        ``(K,)`` float32, decreasing (ties in index order, where ``torch.topk`` may differ).
    classes : np.ndarray
        ``(K,)`` int64 thing classes.
    positions : np.ndarray
        ``(K,)`` int64 positions in the level (row-major).
    """
    centers = np.asarray(centers, dtype=np.float32)
    n = centers.shape[1]
    flat = centers.reshape(-1)  # (T * n,) class-major
    candidates = np.flatnonzero(flat > np.float32(center_thresh))
    order = candidates[np.argsort(-flat[candidates], kind='stable')][:top_k]
    return flat[order], order // n, order % n


def thing_candidates(centers, thing_kernels, level_shapes, center_thresh=0.05,
                     center_top_num=100):
    """Thing candidates of all levels, sorted by score (the reference's ``inference``).

    Parameters
    ----------
    centers : np.ndarray
        ``(T, P)`` peak-filtered centre scores, levels concatenated (row-major each).
    thing_kernels : np.ndarray
        ``(P, E)`` thing kernels (after the thing generator's ``embed_extractor``).
    level_shapes : list of (int, int)
        ``(h_l, w_l)`` of the levels.
    center_thresh : float
        Minimal centre score (exclusive).
    center_top_num : int
        Each level contributes at most ``min(h_l * w_l, center_top_num // 2)`` peaks.

    Returns
    -------
    kernels : np.ndarray
        ``(N, E)`` float32 kernels of the candidates.
    scores : np.ndarray
        ``(N,)`` float32 centre scores, decreasing.  The sort is stable (ties keep level, then
        score order), where the reference's ``torch.argsort`` may order ties differently.
    classes : np.ndarray
        ``(N,)`` int64 thing classes.
    """
    offsets = level_offsets(level_shapes)
    kernels, scores, classes = [], [], []
    for level, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        top_k = min(int(stop - start), center_top_num // 2)
        level_scores, level_classes, positions = select_level_peaks(
            centers[:, start:stop], top_k, center_thresh)
        logger.debug('level %d: %d thing peaks', level, len(level_scores))
        kernels.append(thing_kernels[start + positions])
        scores.append(level_scores)
        classes.append(level_classes)
    kernels = np.concatenate(kernels).astype(np.float32)  # (N, E)
    scores = np.concatenate(scores).astype(np.float32)  # (N,)
    classes = np.concatenate(classes).astype(np.int64)  # (N,)
    order = np.argsort(-scores, kind='stable')
    return kernels[order], scores[order], classes[order]


def fuse_thing_kernels(kernels, scores, classes, similarity_thresh=0.9, class_specific=True):
    """The reference's ``ThingGenerator.kernel_fusion`` (cosine similarity).

    With ``label[i, j]`` = "``j >= i``, cosine similarity ``>= similarity_thresh`` and (when
    ``class_specific``) the same class", candidate ``j`` is kept when fewer than two ``i <= j``
    have ``label[i, j]``, i.e. when no earlier candidate is similar to it -- earlier candidates
    that were themselves dropped count too, so a candidate similar only to a dropped one is
    dropped as well, and belongs to no group.  A kept candidate ``i`` averages the kernels of
    every ``j`` for which ``i`` is the first similar candidate; it keeps its own score and class.

    Parameters
    ----------
    kernels : np.ndarray
        ``(N, E)`` kernels sorted by decreasing score.
    scores, classes : np.ndarray
        ``(N,)`` scores and thing classes.
    similarity_thresh : float
        Minimal cosine similarity (norms clamped at 1e-8) of fused kernels.
    class_specific : bool
        Fuse only kernels of the same class.

    Returns
    -------
    kernels : np.ndarray
        ``(M, E)`` float32 averaged kernels (NaN rows for an all-zero kernel, as the reference;
        such instances are dropped at the score filter of :func:`rescore_things`).
    scores, classes : np.ndarray
        ``(M,)`` of the kept candidates, still sorted.
    """
    kernels = np.asarray(kernels, dtype=np.float32)
    scores, classes = np.asarray(scores), np.asarray(classes)
    if not len(kernels):
        return kernels, scores, classes
    norms = np.maximum(np.linalg.norm(kernels, axis=1), np.float32(1e-8))  # (N,)
    unit = kernels / norms[:, None]  # (N, E)
    similarity = unit.dot(unit.T)  # (N, N)
    label = np.triu(similarity) >= np.float32(similarity_thresh)  # (N, N)
    if class_specific:
        label &= classes[:, None] == classes[None, :]
    first = np.cumsum(label, axis=0) < 2  # (N, N): at most one similar row up to here
    keep = np.diagonal(first).copy()  # (N,)
    groups = (label & first)[keep].astype(np.float32)  # (M, N)
    with np.errstate(invalid='ignore', divide='ignore'):
        fused = groups.dot(kernels) / groups.sum(axis=1, keepdims=True)  # (M, E)
    return fused.astype(np.float32), scores[keep], classes[keep]


def kernel_probabilities(kernels, encoded):
    """``sigmoid(kernels @ encoded)`` at the resolution of the encoded feature.

    Parameters
    ----------
    kernels : np.ndarray
        ``(N, E)`` dynamic 1x1 convolution kernels (no bias, as the reference).
    encoded : np.ndarray
        ``(E, h, w)`` encoded feature.

    Returns
    -------
    np.ndarray
        ``(N, h, w)`` float32 probabilities.
    """
    E, h, w = encoded.shape
    flat = np.asarray(encoded, dtype=np.float32).reshape(E, h * w)  # (E, h * w)
    logits = np.asarray(kernels, dtype=np.float32).reshape(-1, E).dot(flat)  # (N, h * w)
    return sigmoid(logits).reshape(-1, h, w)  # (N, h, w)


def mask_quality(probs, mask_thresh=0.4):
    """Mean probability inside each binary mask (``process_inst``'s rescoring factor).

    Parameters
    ----------
    probs : np.ndarray
        ``(N, h, w)`` mask probabilities.
    mask_thresh : float
        The mask is ``probs > mask_thresh``.

    Returns
    -------
    np.ndarray
        ``(N,)`` float32 ``sum(p * mask) / (sum(mask) + 1e-6)`` (0 for an empty mask).
    """
    probs = np.asarray(probs, dtype=np.float32)
    flat = probs.reshape(len(probs), -1)  # (N, h * w)
    binary = flat > np.float32(mask_thresh)
    area = binary.sum(axis=1).astype(np.float32) + np.float32(1e-6)  # (N,)
    return (flat * binary).sum(axis=1, dtype=np.float32) / area


def rescore_things(kernels, scores, classes, encoded, mask_thresh=0.4, center_top_num=100,
                   min_instance_score=0.05, chunk_size=32):
    """The reference's ``process_inst`` up to the upsampling: rescore, sort, filter, top-k.

    Scores are multiplied by :func:`mask_quality` of the stride-4 masks (over the whole padded
    feature, as the reference), sorted decreasingly (stable), kept at ``>= min_instance_score``
    and cut to the first ``center_top_num``.  Masks are computed ``chunk_size`` at a time so that
    no ``(N, h, w)`` array of all candidates is held.

    Parameters
    ----------
    kernels : np.ndarray
        ``(N, E)`` fused thing kernels.
    scores, classes : np.ndarray
        ``(N,)`` their scores and thing classes.
    encoded : np.ndarray
        ``(E, h, w)`` encoded feature.
    mask_thresh : float
        Mask binarisation threshold (exclusive).
    center_top_num : int
        Maximal number of instances.
    min_instance_score : float
        Minimal rescored score (inclusive; hard-coded 0.05 in the reference).
    chunk_size : int
        Masks computed at once.

    Returns
    -------
    kernels : np.ndarray
        ``(K, E)`` kernels of the kept instances.
    scores : np.ndarray
        ``(K,)`` float32 rescored scores, decreasing.
    classes : np.ndarray
        ``(K,)`` int64 thing classes.
    """
    quality = [mask_quality(kernel_probabilities(kernels[i:i + chunk_size], encoded), mask_thresh)
               for i in range(0, len(kernels), chunk_size)]
    quality = np.concatenate(quality) if quality else np.zeros(0, np.float32)  # (N,)
    rescored = (np.asarray(scores, dtype=np.float32) * quality).astype(np.float32)  # (N,)
    order = np.argsort(-rescored, kind='stable')
    order = order[rescored[order] >= np.float32(min_instance_score)][:center_top_num]
    return kernels[order], rescored[order], np.asarray(classes, dtype=np.int64)[order]


def upsample_to_image(probs, image_size, output_size, stride=ENCODED_STRIDE):
    """Stride-``stride`` maps to the output image, as the reference does.

    ``interpolate(scale_factor=stride, mode='bilinear', align_corners=False)`` (the same
    sampling as resizing to ``stride`` times the size), crop to ``image_size`` (the unpadded
    network input), then bilinear resize to ``output_size`` (skipped when equal, which is exact:
    a same-size bilinear resize is the identity).  The order matters: upsample before cropping,
    and binarise or take the argmax only after both resizes.

    Parameters
    ----------
    probs : np.ndarray
        ``(..., h, w)`` probabilities.
    image_size : tuple of int
        ``(height, width)`` of the network input before padding (``<= stride * (h, w)``).
    output_size : tuple of int
        ``(H, W)`` of the result.

    Returns
    -------
    np.ndarray
        ``(..., H, W)`` float32.
    """
    h, w = probs.shape[-2:]
    full = resize_bilinear(probs, stride * h, stride * w)  # (..., stride * h, stride * w)
    cropped = full[..., :image_size[0], :image_size[1]]  # (..., image h, image w)
    if tuple(cropped.shape[-2:]) == tuple(output_size):
        return cropped
    return resize_bilinear(cropped, output_size[0], output_size[1])  # (..., H, W)


def thing_masks(kernels, encoded, image_size, output_size, mask_thresh=0.4):
    """Binary instance masks at the output resolution (end of ``process_inst``).

    One mask at a time, so only the binary ``(N, H, W)`` result is held at full resolution.

    Parameters
    ----------
    kernels : np.ndarray
        ``(N, E)`` kernels of the instances to paste.
    encoded : np.ndarray
        ``(E, h, w)`` encoded feature.
    image_size, output_size : tuple of int
        See :func:`upsample_to_image`.
    mask_thresh : float
        A pixel belongs to the mask when its upsampled probability is ``> mask_thresh``.

    Returns
    -------
    np.ndarray
        ``(N, H, W)`` bool.
    """
    masks = np.zeros((len(kernels),) + tuple(output_size), dtype=bool)
    direct = tuple(output_size) == tuple(image_size)  # no resize after the crop
    for k, kernel in enumerate(kernels):
        probs = kernel_probabilities(kernel[None], encoded)[0]  # (h, w)
        if not direct:
            masks[k] = upsample_to_image(probs, image_size, output_size) > np.float32(mask_thresh)
            continue
        window = _support_window(probs, mask_thresh, image_size)
        if window is None:
            continue
        top, bottom, left, right = window
        h, w = probs.shape
        up = resize_bilinear(probs, ENCODED_STRIDE * h, ENCODED_STRIDE * w, window)
        masks[k, top:bottom, left:right] = up > np.float32(mask_thresh)
    return masks


def _support_window(probs, mask_thresh, image_size, margin=1e-4):
    """The output rows and columns ``(top, bottom, left, right)`` of the x4 upsampling of
    ``probs`` (h, w), cropped to ``image_size``, outside which no pixel can exceed
    ``mask_thresh``; None if none can.

    An upsampled pixel blends its 2x2 nearest stride-4 values, so it stays below the threshold
    when they all are below ``mask_thresh - margin`` (the margin covers float rounding of the
    blend).  Output row ``i`` reads stride-4 rows ``floor((i + 0.5) / 4 - 0.5)`` and the next, so
    the rows ``4 * (r0 - 1)`` to ``4 * (r1 + 2)`` cover support rows ``r0..r1``.
    """
    support = probs > np.float32(mask_thresh - margin)
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    if not len(rows):
        return None
    s = ENCODED_STRIDE
    top, bottom = max(0, s * (rows[0] - 1)), min(image_size[0], s * (rows[-1] + 2))
    left, right = max(0, s * (cols[0] - 1)), min(image_size[1], s * (cols[-1] + 2))
    if top >= bottom or left >= right:
        return None
    return int(top), int(bottom), int(left), int(right)


def stuff_candidates(stuff_kernels, stuff_stats, num_levels, stuff_thresh=0.05):
    """Stuff candidates of every level (the stuff part of ``inference_single_level``).

    For level ``l`` and class ``c`` (row ``l * S + c``) present as the region argmax
    (``count > 0``), the score is the mean region probability over those positions; scores
    ``> stuff_thresh`` are kept.  Class 0 ("things") is a candidate like the others (the
    reference's ``STUFF.WITH_THING``).

    Parameters
    ----------
    stuff_kernels : np.ndarray
        ``(L * S, E)`` per-level, per-class stuff kernels (after ``embed_extractor``).
    stuff_stats : np.ndarray
        ``(L * S, 2)``: argmax count and sum of the class's probability over those positions.
    num_levels : int
        L.
    stuff_thresh : float
        Minimal stuff score (exclusive).

    Returns
    -------
    kernels : np.ndarray
        ``(N, E)`` float32, level by level, classes ascending within a level.
    scores : np.ndarray
        ``(N,)`` float32.
    classes : np.ndarray
        ``(N,)`` int64 classes in PanopticFCN's order (0 = "things").
    """
    stuff_stats = np.asarray(stuff_stats, dtype=np.float32)
    num_classes = len(stuff_stats) // num_levels
    counts, sums = stuff_stats[:, 0], stuff_stats[:, 1]  # (L * S,)
    present = np.flatnonzero(counts > 0)  # level-major, classes ascending
    scores = sums[present] / counts[present]  # (n_present,)
    keep = present[scores > np.float32(stuff_thresh)]
    kernels = np.asarray(stuff_kernels, dtype=np.float32)[keep]
    return kernels, sums[keep] / counts[keep], (keep % num_classes).astype(np.int64)


def fuse_stuff_kernels(kernels, scores, classes):
    """The reference's ``StuffGenerator.kernel_fusion``: average kernels and scores per class.

    Parameters
    ----------
    kernels : np.ndarray
        ``(N, E)`` stuff candidates (see :func:`stuff_candidates`).
    scores, classes : np.ndarray
        ``(N,)``.

    Returns
    -------
    kernels : np.ndarray
        ``(U, E)`` float32, one per unique class.
    scores : np.ndarray
        ``(U,)`` float32 mean scores.
    classes : np.ndarray
        ``(U,)`` int64 unique classes, ascending.
    """
    unique = np.unique(classes).astype(np.int64)
    member = (np.asarray(classes)[None, :] == unique[:, None]).astype(np.float32)  # (U, N)
    count = member.sum(axis=1, keepdims=True)  # (U, 1)
    fused = member.dot(np.asarray(kernels, dtype=np.float32)) / count  # (U, E)
    fused_scores = member.dot(np.asarray(scores, dtype=np.float32)) / count[:, 0]  # (U,)
    return fused, fused_scores, unique


def stuff_semantic(kernels, classes, encoded, image_size, output_size):
    """Semantic labels (PanopticFCN's classes) at the output resolution.

    The reference fills ``pred_sem_seg`` (S, H, W) with zeros, adds each predicted class's
    upsampled probability (:func:`upsample_to_image`) and takes the argmax, the first index on
    ties.  This keeps only the running maximum, visiting the classes in ascending order and
    replacing on strictly greater: the same labels, 0 ("things") where no class has a positive
    probability, and one ``(H, W)`` map in memory instead of S.

    Parameters
    ----------
    kernels : np.ndarray
        ``(U, E)`` fused stuff kernels.
    classes : np.ndarray
        ``(U,)`` their distinct classes.
    encoded : np.ndarray
        ``(E, h, w)`` encoded feature.
    image_size, output_size : tuple of int
        See :func:`upsample_to_image`.

    Returns
    -------
    np.ndarray
        ``(H, W)`` int64 classes in PanopticFCN's order.
    """
    best = np.zeros(tuple(output_size), dtype=np.float32)
    labels = np.zeros(tuple(output_size), dtype=np.int64)
    for i in np.argsort(classes, kind='stable'):
        probs = kernel_probabilities(kernels[i][None], encoded)[0]  # (h, w)
        probs = upsample_to_image(probs, image_size, output_size)  # (H, W)
        better = probs > best
        best[better] = probs[better]
        labels[better] = classes[i]
    return labels


def fcn_to_separated(labels, num_stuff):
    """PanopticFCN's semantic classes -> our ``'separated'`` classes.

    FCN class 0 ("things") becomes our last class ``num_stuff``; FCN class ``c >= 1`` (the
    ``c - 1``-th stuff category) becomes ``c - 1``.
    """
    labels = np.asarray(labels)
    return np.where(labels == 0, num_stuff, labels - 1)


def _as_numpy(x):
    return x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)


def _check_outputs(outputs, level_shapes, image_size, categories):
    """The six per-image outputs (batch axis dropped), checked against each other."""
    if len(outputs) != 6:
        raise ValueError('expected 6 PanopticFCN outputs (centers, regions, thing_kernels, '
                         'stuff_kernels, stuff_stats, encoded), got {}'.format(len(outputs)))
    arrays = []
    for name, x in zip(('centers', 'regions', 'thing_kernels', 'stuff_kernels', 'stuff_stats',
                        'encoded'), outputs):
        x = _as_numpy(x)
        if x.ndim < 1 or x.shape[0] != 1:
            raise ValueError('{} must have a batch of one image, got shape {}'
                             .format(name, x.shape))
        arrays.append(x[0].astype(np.float32))
    centers, regions, thing_kernels, stuff_kernels, stuff_stats, encoded = arrays
    num_positions = int(level_offsets(level_shapes)[-1])
    num_levels, num_classes = len(level_shapes), categories.num_stuff + 1
    E, h, w = encoded.shape
    expected = dict(centers=(categories.num_things, num_positions),
                    regions=(num_classes, num_positions), thing_kernels=(num_positions, E),
                    stuff_kernels=(num_levels * num_classes, E),
                    stuff_stats=(num_levels * num_classes, 2))
    for name, x in zip(expected, arrays):
        if x.shape != expected[name]:
            raise ValueError('{} has shape {}, expected {} (T={}, S={}, levels {}, E={})'.format(
                name, x.shape, expected[name], categories.num_things, num_classes,
                list(level_shapes), E))
    if image_size[0] > ENCODED_STRIDE * h or image_size[1] > ENCODED_STRIDE * w:
        raise ValueError('image size {} exceeds the padded input {}'
                         .format(tuple(image_size), (ENCODED_STRIDE * h, ENCODED_STRIDE * w)))
    return arrays


def panoptic_from_outputs(outputs, level_shapes, image_size, output_size, categories,
                          center_thresh=0.05, stuff_thresh=0.05, center_top_num=100,
                          mask_thresh=0.4, similarity_thresh=0.9, class_specific=True,
                          min_instance_score=0.05, score_threshold=0.2, overlap_threshold=0.5,
                          stuff_area_threshold=4096):
    """Panoptic map of one image from PanopticFCN's raw inference outputs.

    Only the instances that can reach the fusion (rescored score ``>= score_threshold``, within
    the top ``center_top_num``) are upsampled to full resolution, and only the predicted stuff
    classes; this drops nothing the reference would use for the panoptic result.

    Parameters
    ----------
    outputs : sequence of np.ndarray or mx.nd.NDArray
        ``(centers (1, T, P), regions (1, S, P), thing_kernels (1, P, E), stuff_kernels
        (1, L * S, E), stuff_stats (1, L * S, 2), encoded (1, E, Hp / 4, Wp / 4))`` of ``net``
        in predict mode; S = ``categories.num_stuff + 1`` in PanopticFCN's order (0 = "things").
        ``regions`` is not used (its statistics are in ``stuff_stats``).
    level_shapes : list of (int, int)
        ``(h_l, w_l)`` of the levels, as ``net.level_shapes(Hp, Wp)``.
    image_size : tuple of int
        ``(h, w)`` of the network input before padding.
    output_size : tuple of int
        ``(H, W)`` of the result (the original image when the input was resized).
    categories : gluonpan.data.PanopticCategories
        The dataset's categories.
    center_thresh, stuff_thresh, center_top_num, mask_thresh, similarity_thresh, class_specific, \
min_instance_score
        See :data:`DEFAULT_INFERENCE_OPTIONS` and the stage functions.
    score_threshold, overlap_threshold, stuff_area_threshold : float, float, int
        Fusion thresholds, see :func:`combine_instances_and_semantics`.

    Returns
    -------
    pan_ids : np.ndarray
        ``(H, W)`` int32 segment ids (``category_id * 1000 + k`` things, ``category_id`` stuff,
        0 void).
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score``, ``area`` per segment.
    """
    centers, _, thing_kernels, stuff_kernels, stuff_stats, encoded = _check_outputs(
        outputs, level_shapes, image_size, categories)
    output_size = tuple(int(s) for s in output_size)

    kernels, scores, classes = thing_candidates(centers, thing_kernels, level_shapes,
                                                center_thresh, center_top_num)
    kernels, scores, classes = fuse_thing_kernels(kernels, scores, classes, similarity_thresh,
                                                  class_specific)
    kernels, scores, classes = rescore_things(kernels, scores, classes, encoded, mask_thresh,
                                             center_top_num, min_instance_score)
    fusable = scores >= np.float32(score_threshold)  # a prefix: scores are sorted
    masks = thing_masks(kernels[fusable], encoded, image_size, output_size, mask_thresh)

    st_kernels, st_scores, st_classes = stuff_candidates(stuff_kernels, stuff_stats,
                                                         len(level_shapes), stuff_thresh)
    st_kernels, st_scores, st_classes = fuse_stuff_kernels(st_kernels, st_scores, st_classes)
    semantic = stuff_semantic(st_kernels, st_classes, encoded, image_size, output_size)
    logger.debug('%d instances (%d to fuse), stuff classes %s', len(scores), int(fusable.sum()),
                 st_classes.tolist())
    return combine_instances_and_semantics(
        masks, scores[fusable], classes[fusable], fcn_to_separated(semantic, categories.num_stuff),
        categories, score_threshold=score_threshold, overlap_threshold=overlap_threshold,
        stuff_area_threshold=stuff_area_threshold, semantic_mode='separated')


def inference_options(net, **overrides):
    """The keyword thresholds of :func:`panoptic_from_outputs` for ``net``.

    :data:`DEFAULT_INFERENCE_OPTIONS`, updated with the keys of ``net.inference_options`` it
    has (others, such as the test-time ``test_size``, belong to other stages and are left
    out), then with the ``overrides`` that are not None.
    """
    options = dict(DEFAULT_INFERENCE_OPTIONS)
    net_options = dict(getattr(net, 'inference_options', None) or {})
    options.update({k: v for k, v in net_options.items() if k in options})
    unknown = set(overrides) - set(options)
    if unknown:
        raise ValueError('unknown PanopticFCN inference options {}; known: {}'
                         .format(sorted(unknown), sorted(options)))
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options


def shortest_edge_size(height, width, short, max_size):
    """detectron2's ``ResizeShortestEdge`` output ``(h, w)``: the short side to ``short``, unless
    the long side would exceed ``max_size``, then the long side to ``max_size``; rounded half up."""
    scale = short / min(height, width)
    h, w = (short, scale * width) if height < width else (scale * height, short)
    if max(h, w) > max_size:
        scale = max_size / max(h, w)
        h, w = h * scale, w * scale
    return int(h + 0.5), int(w + 0.5)


def resize_for_test(data, test_size):
    """A normalised image (1, 3, H, W) resized as the reference resizes its test images:
    :func:`shortest_edge_size`, PIL's bilinear resize of the uint8 pixels (detectron2's
    ``ResizeTransform``), normalised again.  The pixels are recovered exactly from ``data`` (it
    is :func:`~gluonpan.data.transforms.normalize` of uint8 values)."""
    _, _, H, W = data.shape
    h, w = shortest_edge_size(H, W, *test_size)
    if (h, w) == (H, W):
        return data
    image = Image.fromarray(denormalize(data[0].asnumpy()))  # (H, W, 3) uint8
    resized = np.asarray(image.resize((w, h), Image.BILINEAR))  # (h, w, 3)
    return mx.nd.array(normalize(resized)[None], ctx=data.context)  # (1, 3, h, w)


def predict_panoptic(net, data, score_threshold=None, overlap_threshold=None,
                     stuff_area_threshold=None):
    """Panoptic prediction of one image in the dataset's category ids.

    The input is resized when ``net.inference_options['test_size']`` says so
    (:func:`resize_for_test`: the reference's short side 400 / 512 / 600 / 800), zero-padded to
    multiples of 32, run through ``net.predict`` and post-processed by
    :func:`panoptic_from_outputs`, which resizes the maps back to the input's size.

    Parameters
    ----------
    net : PanopticFCN
        The network, on the context of ``data``, with ``predict``, ``level_shapes``,
        ``categories`` and ``inference_options``.
    data : mx.nd.NDArray
        ``(1, 3, H, W)`` normalised image, any H and W.
    score_threshold, overlap_threshold, stuff_area_threshold : float, float, int or None
        Fusion thresholds; None takes ``net.inference_options`` (else the reference's).

    Returns
    -------
    pan_ids : np.ndarray
        ``(H, W)`` int32 segment ids.
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score``, ``area`` per segment.
    """
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError('predict_panoptic takes one image (1, 3, H, W), got {}'
                         .format(data.shape))
    options = inference_options(net, score_threshold=score_threshold,
                                overlap_threshold=overlap_threshold,
                                stuff_area_threshold=stuff_area_threshold)
    H, W = data.shape[2:]
    test_size = (getattr(net, 'inference_options', None) or {}).get('test_size')
    if test_size:
        data = resize_for_test(data, test_size)
    padded = pad_input(data)
    outputs = net.predict(padded)
    return panoptic_from_outputs(outputs, net.level_shapes(*padded.shape[2:]),
                                 tuple(data.shape[2:]), (H, W), net.categories, **options)
