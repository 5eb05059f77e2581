"""Box utilities of the query-based models (Panoptic SegFormer): format conversions and the
generalised IoU (Rezatofighi et al., CVPR 2019), in numpy (for the matcher) and as functions of
``F`` (for the losses, hybridizable).

Boxes are ``(..., 4)``: ``cxcywh`` = centre x, centre y, width, height; ``xyxy`` = x1, y1, x2, y2.
GIoU follows mmdet 2.x ``bbox_overlaps(mode='giou')``: areas are not clamped, the union and the
enclosing area are clamped from below by ``eps``, and
``giou = iou - (enclose - union) / enclose``.
"""
import numpy as np

__all__ = ['cxcywh_to_xyxy', 'xyxy_to_cxcywh', 'aligned_giou', 'np_cxcywh_to_xyxy',
           'np_xyxy_to_cxcywh', 'np_pairwise_giou']


def _split4(F, boxes):
    """The four coordinates of ``(..., 4)`` boxes, each ``(..., 1)``."""
    return [F.slice_axis(boxes, axis=-1, begin=i, end=i + 1) for i in range(4)]


def cxcywh_to_xyxy(F, boxes):
    """``(..., 4)`` cx, cy, w, h -> x1, y1, x2, y2 (``F`` is ``mx.nd`` or ``mx.sym``)."""
    cx, cy, w, h = _split4(F, boxes)
    return F.concat(cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h, dim=-1)


def xyxy_to_cxcywh(F, boxes):
    """``(..., 4)`` x1, y1, x2, y2 -> cx, cy, w, h (``F`` is ``mx.nd`` or ``mx.sym``)."""
    x1, y1, x2, y2 = _split4(F, boxes)
    return F.concat((x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1, dim=-1)


def aligned_giou(F, boxes1, boxes2, eps=1e-6):
    """GIoU of each aligned pair of ``(..., 4)`` xyxy boxes -> ``(...)``.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    boxes1, boxes2 : (..., 4) xyxy boxes of the same shape.
    eps : float
        Lower clamp of the union and of the enclosing area (mmdet's ``GIoULoss`` default 1e-6).
    """
    a_x1, a_y1, a_x2, a_y2 = _split4(F, boxes1)
    b_x1, b_y1, b_x2, b_y2 = _split4(F, boxes2)
    area1 = (a_x2 - a_x1) * (a_y2 - a_y1)
    area2 = (b_x2 - b_x1) * (b_y2 - b_y1)
    inter_w = F.relu(F.minimum(a_x2, b_x2) - F.maximum(a_x1, b_x1))
    inter_h = F.relu(F.minimum(a_y2, b_y2) - F.maximum(a_y1, b_y1))
    overlap = inter_w * inter_h
    union = F.maximum(area1 + area2 - overlap, eps)
    enclose_w = F.relu(F.maximum(a_x2, b_x2) - F.minimum(a_x1, b_x1))
    enclose_h = F.relu(F.maximum(a_y2, b_y2) - F.minimum(a_y1, b_y1))
    enclose = F.maximum(enclose_w * enclose_h, eps)
    giou = overlap / union - (enclose - union) / enclose  # (..., 1)
    return F.squeeze(giou, axis=-1)  # (..., 1) -> (...)


def np_cxcywh_to_xyxy(boxes):
    """numpy ``(..., 4)`` cx, cy, w, h -> x1, y1, x2, y2."""
    boxes = np.asarray(boxes)
    centre, size = boxes[..., :2], boxes[..., 2:]
    return np.concatenate([centre - 0.5 * size, centre + 0.5 * size], axis=-1)


def np_xyxy_to_cxcywh(boxes):
    """numpy ``(..., 4)`` x1, y1, x2, y2 -> cx, cy, w, h."""
    boxes = np.asarray(boxes)
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:]
    return np.concatenate([(top_left + bottom_right) * 0.5, bottom_right - top_left], axis=-1)


def np_pairwise_giou(boxes1, boxes2, eps=1e-6):
    """GIoU of every pair of xyxy boxes: (N, 4), (M, 4) -> (N, M), in float64.

    ``eps`` is mmdet's ``bbox_overlaps`` default (used by ``IoUCost``).
    """
    b1 = np.asarray(boxes1, dtype=np.float64)[:, None, :]  # (N, 1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64)[None, :, :]  # (1, M, 4)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    inter = np.clip(np.minimum(b1[..., 2:], b2[..., 2:]) - np.maximum(b1[..., :2], b2[..., :2]),
                    0, None)
    overlap = inter[..., 0] * inter[..., 1]
    union = np.maximum(area1 + area2 - overlap, eps)
    enclose = np.clip(np.maximum(b1[..., 2:], b2[..., 2:]) - np.minimum(b1[..., :2], b2[..., :2]),
                      0, None)
    enclose_area = np.maximum(enclose[..., 0] * enclose[..., 1], eps)
    return overlap / union - (enclose_area - union) / enclose_area
