"""Synthetic Cityscapes / COCO generator: layout, determinism, and that cityscapesscripts'
createPanopticImgs output agrees with the generator's own ground truth."""
import filecmp
import glob
import json
import os

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels, name2label

from gluonpan.data.categories import cityscapes_categories, rgb2id
from gluonpan.data.synthetic import (COCO_CATEGORY_IDS, ensure_cityscapes, ensure_coco_panoptic,
                                     generate_cityscapes, generate_scene, main, read_instance_ids,
                                     scene_for_image, segments_from_instance_ids,
                                     write_coco_panoptic)

H, W = 128, 256
SPLITS = (('train', 3), ('val', 2))
VOID_IDS = [l.id for l in labels if l.ignoreInEval and l.id >= 0]


@pytest.fixture(scope='module')
def citys(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('citys'))
    summary = generate_cityscapes(root, splits=SPLITS, height=H, width=W, seed=3)
    return root, summary


@pytest.fixture(scope='module')
def default_scenes():
    """The scenes of the default dataset (8 train + 4 val at 256x512), in memory."""
    return [generate_scene(0, split, i, 256, 512) for split, n in (('train', 8), ('val', 4))
            for i in range(n)]


def _read_rgb(path):
    return cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]


def test_cityscapes_layout(citys):
    root, summary = citys
    assert summary['splits'] == dict(SPLITS) and summary['images'] == 5 and summary['generated']
    for split, n in SPLITS:
        images = sorted(glob.glob(os.path.join(root, 'leftImg8bit', split, '*', '*_leftImg8bit.png')))
        assert len(images) == n
        with open(os.path.join(root, 'gtFine', 'cityscapes_panoptic_{}.json'.format(split))) as f:
            data = json.load(f)
        assert sorted(im['id'] for im in data['images']) == sorted(
            os.path.basename(p)[:-len('_leftImg8bit.png')] for p in images)
        for path in images:
            city = os.path.basename(os.path.dirname(path))
            stem = os.path.basename(path)[:-len('_leftImg8bit.png')]
            assert stem.split('_')[0] == city and len(stem.split('_')) == 3
            assert _read_rgb(path).shape == (H, W, 3)
            gt = os.path.join(root, 'gtFine', split, city, stem + '_gtFine_')
            assert cv2.imread(gt + 'labelIds.png', cv2.IMREAD_UNCHANGED).dtype == np.uint8
            assert read_instance_ids(gt + 'instanceIds.png').shape == (H, W)
            assert os.path.isfile(gt + 'color.png')
            assert os.path.isfile(os.path.join(root, 'gtFine', 'cityscapes_panoptic_' + split,
                                               stem + '_gtFine_panoptic.png'))
        for im, ann in zip(data['images'], data['annotations']):
            assert ann['image_id'] == im['id'] and (im['height'], im['width']) == (H, W)
            assert ann['file_name'] == im['id'] + '_gtFine_panoptic.png'


def test_panoptic_json_has_the_19_evaluated_categories(citys):
    with open(os.path.join(citys[0], 'gtFine', 'cityscapes_panoptic_train.json')) as f:
        cats = json.load(f)['categories']
    expected = cityscapes_categories()
    assert sorted(c['id'] for c in cats) == sorted(expected.by_id)
    for c in cats:
        assert c['name'] == expected.by_id[c['id']]['name']
        assert c['isthing'] == expected.by_id[c['id']]['isthing']
    assert sum(c['isthing'] for c in cats) == 8


def test_create_panoptic_imgs_agrees_with_generator(citys):
    root = citys[0]
    n_segments = 0
    for split, _ in SPLITS:
        with open(os.path.join(root, 'gtFine', 'cityscapes_panoptic_{}.json'.format(split))) as f:
            data = json.load(f)
        for ann in data['annotations']:
            scene = scene_for_image(root, split, ann['image_id'])
            city = ann['image_id'].split('_')[0]
            gt = os.path.join(root, 'gtFine', split, city, ann['image_id'] + '_gtFine_')
            np.testing.assert_array_equal(read_instance_ids(gt + 'instanceIds.png'), scene.instance_ids)
            np.testing.assert_array_equal(cv2.imread(gt + 'labelIds.png', cv2.IMREAD_UNCHANGED),
                                          scene.label_ids)
            image = _read_rgb(os.path.join(root, 'leftImg8bit', split, city,
                                           ann['image_id'] + '_leftImg8bit.png'))
            np.testing.assert_array_equal(image, scene.image)
            pan = rgb2id(_read_rgb(os.path.join(root, 'gtFine', 'cityscapes_panoptic_' + split,
                                                ann['file_name'])))
            expected = scene.segments()  # reverse z-buffer over the drawn layers
            got = {s['id']: s for s in ann['segments_info']}
            assert sorted(got) == [s['id'] for s in expected]
            for seg in expected:
                info = got[seg['id']]
                for key in ('category_id', 'iscrowd', 'area', 'bbox'):
                    assert info[key] == seg[key], (ann['image_id'], seg['id'], key)
                np.testing.assert_array_equal(pan == seg['id'], seg['mask'])
                n_segments += 1
            void = np.isin(scene.label_ids, VOID_IDS)
            np.testing.assert_array_equal(pan == 0, void)
    assert n_segments > 20


def test_deterministic_and_independent_of_count(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    generate_cityscapes(a, splits=(('train', 2),), height=64, width=128, seed=5)
    generate_cityscapes(b, splits=(('train', 2),), height=64, width=128, seed=5)
    files_a, files_b = [sorted(os.path.relpath(p, r) for p in
                               glob.glob(os.path.join(r, '**', '*.*'), recursive=True)) for r in (a, b)]
    assert files_a == files_b and len(files_a) == 2 * 5 + 2  # 5 files per image, JSON, stamp
    for rel in files_a:
        if rel != 'synthetic.json':  # holds the root path
            assert filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False), rel
    alone = generate_scene(5, 'train', 1, 64, 128)
    written = scene_for_image(a, 'train', 'bremen_000001_000019')
    np.testing.assert_array_equal(alone.image, written.image)
    assert not np.array_equal(generate_scene(5, 'train', 0, 64, 128).image, alone.image)
    assert not np.array_equal(generate_scene(5, 'val', 1, 64, 128).image, alone.image)


def test_default_set_has_crowd_void_and_learnable_instances(default_scenes):
    crowd = sum(any(s['iscrowd'] for s in sc.segments()) for sc in default_scenes)
    ego = sum((sc.label_ids == name2label['ego vehicle'].id).any() for sc in default_scenes)
    static = sum((sc.label_ids == name2label['static'].id).any() for sc in default_scenes)
    assert crowd >= 1 and ego >= 1 and static >= 1
    counts = [sum(s['isthing'] and not s['iscrowd'] for s in sc.segments()) for sc in default_scenes]
    assert 3 <= np.mean(counts) <= 12 and max(counts) <= 14
    heights = [s['bbox'][3] for sc in default_scenes for s in sc.segments() if s['isthing']]
    assert np.mean(np.array(heights) >= 12) > 0.9
    classes = {s['category_id'] for sc in default_scenes for s in sc.segments() if s['isthing']}
    assert {name2label['car'].id, name2label['person'].id} <= classes and len(classes) >= 4
    # touching instances of one class exist (4-neighbourhood contact between two ids of one label)
    touching = 0
    for sc in default_scenes:
        ids = sc.instance_ids.astype(np.int64)
        for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:], ids[:-1])):
            touching += np.any((a != b) & (a >= 1000) & (b >= 1000) & (a // 1000 == b // 1000))
    assert touching >= 1


def test_no_fully_occluded_instance_and_layers_match_painting(default_scenes):
    ego_id = name2label['ego vehicle'].id
    for sc in default_scenes:
        for layer in sc.layers:
            if layer.shade is not None or not name2label[layer.name].hasInstances:
                continue
            drawn = (layer.parts > 0) & (sc.label_ids[layer.window] != ego_id)
            visible = drawn & (sc.instance_ids[layer.window] == layer.seg_id)
            assert visible.sum() >= 8 and visible.sum() >= 0.25 * drawn.sum(), layer.seg_id
        painted = segments_from_instance_ids(sc.instance_ids)
        drawn = sc.segments()
        assert [s['id'] for s in painted] == [s['id'] for s in drawn]
        for p, d in zip(painted, drawn):
            np.testing.assert_array_equal(p['mask'], d['mask'])


def test_coco_split(tmp_path):
    root = str(tmp_path / 'coco')
    summary = write_coco_panoptic(root, splits=(('val', 3),), height=H, width=W, seed=3)
    with open(summary['json']['val']) as f:
        data = json.load(f)
    cat_ids = sorted(c['id'] for c in data['categories'])
    assert cat_ids == sorted(COCO_CATEGORY_IDS.values()) and len(cat_ids) == 19
    assert cat_ids != list(range(cat_ids[0], cat_ids[0] + 19))  # non-contiguous
    by_id = {c['id']: c for c in data['categories']}
    assert all(isinstance(im['id'], int) for im in data['images'])
    assert len({im['id'] for im in data['images']}) == 3
    crowd = 0
    for im, ann in zip(data['images'], data['annotations']):
        assert ann['image_id'] == im['id'] and im['file_name'] == '{:012d}.jpg'.format(im['id'])
        assert _read_rgb(os.path.join(root, 'val2017', im['file_name'])).shape == (H, W, 3)
        pan = rgb2id(_read_rgb(os.path.join(root, 'annotations', 'panoptic_val2017', ann['file_name'])))
        ids = [s['id'] for s in ann['segments_info']]
        assert sorted(set(np.unique(pan)) - {0}) == sorted(ids)
        assert max(ids) > 1000  # arbitrary ids, not label ids
        for s in ann['segments_info']:
            mask = pan == s['id']
            ys, xs = np.nonzero(mask)
            assert s['area'] == mask.sum()
            assert s['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert s['category_id'] in by_id
            assert s['iscrowd'] in (0, 1) and (not s['iscrowd'] or by_id[s['category_id']]['isthing'])
            crowd += s['iscrowd']
        # the same scene as the Cityscapes writer would produce, with COCO category ids
        scene = scene_for_image(root, 'val', im['id'])
        coco_of = {name2label[n].id: c for n, c in COCO_CATEGORY_IDS.items()}
        assert sorted((coco_of[s['category_id']], s['area']) for s in scene.segments()) == sorted(
            (s['category_id'], s['area']) for s in ann['segments_info'])


def test_ensure_reuses_and_regenerates(tmp_path):
    root = str(tmp_path / 'e')
    kw = dict(splits=(('val', 1),), height=64, width=128)
    assert ensure_cityscapes(root, **kw)['generated']
    json_path = os.path.join(root, 'gtFine', 'cityscapes_panoptic_val.json')
    mtime = os.stat(json_path).st_mtime_ns
    again = ensure_cityscapes(root, **kw)
    assert not again['generated'] and os.stat(json_path).st_mtime_ns == mtime
    assert again['json']['val'] == json_path
    assert ensure_cityscapes(root, seed=1, **kw)['generated']
    with pytest.raises(FileExistsError):
        generate_cityscapes(root, **kw)  # exists, no overwrite
    other = tmp_path / 'real'
    (other / 'gtFine').mkdir(parents=True)
    with pytest.raises(FileExistsError, match='stamp'):
        ensure_cityscapes(str(other), **kw)  # not ours: never deleted
    coco = str(tmp_path / 'c')
    assert ensure_coco_panoptic(coco, **kw)['generated']
    assert not ensure_coco_panoptic(coco, **kw)['generated']


def test_cli(tmp_path):
    root, coco = str(tmp_path / 'cli'), str(tmp_path / 'cli_coco')
    assert main(['--root', root, '--train', '1', '--val', '1', '--height', '64', '--width', '128',
                 '--coco-root', coco]) == 0
    assert os.path.isfile(os.path.join(root, 'gtFine', 'cityscapes_panoptic_val.json'))
    assert os.path.isfile(os.path.join(coco, 'annotations', 'panoptic_train2017.json'))


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match='height and width'):
        generate_scene(0, 'train', 0, 16, 128)
    with pytest.raises(ValueError, match='bad split'):
        generate_cityscapes(str(tmp_path / 'x'), splits=(('my_split', 1),))
    with pytest.raises(ValueError, match='city'):
        generate_cityscapes(str(tmp_path / 'y'), splits=(('val', 1),), cities=['a_b'])
    rgb = str(tmp_path / 'rgb.png')
    cv2.imwrite(rgb, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='16-bit'):
        read_instance_ids(rgb)
    with pytest.raises(FileNotFoundError):
        read_instance_ids(str(tmp_path / 'missing.png'))
