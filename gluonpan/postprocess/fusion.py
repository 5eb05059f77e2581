"""Panoptic fusion of instance and semantic predictions (Kirillov et al., CVPR 2019, Sec. 4).

A pure numpy function with every threshold explicit; the defaults are those of the reference
implementations (Detectron2's ``combine_semantic_and_instance_outputs``).
"""
import numpy as np

from ..data.categories import OFFSET

__all__ = ['combine_instances_and_semantics']


def combine_instances_and_semantics(instance_masks, instance_scores, instance_classes,
                                    semantic_labels, categories, score_threshold=0.5,
                                    overlap_threshold=0.5, stuff_area_threshold=4096,
                                    semantic_mode='separated'):
    """Merge instances and semantic labels into one non-overlapping panoptic map.

    1. Instances are visited by decreasing score; one scoring below ``score_threshold`` or with
       an empty mask is dropped.  If more than ``overlap_threshold`` of its mask is already taken
       it is dropped, otherwise it gets the pixels not yet taken.
    2. Every stuff class of ``semantic_labels`` fills the pixels still free if that region has at
       least ``stuff_area_threshold`` pixels.
    3. Everything else stays void (0): in particular the pixels the semantic head calls "things"
       that no instance covers.

    Parameters
    ----------
    instance_masks : np.ndarray
        (K, H, W) binary masks (bool or 0/1) at the image resolution.
    instance_scores : np.ndarray
        (K,) detection scores.
    instance_classes : np.ndarray
        (K,) contiguous thing classes ``0..T-1`` (see ``categories.thing_ids``).
    semantic_labels : np.ndarray
        (H, W) semantic classes of ``semantic_mode`` (argmax of the semantic head).
    categories : gluonpan.data.PanopticCategories
        Maps contiguous classes to the dataset's category ids.
    score_threshold, overlap_threshold : float
        Instance filters (``score >= score_threshold`` is kept; ``taken / area > overlap_threshold``
        is dropped).
    stuff_area_threshold : int
        Minimal number of free pixels of a stuff region.
    semantic_mode : str
        ``'separated'`` (stuff then one "things" class) or ``'all'``; thing classes of the
        semantic labels are never used for stuff.

    Returns
    -------
    pan_ids : np.ndarray
        (H, W) int32; ``category_id * 1000 + k`` for the k-th instance of a thing category,
        ``category_id`` for stuff, 0 for void.
    segments_info : list of dict
        One per segment: ``id``, ``category_id``, ``isthing``, ``score`` (detection score, None for
        stuff) and ``area`` (pixels), in the order they were placed.
    """
    semantic_labels = np.asarray(semantic_labels)
    masks = np.asarray(instance_masks).astype(bool)
    scores = np.asarray(instance_scores, dtype=np.float64).reshape(-1)  # (K,)
    classes = np.asarray(instance_classes).astype(np.int64).reshape(-1)  # (K,)
    if masks.ndim != 3 or masks.shape[1:] != semantic_labels.shape or \
            not len(masks) == len(scores) == len(classes):
        raise ValueError('instance masks {}, scores {}, classes {} do not fit semantic labels {}'
                         .format(masks.shape, scores.shape, classes.shape, semantic_labels.shape))
    if len(classes) and (classes.min() < 0 or classes.max() >= categories.num_things):
        raise ValueError('instance classes must lie in [0, {}), got {}'
                         .format(categories.num_things, np.unique(classes).tolist()))
    pan_ids = np.zeros(semantic_labels.shape, dtype=np.int32)
    segments_info = []
    instances_per_category = {}
    for k in np.argsort(-scores, kind='stable'):
        area = int(masks[k].sum())
        if scores[k] < score_threshold or area == 0:
            continue
        taken = masks[k] & (pan_ids > 0)
        if taken.sum() / area > overlap_threshold:
            continue
        free = masks[k] & (pan_ids == 0)
        category_id = categories.thing_ids[classes[k]]
        index = instances_per_category.get(category_id, 0)
        instances_per_category[category_id] = index + 1
        segment_id = category_id * OFFSET + index
        pan_ids[free] = segment_id
        segments_info.append(dict(id=int(segment_id), category_id=int(category_id), isthing=1,
                                  score=float(scores[k]), area=int(free.sum())))
    class_to_category = categories.semantic_class_to_category(semantic_mode)
    for label in np.unique(semantic_labels):
        if label >= len(class_to_category) or class_to_category[label] not in categories.stuff_ids:
            continue  # "things", a thing category, or an ignore value
        free = (semantic_labels == label) & (pan_ids == 0)
        area = int(free.sum())
        if area == 0 or area < stuff_area_threshold:
            continue
        category_id = class_to_category[label]
        pan_ids[free] = category_id
        segments_info.append(dict(id=int(category_id), category_id=int(category_id), isthing=0,
                                  score=None, area=area))
    return pan_ids, segments_info
