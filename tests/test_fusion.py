"""Panoptic fusion rules on hand-built masks (no network involved)."""
import numpy as np
import pytest

from gluonpan.data.categories import PanopticCategories
from gluonpan.postprocess import combine_instances_and_semantics

# things: person=24 (class 0), car=26 (class 1); stuff: road=7 (semantic 0), building=11 (1);
# semantic class 2 is "things"
CATEGORIES = PanopticCategories([
    dict(id=7, name='road', isthing=0), dict(id=11, name='building', isthing=0),
    dict(id=24, name='person', isthing=1), dict(id=26, name='car', isthing=1)])
ROAD, BUILDING, THINGS = 0, 1, 2


def box_mask(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def fuse(masks, scores, classes, semantic, **kwargs):
    masks = np.asarray(masks, dtype=bool).reshape((-1,) + semantic.shape)  # (K, H, W)
    return combine_instances_and_semantics(masks, scores, classes, semantic, CATEGORIES, **kwargs)


def test_ids_follow_the_convention_and_areas_match():
    semantic = np.full((10, 10), THINGS)
    a, b, c = box_mask((10, 10), 0, 4, 0, 4), box_mask((10, 10), 5, 10, 5, 10), \
        box_mask((10, 10), 0, 3, 6, 9)
    pan, info = fuse([a, b, c], [0.9, 0.8, 0.7], [0, 0, 1], semantic, stuff_area_threshold=0)
    assert [s['id'] for s in info] == [24000, 24001, 26000]
    assert [s['category_id'] for s in info] == [24, 24, 26]
    assert all(s['isthing'] == 1 for s in info)
    for s in info:
        assert s['area'] == int((pan == s['id']).sum())
    assert (pan[a] == 24000).all() and (pan[b] == 24001).all() and (pan[c] == 26000).all()
    assert pan.dtype == np.int32


def test_score_threshold_is_inclusive():
    semantic = np.full((8, 8), THINGS)
    m1, m2 = box_mask((8, 8), 0, 4, 0, 4), box_mask((8, 8), 4, 8, 4, 8)
    _, info = fuse([m1, m2], [0.5, 0.4999], [0, 1], semantic, score_threshold=0.5,
                   stuff_area_threshold=0)
    assert [s['category_id'] for s in info] == [24]
    assert info[0]['score'] == pytest.approx(0.5)


def test_overlap_rule_drops_mostly_covered_and_trims_the_rest():
    semantic = np.full((10, 10), THINGS)
    first = box_mask((10, 10), 0, 10, 0, 5)  # 50 pixels, columns 0-4
    covered = box_mask((10, 10), 0, 10, 2, 6)  # 40 pixels, 30 taken: 0.75 > 0.5 -> dropped
    half = box_mask((10, 10), 0, 10, 3, 7)  # 40 pixels, 20 taken: 0.5 is not > 0.5 -> kept
    pan, info = fuse([covered, first, half], [0.8, 0.9, 0.7], [1, 0, 1], semantic,
                     overlap_threshold=0.5, stuff_area_threshold=0)
    assert [(s['id'], s['area']) for s in info] == [(24000, 50), (26000, 20)]
    assert (pan[:, 5:7] == 26000).all() and (pan[:, 7:] == 0).all()


def test_higher_score_wins_regardless_of_input_order():
    semantic = np.full((6, 6), THINGS)
    big, small = box_mask((6, 6), 0, 6, 0, 6), box_mask((6, 6), 0, 2, 0, 2)
    pan, info = fuse([small, big], [0.6, 0.9], [1, 0], semantic, stuff_area_threshold=0)
    assert [s['id'] for s in info] == [24000]  # small is fully covered by the better big one
    assert (pan == 24000).all()


def test_stuff_area_threshold_counts_free_pixels():
    semantic = np.full((100, 100), ROAD)
    semantic[:, 50:] = BUILDING  # 5000 pixels each
    person = box_mask((100, 100), 0, 100, 0, 10)  # takes 1000 road pixels -> 4000 free road
    pan, info = fuse([person], [0.9], [0], semantic, stuff_area_threshold=4096)
    assert [(s['id'], s['area']) for s in info] == [(24000, 1000), (11, 5000)]
    assert info[1]['isthing'] == 0 and info[1]['score'] is None
    assert (pan[:, 10:50] == 0).all()  # road below the threshold stays void
    pan, info = fuse([person], [0.9], [0], semantic, stuff_area_threshold=4000)
    assert [(s['id'], s['area']) for s in info] == [(24000, 1000), (7, 4000), (11, 5000)]


def test_things_pixels_without_an_instance_stay_void():
    semantic = np.full((100, 100), THINGS)
    semantic[:50] = ROAD
    pan, info = fuse(np.zeros((0, 100, 100)), [], [], semantic, stuff_area_threshold=10)
    assert [s['id'] for s in info] == [7]
    assert (pan[50:] == 0).all() and (pan[:50] == 7).all()


def test_empty_and_invalid_instances():
    semantic = np.full((4, 4), ROAD)
    pan, info = fuse([np.zeros((4, 4))], [0.99], [0], semantic, stuff_area_threshold=1)
    assert [s['id'] for s in info] == [7] and (pan == 7).all()  # empty mask is skipped
    with pytest.raises(ValueError, match='instance classes'):
        fuse([np.ones((4, 4))], [0.9], [2], semantic)
    with pytest.raises(ValueError, match='do not fit'):
        combine_instances_and_semantics(np.ones((1, 3, 3), bool), [0.9], [0], semantic,
                                        CATEGORIES)


def test_all_mode_never_uses_thing_categories_as_stuff():
    # 'all' mode: semantic classes are every category in id order: road, building, person, car
    semantic = np.full((80, 80), 2)  # person
    semantic[:40] = 0  # road
    pan, info = fuse(np.zeros((0, 80, 80)), [], [], semantic, stuff_area_threshold=1,
                     semantic_mode='all')
    assert [s['id'] for s in info] == [7] and (pan[40:] == 0).all()
