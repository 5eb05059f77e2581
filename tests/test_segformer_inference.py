"""Panoptic SegFormer's inference post-processing (``model_zoo.panoptic_segformer.inference``) on
hand-made masks: the reference's fused scores and mask-wise merging (thresholds, overlap, free
pixels only, visiting order), panoptic ids, the test-time resize and bad inputs."""
import types

import cv2
import mxnet as mx
import numpy as np
import pytest

from gluonpan.data.categories import PanopticCategories
from gluonpan.data.transforms import normalize
from gluonpan.model_zoo.panoptic_segformer.inference import (
    DEFAULT_INFERENCE_OPTIONS, ResizedMasks, fused_scores, inference_options, keep_ratio_size,
    mask_wise_merge, panoptic_from_outputs, panoptic_ids, predict_panoptic, resize_for_test)
from gluonpan.utils.resize import resize_bilinear

#: two thing categories (ids 1, 2) and two stuff categories (ids 10, 11)
CATEGORIES = PanopticCategories([dict(id=1, name='a', isthing=1), dict(id=2, name='b', isthing=1),
                                 dict(id=10, name='s', isthing=0),
                                 dict(id=11, name='t', isthing=0)])


def box_mask(shape, top, bottom, left, right, value=1.):
    m = np.zeros(shape, np.float32)
    m[top:bottom, left:right] = value
    return m


def test_fused_score_is_class_times_mean_foreground_squared():
    masks = np.array([[[0.4, 0.6], [2.0, 1.0]], [[0.5, 0.2], [0., 0.]]], np.float32)
    # foreground (> 0.5) of mask 0: 0.6, 2.0, 1.0 -> 3.6 / (3 + 1); mask 1 has none (0.5 is not >)
    np.testing.assert_allclose(fused_scores(masks, [0.5, 0.9]), [0.5 * 0.9 ** 2, 0.], rtol=1e-6)
    np.testing.assert_allclose(fused_scores(masks, [1., 1.], mask_threshold=0.1),
                               [(4.0 / 5) ** 2, (0.7 / 3) ** 2], rtol=1e-6)


def test_merge_in_score_order_with_the_reference_thresholds():
    shape = (6, 8)
    masks = np.stack([
        box_mask(shape, 0, 3, 0, 4),           # 0 thing, 12 px, placed first
        box_mask(shape, 2, 5, 0, 4),           # 1 thing, 12 px, 4 taken (1/3 <= 0.4): free part
        box_mask(shape, 0, 4, 2, 6),           # 2 thing, 16 px, 6 + 2 taken (1/2 > 0.4): skipped
        box_mask(shape, 0, 6, 0, 8, 0.7),      # 3 stuff, everything: 20/48 taken > 0.2: skipped
        box_mask(shape, 4, 6, 0, 8),           # 4 stuff, 16 px, 4 taken (1/4 > 0.2): skipped
        box_mask(shape, 0, 6, 6, 8),           # 5 thing scoring below 0.25: skipped
        box_mask(shape, 0, 6, 0, 8, 0.5),      # 6 thing, empty binary mask (0.5 is not > 0.5)
        box_mask(shape, 0, 2, 4, 8),           # 7 stuff, 8 px, none taken: placed
    ])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.95, 0.25], np.float32)
    is_thing = np.array([1, 1, 1, 0, 0, 1, 1, 0], bool)
    segment_map, placed = mask_wise_merge(masks, scores, is_thing)
    # visited 6 (empty), 0, 1, 2, 3, 4, 7 (0.25 is not below the threshold), 5 (below)
    assert placed == [(0, 12), (1, 8), (7, 8)]
    expected = np.zeros(shape, np.int32)
    expected[0:3, 0:4] = 1
    expected[3:5, 0:4] = 2
    expected[0:2, 4:8] = 3
    np.testing.assert_array_equal(segment_map, expected)
    # a looser stuff overlap places stuff 4 on its 12 free pixels (not stuff 3: 20/48 taken);
    # a stuff area limit drops it and stuff 7 again
    _, placed = mask_wise_merge(masks, scores, is_thing, overlap_threshold_stuff=0.3)
    assert placed == [(0, 12), (1, 8), (4, 12), (7, 8)]
    _, placed = mask_wise_merge(masks, scores, is_thing, overlap_threshold_stuff=0.3,
                                stuff_area_threshold=13)
    assert placed == [(0, 12), (1, 8)]
    # a stricter thing quality leaves the first stuff everything; overlap skips are "> threshold"
    assert mask_wise_merge(masks, scores, is_thing, quality_threshold_things=0.95)[1] == [
        (3, 48)]
    assert (2, 8) in mask_wise_merge(masks, scores, is_thing, overlap_threshold_things=0.5)[1]


def test_merge_without_candidates_or_with_mismatched_inputs():
    segment_map, placed = mask_wise_merge(np.zeros((0, 3, 4), np.float32), [], [])
    assert segment_map.shape == (3, 4) and not segment_map.any() and placed == []
    with pytest.raises(ValueError, match='2 masks, 1 scores'):
        mask_wise_merge(np.zeros((2, 3, 4), np.float32), [0.5], [True, False])


def test_panoptic_ids_number_things_per_category():
    segment_map = np.array([[1, 1, 2], [3, 4, 0]], np.int32)
    placed = [(0, 2), (2, 1), (1, 1), (3, 1)]
    labels = np.array([1, 1, 0, 2 + 1])  # things b, b, a; stuff t
    pan_ids, segments = panoptic_ids(segment_map, placed, labels, [0.9, 0.8, 0.7, 0.6],
                                     CATEGORIES)
    np.testing.assert_array_equal(pan_ids, [[2000, 2000, 1000], [2001, 11, 0]])
    assert [(s['id'], s['category_id'], s['isthing'], s['area']) for s in segments] == [
        (2000, 2, 1, 2), (1000, 1, 1, 1), (2001, 2, 1, 1), (11, 11, 0, 1)]
    assert segments[1]['score'] == pytest.approx(0.7)


def test_outputs_to_panoptic_resize_masks_straight_to_the_output():
    """Stride-8 masks of a 5x7 map resized to a 37x53 image (no crop to 8 * (5, 7)); the
    candidates that cannot reach their quality threshold (not resized) change nothing."""
    rng = np.random.RandomState(0)
    things = np.zeros((1, 4, 5, 7), np.float32)
    things[0, 0, :3, :3] = 2.
    things[0, 1, 2:, 3:] = 1.5
    things[0, 2] = rng.uniform(0, 0.4, (5, 7))  # nothing above 0.5
    things[0, 3, 3:, :2] = 2.  # 0.05 * 2 ** 2 < 0.25
    stuff = np.zeros((1, 2, 5, 7), np.float32)
    stuff[0, 1] = things[0, :2].max(axis=0) == 0  # the rest of the image
    outputs = [np.array([[0.9, 0.8, 0.99, 0.05]]), np.array([[1., 0., 0., 1.]]), things,
               np.array([[0.1, 0.7]]), stuff]
    pan_ids, segments = panoptic_from_outputs([mx.nd.array(x) for x in outputs], (37, 53),
                                              CATEGORIES)
    assert pan_ids.shape == (37, 53) and pan_ids.dtype == np.int32
    big = resize_bilinear(np.concatenate([things[0], stuff[0]]), 37, 53)
    scores = fused_scores(big, [0.9, 0.8, 0.99, 0.05, 0.1, 0.7])
    want_map, placed = mask_wise_merge(big, scores, [1, 1, 1, 1, 0, 0])
    want_ids, want_segments = panoptic_ids(want_map, placed, [1, 0, 0, 1, 2, 3], scores,
                                           CATEGORIES)
    np.testing.assert_array_equal(pan_ids, want_ids)
    assert segments == want_segments
    assert [s['category_id'] for s in segments] == [2, 1, 11]  # b, a (its free part), t
    assert {int(v) for v in np.unique(pan_ids)} == {2000, 1000, 11}
    assert all(s['area'] == int((pan_ids == s['id']).sum()) for s in segments)


def test_resized_masks_read_one_at_a_time():
    masks = np.random.RandomState(1).uniform(size=(3, 4, 6)).astype(np.float32)
    lazy = ResizedMasks(masks, (9, 13))
    assert lazy.shape == (3, 9, 13) and len(lazy) == 3
    np.testing.assert_array_equal(lazy[2], resize_bilinear(masks, 9, 13)[2])


@pytest.mark.parametrize('outputs, match', [
    ([np.zeros((1, 2))] * 4, 'expected the 5 outputs'),
    ([np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3, 4, 4)), np.zeros((2, 2)),
      np.zeros((2, 2, 4, 4))], 'one image'),
    ([np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3, 4, 4)), np.zeros((1, 5)),
      np.zeros((1, 5, 4, 4))], '2 stuff classes'),
])
def test_bad_outputs_are_named(outputs, match):
    with pytest.raises(ValueError, match=match):
        panoptic_from_outputs(outputs, (8, 8), CATEGORIES)


def test_options_map_the_generic_fusion_flags():
    net = types.SimpleNamespace(inference_options=dict(overlap_threshold_stuff=0.3,
                                                       test_size=None))
    opts = inference_options(net)
    assert opts == dict(DEFAULT_INFERENCE_OPTIONS, overlap_threshold_stuff=0.3)
    opts = inference_options(net, score_threshold=0.4, overlap_threshold=0.6,
                             stuff_area_threshold=100, quality_threshold_stuff=0.1)
    assert (opts['quality_threshold_things'], opts['quality_threshold_stuff'],
            opts['overlap_threshold_things'], opts['overlap_threshold_stuff'],
            opts['stuff_area_threshold']) == (0.4, 0.1, 0.6, 0.3, 100)
    with pytest.raises(ValueError, match='score_thresh'):
        inference_options(net, score_thresh=0.5)


def test_test_size_is_mmdet_keep_ratio():
    assert keep_ratio_size(480, 640, 800, 1333) == (800, 1067)
    assert keep_ratio_size(1000, 200, 800, 1333) == (1333, 267)
    image = np.random.RandomState(2).randint(0, 256, (30, 40, 3)).astype(np.uint8)
    data = mx.nd.array(normalize(image)[None])
    resized = resize_for_test(data, (45, 100))
    assert resized.shape == (1, 3, 45, 60)
    want = normalize(cv2.resize(image, (60, 45), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_allclose(resized[0].asnumpy(), want, atol=1e-5)
    assert resize_for_test(data, (30, 100)) is data


def test_predict_panoptic_takes_one_image():
    net = types.SimpleNamespace(inference_options={}, categories=CATEGORIES)
    with pytest.raises(ValueError, match='one image'):
        predict_panoptic(net, mx.nd.zeros((2, 3, 8, 8)))
