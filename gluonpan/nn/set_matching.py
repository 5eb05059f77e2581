"""Hungarian (one-to-one) matching of Panoptic SegFormer (Li et al., CVPR 2022) in numpy / scipy.

The network stays hybridized: its outputs are moved to numpy, matched here image by image, and the
result is encoded as index arrays (:func:`encode_matches`) that the hybridized losses of
:mod:`gluonpan.nn.set_losses` take as inputs.

The costs are those of the reference (mmdet 2.12 match costs and the authors' ``DiceCost``), each
returned already multiplied by its weight, as a ``(num_queries, num_gt)`` matrix:

* :func:`focal_cost` -- mmdet ``FocalLossCost`` (alpha 0.25, gamma 2, eps 1e-12);
* :func:`box_l1_cost` -- mmdet ``BBoxL1Cost(box_format='xywh')``: L1 distance of normalised
  (cx, cy, w, h) boxes;
* :func:`giou_cost` -- mmdet ``IoUCost(iou_mode='giou')``: ``-GIoU`` of unnormalised xyxy boxes;
* :func:`dice_cost` -- the authors' ``DiceCost``: ``1 - 2 sum(p t) / (sum(p^2) + 1e-3 + sum(t^2) +
  1e-3)`` with the ground truth resized (bilinear) to the predicted masks' size.

Two matchers are used by the reference (see ``tools/reference/PANOPTIC_SEGFORMER_LOSSES.md``):
:func:`location_matcher` (``HungarianAssigner``: focal 2, L1 5, GIoU 2) on every layer of the
location decoder, and :func:`mask_matcher` (``HungarianAssigner_multi_info``: focal 4 -- the
authors double the configured weight 2 --, L1 5, GIoU 2, dice 2) on the thing queries fed to the
mask decoder.  Stuff queries are not matched: query ``s`` is stuff class ``s``
(:func:`stuff_assignment`).
"""
import collections
import logging

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..utils.resize import resize_bilinear
from .box_ops import np_cxcywh_to_xyxy, np_pairwise_giou, np_xyxy_to_cxcywh

__all__ = ['focal_cost', 'box_l1_cost', 'giou_cost', 'dice_cost',
           'linear_assignment', 'MatchResult', 'HungarianMatcher', 'location_matcher',
           'mask_matcher', 'stuff_assignment', 'encode_matches']

logger = logging.getLogger(__name__)


def focal_cost(logits, labels, weight=2., alpha=0.25, gamma=2., eps=1e-12):
    """mmdet ``FocalLossCost``: ``weight * (pos - neg)[:, labels]`` -> (Q, G).

    With ``p = sigmoid(logits)``: ``pos = -alpha (1 - p)^gamma log(p + eps)`` and
    ``neg = -(1 - alpha) p^gamma log(1 - p + eps)``.

    Parameters
    ----------
    logits : (Q, C) class logits (before the sigmoid).
    labels : (G,) ground-truth classes in [0, C).
    """
    prob = 1. / (1. + np.exp(-np.asarray(logits, dtype=np.float64)))
    pos = -alpha * (1 - prob) ** gamma * np.log(prob + eps)
    neg = -(1 - alpha) * prob ** gamma * np.log(1 - prob + eps)
    labels = np.asarray(labels, dtype=np.int64)
    return weight * (pos[:, labels] - neg[:, labels])


def box_l1_cost(pred_boxes, gt_boxes, weight=5.):
    """mmdet ``BBoxL1Cost(box_format='xywh')``: ``weight * sum |pred - gt|`` -> (Q, G).

    Parameters
    ----------
    pred_boxes : (Q, 4) normalised cx, cy, w, h.
    gt_boxes : (G, 4) normalised cx, cy, w, h.
    """
    pred = np.asarray(pred_boxes, dtype=np.float64)[:, None, :]  # (Q, 1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64)[None, :, :]  # (1, G, 4)
    return weight * np.abs(pred - gt).sum(axis=-1)


def giou_cost(pred_boxes, gt_boxes, weight=2., eps=1e-6):
    """mmdet ``IoUCost(iou_mode='giou')``: ``-weight * GIoU`` of xyxy boxes -> (Q, G).

    Both sets are unnormalised (pixels of the resized, unpadded image) in the reference.
    """
    return -weight * np_pairwise_giou(pred_boxes, gt_boxes, eps=eps)


def dice_cost(pred_masks, gt_masks, weight=2., eps=1e-3):
    """The authors' ``DiceCost`` -> (Q, G).

    ``weight * (1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps))`` over pixels, with
    ``gt_masks`` first resized (bilinear, ``align_corners=False``) to the predictions' size when the
    sizes differ.  The predictions are used as they are: in the reference they are the mask
    decoder's ReLU outputs (no sigmoid).

    Parameters
    ----------
    pred_masks : (Q, h, w) predicted masks.
    gt_masks : (G, H, W) binary ground-truth masks.
    """
    pred = np.asarray(pred_masks, dtype=np.float64)
    gt = np.asarray(gt_masks, dtype=np.float32)
    if gt.shape[1:] != pred.shape[1:]:
        gt = resize_bilinear(gt, *pred.shape[1:])  # (G, h, w)
    gt = gt.astype(np.float64)
    pred = pred.reshape((pred.shape[0], -1))  # (Q, h*w)
    gt = gt.reshape((gt.shape[0], -1))  # (G, h*w)
    inter = pred @ gt.T  # (Q, G)
    denom = (np.square(pred).sum(axis=1) + eps)[:, None] + (np.square(gt).sum(axis=1) + eps)[None]
    return weight * (1 - 2 * inter / denom)


def _check_finite(name, cost, image=None):
    """Raise a ValueError naming ``name`` when ``cost`` has a NaN or an infinity."""
    bad = ~np.isfinite(cost)
    if bad.any():
        where = '' if image is None else ' (image {})'.format(image)
        raise ValueError('non-finite values in the {} matching cost{}: {} of {} entries'.format(
            name, where, int(bad.sum()), cost.size))


def linear_assignment(cost, name='total', image=None):
    """Minimum-cost one-to-one assignment of the rows (queries) to the columns (ground truths).

    ``min(Q, G)`` pairs are returned, sorted by row: with more ground truths than queries some
    ground truths stay unmatched (scipy's rectangular assignment, as in the reference).  scipy's
    solver is deterministic, so ties always resolve the same way.

    Returns
    -------
    (rows, cols) : two int64 arrays of ``min(Q, G)`` indices.

    Raises
    ------
    ValueError
        When ``cost`` has a NaN or an infinity (named ``name``).
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError('the cost must be a (Q, G) matrix, got shape {}'.format(cost.shape))
    if cost.size == 0:
        return np.zeros((0,), np.int64), np.zeros((0,), np.int64)
    _check_finite(name, cost, image)
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(rows, kind='stable')
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


class MatchResult(collections.namedtuple('MatchResult', 'pred_index gt_index num_preds num_gts')):
    """One image's matching: prediction ``pred_index[k]`` is matched to ground truth
    ``gt_index[k]`` (sorted by ``pred_index``); ``num_preds`` and ``num_gts`` are the sizes of
    the two sets (``gt_index`` may index a padded array, see ``HungarianMatcher.match_batch``)."""

    @property
    def assigned_gt(self):
        """(num_preds,) int64: the ground truth of each prediction, -1 for background."""
        out = np.full((self.num_preds,), -1, np.int64)
        out[self.pred_index] = self.gt_index
        return out


class HungarianMatcher(object):
    """Weighted-cost Hungarian matcher of one image (mmdet ``HungarianAssigner`` semantics).

    The total cost is ``focal + L1 + (-GIoU) [+ dice]``, each term with its weight; a zero weight
    drops the term (no mask inputs are needed when ``mask_weight`` is 0).

    Parameters
    ----------
    cls_weight, bbox_weight, iou_weight, mask_weight : float
        Weights of the focal, L1, GIoU and dice costs.
    alpha, gamma, focal_eps : float
        Focal cost parameters (mmdet defaults).
    dice_eps : float
        Additive epsilon of the dice cost (the authors' 1e-3).
    """

    def __init__(self, cls_weight=2., bbox_weight=5., iou_weight=2., mask_weight=0., alpha=0.25,
                 gamma=2., focal_eps=1e-12, dice_eps=1e-3):
        self.cls_weight, self.bbox_weight = cls_weight, bbox_weight
        self.iou_weight, self.mask_weight = iou_weight, mask_weight
        self.alpha, self.gamma, self.focal_eps, self.dice_eps = alpha, gamma, focal_eps, dice_eps

    def costs(self, cls_logits, boxes, gt_labels, gt_boxes, image_size, masks=None,
              gt_masks=None):
        """The weighted cost terms of one image, an ``OrderedDict`` name -> (Q, G) float64.

        Parameters
        ----------
        cls_logits : (Q, C) class logits.
        boxes : (Q, 4) predicted normalised cx, cy, w, h (sigmoid outputs).
        gt_labels : (G,) classes in [0, C).
        gt_boxes : (G, 4) ground-truth x1, y1, x2, y2 in pixels of the resized, unpadded image.
        image_size : (height, width) of that image; boxes are normalised by it (the reference's
            ``img_shape``, not the padded batch shape).
        masks : (Q, h, w) predicted masks, needed when ``mask_weight`` is not 0.
        gt_masks : (G, H, W) binary masks, resized to (h, w) by the dice cost.
        """
        height, width = image_size
        factor = np.array([width, height, width, height], np.float64)
        boxes = np.asarray(boxes, dtype=np.float64)
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape((-1, 4))  # (G, 4)
        out = collections.OrderedDict()
        with np.errstate(all='ignore'):  # a non-finite term is reported by name by __call__
            self._add_terms(out, cls_logits, boxes, gt_labels, gt_boxes, factor, masks,
                            gt_masks)
        return out

    def _add_terms(self, out, cls_logits, boxes, gt_labels, gt_boxes, factor, masks, gt_masks):
        """Fill ``out`` with the weighted terms whose weight is not 0."""
        if self.cls_weight:
            out['focal'] = focal_cost(cls_logits, gt_labels, self.cls_weight, self.alpha,
                                      self.gamma, self.focal_eps)
        if self.bbox_weight:
            out['bbox_l1'] = box_l1_cost(boxes, np_xyxy_to_cxcywh(gt_boxes / factor),
                                         self.bbox_weight)
        if self.iou_weight:
            out['giou'] = giou_cost(np_cxcywh_to_xyxy(boxes) * factor, gt_boxes, self.iou_weight)
        if self.mask_weight:
            if masks is None or gt_masks is None:
                raise ValueError('mask_weight={} needs masks and gt_masks'.format(
                    self.mask_weight))
            out['dice'] = dice_cost(masks, gt_masks, self.mask_weight, self.dice_eps)

    def __call__(self, cls_logits, boxes, gt_labels, gt_boxes, image_size, masks=None,
                 gt_masks=None, image=None):
        """Match one image -> :class:`MatchResult` (arguments as :meth:`costs`).

        No ground truth: every prediction is background.  More ground truths than predictions:
        ``Q`` of them are matched, the others get no loss (as the reference's location decoder;
        the reference's last layer would crash, see the notes).

        Raises
        ------
        ValueError
            When a cost term has a NaN or an infinity (the message names the term).
        """
        num_preds = int(np.shape(boxes)[0])
        num_gts = int(np.shape(gt_labels)[0])
        if num_preds == 0 or num_gts == 0:
            empty = np.zeros((0,), np.int64)
            return MatchResult(empty, empty, num_preds, num_gts)
        if num_gts > num_preds:
            logger.debug('image %s: %d ground truths for %d predictions, %d stay unmatched',
                         image, num_gts, num_preds, num_gts - num_preds)
        terms = self.costs(cls_logits, boxes, gt_labels, gt_boxes, image_size, masks, gt_masks)
        if not terms:
            raise ValueError('every cost weight is 0: nothing to match on')
        for name, cost in terms.items():
            _check_finite(name, cost, image)
        rows, cols = linear_assignment(sum(terms.values()), 'total', image)
        return MatchResult(rows, cols, num_preds, num_gts)

    def match_batch(self, cls_logits, boxes, gt_labels, gt_boxes, gt_valid, image_sizes,
                    masks=None, gt_masks=None, query_counts=None):
        """Match every image of a batch with padded ground truth -> list of :class:`MatchResult`.

        Parameters
        ----------
        cls_logits : (B, Q, C); boxes : (B, Q, 4); masks : (B, Q, h, w) or None.
        gt_labels : (B, G) int; gt_boxes : (B, G, 4) xyxy pixels; gt_masks : (B, G, H, W) or None.
        gt_valid : (B,) ground-truth counts (the first ``count`` slots are real) or a (B, G)
            boolean mask of the real slots.  ``gt_index`` of the results indexes the padded slots.
        image_sizes : (B, 2) (height, width) of each resized, unpadded image.
        query_counts : (B,) or None
            Only the first ``query_counts[b]`` predictions of image ``b`` take part (the thing
            queries the reference feeds to its mask decoder are padded to the batch maximum).
        """
        gt_labels = np.asarray(gt_labels)
        gt_valid = np.asarray(gt_valid)
        batch, slots = gt_labels.shape[:2]
        if gt_valid.ndim == 1:
            gt_valid = np.arange(slots)[None, :] < gt_valid[:, None]  # (B, G)
        if gt_valid.shape != (batch, slots):
            raise ValueError('gt_valid must be (B,) counts or a (B, G) mask, got shape {}'.format(
                gt_valid.shape))
        results = []
        for b in range(batch):
            keep = np.flatnonzero(gt_valid[b])
            num_q = np.shape(boxes)[1] if query_counts is None else int(query_counts[b])
            res = self(np.asarray(cls_logits[b])[:num_q], np.asarray(boxes[b])[:num_q],
                       gt_labels[b][keep], np.asarray(gt_boxes[b])[keep], image_sizes[b],
                       None if masks is None else np.asarray(masks[b])[:num_q],
                       None if gt_masks is None else np.asarray(gt_masks[b])[keep], image=b)
            results.append(MatchResult(res.pred_index, keep[res.gt_index], res.num_preds, slots))
        return results


def location_matcher():
    """The reference's ``HungarianAssigner`` of the location decoder: focal 2, L1 5, GIoU 2."""
    return HungarianMatcher(cls_weight=2., bbox_weight=5., iou_weight=2.)


def mask_matcher():
    """The reference's ``HungarianAssigner_multi_info`` of the thing mask decoder: focal 4 (the
    configured 2 doubled in its constructor), L1 5, GIoU 2, dice 2."""
    return HungarianMatcher(cls_weight=4., bbox_weight=5., iou_weight=2., mask_weight=2.)


def stuff_assignment(gt_labels, gt_count, num_things, num_stuff):
    """The fixed assignment of the stuff queries: ground truth ``g`` of class ``c >= num_things``
    goes to stuff query ``c - num_things`` (one segment per stuff class, as COCO panoptic).

    Parameters
    ----------
    gt_labels : (G,) stuff classes in [num_things, num_things + num_stuff) (padded slots after
        ``gt_count``).

    Returns
    -------
    MatchResult with ``num_preds = num_stuff``.
    """
    labels = np.asarray(gt_labels, dtype=np.int64)
    queries = labels[:gt_count] - num_things
    if np.any((queries < 0) | (queries >= num_stuff)):
        raise ValueError('stuff labels must lie in [{}, {}), got {}'.format(
            num_things, num_things + num_stuff, labels[:gt_count]))
    if len(np.unique(queries)) != len(queries):
        raise ValueError('a stuff class appears twice in one image: {}'.format(labels[:gt_count]))
    order = np.argsort(queries, kind='stable')
    return MatchResult(queries[order], order.astype(np.int64), num_stuff, len(labels))


def encode_matches(results, gt_labels, num_classes, num_queries=None, max_gt=None):
    """Index arrays of a batch's matchings, the inputs of :mod:`gluonpan.nn.set_losses`.

    Parameters
    ----------
    results : list of B :class:`MatchResult`.
    gt_labels : (B, G) ground-truth classes of the (padded) slots, in [0, num_classes).
    num_classes : int
        Classes of the sigmoid classifier; ``num_classes`` is the background target.
    num_queries : int or None
        Queries per image (default: the largest ``num_preds``).
    max_gt : int or None
        Ground-truth slots of the outputs (default: ``gt_labels.shape[1]``, at least 1 so that the
        hybridized losses never see an empty axis).

    Returns
    -------
    dict with
        ``cls_targets`` : (B, Q) int32, the matched class or ``num_classes`` (background);
        ``gather_index`` : (2, B, G) int32, ``[b, query]`` of each ground-truth slot (query 0 for an
        unmatched or padded slot) for ``F.gather_nd``;
        ``match_valid`` : (B, G) float32, 1 for a matched slot;
        ``num_pos`` : int, the number of matched pairs of the batch.
    """
    gt_labels = np.asarray(gt_labels)
    batch = len(results)
    num_queries = max(r.num_preds for r in results) if num_queries is None else num_queries
    max_gt = max(1, gt_labels.shape[1] if max_gt is None else max_gt)
    cls_targets = np.full((batch, num_queries), num_classes, np.int32)
    gather_index = np.zeros((2, batch, max_gt), np.int32)
    gather_index[0] = np.arange(batch)[:, None]
    match_valid = np.zeros((batch, max_gt), np.float32)
    for b, res in enumerate(results):
        cls_targets[b, res.pred_index] = gt_labels[b, res.gt_index]
        gather_index[1, b, res.gt_index] = res.pred_index
        match_valid[b, res.gt_index] = 1.
    num_pos = int(sum(len(r.pred_index) for r in results))
    return dict(cls_targets=cls_targets, gather_index=gather_index, match_valid=match_valid,
                num_pos=num_pos)
