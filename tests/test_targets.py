"""Panoptic ids -> segment index -> semantic map, boxes, classes, masks."""
import numpy as np
import pytest

from gluonpan.data import cityscapes_categories, panoptic_targets, segment_index
from gluonpan.errors import DataError

CATS = cityscapes_categories()


def _scene():
    """A 20x30 scene: road (7), sky (23), two cars (26), a person (24), a car crowd, void."""
    pan = np.zeros((20, 30), np.int32)
    pan[:10] = 23
    pan[10:] = 7
    pan[12:16, 2:8] = 26000
    pan[12:18, 8:12] = 26001        # touches the first car
    pan[5:15, 20:23] = 24000
    pan[16:20, 20:30] = 26          # crowd of cars
    pan[0:2, 0:3] = 0               # void
    segs = [dict(id=23, category_id=23, iscrowd=0), dict(id=7, category_id=7, iscrowd=0),
            dict(id=26000, category_id=26, iscrowd=0), dict(id=26001, category_id=26, iscrowd=0),
            dict(id=24000, category_id=24, iscrowd=0), dict(id=26, category_id=26, iscrowd=1)]
    return pan, segs


def test_targets_match_hand_computed_ground_truth():
    pan, segs = _scene()
    t = panoptic_targets(segment_index(pan, segs), segs, CATS)
    things = CATS.num_stuff  # the single "things" class of the separated mode
    assert t['sem_seg'][0, 0] == 255
    assert t['sem_seg'][5, 5] == CATS.stuff_id_to_contiguous[23]
    assert t['sem_seg'][19, 0] == CATS.stuff_id_to_contiguous[7]
    assert t['sem_seg'][13, 3] == things and t['sem_seg'][17, 25] == things  # crowd is "things"
    # crowd is not an instance: 3 instances in segments_info order (car, car, person)
    assert t['gt_classes'].tolist() == [CATS.thing_id_to_contiguous[26]] * 2 + \
        [CATS.thing_id_to_contiguous[24]]
    assert t['gt_boxes'].tolist() == [[2, 12, 7, 15], [8, 12, 11, 17], [20, 5, 22, 14]]
    for mask, sid in zip(t['gt_masks'], (26000, 26001, 24000)):
        np.testing.assert_array_equal(mask, pan == sid)


def test_all_mode_gives_train_ids():
    pan, segs = _scene()
    t = panoptic_targets(segment_index(pan, segs), segs, CATS, sem_mode='all')
    train_id = {c['id']: c['trainId'] for c in CATS.categories}
    assert t['sem_seg'][13, 3] == train_id[26] and t['sem_seg'][10, 21] == train_id[24]
    assert t['sem_seg'][17, 25] == train_id[26]


def test_cropped_away_instance_is_dropped_and_empty_image_works():
    pan, segs = _scene()
    idx = segment_index(pan, segs)[:, 13:19]   # only road/sky columns
    t = panoptic_targets(idx, segs, CATS)
    assert t['gt_boxes'].shape == (0, 4) and t['gt_masks'].shape == (0, 20, 6)
    assert t['gt_classes'].shape == (0,)


def test_png_id_missing_from_json_is_named():
    pan, segs = _scene()
    with pytest.raises(ValueError, match=r'x\.png.*\[24000\]'):
        segment_index(pan, [s for s in segs if s['id'] != 24000], where='x.png')


def test_json_segment_missing_from_png_is_named():
    pan, segs = _scene()
    with pytest.raises(ValueError, match=r'y\.png.*\[33000\]'):
        segment_index(pan, segs + [dict(id=33000, category_id=33, iscrowd=0)], where='y.png')


def test_unknown_category_is_named():
    pan, segs = _scene()
    segs[0] = dict(id=23, category_id=99, iscrowd=0)
    with pytest.raises(DataError, match=r'99.*z\.png segment 23'):
        panoptic_targets(segment_index(pan, segs), segs, CATS, where='z.png')


def test_one_pixel_thin_instance_is_not_an_instance_target():
    pan, segs = _scene()
    pan[0:8, 29] = 26002  # a 1-pixel-wide sliver of a car at the right border
    segs = segs + [dict(id=26002, category_id=26, iscrowd=0)]
    t = panoptic_targets(segment_index(pan, segs), segs, CATS)
    assert len(t['gt_boxes']) == 3 and t['sem_seg'][3, 29] == CATS.num_stuff
    assert len(panoptic_targets(segment_index(pan, segs), segs, CATS, min_box_size=1)['gt_boxes']) == 4
