"""Set-prediction losses of Panoptic SegFormer (Li et al., CVPR 2022) as functions of ``F``: they
run imperatively (``F = mx.nd``) and inside hybridized blocks (``F = mx.sym``).

The matching (:mod:`gluonpan.nn.set_matching`) runs in numpy between the forward and the loss; its
result enters the graph as index arrays (:func:`~gluonpan.nn.set_matching.encode_matches`):
``cls_targets`` (B, Q), ``gather_index`` (2, B, G) and ``match_valid`` (B, G).  Matched
predictions are gathered per ground-truth slot with ``F.gather_nd`` (its backward accumulates, so
the padded slots, which point at query 0 with weight 0, never disturb query 0's gradient).

Every loss is ``weight * sum(per-element loss) / max(avg_factor, 1)`` as the reference's mmdet
losses with ``avg_factor``: the focal loss sums over every query and class, the L1 loss over the
4 coordinates of the matched boxes, GIoU and dice over the matched boxes / masks.  The reference
divides by the number of matched ground truths averaged over the GPUs (``reduce_mean``, clamped
to at least 1); :func:`avg_factor_for_context` gives the factor that reproduces this under
``gluonpan.utils.engine``.  ``avg_factor`` is a (1,) array (a graph input) or a Python number.
"""
import numbers

from .box_ops import aligned_giou, cxcywh_to_xyxy
from .interpolate import resize_like
from .losses import sigmoid_focal_loss

__all__ = ['LOSS_WEIGHTS', 'gather_matched', 'normalize_by', 'focal_classification_loss',
           'box_l1_loss', 'giou_loss', 'dice_per_mask', 'mask_dice_loss',
           'avg_factor_for_context', 'thing_stuff_ratios']

# The reference's weights (configs/panformer/base.py L82-L90; the stuff classification loss is
# ``loss_cls * 2``, panformer_head.py L991-L994).
LOSS_WEIGHTS = dict(cls=2., bbox=5., iou=2., mask=2., cls_stuff=4.)


def gather_matched(F, preds, gather_index):
    """``preds`` (B, Q, ...) at ``gather_index`` (2, B, G) -> (B, G, ...) (``F.gather_nd``)."""
    return F.gather_nd(preds, gather_index)


def normalize_by(F, total, avg_factor):
    """``total / max(avg_factor, 1)``; ``avg_factor`` is a (1,) array or a number."""
    if isinstance(avg_factor, numbers.Number):
        return total / max(float(avg_factor), 1.)
    return F.broadcast_div(total, F.maximum(avg_factor, 1.))


def focal_classification_loss(F, logits, cls_targets, avg_factor, weight=2., alpha=0.25,
                              gamma=2.):
    """Sigmoid focal loss of every query against one-hot targets (mmdet ``FocalLoss``).

    Parameters
    ----------
    logits : (B, Q, C) class logits.
    cls_targets : (B, Q) class of each query in [0, C]; ``C`` (or any value outside [0, C)) is
        the background: an all-zero target row.
    avg_factor : (1,) array or number
        The reference's ``cls_avg_factor``: matched ground truths (averaged over GPUs).
    weight, alpha, gamma : float
        Loss weight (2 for the location decoder, 4 for the stuff queries) and focal parameters.

    Returns
    -------
    (1,) loss.
    """
    classes = F.contrib.arange_like(logits, axis=-1).reshape((1, 1, -1))  # (1, 1, C)
    targets = F.broadcast_equal(F.expand_dims(cls_targets, axis=-1), classes)  # (B, Q, C)
    loss = sigmoid_focal_loss(F, logits, targets, alpha=alpha, gamma=gamma)
    return weight * normalize_by(F, F.sum(loss), avg_factor)


def box_l1_loss(F, pred_boxes, gt_boxes, gather_index, match_valid, avg_factor, weight=5.):
    """L1 loss of the matched normalised cx, cy, w, h boxes (mmdet ``L1Loss``).

    Parameters
    ----------
    pred_boxes : (B, Q, 4) predicted normalised cx, cy, w, h.
    gt_boxes : (B, G, 4) ground truth normalised the same way (x1y1x2y2 / [w, h, w, h] of the
        unpadded image, converted to cxcywh).
    gather_index, match_valid : (2, B, G) and (B, G) from ``encode_matches``.

    Returns
    -------
    (1,) ``weight * sum |pred - gt| / max(avg_factor, 1)`` over matched slots and coordinates.
    """
    matched = gather_matched(F, pred_boxes, gather_index)  # (B, G, 4)
    l1 = F.sum(F.abs(matched - gt_boxes), axis=-1) * match_valid  # (B, G)
    return weight * normalize_by(F, F.sum(l1), avg_factor)


def giou_loss(F, pred_boxes, gt_boxes, gather_index, match_valid, image_wh, avg_factor,
              weight=2., eps=1e-6):
    """GIoU loss ``1 - GIoU`` of the matched boxes in pixels (mmdet ``GIoULoss``, eps 1e-6).

    Parameters
    ----------
    pred_boxes, gt_boxes : (B, Q, 4) and (B, G, 4) normalised cx, cy, w, h (as :func:`box_l1_loss`).
    image_wh : (B, 1, 4) ``[w, h, w, h]`` of each unpadded image; both sets are converted to xyxy
        and scaled by it, as the reference does.

    Returns
    -------
    (1,) ``weight * sum(1 - GIoU) / max(avg_factor, 1)`` over matched slots.
    """
    matched = gather_matched(F, pred_boxes, gather_index)  # (B, G, 4)
    pred_xyxy = F.broadcast_mul(cxcywh_to_xyxy(F, matched), image_wh)
    gt_xyxy = F.broadcast_mul(cxcywh_to_xyxy(F, gt_boxes), image_wh)
    loss = (1 - aligned_giou(F, pred_xyxy, gt_xyxy, eps=eps)) * match_valid  # (B, G)
    return weight * normalize_by(F, F.sum(loss), avg_factor)


def dice_per_mask(F, probs, targets, eps=1e-6):
    """The authors' dice loss of each mask: (B, G, h, w) pairs -> (B, G).

    ``1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps)`` (``easymd/models/losses/dice_loss.py``,
    ``DiceLoss`` eps 1e-6).  ``gluonpan.nn.losses.dice_loss`` clamps the denominator with
    ``max(., eps)`` instead of adding ``2 eps``; the values differ when both sums are ~eps.
    """
    probs = probs.reshape((0, 0, -1))  # (B, G, h*w)
    targets = targets.reshape((0, 0, -1))  # (B, G, h*w)
    inter = F.sum(probs * targets, axis=-1)
    denom = F.sum(F.square(probs), axis=-1) + F.sum(F.square(targets), axis=-1) + 2 * eps
    return 1 - 2 * inter / denom


def mask_dice_loss(F, mask_preds, gt_masks, gather_index, match_valid, avg_factor, weight=2.,
                   scale=2, eps=1e-6):
    """Dice loss of the matched masks, the predictions upsampled first (the reference's
    ``F.interpolate(scale_factor=2, mode='bilinear')``).

    Parameters
    ----------
    mask_preds : (B, K, h, w) mask-decoder outputs of one layer (ReLU maps, no sigmoid).
    gt_masks : (B, G, scale*h, scale*w) targets: binary ground truth at the padded input size
        resized bilinearly (``set_matching.resize_bilinear``) to the upsampled prediction size.
    gather_index, match_valid : (2, B, G), (B, G) from ``encode_matches`` (or the stuff encoding).
    scale : int
        Upsampling factor of the predictions to the targets' size (bilinear,
        ``align_corners=False``, by :func:`gluonpan.nn.interpolate.resize_like`); 1 for none.

    Returns
    -------
    (1,) ``weight * sum(dice) / max(avg_factor, 1)`` over matched slots.
    """
    matched = gather_matched(F, mask_preds, gather_index)  # (B, G, h, w)
    if scale != 1:  # to the targets' (scale*h, scale*w), with a deterministic backward
        resized = resize_like(F, matched.reshape((-3, -2)),
                              gt_masks.reshape((-3, -2)))  # (B*G, h, w) -> (B*G, H, W)
        matched = F.reshape_like(resized, gt_masks)  # (B, G, H, W)
    dice = dice_per_mask(F, matched, gt_masks, eps=eps) * match_valid  # (B, G)
    return weight * normalize_by(F, F.sum(dice), avg_factor)


def avg_factor_for_context(num_pos_global, images_in_context, images_global):
    """The ``avg_factor`` of one context that reproduces the reference's normalisation.

    The reference divides each GPU's summed loss by ``max(N / W, 1)`` (``N`` matched ground truths
    over all ``W`` GPUs, ``reduce_mean``) and DDP averages the gradients over the GPUs: the step
    follows ``sum(loss over all images) / N``.  ``gluonpan.utils.engine`` back-propagates
    ``loss_c * n_c`` per context and divides by the global batch ``B``, so context ``c`` must use
    ``N * n_c / B`` (``N / num_contexts`` for equal splits, the reference's value).  ``N`` is a
    property of the data (the matched count is ``sum(min(G_i, Q))``), so it can be computed from
    the whole batch's ground truth before the forward; with several workers sum it across them.

    Returns
    -------
    float, at least 1.
    """
    return max(float(num_pos_global) * images_in_context / max(images_global, 1), 1.)


def thing_stuff_ratios(num_pos_thing, num_pos_stuff):
    """The reference's dynamic loss weights ``(t / (t + s), s / (t + s))`` of the thing and stuff
    losses, from the clamped (>= 1) averaged counts of matched things and of stuff segments
    (panformer_head.py L998-L1000)."""
    things, stuff = max(float(num_pos_thing), 1.), max(float(num_pos_stuff), 1.)
    return things / (things + stuff), stuff / (things + stuff)
