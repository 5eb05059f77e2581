"""PanopticFCN training targets (``gluonpan.data.fcn_targets``) on tiny hand-made crops.

Expected values are worked out by hand in the comments or recomputed by straightforward
re-implementations in this file (per-pixel loops, whole-map resizes), never copied from the code
under test.
"""
import math

import numpy as np
import pytest

from gluonpan.data.fcn_targets import (FCNTargets, downsample_binary, gaussian_kernel,
                                       gaussian_radius)
from gluonpan.utils.resize import resize_bilinear

# level sizes of a 64x96 crop: P3 8x12, P4 4x6, P5 2x3, P6 1x2, P7 1x1 -> offsets
OFFSETS_64x96 = [0, 96, 120, 126, 128, 129]


def _square(height, width, y0, y1, x0, x1):
    """A (H, W) uint8 mask with the rectangle rows [y0, y1), cols [x0, x1) set."""
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _slow_resize(x, out_h, out_w):
    """Per-pixel bilinear resize with half-pixel centres, edges clamped (align_corners=False)."""
    in_h, in_w = x.shape
    out = np.zeros((out_h, out_w), np.float64)
    for i in range(out_h):
        sy = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = min(int(sy), in_h - 1)
        y1, fy = min(y0 + 1, in_h - 1), sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = min(int(sx), in_w - 1)
            x1, fx = min(x0 + 1, in_w - 1), sx - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * x[y0, x0] + fx * x[y0, x1]) +
                         fy * ((1 - fx) * x[y1, x0] + fx * x[y1, x1]))
    return out


def _level(array, offsets, level, shape):
    """The ``level`` part of a (C, P) array as (C, h, w)."""
    return array[:, offsets[level]:offsets[level + 1]].reshape(len(array), *shape)  # (C, h, w)


# ---------------------------------------------------------------------------------------------
# level layout


@pytest.mark.parametrize('size, shapes', [
    ((256, 512), [(32, 64), (16, 32), (8, 16), (4, 8), (2, 4)]),
    ((224, 320), [(28, 40), (14, 20), (7, 10), (4, 5), (2, 3)]),
    ((32, 32), [(4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]),
])
def test_level_shapes(size, shapes):
    targets = FCNTargets(3, 4)
    assert targets.level_shapes(*size) == shapes
    sizes = [h * w for h, w in shapes]
    assert targets.level_offsets(*size) == [sum(sizes[:i]) for i in range(6)]


def test_output_shapes_and_dtypes():
    height, width = 64, 96
    sem = np.zeros((height, width), np.uint8)
    masks = _square(height, width, 8, 48, 16, 56)[None]  # sqrt(area) 40: P3 and P4
    out = FCNTargets(3, 5)(sem, masks, np.array([1]))
    P = OFFSETS_64x96[-1]
    expected = {
        'center_targets': ((3, P), np.float32), 'stuff_targets': ((5, P), np.float32),
        'stuff_masks': ((5, 16, 24), np.float32), 'inst_masks': ((2, 16, 24), np.float32),
        'inst_guide': ((2, P), np.uint8), 'inst_classes': ((2,), np.float32),
        'inst_levels': ((2,), np.int32), 'inst_centers': ((2,), np.int64)}
    assert sorted(out) == sorted(expected)
    for key, (shape, dtype) in expected.items():
        assert out[key].shape == shape, key
        assert out[key].dtype == dtype, key


# ---------------------------------------------------------------------------------------------
# level assignment


def test_level_assignment_by_box_size():
    """sqrt(box area) in the closed intervals (1,64) (32,128) (64,256) (128,512) (256,2048)."""
    height, width = 320, 1024
    boxes = [  # (y0, y1, x0, x1) -> sqrt(area) -> levels
        (0, 16, 0, 16),        # 16 -> P3
        (20, 60, 20, 60),      # 40 -> P3, P4
        (0, 64, 100, 164),     # 64 -> P3, P4, P5 (both ends inclusive)
        (100, 200, 0, 100),    # 100 -> P4, P5
        (100, 300, 200, 400),  # 200 -> P5, P6
        (0, 256, 0, 1024),     # 512 -> P6, P7
        (0, 300, 0, 1024),     # 554 -> P7
    ]
    masks = np.stack([_square(height, width, *b) for b in boxes] + [
        np.zeros((height, width), np.uint8),  # empty: skipped
        _square(height, width, 200, 240, 600, 602) | _square(height, width, 238, 240, 600, 640),
    ])  # the last: an "L" of 156 pixels whose box is 40x40 -> P3, P4 like box 1
    classes = np.arange(len(masks)) % 6
    targets = FCNTargets(6, 3)
    out = targets(np.zeros((height, width), np.uint8), masks, classes)
    expected = [(0, [0, 1, 2, 8]), (1, [1, 2, 3, 8]), (2, [2, 3, 4]), (3, [4, 5]), (4, [5, 6])]
    levels = [lvl for lvl, members in expected for _ in members]
    members = [m for _, ms in expected for m in ms]
    np.testing.assert_array_equal(out['inst_levels'], levels)
    np.testing.assert_array_equal(out['inst_classes'], classes[members].astype(np.float32))
    offsets = targets.level_offsets(height, width)
    for slot, (level, inst) in enumerate(zip(levels, members)):
        center = out['inst_centers'][slot]
        assert offsets[level] <= center < offsets[level + 1], (slot, level, center)
        assert out['center_targets'][classes[inst], center] == 1  # the Gaussian peak
        np.testing.assert_array_equal(out['inst_masks'][slot],
                                      resize_bilinear(masks[inst], height // 4, width // 4))


def test_instance_in_two_intervals_gives_two_slots_with_own_guides():
    height, width = 64, 96
    mask = _square(height, width, 8, 48, 16, 56)  # 40x40: P3 and P4
    out = FCNTargets(3, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([2]))
    np.testing.assert_array_equal(out['inst_levels'], [0, 1])
    np.testing.assert_array_equal(out['inst_classes'], [2, 2])
    np.testing.assert_array_equal(out['inst_masks'][0], out['inst_masks'][1])
    stride4 = resize_bilinear(mask, 16, 24)
    shapes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    for slot, level in enumerate([0, 1]):
        guide = out['inst_guide'][slot]
        own = guide[OFFSETS_64x96[level]:OFFSETS_64x96[level + 1]]
        np.testing.assert_array_equal(
            own.reshape(shapes[level]),  # (h, w)
            (resize_bilinear(stride4, *shapes[level]) > 0.1).astype(np.uint8))
        assert own.any()
        others = np.delete(guide, np.arange(OFFSETS_64x96[level], OFFSETS_64x96[level + 1]))
        assert not others.any(), 'guide of a P{} slot set on another level'.format(level + 3)


# ---------------------------------------------------------------------------------------------
# centre heatmaps


def test_gaussian_radius_is_cornernets_formula_by_hand():
    # w = h = 10, min_overlap 0.7:
    #   r1 = (20 + sqrt(400 - 4 * 100 * 0.3 / 1.7)) / 2       = 19.075
    #   r2 = (40 + sqrt(1600 - 16 * 0.3 * 100)) / 2            = 36.733
    #   r3 = (-14 + sqrt(14^2 + 4 * 2.8 * 0.3 * 100)) / 2 (b3 = -1.4 * 20 = -28)
    r3 = (-28 + math.sqrt(28 ** 2 + 4 * 2.8 * 30)) / 2
    assert abs(r3 - 2.7332) < 1e-4
    assert gaussian_radius(np.float32([10]), np.float32([10]), 0.7)[0] == pytest.approx(r3, 1e-5)


def test_gaussian_radius_matches_formula_for_many_boxes():
    rng = np.random.RandomState(0)
    w, h = rng.uniform(0.5, 300, 50), rng.uniform(0.5, 300, 50)
    for overlap in (0.5, 0.7, 0.9):
        roots = []
        for a, b, c in [(1, h + w, w * h * (1 - overlap) / (1 + overlap)),
                        (4, 2 * (h + w), (1 - overlap) * w * h),
                        (4 * overlap, -2 * overlap * (h + w), (overlap - 1) * w * h)]:
            roots.append((b + np.sqrt(b ** 2 - 4 * a * c)) / 2)  # the reference's "/ 2"
        np.testing.assert_allclose(gaussian_radius(w, h, overlap), np.min(roots, axis=0),
                                   rtol=1e-5)


def test_gaussian_kernel_values():
    kernel = gaussian_kernel(2, 3)  # sigma = 5 / 3
    assert kernel.shape == (5, 5) and kernel.dtype == np.float32
    assert kernel[2, 2] == 1
    assert kernel[0, 0] == pytest.approx(math.exp(-8 / (2 * (5 / 3) ** 2)), 1e-6)
    assert gaussian_kernel(0, 3).tolist() == [[1.0]]
    # far corners of a wide kernel fall below eps * max and are zeroed
    wide = gaussian_kernel(30, 3)  # sigma = 61 / 3, corner exp(-1800 / 826.9) > eps: kept
    assert wide[0, 0] > 0
    narrow = gaussian_kernel(30, 60)  # sigma ~ 1: corner exp(-1800 / 2.07) < eps: zeroed
    assert narrow[0, 0] == 0 and narrow[30, 30] == 1


def test_center_heatmaps_of_one_square_by_hand():
    """A 40x40 square, rows [8, 48) cols [16, 56) of a 64x96 crop, class 2 of 3.

    Stride 4: exactly 1 on rows 2..11, cols 4..13 -> mass centre (x, y) = (8.5, 6.5).
    P3 (8x12, scale 1/2): centre (4.25, 3.25) -> (4, 3); box 5x5 -> radius
    (-7 + sqrt(49 + 4 * 2.8 * 7.5)) / 2 = 1.37 -> 1; sigma = 3 / 3 = 1.
    P4 (4x6, scale 1/4): centre (2.125, 1.625) -> (2, 1); box 2.5x2.5 -> radius 0.68 -> 0.
    """
    height, width = 64, 96
    mask = _square(height, width, 8, 48, 16, 56)
    out = FCNTargets(3, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([2]))
    np.testing.assert_array_equal(out['inst_centers'], [3 * 12 + 4, 96 + 1 * 6 + 2])
    p3 = np.zeros((8, 12), np.float32)
    edge, corner = math.exp(-0.5), math.exp(-1.0)
    p3[2:5, 3:6] = [[corner, edge, corner], [edge, 1, edge], [corner, edge, corner]]
    p4 = np.zeros((4, 6), np.float32)
    p4[1, 2] = 1
    centers = out['center_targets']
    np.testing.assert_allclose(_level(centers, OFFSETS_64x96, 0, (8, 12))[2], p3, atol=1e-6)
    np.testing.assert_array_equal(_level(centers, OFFSETS_64x96, 1, (4, 6))[2], p4)
    assert not centers[:2].any(), 'other classes must stay empty'
    assert not centers[:, OFFSETS_64x96[2]:].any(), 'P5..P7 got no instance'


def test_same_class_gaussians_are_max_drawn():
    height, width = 64, 96
    masks = np.stack([_square(height, width, 8, 48, 16, 56),
                      _square(height, width, 12, 52, 28, 68)])
    targets = FCNTargets(2, 2)
    sem = np.zeros((height, width), np.uint8)
    both = targets(sem, masks, np.array([1, 1]))['center_targets']
    one = targets(sem, masks[:1], np.array([1]))['center_targets']
    two = targets(sem, masks[1:], np.array([1]))['center_targets']
    assert (np.minimum(one, two) > 0).any(), 'the two Gaussians must overlap for this test'
    np.testing.assert_array_equal(both, np.maximum(one, two))


def test_mass_centre_differs_from_box_centre():
    """Two stride-aligned squares of one instance: rows [8, 16) with cols [8, 16) and [56, 88).

    Stride 4: 1 on rows 2..3 with cols 2..3 (4 px) and cols 14..21 (16 px):
    mass x = (4 * 2.5 + 16 * 17.5) / 20 = 14.5, y = 2.5 -> P3 (7.25, 1.25) -> index 1 * 12 + 7.
    Box x [8, 88), y [8, 16): centre (48, 12) / 4 = (12, 3) -> P3 (6, 1.5) -> index 1 * 12 + 6.
    sqrt(80 * 8) = 25.3 -> P3 only.
    """
    height, width = 64, 96
    mask = _square(height, width, 8, 16, 8, 16) | _square(height, width, 8, 16, 56, 88)
    sem = np.zeros((height, width), np.uint8)
    mass = FCNTargets(1, 2, center_type='mass')(sem, mask[None], np.array([0]))
    box = FCNTargets(1, 2, center_type='box')(sem, mask[None], np.array([0]))
    np.testing.assert_array_equal(mass['inst_centers'], [19])
    np.testing.assert_array_equal(box['inst_centers'], [18])
    assert mass['center_targets'][0, 19] == 1 and box['center_targets'][0, 18] == 1


def test_mass_centre_counts_nonzero_pixels_not_their_values():
    """A block rows [8, 16) cols [8, 16) (stride 4: 1 on rows 2..3, cols 2..3) and a one-pixel
    column at col 61, rows [8, 16) (stride 4 samples cols 61, 62: 1/2 on col 15, rows 2..3).
    Unweighted mean x = (4 * 2.5 + 2 * 15) / 6 = 6.67 -> P3 3 (a value-weighted mean would give
    (10 + 15) / 5 = 5 -> 2, the box centre (8 + 62) / 2 / 4 = 8.75 -> 4); y = 2.5 -> P3 1."""
    height, width = 64, 96
    mask = _square(height, width, 8, 16, 8, 16) | _square(height, width, 8, 16, 61, 62)
    out = FCNTargets(1, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([0]))
    np.testing.assert_array_equal(out['inst_centers'], [1 * 12 + 3])


def test_guide_threshold_on_a_two_pixel_instance():
    """Pixels (5, 5) and (5, 6): stride 4 reads rows 5, 6 and cols 5, 6 for (1, 1) -> 1/2 there;
    P3 (0, 0) averages stride-4 rows 0..1, cols 0..1 -> 1/8 > 0.1: the guide is that one position.
    sqrt(2 * 1) = 1.4 -> P3 only."""
    height, width = 64, 96
    mask = _square(height, width, 5, 6, 5, 7)
    out = FCNTargets(1, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([0]))
    assert out['inst_masks'][0][1, 1] == 0.5 and out['inst_masks'][0].sum() == 0.5
    expected = np.zeros(OFFSETS_64x96[-1], np.uint8)
    expected[0] = 1
    np.testing.assert_array_equal(out['inst_guide'], expected[None])


def test_mass_centre_of_a_blob_matches_a_direct_mean():
    height, width = 64, 96
    rng = np.random.RandomState(3)
    mask = (rng.rand(height, width) < 0.5).astype(np.uint8) * _square(height, width,
                                                                      5, 45, 13, 61)
    out = FCNTargets(1, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([0]))
    ys, xs = np.nonzero(resize_bilinear(mask, 16, 24))
    x, y = int(xs.mean() * 0.5), int(ys.mean() * 0.5)  # stride 4 -> P3 (8x12)
    assert out['inst_centers'][0] == y * 12 + x


def test_thin_and_border_instances():
    """A one-pixel line on row 0 (never read by the stride-4 resize, which samples rows
    4i+1 and 4i+2: the box centre is used), a one-pixel line on row 5 (read with weight 1/2)
    and a block at the bottom-right corner (its Gaussian is cut at the border)."""
    height, width = 64, 96
    masks = np.stack([_square(height, width, 0, 1, 8, 40),     # row 0, cols 8..39
                      _square(height, width, 5, 6, 48, 80),    # row 5, cols 48..79
                      _square(height, width, 40, 64, 64, 96)])  # corner
    targets = FCNTargets(2, 2)
    out = targets(np.zeros((height, width), np.uint8), masks, np.array([0, 1, 0]))
    # sqrt(32) = 5.7, sqrt(32) and sqrt(24 * 32) = 27.7: all P3 only
    np.testing.assert_array_equal(out['inst_levels'], [0, 0, 0])
    assert not out['inst_masks'][0].any() and not out['inst_guide'][0].any()
    # box centre ((8 + 40) / 2, 0.5) / 4 = (6, 0.125) -> P3 (3, 0)
    assert out['inst_centers'][0] == 3
    np.testing.assert_array_equal(out['inst_masks'][1][1], np.r_[np.zeros(12), np.full(8, .5),
                                                                 np.zeros(4)])
    # row 5 line: stride-4 mass centre (15.5, 1) -> P3 (7.75, 0.5) -> (7, 0)
    assert out['inst_centers'][1] == 7
    # corner: stride-4 rows 10..15, cols 16..23 -> mass (19.5, 12.5) -> P3 (9, 6)
    assert out['inst_centers'][2] == 6 * 12 + 9
    p3 = _level(out['center_targets'], OFFSETS_64x96, 0, (8, 12))
    assert p3[0, 6, 9] == 1 and p3[1, 0, 7] == 1 and p3[0, 0, 3] == 1


def test_gaussian_cut_at_the_left_border():
    """Columns [0, 8) of a 64x96 crop plus the whole row 0 (which the stride-4 resize never
    reads).  Box 96x64: sqrt = 78.4 -> P4 and P5.  Stride 4: 1 on cols 0..1, rows 0..15 -> mass
    centre (0.5, 7.5) -> P4 (4x6, scale 1/4) (0.125, 1.875) -> (0, 1); box in P4 6x4 -> radius
    (-14 + sqrt(196 + 4 * 2.8 * 0.3 * 24)) / 2 = 1.32 -> 1, sigma 1: the left half of the 3x3
    Gaussian is cut."""
    height, width = 64, 96
    mask = _square(height, width, 0, 64, 0, 8) | _square(height, width, 0, 1, 0, 96)
    out = FCNTargets(1, 2)(np.zeros((height, width), np.uint8), mask[None], np.array([0]))
    np.testing.assert_array_equal(out['inst_levels'], [1, 2])
    assert out['inst_centers'][0] == 96 + 1 * 6 + 0
    edge, corner = math.exp(-0.5), math.exp(-1.0)
    expected = np.zeros((4, 6), np.float32)
    expected[0:3, 0:2] = [[edge, corner], [1, edge], [edge, corner]]
    np.testing.assert_allclose(_level(out['center_targets'], OFFSETS_64x96, 1, (4, 6))[0],
                               expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# stuff


def test_stuff_class_covering_the_left_half():
    height, width = 64, 64
    sem = np.full((height, width), 2, np.uint8)
    sem[:, :32] = 1
    targets = FCNTargets(1, 3)
    out = targets(sem, np.zeros((0, height, width), np.uint8), np.zeros(0, int))
    left = np.zeros((16, 16), np.float32)
    left[:, :8] = 1
    np.testing.assert_array_equal(out['stuff_masks'][0], 0)
    np.testing.assert_array_equal(out['stuff_masks'][1], left)
    np.testing.assert_array_equal(out['stuff_masks'][2], 1 - left)
    offsets = targets.level_offsets(height, width)
    for level, (h, w) in enumerate(targets.level_shapes(height, width)):
        stuff = _level(out['stuff_targets'], offsets, level, (h, w))
        expected = np.zeros((h, w))
        expected[:, :w // 2] = 1  # P3..P6 halves; P7 (1x1) samples the middle: 1/2, kept
        if w == 1:
            expected[:] = 0.5
        np.testing.assert_array_equal(stuff[1], expected, 'P{}'.format(level + 3))
        np.testing.assert_array_equal(stuff[2], 1 - expected if w > 1 else expected)


def test_stuff_half_values_and_the_cut_below_one_half():
    """Class 1 on input cols [0, 6) of 64x64: stride 4 col 0 = 1 (px 1, 2), col 1 = 1/2 (px 5
    in, 6 out).  P3 col 0 = (1 + 1/2) / 2 = 3/4 (kept); P4 col 0 reads stride-4 cols 1, 2:
    (1/2 + 0) / 2 = 1/4 -> cut to 0.  Class 2 on cols [8, 12): stride 4 col 2 = 1 (px 9, 10),
    P3 col 1 = (0 + 1) / 2 = 1/2 exactly -> kept (only values below 1/2 are cut)."""
    sem = np.zeros((64, 64), np.uint8)
    sem[:, :6] = 1
    sem[:, 8:12] = 2
    targets = FCNTargets(1, 3)
    out = targets(sem, np.zeros((0, 64, 64), np.uint8), np.zeros(0, int))
    np.testing.assert_array_equal(out['stuff_masks'][1][0, :3], [1, 0.5, 0])
    offsets = targets.level_offsets(64, 64)
    p3 = _level(out['stuff_targets'], offsets, 0, (8, 8))
    p4 = _level(out['stuff_targets'], offsets, 1, (4, 4))
    np.testing.assert_array_equal(p3[1][:, :2], np.tile([0.75, 0], (8, 1)))
    np.testing.assert_array_equal(p3[2][:, :3], np.tile([0, 0.5, 0], (8, 1)))
    assert not p4[1].any()


def test_ignore_pixels_count_for_no_class():
    sem = np.full((32, 64), 255, np.uint8)
    sem[:, 32:] = 0
    out = FCNTargets(1, 2)(sem, np.zeros((0, 32, 64), np.uint8), np.zeros(0, int))
    np.testing.assert_array_equal(out['stuff_masks'][:, :, :8], 0)  # every channel
    np.testing.assert_array_equal(out['stuff_masks'][0, :, 8:], 1)
    all_ignored = FCNTargets(1, 2)(np.full((32, 32), 255, np.uint8),
                                   np.zeros((0, 32, 32), np.uint8), np.zeros(0, int))
    assert not all_ignored['stuff_masks'].any() and not all_ignored['stuff_targets'].any()


def test_stuff_maps_match_a_slow_reimplementation():
    rng = np.random.RandomState(5)
    height, width, num_stuff = 64, 96, 4
    sem = rng.randint(0, num_stuff, size=(height // 2, width // 2)).repeat(2, 0).repeat(2, 1)
    sem = sem.astype(np.uint8)
    sem[rng.rand(height, width) < 0.1] = 255
    sem[rng.rand(height, width) < 0.1] = 2
    targets = FCNTargets(1, num_stuff)
    out = targets(sem, np.zeros((0, height, width), np.uint8), np.zeros(0, int))
    offsets = targets.level_offsets(height, width)
    for cls in range(num_stuff):
        onehot = _slow_resize((sem == cls).astype(np.float64), height // 4, width // 4)
        np.testing.assert_allclose(out['stuff_masks'][cls], onehot, atol=1e-6)
        for level, (h, w) in enumerate(targets.level_shapes(height, width)):
            scores = np.minimum(_slow_resize(onehot, h, w), 1)
            scores[scores < 0.5] = 0
            got = _level(out['stuff_targets'], offsets, level, (h, w))[cls]
            np.testing.assert_allclose(got, scores, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# no things, resizing helper


def test_image_without_things():
    sem = np.ones((64, 96), np.uint8)
    for masks in (np.zeros((0, 64, 96), np.uint8), np.zeros((2, 64, 96), np.uint8)):
        out = FCNTargets(4, 3)(sem, masks, np.zeros(len(masks), int))
        P = OFFSETS_64x96[-1]
        assert out['inst_masks'].shape == (0, 16, 24)
        assert out['inst_guide'].shape == (0, P)
        for key in ('inst_classes', 'inst_levels', 'inst_centers'):
            assert out[key].shape == (0,), key
        assert out['center_targets'].shape == (4, P) and not out['center_targets'].any()
        assert out['stuff_targets'][1].all()


@pytest.mark.parametrize('stride', [2, 4, 8])
def test_downsample_binary_equals_a_whole_map_resize(stride):
    rng = np.random.RandomState(stride)
    for _ in range(5):
        mask = np.zeros((64, 96), np.uint8)
        y0, x0 = rng.randint(64), rng.randint(96)
        y1, x1 = rng.randint(y0 + 1, 65), rng.randint(x0 + 1, 97)
        mask[y0:y1, x0:x1] = rng.rand(y1 - y0, x1 - x0) < 0.6
        np.testing.assert_array_equal(downsample_binary(mask, stride),
                                      resize_bilinear(mask, 64 // stride, 96 // stride))


# ---------------------------------------------------------------------------------------------
# bad inputs


def _inputs(height=64, width=96, num=1):
    return (np.zeros((height, width), np.uint8), np.ones((num, height, width), np.uint8),
            np.zeros(num, int))


@pytest.mark.parametrize('change, message', [
    (lambda s, m, c: (np.zeros((100, 96), np.uint8), np.ones((1, 100, 96), np.uint8), c),
     'height 100'),
    (lambda s, m, c: (np.zeros((64, 80), np.uint8), np.ones((1, 64, 80), np.uint8), c),
     'width 80'),
    (lambda s, m, c: (s, np.ones((1, 64, 64), np.uint8), c), r'\(1, 64, 64\)'),
    (lambda s, m, c: (s, m[0], c), r'\(64, 96\)'),
    (lambda s, m, c: (s, m, np.array([7])), 'class 7'),
    (lambda s, m, c: (s, m, np.array([-1])), 'class -1'),
    (lambda s, m, c: (s, m, np.array([0, 1])), r'\(2,\)'),
    (lambda s, m, c: (s, m, np.array([0.5])), 'float'),
    (lambda s, m, c: (s + 9, m, c), 'label 9'),
    (lambda s, m, c: (s, m * 3, c), 'value 3'),
    (lambda s, m, c: (s[None], m, c), r'sem_seg has shape \(1, 64, 96\)'),
])
def test_bad_inputs_name_the_value(change, message):
    with pytest.raises(ValueError, match=message):
        FCNTargets(3, 5)(*change(*_inputs()))


@pytest.mark.parametrize('kwargs, message', [
    (dict(center_type='corner'), 'corner'),
    (dict(min_overlap=1.5), '1.5'),
    (dict(common_stride=3), 'common_stride 3'),
    (dict(strides=(8, 16, 32)), 'instance_scales'),
    (dict(strides=(8, 16, 40, 64, 128)), '40'),
    (dict(num_things=0), 'num_things 0'),
])
def test_bad_arguments_name_the_value(kwargs, message):
    args = dict(num_things=3, num_stuff_classes=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        FCNTargets(**args)


def test_level_shapes_reject_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match='width 100'):
        FCNTargets(3, 5).level_shapes(64, 100)
