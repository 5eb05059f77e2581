"""Panoptic ground truth -> training targets (pure numpy).

A loaded sample carries a *segment index map*: ``seg_index[y, x] = i`` means the pixel belongs to
``segments_info[i - 1]``, ``0`` is void.  Working on this small-integer map instead of raw panoptic
ids (which reach 256**3 on COCO) makes every later step (resizing, cropping, targets) cheap and
dataset-independent.
"""
import collections

import numpy as np

from ..errors import DataError
from .categories import IGNORE_LABEL, MAX_PANOPTIC_ID, short_list

__all__ = ['segment_index', 'panoptic_targets', 'segment_tables']


def segment_index(pan_ids, segments_info, where=''):
    """Map panoptic ids to 1-based positions in ``segments_info`` and check both agree.

    Parameters
    ----------
    pan_ids : np.ndarray
        ``(H, W)`` integer panoptic ids (0 = void).
    segments_info : list of dict
        Segments of this image, each with an ``id``.
    where : str
        File name used in error messages.

    Returns
    -------
    np.ndarray
        ``(H, W)`` uint16 segment index map.

    Raises
    ------
    DataError
        If the PNG holds an id that the JSON does not list, or the JSON lists a segment that is
        not in the PNG, or ids repeat, are 0 (void) or out of range (a ``ValueError``).
    """
    ids = [int(s['id']) for s in segments_info]
    if len(set(ids)) != len(ids):
        raise DataError('{}: duplicate segment ids in segments_info: {}'.format(
            where, short_list(sorted(i for i, n in collections.Counter(ids).items() if n > 1))))
    if len(ids) >= np.iinfo(np.uint16).max:
        raise DataError('{}: too many segments ({})'.format(where, len(ids)))
    if 0 in ids:
        raise DataError('{}: segment id 0 is reserved for void'.format(where))
    bad = [i for i in ids if not 0 < i < MAX_PANOPTIC_ID]
    if bad:
        raise DataError('{}: segment id(s) {} out of range [1, 256**3)'.format(
            where, short_list(bad)))
    max_id = int(pan_ids.max(initial=0))
    lut = np.zeros(max(max_id, max(ids, default=0)) + 1, dtype=np.uint16)
    lut[ids] = np.arange(1, len(ids) + 1, dtype=np.uint16)
    index = lut[pan_ids]
    unknown = (index == 0) & (pan_ids != 0)
    if unknown.any():
        bad = np.unique(pan_ids[unknown])
        raise DataError('{}: panoptic PNG holds segment id(s) {} that segments_info does not '
                        'list (listed: {})'.format(where, short_list(bad), short_list(ids)))
    present = np.bincount(index.ravel(), minlength=len(ids) + 1)
    missing = [ids[i] for i in range(len(ids)) if present[i + 1] == 0]
    if missing:
        raise DataError('{}: segments_info lists segment id(s) {} that the panoptic PNG does not '
                        'contain'.format(where, short_list(missing)))
    return index


def segment_tables(segments_info, categories, sem_mode='separated', where=''):
    """Per-segment lookup tables indexed by segment index (entry 0 = void).

    Returns
    -------
    sem : np.ndarray
        ``(K+1,)`` uint8 semantic class of each segment (255 for void).
    thing_class : np.ndarray
        ``(K+1,)`` int32 contiguous thing class, ``-1`` for void, stuff and crowd segments.
    """
    lut = categories.semantic_lut(sem_mode)
    sem = np.full(len(segments_info) + 1, IGNORE_LABEL, dtype=np.uint8)
    thing_class = np.full(len(segments_info) + 1, -1, dtype=np.int32)
    for i, seg in enumerate(segments_info, start=1):
        cat = categories.check_category(seg['category_id'],
                                        '{} segment {}'.format(where, seg['id']) if where else
                                        'segment {}'.format(seg['id']))
        sem[i] = lut[int(cat['id'])]
        if cat['isthing'] and not seg.get('iscrowd', 0):
            thing_class[i] = categories.thing_id_to_contiguous[int(cat['id'])]
    return sem, thing_class


def panoptic_targets(seg_index, segments_info, categories, sem_mode='separated', where='',
                     min_box_size=2):
    """Semantic map and thing instances from a segment index map.

    Crowd regions are never instances (as in Detectron2 and gluoncv); their pixels count as their
    class in the semantic map.  Instances with no pixel left (e.g. cropped away) or whose box is
    thinner than ``min_box_size`` pixels are not instance targets (a zero-width corner box has IoU 0
    with every anchor, and gluoncv's RPN sampler would then mark every anchor positive for it);
    their pixels stay "things" in the semantic map.

    Parameters
    ----------
    seg_index : np.ndarray
        ``(H, W)`` uint16 segment index (see :func:`segment_index`).
    segments_info : list of dict
        The segments the index refers to.
    categories : PanopticCategories
        The dataset's categories.
    sem_mode : str
        ``'separated'`` (stuff + one "things" class) or ``'all'``.
    min_box_size : int
        Smallest instance box side, in pixels, kept as an instance target.

    Returns
    -------
    dict
        ``sem_seg`` (H, W) uint8 (255 ignore), ``gt_boxes`` (M, 4) float32 corner boxes with
        x2/y2 the last pixel inclusive, ``gt_classes`` (M,) int32, ``gt_masks`` (M, H, W) uint8.
    """
    sem_table, thing_table = segment_tables(segments_info, categories, sem_mode, where)
    sem_seg = sem_table[seg_index]
    present = np.bincount(seg_index.ravel(), minlength=len(segments_info) + 1)
    keep = np.nonzero((thing_table >= 0) & (present > 0))[0]
    height, width = seg_index.shape
    masks, boxes, classes = [], [], []
    for i in keep:
        m = seg_index == i
        rows = np.nonzero(m.any(axis=1))[0]
        cols = np.nonzero(m.any(axis=0))[0]
        if min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < min_box_size:
            continue
        masks.append(m)
        boxes.append((cols[0], rows[0], cols[-1], rows[-1]))
        classes.append(thing_table[i])
    return {'sem_seg': sem_seg,
            'gt_boxes': np.array(boxes, dtype=np.float32).reshape(-1, 4),  # (M, 4)
            'gt_classes': np.array(classes, dtype=np.int32),
            'gt_masks': (np.stack(masks) if masks else
                         np.zeros((0, height, width), bool)).astype(np.uint8)}
