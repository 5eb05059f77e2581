"""Hungarian matching of Panoptic SegFormer: the assignment against brute force, each cost term
against hand values, batching with padded ground truth, and the failure modes."""
import itertools
import math

import mxnet as mx
import numpy as np
import pytest

from gluonpan.nn.set_matching import (HungarianMatcher, box_l1_cost, dice_cost, encode_matches,
                                      focal_cost, giou_cost, linear_assignment, location_matcher,
                                      mask_matcher, stuff_assignment)
from gluonpan.utils.resize import resize_bilinear


def brute_force_min(cost):
    """Smallest total cost of a one-to-one assignment of min(Q, G) pairs."""
    q, g = cost.shape
    if q == 0 or g == 0:
        return 0.
    if q >= g:
        return min(sum(cost[rows[j], j] for j in range(g))
                   for rows in itertools.permutations(range(q), g))
    return min(sum(cost[i, cols[i]] for i in range(q))
               for cols in itertools.permutations(range(g), q))


def check_assignment(rows, cols, shape):
    assert len(rows) == len(cols) == min(shape)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0)


@pytest.mark.parametrize('shape', [(1, 1), (3, 1), (4, 2), (3, 3), (5, 3), (2, 4), (4, 0), (0, 3)])
def test_assignment_equals_brute_force(shape):
    rng = np.random.RandomState(sum(shape))
    for _ in range(5):
        cost = rng.uniform(-2, 3, size=shape)
        rows, cols = linear_assignment(cost)
        check_assignment(rows, cols, shape)
        assert np.isclose(cost[rows, cols].sum(), brute_force_min(cost))


def test_ties_are_optimal_and_deterministic():
    rng = np.random.RandomState(0)
    for shape in [(4, 4), (5, 3), (3, 5)]:
        cost = rng.randint(0, 2, size=shape).astype(float)  # many equal-cost optima
        first = linear_assignment(cost)
        check_assignment(first[0], first[1], shape)
        assert np.isclose(cost[first].sum(), brute_force_min(cost))
        for _ in range(3):
            again = linear_assignment(cost.copy())
            assert all(np.array_equal(a, b) for a, b in zip(first, again))
    rows, cols = linear_assignment(np.zeros((3, 3)))
    check_assignment(rows, cols, (3, 3))


def test_focal_cost_by_hand():
    def by_hand(x, weight=2., alpha=0.25, gamma=2., eps=1e-12):
        p = 1 / (1 + math.exp(-x))
        pos = -alpha * (1 - p) ** gamma * math.log(p + eps)
        neg = -(1 - alpha) * p ** gamma * math.log(1 - p + eps)
        return weight * (pos - neg)
    logits = np.array([[0., 2., -3.], [5., -1., 0.5]])
    cost = focal_cost(logits, np.array([2, 0]))
    assert cost.shape == (2, 2)
    for i in range(2):
        for j, label in enumerate([2, 0]):
            assert np.isclose(cost[i, j], by_hand(logits[i, label]))
    # p = 0.5: pos = 0.25 * 0.25 * ln 2, neg = 0.75 * 0.25 * ln 2 -> -0.25 ln 2 with weight 2
    assert np.isclose(cost[0, 1], -0.25 * math.log(2), atol=1e-9)
    # a confident right prediction costs less than a confident wrong one
    assert cost[1, 1] < cost[1, 0]


def test_giou_cost_known_boxes():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 4, 4], [0, 0, 1, 1]], float)
    gts = np.array([[0, 0, 1, 1], [2, 0, 3, 1], [1, 1, 3, 3], [1, 0, 2, 1]], float)
    giou = -giou_cost(boxes, gts, weight=1.)
    # identical 1; disjoint: iou 0, enclose 3, union 2; nested: 4 / 16; touching: 0
    assert np.allclose(np.diag(giou), [1., -1. / 3, 0.25, 0.], atol=1e-6)
    # mmdet's IoUCost docstring example
    bboxes = np.array([[1, 1, 2, 2], [2, 2, 3, 4]], float)
    gt_bboxes = np.array([[0, 0, 2, 4], [1, 2, 3, 4]], float)
    assert np.allclose(giou_cost(bboxes, gt_bboxes, weight=1.),
                       [[-0.125, 0.1667], [0.1667, -0.5]], atol=1e-4)
    assert np.allclose(giou_cost(boxes, gts, weight=2.), -2 * giou)


def test_box_l1_cost_by_hand():
    pred = np.array([[0.5, 0.5, 0.2, 0.2], [0.1, 0.2, 0.3, 0.4]])
    gt = np.array([[0.5, 0.4, 0.2, 0.1]])
    assert np.allclose(box_l1_cost(pred, gt, weight=5.), [[5 * 0.2], [5 * (0.4 + 0.2 + 0.1 + 0.3)]])


def test_dice_cost_by_hand_and_resize():
    pred = np.zeros((2, 2, 2))
    pred[0, 0, 0] = 1.
    pred[1] = 0.5
    gt = np.zeros((1, 2, 2))
    gt[0, 0, 0] = 1.
    cost = dice_cost(pred, gt, weight=2.)
    assert np.isclose(cost[0, 0], 2 * (1 - 2 * 1 / (1.001 + 1.001)))
    assert np.isclose(cost[1, 0], 2 * (1 - 2 * 0.5 / (4 * 0.25 + 0.001 + 1.001)))
    # the ground truth is resized to the prediction size first (a constant mask stays constant)
    big = np.ones((1, 8, 8))
    assert np.allclose(dice_cost(np.ones((1, 2, 2)), big), 2 * (1 - 8 / (4.001 + 4.001)))


def test_the_dice_cost_resize_matches_torch_and_mxnet():
    row = np.arange(4, dtype=np.float32).reshape((1, 1, 4))
    # torch: F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
    assert np.allclose(resize_bilinear(row, 1, 8)[0, 0],
                       [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    rng = np.random.RandomState(1)
    masks = (rng.uniform(size=(3, 13, 10)) > 0.5).astype(np.float32)
    for size in [(4, 3), (26, 20), (7, 11), (13, 10)]:
        mine = resize_bilinear(masks, *size)
        ref = mx.nd.contrib.BilinearResize2D(mx.nd.array(masks[None]), height=size[0],
                                             width=size[1], align_corners=False)[0].asnumpy()
        assert mine.shape == (3,) + size
        assert np.allclose(mine, ref, atol=1e-5)


def random_image(rng, num_queries, num_gts, num_classes=4, size=(40, 60), mask_hw=(5, 8)):
    height, width = size
    x1 = rng.uniform(0, width / 2, num_gts)
    y1 = rng.uniform(0, height / 2, num_gts)
    gt_boxes = np.stack([x1, y1, x1 + rng.uniform(2, width / 2, num_gts),
                         y1 + rng.uniform(2, height / 2, num_gts)], axis=1)
    return dict(cls_logits=rng.normal(size=(num_queries, num_classes)),
                boxes=rng.uniform(0.1, 0.6, size=(num_queries, 4)),
                gt_labels=rng.randint(0, num_classes, num_gts),
                gt_boxes=gt_boxes, image_size=size,
                masks=rng.uniform(size=(num_queries,) + mask_hw),
                gt_masks=(rng.uniform(size=(num_gts, 2 * mask_hw[0], 2 * mask_hw[1])) > 0.5)
                .astype(np.float32))


@pytest.mark.parametrize('matcher_fn', [location_matcher, mask_matcher])
@pytest.mark.parametrize('num_queries,num_gts', [(5, 3), (4, 4), (2, 4), (6, 1)])
def test_matcher_is_optimal_for_the_weighted_sum(matcher_fn, num_queries, num_gts):
    rng = np.random.RandomState(num_queries * 10 + num_gts)
    image = random_image(rng, num_queries, num_gts)
    matcher = matcher_fn()
    terms = matcher.costs(**image)
    assert set(terms) == ({'focal', 'bbox_l1', 'giou', 'dice'} if matcher.mask_weight
                          else {'focal', 'bbox_l1', 'giou'})
    total = sum(terms.values())
    res = matcher(**image)
    check_assignment(res.pred_index, res.gt_index, (num_queries, num_gts))
    assert np.isclose(total[res.pred_index, res.gt_index].sum(), brute_force_min(total))
    assigned = res.assigned_gt
    assert assigned.shape == (num_queries,)
    assert np.array_equal(assigned[res.pred_index], res.gt_index)
    assert np.sum(assigned >= 0) == min(num_queries, num_gts)


def test_cost_terms_use_the_reference_conventions():
    rng = np.random.RandomState(3)
    image = random_image(rng, 3, 2)
    height, width = image['image_size']
    factor = np.array([width, height, width, height])
    terms = mask_matcher().costs(**image)
    gt = image['gt_boxes'] / factor
    gt_cxcywh = np.stack([(gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2,
                          gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]], axis=1)
    assert np.allclose(terms['bbox_l1'], box_l1_cost(image['boxes'], gt_cxcywh, 5.))
    b = image['boxes']
    pred_xyxy = np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2,
                          b[:, 1] + b[:, 3] / 2], axis=1) * factor
    assert np.allclose(terms['giou'], giou_cost(pred_xyxy, image['gt_boxes'], 2.))
    assert np.allclose(terms['focal'], focal_cost(image['cls_logits'], image['gt_labels'], 4.))
    assert np.allclose(terms['dice'], dice_cost(image['masks'], image['gt_masks'], 2.))
    assert (mask_matcher().cls_weight, location_matcher().cls_weight) == (4., 2.)


def test_no_ground_truth_and_more_gt_than_queries():
    rng = np.random.RandomState(4)
    res = location_matcher()(**{k: v for k, v in random_image(rng, 4, 0).items()
                                if k not in ('masks', 'gt_masks')})
    assert len(res.pred_index) == 0 and np.all(res.assigned_gt == -1)
    image = random_image(rng, 2, 5)
    res = location_matcher()(**image)
    assert len(res.pred_index) == 2 and np.array_equal(res.pred_index, [0, 1])


@pytest.mark.parametrize('term,corrupt', [
    ('focal', lambda im: im['cls_logits'].__setitem__((0, im['gt_labels'][0]), np.nan)),
    # huge but finite sizes: the L1 cost stays finite, the areas overflow to inf - inf
    ('giou', lambda im: im['boxes'].__setitem__((1, slice(2, 4)), 1e200)),
    ('dice', lambda im: im['masks'].__setitem__((0, 0, 0), np.nan)),
])
def test_non_finite_cost_names_the_term(term, corrupt):
    image = random_image(np.random.RandomState(5), 3, 2)
    corrupt(image)
    with pytest.raises(ValueError, match=term):
        mask_matcher()(**image)
    with pytest.raises(ValueError, match='total'):
        linear_assignment(np.array([[0., np.nan]]))


def test_mask_weight_needs_masks():
    image = random_image(np.random.RandomState(6), 3, 2)
    image.pop('masks')
    with pytest.raises(ValueError, match='masks'):
        mask_matcher()(**image)


@pytest.mark.parametrize('as_mask', [False, True])
def test_batch_with_padded_ground_truth(as_mask):
    rng = np.random.RandomState(7)
    counts = [2, 0, 3]
    images = [random_image(rng, 4, n) for n in counts]
    slots = 3
    gt_labels = np.full((3, slots), -7, np.int64)
    gt_boxes = np.full((3, slots, 4), np.nan)  # padding never reaches a cost
    gt_masks = np.full((3, slots, 10, 16), np.nan, np.float32)
    valid = np.zeros((3, slots), bool)
    for b, (im, n) in enumerate(zip(images, counts)):
        # with a mask, put the real slots at the end to show they need not be a prefix
        where = np.arange(slots - n, slots) if as_mask else np.arange(n)
        gt_labels[b, where], gt_boxes[b, where], gt_masks[b, where] = (
            im['gt_labels'], im['gt_boxes'], im['gt_masks'])
        valid[b, where] = True
    stack = lambda key: np.stack([im[key] for im in images])  # noqa: E731
    matcher = mask_matcher()
    results = matcher.match_batch(stack('cls_logits'), stack('boxes'), gt_labels, gt_boxes,
                                  valid if as_mask else np.array(counts),
                                  [im['image_size'] for im in images], stack('masks'), gt_masks)
    for b, (im, res) in enumerate(zip(images, results)):
        alone = matcher(**im)
        offset = slots - counts[b] if as_mask else 0
        assert np.array_equal(res.pred_index, alone.pred_index)
        assert np.array_equal(res.gt_index, alone.gt_index + offset)
        assert valid[b, res.gt_index].all()
    enc = encode_matches(results, gt_labels, num_classes=4)
    assert enc['cls_targets'].shape == (3, 4) and enc['gather_index'].shape == (2, 3, slots)
    assert enc['num_pos'] == sum(counts)
    assert np.all(enc['cls_targets'][1] == 4)  # no ground truth: every query is background
    for b, res in enumerate(results):
        assert np.array_equal(enc['match_valid'][b], valid[b].astype(np.float32))
        assert np.all(enc['gather_index'][0, b] == b)
        assert np.array_equal(enc['gather_index'][1, b, res.gt_index], res.pred_index)
        assert np.array_equal(enc['cls_targets'][b, res.pred_index], gt_labels[b, res.gt_index])
        assert np.sum(enc['cls_targets'][b] != 4) == len(res.pred_index)


def test_query_counts_restrict_the_predictions():
    rng = np.random.RandomState(8)
    image = random_image(rng, 5, 2)
    batch = {k: np.asarray(image[k])[None] for k in ('cls_logits', 'boxes', 'masks')}
    res = mask_matcher().match_batch(batch['cls_logits'], batch['boxes'],
                                     image['gt_labels'][None], image['gt_boxes'][None], [2],
                                     [image['image_size']], batch['masks'],
                                     image['gt_masks'][None], query_counts=[3])[0]
    assert res.num_preds == 3 and np.all(res.pred_index < 3)


def test_more_gt_than_queries_encodes_unmatched_slots():
    rng = np.random.RandomState(9)
    image = random_image(rng, 2, 4)
    res = location_matcher()(**image)
    enc = encode_matches([res], image['gt_labels'][None], num_classes=4)
    assert enc['match_valid'].sum() == 2 and enc['num_pos'] == 2
    assert enc['gather_index'].shape == (2, 1, 4)


def test_empty_batch_keeps_one_slot():
    res = location_matcher()(np.zeros((3, 2)), np.full((3, 4), 0.5), np.zeros((0,), int),
                             np.zeros((0, 4)), (10, 10))
    enc = encode_matches([res], np.zeros((1, 0), int), num_classes=2)
    assert enc['gather_index'].shape == (2, 1, 1) and enc['match_valid'].sum() == 0
    assert enc['num_pos'] == 0 and np.all(enc['cls_targets'] == 2)


def test_stuff_assignment():
    res = stuff_assignment(np.array([85, 80, 132, -1]), 3, num_things=80, num_stuff=53)
    assert np.array_equal(res.pred_index, [0, 5, 52])
    assert np.array_equal(res.gt_index, [1, 0, 2])
    enc = encode_matches([res], np.zeros((1, 4), int), num_classes=1)
    assert np.array_equal(np.flatnonzero(enc['cls_targets'][0] == 0), [0, 5, 52])
    assert enc['match_valid'][0].tolist() == [1, 1, 1, 0]
    with pytest.raises(ValueError, match='twice'):
        stuff_assignment(np.array([81, 81]), 2, 80, 53)
    with pytest.raises(ValueError, match='stuff labels'):
        stuff_assignment(np.array([3]), 1, 80, 53)


def test_zero_weight_drops_a_term():
    matcher = HungarianMatcher(cls_weight=0., bbox_weight=1., iou_weight=0.)
    image = random_image(np.random.RandomState(10), 3, 2)
    image['cls_logits'][:] = np.nan  # unused term: never evaluated
    assert list(matcher.costs(**image)) == ['bbox_l1']
    matcher(**image)
