"""PanopticFCN's in-graph steps as free functions of ``F``: pyramid levels flattened into one
position axis, kernels picked at the guided positions (training) or at every position
(inference), stuff kernels pooled over regions, and the losses.

Positions: the levels P3..P7 flattened row-major and concatenated, ``P = sum(h_l * w_l)``.  A
*slot* is one (level, instance) pair of the targets (:mod:`gluonpan.data.fcn_targets`).
Gathers are one-hot products (``batch_dot``), not ``gather_nd``: their backward is a GEMM, so
training is bitwise repeatable with several OpenMP threads.
"""
from ...nn.losses import dice_loss, sigmoid_focal_loss

__all__ = ['flatten_levels', 'level_weights', 'embed', 'guided_thing_kernels', 'region_kernels',
           'position_losses', 'thing_mask_loss', 'stuff_mask_loss', 'peak_scores',
           'stuff_statistics']


def flatten_levels(F, maps):
    """Per-level maps (B, C, h_l, w_l) -> (B, C, P), levels in order, each row-major."""
    return F.concat(*[m.reshape((0, 0, -1)) for m in maps], dim=2)  # (B, C, h_l * w_l) each


def level_weights(F, maps):
    """(B, L, P) indicator of each position's level, and the same divided by the level's area.

    ``maps`` are per-level maps (B, C, h_l, w_l) of any C (only their sizes are used).
    """
    planes = [F.ones_like(F.slice_axis(m, axis=1, begin=0, end=1)).reshape((0, 0, -1))
              for m in maps]  # (B, 1, h_l * w_l) each
    rows = []
    for level, plane in enumerate(planes):
        rows.append(F.concat(*[p if i == level else F.zeros_like(p)
                               for i, p in enumerate(planes)], dim=2))  # (B, 1, P)
    indicator = F.concat(*rows, dim=1)  # (B, L, P)
    area = F.sum(indicator, axis=2, keepdims=True)  # (B, L, 1)
    return indicator, F.broadcast_div(indicator, area)


def embed(F, conv, kernels):
    """A 1x1 convolution ``conv`` applied to kernels (B, C, K) -> (B, E, K)."""
    return conv(kernels.expand_dims(axis=3)).reshape((0, 0, -1))  # (B, C, K, 1) -> (B, E, K)


def _one_hot_positions(F, index, like):
    """``index`` (B, ..., K) float positions -> (B, ..., K, P) one-hot rows (P = ``like``'s last
    axis)."""
    positions = F.contrib.arange_like(like, axis=-1)  # (P,)
    return F.broadcast_equal(index.expand_dims(axis=-1), positions.reshape((1, 1, 1, -1)))


def guided_thing_kernels(F, center_logits, thing_kernels, guide, classes, num_positives):
    """The thing kernels of each slot at its ``num_positives`` best positions, and their weights.

    The reference's ``loss_single_level``: the sigmoid centre score of the slot's class, kept
    where the slot's mask covers its level (``guide``), picks the top ``num_positives``
    positions; their scores are the weights of the dice loss (gradients flow into the centre
    head through them, as in the reference).

    Parameters
    ----------
    center_logits : (B, T, P) centre logits.
    thing_kernels : (B, E, P) embedded kernels at every position.
    guide : (B, N, P) 1 where the slot's level-resized mask is > 0.1.
    classes : (B, N) slot classes, -1 for padding.

    Returns
    -------
    kernels : (B, N * k, E), slot-major.
    weights : (B, N, k) the picked centre scores (0 outside the guide).
    """
    class_ids = F.contrib.arange_like(center_logits, axis=1)  # (T,)
    onehot = F.broadcast_equal(classes.expand_dims(axis=2), class_ids.reshape((1, 1, -1)))
    scores = F.batch_dot(onehot, F.sigmoid(center_logits))  # (B, N, T) x (B, T, P) -> (B, N, P)
    scores = scores * guide
    index = F.topk(scores, axis=2, k=num_positives, ret_typ='indices')  # (B, N, k)
    picks = _one_hot_positions(F, index, scores)  # (B, N, k, P)
    weights = F.sum(F.broadcast_mul(picks, scores.expand_dims(axis=2)), axis=3)  # (B, N, k)
    kernels = F.batch_dot(picks.reshape((0, -3, 0)), thing_kernels, transpose_b=True)
    return kernels, weights  # kernels: (B, N * k, P) x (B, P, E) -> (B, N * k, E)


def region_kernels(F, regions, kernel_map, level_area_weights):
    """Stuff kernels per (level, class): ``sum(region * kernel) / level area`` over each level.

    Parameters
    ----------
    regions : (B, S, P) binary region of each class.
    kernel_map : (B, C, P) raw kernels at every position.
    level_area_weights : (B, L, P) the second output of :func:`level_weights`.

    Returns
    -------
    (B, C, L * S): row ``l * S + c`` is level l's kernel of class c (the reference's
    ``adaptive_avg_pool2d`` of the masked kernel map, which divides by all positions).
    """
    pooling = F.broadcast_mul(regions.expand_dims(axis=1), level_area_weights.expand_dims(axis=2))
    pooling = pooling.reshape((0, -3, 0))  # (B, L, S, P) -> (B, L * S, P)
    return F.batch_dot(kernel_map, pooling, transpose_b=True)  # (B, C, P) x (B, P, L*S)


def position_losses(F, center_logits, region_logits, center_targets, stuff_targets,
                    level_area_weights, num_slots, alpha=0.25, gamma=2.):
    """Focal losses of the position head: ``(loss_pos_th, loss_pos_st)``, each (1,).

    Things: summed over classes and positions, divided by the number of slots (at least 1).
    Stuff: averaged over each level's positions, summed over levels and classes, divided by the
    number of images.
    """
    things = F.sum(sigmoid_focal_loss(F, center_logits, center_targets, alpha, gamma))
    stuff = sigmoid_focal_loss(F, region_logits, stuff_targets, alpha, gamma)  # (B, S, P)
    per_position = F.sum(level_area_weights, axis=1, keepdims=True)  # (B, 1, P): 1 / area
    stuff = F.sum(F.broadcast_mul(stuff, per_position))
    images = F.sum(F.ones_like(F.slice_axis(per_position.reshape((0, -1)), axis=1, begin=0,
                                            end=1)))
    return (things / F.maximum(num_slots, 1.)).reshape((1,)), (stuff / images).reshape((1,))


def thing_mask_loss(F, kernels, weights, encoded, masks, valid, num_positives, eps=1e-8):
    """Weighted dice loss of the slots' masks (the reference's ``weighted_dice_loss``, things).

    Parameters
    ----------
    kernels : (B, N * k, E) from :func:`guided_thing_kernels` (embedded), k = ``num_positives``.
    weights : (B, N, k) their centre scores.
    encoded : (B, E, HW) the flattened encoder features.
    masks : (B, N, HW) slot targets at stride 4.
    valid : (B, N) 1 for a real slot.

    Returns
    -------
    (1,): ``sum(dice * normalised weight)`` over real slots / max(number of slots, 1).
    """
    probs = F.sigmoid(F.batch_dot(kernels, encoded))  # (B, N * k, HW)
    probs = probs.reshape((0, -4, -1, num_positives, 0))  # (B, N, k, HW)
    dice = dice_loss(F, probs, masks.expand_dims(axis=2), axis=3, eps=eps)  # (B, N, k)
    weights = F.broadcast_div(weights, F.maximum(F.sum(weights, axis=2, keepdims=True), eps))
    loss = F.sum(F.broadcast_mul(F.sum(dice * weights, axis=2), valid))
    return (loss / F.maximum(F.sum(valid), 1.)).reshape((1,))


def stuff_mask_loss(F, probs, targets, present, eps=1e-8):
    """Dice loss of the stuff masks: ``probs`` (B, L, S, HW), ``targets`` (B, S, HW), ``present``
    (B, L, S) 1 where the class has positions on the level; the mean over present ones."""
    dice = dice_loss(F, probs, targets.expand_dims(axis=1), axis=3, eps=eps)  # (B, L, S)
    return (F.sum(dice * present) / F.maximum(F.sum(present), 1.)).reshape((1,))


def peak_scores(F, center_logits, pool_size):
    """One level's centre scores for peak picking: ``(sigmoid + its avg pool) / 2``, zero where not
    the maximum of its 3x3 neighbourhood (the reference's ``inference_single_level``)."""
    scores = F.sigmoid(center_logits)
    pad = (pool_size - 1) // 2
    mean = F.Pooling(scores, kernel=(pool_size, pool_size), stride=(1, 1), pad=(pad, pad),
                     pool_type='avg', count_include_pad=True)
    scores = (scores + mean) / 2
    peak = F.Pooling(scores, kernel=(3, 3), stride=(1, 1), pad=(1, 1), pool_type='max')
    return scores * (peak == scores)


def stuff_statistics(F, regions, level_indicator):
    """Argmax regions of the stuff probabilities (B, S, P) -> ``(onehot (B, S, P), stats (B, L*S,
    2))``: per (level, class) the number of positions where the class is the argmax and the sum
    of its probability there."""
    best = F.argmax(regions, axis=1, keepdims=True)  # (B, 1, P)
    classes = F.contrib.arange_like(regions, axis=1).reshape((1, -1, 1))  # (1, S, 1)
    onehot = F.broadcast_equal(best, classes)  # (B, S, P)
    counts = F.batch_dot(level_indicator, onehot, transpose_b=True)  # (B, L, S)
    sums = F.batch_dot(level_indicator, onehot * regions, transpose_b=True)  # (B, L, S)
    stats = F.stack(counts, sums, axis=3)  # (B, L, S, 2)
    return onehot, stats.reshape((0, -3, 0))  # (B, L * S, 2)
