"""Joint transforms keep image and labels aligned to the pixel."""
import cv2
import numpy as np
import pytest

from gluonpan.data import PanopticTrainTransform, cityscapes_categories, segment_index
from gluonpan.data.transforms import IMAGENET_MEAN, IMAGENET_STD, affine_matrix, warp_image, warp_labels

CATS = cityscapes_categories()


def _rect_scene(height=96, width=160, seed=0):
    """Rectangles (convex regions) with a distinct colour per segment; image = palette[seg_index]."""
    rng = np.random.default_rng(seed)
    pan = np.full((height, width), 7, np.int32)
    pan[: height // 3] = 23
    segs = [dict(id=7, category_id=7, iscrowd=0, bbox=[0, 0, width, height]),
            dict(id=23, category_id=23, iscrowd=0, bbox=[0, 0, width, height // 3])]
    for k in range(6):
        y, x = rng.integers(0, height - 20), rng.integers(0, width - 20)
        h, w = rng.integers(8, 20), rng.integers(8, 20)
        pan[y:y + h, x:x + w] = 26000 + k
    for k in range(6):
        m = pan == 26000 + k
        if m.any():
            ys, xs = np.nonzero(m)
            segs.append(dict(id=26000 + k, category_id=26, iscrowd=0,
                             bbox=[int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1,
                                   int(np.ptp(ys)) + 1]))
    palette = rng.integers(0, 256, (len(segs) + 1, 3)).astype(np.uint8)
    index = segment_index(pan, segs)
    return {'image': palette[index], 'seg_index': index, 'pan_ids': pan, 'segments_info': segs,
            'image_id': 'x', 'file_name': 'x.png'}, palette


def _uniform_interior(labels):
    """Pixels whose 3x3 neighbourhood has one label."""
    lo = cv2.erode(labels.astype(np.float32), np.ones((3, 3)))
    hi = cv2.dilate(labels.astype(np.float32), np.ones((3, 3)))
    inner = np.zeros_like(labels, bool)
    inner[1:-1, 1:-1] = True
    return (lo == hi) & inner


@pytest.mark.parametrize('seed', range(8))
def test_train_transform_keeps_image_and_labels_aligned(seed):
    sample, palette = _rect_scene(seed=seed)
    t = PanopticTrainTransform(CATS, crop_size=(64, 96), scale_range=(0.5, 2.0))
    out = t(sample, seed=seed)
    image = out['data'].transpose(1, 2, 0) * np.array(IMAGENET_STD) * 255 + \
        np.array(IMAGENET_MEAN) * 255  # (H, W, 3) back to pixel values
    # rebuild the warped index map from masks / semantic classes: every instance mask must carry
    # its own colour, every stuff pixel the colour of its stuff segment
    checked = 0
    for mask, box in zip(out['gt_masks'], out['gt_boxes']):
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == tuple(box)
        inner = _uniform_interior(mask.astype(np.uint8)) & mask.astype(bool)
        if inner.any():
            colours = image[inner]
            # all interior pixels of one instance share one palette colour
            assert np.abs(colours - colours[0]).max() < 1.5
            assert np.abs(palette - colours[0]).max(axis=1).min() < 1.5
            checked += 1
    sem = out['sem_seg']
    sky = CATS.stuff_id_to_contiguous[23]
    inner = _uniform_interior(sem) & (sem == sky)
    if inner.any():
        np.testing.assert_allclose(image[inner], np.broadcast_to(palette[2], image[inner].shape),
                                   atol=1.5)
    assert out['data'].shape == (3, 64, 96) and out['sem_seg'].shape == (64, 96)
    assert checked > 0 or len(out['gt_masks']) == 0


def test_flip_is_an_exact_mirror_and_scale_matches_cv2_resize():
    sample, _ = _rect_scene()
    img, idx = sample['image'], sample['seg_index']
    h, w = idx.shape
    m = affine_matrix(1.0, (0, 0), flip_width=w)
    np.testing.assert_array_equal(warp_labels(idx, m, (h, w)), idx[:, ::-1])
    np.testing.assert_array_equal(warp_image(img, m, (h, w)), img[:, ::-1])
    m2 = affine_matrix(2.0)
    ref = cv2.resize(img, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR).astype(int)
    got = warp_image(img, m2, (2 * h, 2 * w)).astype(int)
    assert np.abs(ref - got)[2:-2, 2:-2].max() <= 1
    # nearest upscaling by 2: every label pixel becomes a 2x2 block
    np.testing.assert_array_equal(warp_labels(idx, m2, (2 * h, 2 * w)),
                                  idx.repeat(2, axis=0).repeat(2, axis=1))


def test_crop_prefers_instances_and_padding_is_ignored():
    sample, _ = _rect_scene(height=96, width=160)
    # keep a single small car far from the others
    pan = np.full((96, 160), 7, np.int32)
    pan[80:90, 150:158] = 26000
    segs = [dict(id=7, category_id=7, iscrowd=0, bbox=[0, 0, 160, 96]),
            dict(id=26000, category_id=26, iscrowd=0, bbox=[150, 80, 8, 10])]
    sample.update(seg_index=segment_index(pan, segs), segments_info=segs)
    t = PanopticTrainTransform(CATS, crop_size=(32, 32), scale_range=(1.0, 1.0), flip=False)
    # a uniformly random 32x32 crop of 96x160 holds part of the car 2% of the time
    assert all(len(t(sample, seed=s)['gt_boxes']) == 1 for s in range(20))
    big = PanopticTrainTransform(CATS, crop_size=(128, 192), scale_range=(1.0, 1.0), flip=False)
    out = big(sample, seed=0)
    assert (out['sem_seg'][96:] == 255).all() and (out['sem_seg'][:, 160:] == 255).all()
    assert (out['sem_seg'][:96, :150] == CATS.stuff_id_to_contiguous[7]).all()


def test_crop_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match='multiples of 32'):
        PanopticTrainTransform(CATS, crop_size=(100, 200))
