"""Round trip generator -> createPanopticImgs -> dataset, and clear errors on bad input."""
import glob
import json
import os

import cv2
import numpy as np
import pytest

from gluonpan.data import CityscapesPanoptic, COCOPanoptic
from gluonpan.data.check import check_dataset
from cityscapesscripts.helpers.labels import id2label
from gluonpan.data.synthetic import COCO_CATEGORY_IDS, scene_for_image
from gluonpan.errors import DataError


@pytest.mark.parametrize('split', ['train', 'val'])
def test_cityscapes_targets_equal_generator_ground_truth(synthetic_citys, split):
    ds = CityscapesPanoptic(synthetic_citys, split)
    assert len(ds) == {'train': 3, 'val': 2}[split]
    cats = ds.categories
    for i in range(len(ds)):
        s = ds[i]
        scene = scene_for_image(synthetic_citys, split, s['image_id'])
        truth = scene.segments()
        assert s['image'].shape == scene.image.shape
        np.testing.assert_array_equal(s['image'], scene.image)
        by_id = {t['id']: t for t in truth}
        assert sorted(seg['id'] for seg in s['segments_info']) == sorted(by_id)
        for seg in s['segments_info']:
            t = by_id[seg['id']]
            assert (seg['category_id'], seg['iscrowd'], seg['area']) == \
                (t['category_id'], t['iscrowd'], int(t['mask'].sum()))
        things = [t for t in truth if t['isthing'] and not t['iscrowd']]
        # dataset instances come in segments_info order; match them by mask
        assert len(s['gt_masks']) == len(things)
        for mask, box, cls in zip(s['gt_masks'], s['gt_boxes'], s['gt_classes']):
            t = next(t for t in things if np.array_equal(t['mask'], mask.astype(bool)))
            x, y, w, h = t['bbox']
            assert box.tolist() == [x, y, x + w - 1, y + h - 1]
            assert cats.thing_ids[cls] == t['category_id']
        # semantic map: stuff pixels carry their class, thing pixels (crowd too) the "things" class
        for t in truth:
            expect = cats.num_stuff if t['isthing'] else cats.stuff_id_to_contiguous[t['category_id']]
            assert (s['sem_seg'][t['mask']] == expect).all()
        assert (s['sem_seg'][s['pan_ids'] == 0] == 255).all()


def test_coco_targets_equal_generator_ground_truth(synthetic_coco):
    ds = COCOPanoptic(synthetic_coco, 'val')
    assert len(ds.categories.thing_ids) == 8 and ds.categories.thing_ids != list(range(1, 9))
    for i in range(len(ds)):
        s = ds[i]
        truth = scene_for_image(synthetic_coco, 'val', s['image_id']).segments()
        things = [t for t in truth if t['isthing'] and not t['iscrowd']]
        assert len(s['gt_masks']) == len(things)
        for mask, cls in zip(s['gt_masks'], s['gt_classes']):
            t = next(t for t in things if np.array_equal(t['mask'], mask.astype(bool)))
            # the scene speaks Cityscapes label ids; the COCO split renames them
            assert ds.categories.thing_ids[cls] == COCO_CATEGORY_IDS[id2label[t['category_id']].name]


def test_check_command_counts(synthetic_citys):
    r = check_dataset(CityscapesPanoptic(synthetic_citys, 'val'))
    assert r['images'] == 2 and sum(r['instances'].values()) > 0 and r['segments']['road'] == 2


def _first(root, pattern):
    return sorted(glob.glob(os.path.join(root, pattern), recursive=True))[0]


def _edit_json(root, fn):
    path = os.path.join(root, 'gtFine', 'cityscapes_panoptic_val.json')
    with open(path) as f:
        data = json.load(f)
    fn(data)
    with open(path, 'w') as f:
        json.dump(data, f)
    return data


def test_missing_json_names_cityscapesscripts_step(tmp_path):
    with pytest.raises(FileNotFoundError, match='csCreatePanopticImgs'):
        CityscapesPanoptic(str(tmp_path), 'val')


def test_missing_image_is_named(citys_copy):
    img = _first(citys_copy, 'leftImg8bit/val/*/*.png')
    os.remove(img)
    with pytest.raises(FileNotFoundError, match=os.path.basename(img)):
        CityscapesPanoptic(citys_copy, 'val')


def test_png_id_absent_from_json_is_named(citys_copy):
    removed = {}

    def drop(data):
        ann = data['annotations'][0]
        removed['seg'] = ann['segments_info'].pop()
        removed['file'] = ann['file_name']
    _edit_json(citys_copy, drop)
    ds = CityscapesPanoptic(citys_copy, 'val')
    with pytest.raises(ValueError, match=r'{}.*\[{}\]'.format(removed['file'], removed['seg']['id'])):
        ds[0]


def test_json_segment_absent_from_png_is_named(citys_copy):
    _edit_json(citys_copy, lambda d: d['annotations'][0]['segments_info'].append(
        dict(id=33999, category_id=33, iscrowd=0, area=1, bbox=[0, 0, 1, 1])))
    with pytest.raises(ValueError, match=r'33999'):
        CityscapesPanoptic(citys_copy, 'val')[0]


def test_unknown_category_is_named(citys_copy):
    data = _edit_json(citys_copy, lambda d: d['annotations'][0]['segments_info'][0].update(
        category_id=99))
    seg_id = data['annotations'][0]['segments_info'][0]['id']
    with pytest.raises(DataError, match=r'99.*segment {}'.format(seg_id)):
        CityscapesPanoptic(citys_copy, 'val')[0]


@pytest.mark.parametrize('which', ['leftImg8bit/val/*/*.png', 'gtFine/cityscapes_panoptic_val/*.png'])
def test_truncated_png_is_named(citys_copy, which):
    path = _first(citys_copy, which)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    ds = CityscapesPanoptic(citys_copy, 'val')
    idx = next(i for i, r in enumerate(ds.records) if path in (r['image_path'], r['pan_path']))
    with pytest.raises(DataError, match=os.path.basename(path)):
        ds[idx]


def test_grayscale_cityscapes_image_is_an_error_coco_is_converted(citys_copy, synthetic_coco, tmp_path):
    path = _first(citys_copy, 'leftImg8bit/val/*/*.png')
    cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_GRAYSCALE))
    with pytest.raises(ValueError, match=os.path.basename(path)):
        CityscapesPanoptic(citys_copy, 'val')[0]
    import shutil
    coco = str(tmp_path / 'coco')
    shutil.copytree(synthetic_coco, coco)
    jpg = _first(coco, 'val2017/*.jpg')
    cv2.imwrite(jpg, cv2.imread(jpg, cv2.IMREAD_GRAYSCALE))
    ds = COCOPanoptic(coco, 'val')
    idx = next(i for i, r in enumerate(ds.records) if r['image_path'] == jpg)
    img = ds[idx]['image']
    assert img.shape[2] == 3 and (img[..., 0] == img[..., 1]).all()


def test_image_and_png_size_mismatch_is_named(citys_copy):
    path = _first(citys_copy, 'leftImg8bit/val/*/*.png')
    img = cv2.imread(path)
    cv2.imwrite(path, img[:-8])
    ds = CityscapesPanoptic(citys_copy, 'val')
    idx = next(i for i, r in enumerate(ds.records) if r['image_path'] == path)
    with pytest.raises(ValueError, match='panoptic PNG'):
        ds[idx]


def test_worker_processes_give_the_same_batches(synthetic_citys):
    """Augmentation depends on the sampler's keys only, not on which process loads a sample."""
    from mxnet.gluon.data import BatchSampler, DataLoader

    from gluonpan.data import EpochSampler, PanopticTrainTransform, train_batchify
    from gluonpan.nn.anchors import FPNAnchors

    def batches(workers):
        ds = CityscapesPanoptic(synthetic_citys, 'train')
        ds.transform = PanopticTrainTransform(ds.categories, FPNAnchors(), crop_size=(64, 128))
        sampler = EpochSampler(len(ds), seed=1)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_sampler=BatchSampler(sampler, 2, 'keep'),
                            batchify_fn=train_batchify, num_workers=workers)
        return [{k: v.asnumpy() for k, v in b.items() if k != 'image_id'} for b in loader]

    single, multi = batches(0), batches(2)
    assert len(single) == len(multi) == 2
    for a, b in zip(single, multi):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
