"""Losses as free functions of ``F`` (they run inside the hybridized graph): Panoptic FPN's, and
the focal and dice losses of the dense and query-based models (PanopticFCN, Panoptic SegFormer).

Every loss is a mean over the whole per-context batch: ``sum(loss * weight) / max(count, 1)`` with
``count`` the elements averaged over (box losses: summed over the 4 coordinates, averaged over the
sampled anchors / RoIs).  This is what ``gluonpan.utils.engine`` expects (it multiplies by the
context's number of images before back-propagating).  The ``max(., 1)`` keeps a batch without
instances finite (its box and mask losses are 0).
"""

__all__ = ['normalized_sum', 'sigmoid_bce_with_logits', 'rpn_losses', 'rcnn_losses', 'mask_loss',
           'semantic_loss', 'sigmoid_focal_loss', 'dice_loss']


def normalized_sum(F, loss, weight, count=None):
    """``sum(loss * weight) / max(sum(count), 1)`` as a (1,) array.

    ``count`` (the elements the loss is averaged over) defaults to ``weight``.
    """
    count = weight if count is None else count
    return F.sum(loss * weight) / F.maximum(F.sum(count), 1.)


def sigmoid_bce_with_logits(F, logits, targets):
    """Element-wise binary cross-entropy of sigmoid(``logits``), numerically stable."""
    return F.relu(logits) - logits * targets + F.Activation(-F.abs(logits), act_type='softrelu')


def _smooth_l1(F, diff, beta):
    """Smooth L1 (Huber) with transition point ``beta``; plain L1 for ``beta == 0``."""
    if beta <= 0:
        return F.abs(diff)
    return F.smooth_l1(diff, scalar=beta ** -0.5)


def rpn_losses(F, raw_scores, raw_deltas, cls_targets, box_targets, box_masks, beta=1. / 9):
    """Objectness and box losses of the RPN over the anchors sampled by the data pipeline.

    Parameters
    ----------
    raw_scores : (B, N, 1) objectness logits.
    raw_deltas : (B, N, 4) predicted box deltas.
    cls_targets : (B, N) 1 positive, 0 negative, -1 ignore (gluoncv ``RPNTargetGenerator``).
    box_targets, box_masks : (B, N, 4) encoded targets and 0/1 masks (positives only).
    beta : float
        Smooth-L1 transition point of the box loss.

    Returns
    -------
    (loss_rpn_cls, loss_rpn_box), each (1,); both normalised by the number of sampled anchors.
    """
    scores = raw_scores.reshape((0, -1))  # (B, N)
    sampled = cls_targets >= 0
    loss_cls = normalized_sum(F, sigmoid_bce_with_logits(F, scores, cls_targets), sampled)
    loss_box = normalized_sum(F, _smooth_l1(F, raw_deltas - box_targets, beta), box_masks,
                              count=sampled)
    return loss_cls, loss_box


def rcnn_losses(F, cls_pred, box_pred, cls_targets, box_targets, box_masks, beta=1.):
    """Classification and per-class box losses of the box head.

    Parameters
    ----------
    cls_pred : (B, S, C + 1) class logits of the S sampled RoIs (class 0 = background).
    box_pred : (B, P, C, 4) box deltas of the first P sampled RoIs (the positives first).
    cls_targets : (B, S) in [0, C], -1 ignore.
    box_targets, box_masks : (B, P, C, 4); the mask selects the positive RoIs' true class.
    beta : float
        Smooth-L1 transition point of the box loss.

    Returns
    -------
    (loss_rcnn_cls, loss_rcnn_box), each (1,); both normalised by the number of sampled RoIs.
    """
    sampled = cls_targets >= 0
    log_prob = F.log_softmax(cls_pred, axis=-1)
    nll = -F.pick(log_prob, cls_targets, axis=-1, mode='clip')  # (B, S)
    loss_cls = normalized_sum(F, nll, sampled)
    loss_box = normalized_sum(F, _smooth_l1(F, box_pred - box_targets, beta), box_masks,
                              count=sampled)
    return loss_cls, loss_box


def mask_loss(F, mask_pred, mask_targets, mask_weights):
    """Per-pixel binary cross-entropy of the mask head on its true-class channel.

    Parameters
    ----------
    mask_pred : (B, P, C, M, M) mask logits.
    mask_targets : (B, P, C, M, M) targets in [0, 1] (RoIAligned ground-truth masks).
    mask_weights : (B, P, C, M, M) 1 on the true-class channel of positive RoIs, else 0.

    Returns
    -------
    (1,) loss_mask, normalised by the number of weighted pixels.
    """
    return normalized_sum(F, sigmoid_bce_with_logits(F, mask_pred, mask_targets), mask_weights)


def semantic_loss(F, logits, labels, ignore_label=255, average='labelled'):
    """Per-pixel softmax cross-entropy of the semantic head.

    Parameters
    ----------
    logits : (B, K, H, W) class logits at the input resolution.
    labels : (B, H, W) semantic classes, ``ignore_label`` where void or padding.
    ignore_label : int
        Label excluded from the loss.
    average : str
        ``'labelled'``: the sum over labelled pixels divided by their number (detectron2's
        ``cross_entropy(..., ignore_index)``, Panoptic FPN); ``'all'``: divided by every pixel of
        the batch, ignored ones included (mmsegmentation's ``CrossEntropyLoss`` with its default
        ``avg_non_ignore=False``, Semantic FPN's seed).

    Returns
    -------
    (1,) loss_sem_seg.
    """
    log_prob = F.log_softmax(logits, axis=1)
    nll = -F.pick(log_prob, labels, axis=1, mode='clip')  # (B, H, W)
    valid = labels != ignore_label
    if average == 'all':
        return normalized_sum(F, nll, valid, F.ones_like(labels))
    if average != 'labelled':
        raise ValueError("average must be 'labelled' or 'all', got {!r}".format(average))
    return normalized_sum(F, nll, valid)


def sigmoid_focal_loss(F, logits, targets, alpha=0.25, gamma=2.):
    """Element-wise focal loss of sigmoid(``logits``) (Lin et al., ICCV 2017), soft targets allowed.

    ``alpha_t * (1 - p_t) ** gamma * BCE`` with ``p_t = p * t + (1 - p) * (1 - t)`` and
    ``alpha_t = alpha * t + (1 - alpha) * (1 - t)`` (no alpha weighting for ``alpha < 0``), as
    fvcore's / the PanopticFCN reference's ``sigmoid_focal_loss`` with ``reduction='none'``.
    """
    p = F.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = sigmoid_bce_with_logits(F, logits, targets) * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def dice_loss(F, probs, targets, axis=-1, eps=1e-8):
    """``1 - 2 sum(p t) / max(sum(p^2) + sum(t^2), eps)`` over ``axis`` (PanopticFCN's dice, with
    squared sums in the denominator); ``probs`` and ``targets`` broadcast."""
    inter = F.sum(F.broadcast_mul(probs, targets), axis=axis)
    union = F.broadcast_add(F.sum(F.square(probs), axis=axis), F.sum(F.square(targets), axis=axis))
    return 1 - 2 * inter / F.maximum(union, eps)
