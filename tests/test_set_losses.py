"""Set-prediction losses of Panoptic SegFormer against numpy references written from the mmdet /
authors' formulas, a finite-difference check of the GIoU loss, degenerate inputs, hybridization."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

from gluonpan.nn import set_losses as sl
from gluonpan.nn.box_ops import aligned_giou, cxcywh_to_xyxy, xyxy_to_cxcywh

B, Q, G, C = 2, 5, 3, 4


def make_case(rng, dtype='float32'):
    """A batch of 2 images: 2 matched slots + 1 padded slot, and 1 matched slot + 2 padded."""
    cls_targets = np.full((B, Q), C, np.int64)
    cls_targets[0, [3, 0]] = [1, 2]
    cls_targets[1, 4] = 0
    gather = np.zeros((2, B, G), np.int64)
    gather[0] = np.arange(B)[:, None]
    gather[1, 0, :2] = [3, 0]  # slot 2 is padding and points at query 0, which is matched
    gather[1, 1, 0] = 4
    valid = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    case = dict(logits=rng.normal(size=(B, Q, C)), boxes=rng.uniform(0.2, 0.5, (B, Q, 4)),
                gt_boxes=rng.uniform(0.2, 0.5, (B, G, 4)),
                masks=np.maximum(rng.normal(0.5, 0.5, (B, Q, 3, 4)), 0),
                gt_masks=(rng.uniform(size=(B, G, 6, 8)) > 0.5).astype(np.float64),
                image_wh=np.array([[[60., 40., 60., 40.]], [[30., 50., 30., 50.]]]))
    case = {k: v.astype(dtype) for k, v in case.items()}
    case.update(cls_targets=cls_targets, gather=gather, valid=valid)
    return case


def nd(case, key, dtype='float32'):
    return mx.nd.array(case[key], dtype=dtype)


def pairs(case):
    """(b, query, slot) of the matched pairs."""
    return [(b, case['gather'][1, b, g], g) for b in range(B) for g in range(G)
            if case['valid'][b, g]]


def focal_reference(logits, cls_targets, avg, weight=2., alpha=0.25, gamma=2.):
    """mmdet's py_sigmoid_focal_loss (one-hot of ``num_classes + 1`` minus the last column)."""
    num_classes = logits.shape[-1]
    t = np.eye(num_classes + 1)[cls_targets][..., :num_classes]
    p = 1 / (1 + np.exp(-logits))
    pt = (1 - p) * t + p * (1 - t)
    focal_weight = (alpha * t + (1 - alpha) * (1 - t)) * pt ** gamma
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    return weight * (bce * focal_weight).sum() / max(avg, 1)


def giou_reference(a, b):
    """GIoU of two xyxy boxes, from the definition."""
    inter = max(0., min(a[2], b[2]) - max(a[0], b[0])) * max(0., min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])  # noqa: E731
    union = area(a) + area(b) - inter
    enclose = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (enclose - union) / enclose


def to_xyxy(box, wh):
    cx, cy, w, h = box
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * wh


def upsample2(x):
    """PyTorch's bilinear x2 upsampling (align_corners=False) of (..., h, w), written out:
    out[2i] = 0.75 x[i] + 0.25 x[i-1], out[2i+1] = 0.75 x[i] + 0.25 x[i+1], edges clamped."""
    def along(x, axis):
        n = x.shape[axis]
        idx = np.arange(n)
        prev = np.take(x, np.maximum(idx - 1, 0), axis=axis)
        nxt = np.take(x, np.minimum(idx + 1, n - 1), axis=axis)
        here = np.take(x, idx, axis=axis)
        even, odd = 0.75 * here + 0.25 * prev, 0.75 * here + 0.25 * nxt
        return np.stack([even, odd], axis=axis + 1).reshape(
            x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])  # (..., 2n, ...)
    return along(along(x, x.ndim - 2), x.ndim - 1)


def test_focal_classification_loss():
    case = make_case(np.random.RandomState(0))
    expect = focal_reference(case['logits'].astype(np.float64), case['cls_targets'], 3.)
    for avg in (3, mx.nd.array([3.])):
        got = sl.focal_classification_loss(mx.nd, nd(case, 'logits'), nd(case, 'cls_targets'),
                                           avg)
        assert got.shape == (1,)
        assert np.isclose(got.asscalar(), expect, rtol=1e-5)
    # avg_factor is clamped to 1
    small = sl.focal_classification_loss(mx.nd, nd(case, 'logits'), nd(case, 'cls_targets'), 0.)
    assert np.isclose(small.asscalar(), 3 * expect, rtol=1e-5)


def test_focal_stuff_loss_single_channel():
    rng = np.random.RandomState(1)
    logits = rng.normal(size=(2, 6, 1))
    targets = np.array([[0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 0]])  # 0 = present stuff class
    got = sl.focal_classification_loss(mx.nd, mx.nd.array(logits), mx.nd.array(targets), 3.,
                                       weight=sl.LOSS_WEIGHTS['cls_stuff'])
    assert np.isclose(got.asscalar(), focal_reference(logits, targets, 3., weight=4.), rtol=1e-5)


def test_box_losses():
    case = make_case(np.random.RandomState(2))
    l1 = sum(np.abs(case['boxes'][b, q] - case['gt_boxes'][b, g]).sum() for b, q, g in pairs(case))
    giou = sum(1 - giou_reference(to_xyxy(case['boxes'][b, q], case['image_wh'][b, 0]),
                                  to_xyxy(case['gt_boxes'][b, g], case['image_wh'][b, 0]))
               for b, q, g in pairs(case))
    args = (nd(case, 'boxes'), nd(case, 'gt_boxes'), nd(case, 'gather'), nd(case, 'valid'))
    got_l1 = sl.box_l1_loss(mx.nd, *args, avg_factor=2.)
    got_giou = sl.giou_loss(mx.nd, *args, image_wh=nd(case, 'image_wh'), avg_factor=2.)
    assert np.isclose(got_l1.asscalar(), 5 * l1 / 2, rtol=1e-5)
    assert np.isclose(got_giou.asscalar(), 2 * giou / 2, rtol=1e-5)


def test_box_conversions_and_aligned_giou():
    boxes = mx.nd.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.3, 0., 0.]])
    xyxy = cxcywh_to_xyxy(mx.nd, boxes)
    assert np.allclose(xyxy.asnumpy(), [[0.4, 0.3, 0.6, 0.7], [0.1, 0.3, 0.1, 0.3]])
    assert np.allclose(xyxy_to_cxcywh(mx.nd, xyxy).asnumpy(), boxes.asnumpy())
    a = mx.nd.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 4, 4], [0, 0, 1, 1]])
    b = mx.nd.array([[0, 0, 1, 1], [2, 0, 3, 1], [1, 1, 3, 3], [1, 0, 2, 1]])
    assert np.allclose(aligned_giou(mx.nd, a, b).asnumpy(), [1., -1. / 3, 0.25, 0.], atol=1e-6)


def test_mask_dice_loss():
    case = make_case(np.random.RandomState(3))
    up = upsample2(case['masks'].astype(np.float64))  # (B, Q, 6, 8)
    expect = 0.
    for b, q, g in pairs(case):
        p, t = up[b, q], case['gt_masks'][b, g]
        expect += 1 - 2 * (p * t).sum() / ((p * p).sum() + 1e-6 + (t * t).sum() + 1e-6)
    got = sl.mask_dice_loss(mx.nd, nd(case, 'masks'), nd(case, 'gt_masks'), nd(case, 'gather'),
                            nd(case, 'valid'), avg_factor=mx.nd.array([2.]))
    assert np.isclose(got.asscalar(), 2 * expect / 2, rtol=1e-5)
    # scale=1: no upsampling
    same = sl.mask_dice_loss(mx.nd, mx.nd.array(up), nd(case, 'gt_masks'), nd(case, 'gather'),
                             nd(case, 'valid'), avg_factor=2., scale=1)
    assert np.isclose(same.asscalar(), got.asscalar(), rtol=1e-5)


def test_dice_of_empty_masks():
    zeros = mx.nd.zeros((1, 2, 3, 3))
    assert np.allclose(sl.dice_per_mask(mx.nd, zeros, zeros).asnumpy(), 1.)
    ones = mx.nd.ones((1, 2, 3, 3))
    assert np.allclose(sl.dice_per_mask(mx.nd, ones, ones).asnumpy(), 1 - 18 / (18 + 2e-6))


def test_giou_loss_gradient_finite_differences():
    case = make_case(np.random.RandomState(4), dtype='float64')
    args = [nd(case, k, 'float64') for k in ('gt_boxes', 'gather', 'valid', 'image_wh')]

    def loss_of(boxes):
        return sl.giou_loss(mx.nd, boxes, args[0], args[1], args[2], args[3], avg_factor=2.)

    boxes = nd(case, 'boxes', 'float64')
    boxes.attach_grad()
    with autograd.record():
        loss = loss_of(boxes)
    loss.backward()
    analytic = boxes.grad.asnumpy()
    numeric = np.zeros_like(analytic)
    base = case['boxes']
    step = 1e-6
    for index in np.ndindex(*base.shape):
        plus, minus = base.copy(), base.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (loss_of(mx.nd.array(plus, dtype='float64')).asscalar()
                          - loss_of(mx.nd.array(minus, dtype='float64')).asscalar()) / (2 * step)
    assert np.allclose(analytic, numeric, rtol=1e-4, atol=1e-7)
    # matched queries (including query 0, also the target of a padded slot) get a gradient,
    # unmatched ones none
    matched = {(b, q) for b, q, _ in pairs(case)}
    for b in range(B):
        for q in range(Q):
            assert (np.abs(analytic[b, q]).sum() > 0) == ((b, q) in matched)


def losses_and_grads(case):
    inputs = {k: nd(case, k) for k in ('logits', 'boxes', 'masks')}
    for v in inputs.values():
        v.attach_grad()
    with autograd.record():
        out = [sl.focal_classification_loss(mx.nd, inputs['logits'], nd(case, 'cls_targets'),
                                            mx.nd.array([case['valid'].sum()])),
               sl.box_l1_loss(mx.nd, inputs['boxes'], nd(case, 'gt_boxes'), nd(case, 'gather'),
                              nd(case, 'valid'), 1.),
               sl.giou_loss(mx.nd, inputs['boxes'], nd(case, 'gt_boxes'), nd(case, 'gather'),
                            nd(case, 'valid'), nd(case, 'image_wh'), 1.),
               sl.mask_dice_loss(mx.nd, inputs['masks'], nd(case, 'gt_masks'), nd(case, 'gather'),
                                 nd(case, 'valid'), 1.)]
        total = mx.nd.add_n(*out)
    total.backward()
    return [o.asscalar() for o in out], [v.grad.asnumpy() for v in inputs.values()]


def test_degenerate_boxes_are_finite():
    case = make_case(np.random.RandomState(5))
    case['boxes'][..., 2] = 0.  # zero-width predictions
    case['gt_boxes'][0, 0, 2:] = 0.  # a zero-size ground truth
    case['masks'][:] = 0.  # all-zero masks
    values, grads = losses_and_grads(case)
    assert all(math.isfinite(v) for v in values)
    assert all(np.isfinite(g).all() for g in grads)


def test_empty_ground_truth():
    case = make_case(np.random.RandomState(6))
    case['cls_targets'][:] = C
    case['gather'][1] = 0
    case['valid'][:] = 0
    values, grads = losses_and_grads(case)
    assert np.isclose(values[0], focal_reference(case['logits'].astype(np.float64),
                                                 case['cls_targets'], 0.), rtol=1e-5)
    assert values[1:] == [0., 0., 0.]
    assert np.isfinite(grads[0]).all() and np.abs(grads[0]).sum() > 0
    assert not grads[1].any() and not grads[2].any()


class _LossBlock(nn.HybridBlock):
    def hybrid_forward(self, F, logits, boxes, masks, cls_targets, gather, valid, gt_boxes,
                       gt_masks, image_wh, avg):
        return (sl.focal_classification_loss(F, logits, cls_targets, avg),
                sl.box_l1_loss(F, boxes, gt_boxes, gather, valid, avg),
                sl.giou_loss(F, boxes, gt_boxes, gather, valid, image_wh, avg),
                sl.mask_dice_loss(F, masks, gt_masks, gather, valid, avg))


def test_hybridized_equals_imperative():
    case = make_case(np.random.RandomState(7))
    keys = ('logits', 'boxes', 'masks', 'cls_targets', 'gather', 'valid', 'gt_boxes', 'gt_masks',
            'image_wh')
    inputs = [nd(case, k) for k in keys] + [mx.nd.array([2.])]
    block = _LossBlock()
    imperative = [o.asscalar() for o in block(*inputs)]
    block.hybridize()
    hybrid = [o.asscalar() for o in block(*inputs)]
    assert np.allclose(imperative, hybrid, rtol=1e-6)


def test_avg_factor_for_context_and_ratios():
    # equal splits reproduce the reference's reduce_mean: N / number of contexts
    assert sl.avg_factor_for_context(12, 2, 8) == 3.
    assert sl.avg_factor_for_context(0, 2, 8) == 1.
    # the gradient sum_c n_c * L_c / B equals sum(loss) / N for unequal splits too
    n_c, per_context_sums, total = [1, 3], [2.0, 6.0], 10
    step = sum(n * s / sl.avg_factor_for_context(total, n, 4)
               for n, s in zip(n_c, per_context_sums)) / 4
    assert np.isclose(step, sum(per_context_sums) / total)
    assert sl.thing_stuff_ratios(3, 1) == (0.75, 0.25)
    assert sl.thing_stuff_ratios(0, 0) == (0.5, 0.5)


@pytest.mark.parametrize('key,weight', [('cls', 2.), ('bbox', 5.), ('iou', 2.), ('mask', 2.),
                                        ('cls_stuff', 4.)])
def test_reference_weights(key, weight):
    assert sl.LOSS_WEIGHTS[key] == weight
