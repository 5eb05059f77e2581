"""Semantic datasets (Cityscapes train ids, ADE20K), their transforms and the synthetic ADE20K
layout: read back against cityscapesscripts' table and the files the generators wrote."""
import glob
import os
import re
import shutil

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels

from gluonpan.data.categories import (CITYSCAPES_TO_ADE20K, ade20k_class_names, ade20k_label_lut,
                                      cityscapes_train_id_lut, cityscapes_train_id_names,
                                      cityscapes_train_id_to_ade20k, ade20k_to_cityscapes_train_id)
from gluonpan.data.semantic_dataset import ADE20KSemantic, CityscapesSemantic
from gluonpan.data.semantic_presets import (SemanticTrainTransform, SemanticValTransform,
                                            largest_class_share)
from gluonpan.data.synthetic import generate_cityscapes, generate_scene
from gluonpan.data.synthetic_ade import ensure_ade20k, generate_ade20k
from gluonpan.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from gluonpan.errors import DataError, MissingFileError

H, W, SEED = 64, 128, 5
CITYS_SPLITS = (('train', 2), ('val', 2))
ADE_SPLITS = (('training', 2), ('validation', 2))


@pytest.fixture(scope='module')
def citys(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('citys_sem'))
    generate_cityscapes(root, splits=CITYS_SPLITS, height=H, width=W, seed=SEED, write_color=False)
    return root


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ade_sem'))
    ensure_ade20k(root, splits=ADE_SPLITS, height=H, width=W, seed=SEED)
    return root


def _copy(root, tmp_path):
    dst = os.path.join(str(tmp_path), 'copy')
    shutil.copytree(root, dst)
    return dst


def _denormalize(data):
    """(3, H, W) normalised -> (H, W, 3) float RGB 0..255."""
    rgb = data.transpose(1, 2, 0) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)
    return rgb * 255.0


# ----------------------------------------------------------------------------------------------
# id conventions


def test_cityscapes_lut_matches_cityscapesscripts_table():
    lut = cityscapes_train_id_lut()
    checked = 0
    for label in labels:
        if label.id < 0:  # license plate: cannot occur in a PNG
            continue
        expect = label.trainId if 0 <= label.trainId < 255 else 255
        assert lut[label.id] == expect, label.name
        checked += 1
    assert checked == 34 and not lut.flags.writeable
    names = cityscapes_train_id_names()
    assert names == [next(l.name for l in labels if l.trainId == t) for t in range(19)]


def test_ade20k_conventions():
    lut = ade20k_label_lut()
    assert lut[0] == 255 and list(lut[1:151]) == list(range(150))
    names = ade20k_class_names()
    assert len(names) == 150 and names[:3] == ['wall', 'building', 'sky'] and names[-1] == 'flag'
    forward = cityscapes_train_id_to_ade20k()
    assert len(set(forward[:19])) == 19 and all(1 <= v <= 150 for v in forward[:19])
    assert forward[255] == 0
    for t, name in enumerate(cityscapes_train_id_names()):
        assert forward[t] == CITYSCAPES_TO_ADE20K[name]
    # exact matches keep their name (ADE20K's first synonym)
    for name in ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'sky',
                 'person', 'car', 'truck', 'bus', 'bicycle'):
        assert names[CITYSCAPES_TO_ADE20K[name] - 1] == name
    assert list(ade20k_to_cityscapes_train_id()[forward[:19]]) == list(range(19))


# ----------------------------------------------------------------------------------------------
# datasets read back


@pytest.mark.parametrize('split', ['train', 'val'])
def test_cityscapes_semantic_equals_labelids_through_table(citys, split):
    ds = CityscapesSemantic(citys, split)
    assert len(ds) == 2 and ds.num_classes == 19
    table = np.full(256, 255, np.uint8)
    for label in labels:
        if label.id >= 0 and 0 <= label.trainId < 255:
            table[label.id] = label.trainId
    for i in range(len(ds)):
        s = ds[i]
        city = s['image_id'].split('_')[0]
        raw = cv2.imread(os.path.join(citys, 'gtFine', split, city, s['file_name']),
                         cv2.IMREAD_UNCHANGED)
        assert s['sem_seg'].dtype == np.uint8 and s['sem_seg'].shape == (H, W)
        np.testing.assert_array_equal(s['sem_seg'], table[raw])
        assert s['image'].shape == (H, W, 3) and s['image'].dtype == np.uint8
        scene = generate_scene(SEED, split, int(s['image_id'].split('_')[1]), H, W)
        np.testing.assert_array_equal(s['image'], scene.image)
        assert s['file_name'] == s['image_id'] + '_gtFine_labelIds.png'
    assert (ds[0]['sem_seg'] == 255).any() or (ds[1]['sem_seg'] == 255).any()


def test_ade20k_zero_is_ignored_and_ids_shift(tmp_path):
    root = tmp_path / 'ADEChallengeData2016'
    (root / 'images' / 'validation').mkdir(parents=True)
    (root / 'annotations' / 'validation').mkdir(parents=True)
    values = np.array([[0, 1, 2, 150], [150, 0, 75, 1]], np.uint8).repeat(8, 0).repeat(8, 1)
    cv2.imwrite(str(root / 'images' / 'validation' / 'ADE_val_00000001.jpg'),
                np.zeros(values.shape + (3,), np.uint8))
    cv2.imwrite(str(root / 'annotations' / 'validation' / 'ADE_val_00000001.png'), values)
    for where in (str(tmp_path), str(root)):  # the parent and the folder itself
        ds = ADE20KSemantic(where, 'validation')
        s = ds[0]
        assert ds.num_classes == 150 and s['image_id'] == 'ADE_val_00000001'
        expect = np.where(values == 0, 255, values.astype(np.int64) - 1)
        np.testing.assert_array_equal(s['sem_seg'], expect)
    assert len(ADE20KSemantic(str(tmp_path), 'val')) == 1


def test_synthetic_ade20k_equals_cityscapes_through_mapping(citys, ade):
    to_ade = np.full(256, 255, np.uint8)
    for t, name in enumerate(cityscapes_train_id_names()):
        to_ade[t] = CITYSCAPES_TO_ADE20K[name] - 1
    for ade_split, citys_split in (('training', 'train'), ('validation', 'val')):
        ade_ds, citys_ds = ADE20KSemantic(ade, ade_split), CityscapesSemantic(citys, citys_split)
        by_index = {int(i.split('_')[1]): n for n, i in enumerate(citys_ds.image_ids())}
        assert ade_ds.image_ids() == ['ADE_{}_{:08d}'.format(citys_split, k + 1) for k in range(2)]
        for k in range(2):
            a, c = ade_ds[k], citys_ds[by_index[k]]
            np.testing.assert_array_equal(a['sem_seg'], to_ade[c['sem_seg']])
            diff = np.abs(a['image'].astype(int) - c['image'].astype(int)).mean()
            other = np.abs(a['image'].astype(int) - citys_ds[by_index[1 - k]]['image']).mean()
            assert diff < 10 and other > 40  # the same picture, through JPEG (q95)
        ann = sorted(glob.glob(os.path.join(ade, 'ADEChallengeData2016', 'annotations', ade_split,
                                            '*.png')))
        assert [os.path.basename(p) for p in ann] == [i + '.png' for i in ade_ds.image_ids()]


def test_ensure_ade20k_keeps_complete_set_and_foreign_data(ade, tmp_path):
    assert ensure_ade20k(ade, splits=ADE_SPLITS, height=H, width=W, seed=SEED)['generated'] is False
    foreign = tmp_path / 'foreign'
    (foreign / 'ADEChallengeData2016').mkdir(parents=True)
    with pytest.raises(FileExistsError, match='refusing'):
        generate_ade20k(str(foreign), splits=ADE_SPLITS, height=H, width=W, overwrite=True)
    with pytest.raises(ValueError, match='ADE20K splits'):
        generate_ade20k(str(tmp_path / 'x'), splits=(('train', 1),))


# ----------------------------------------------------------------------------------------------
# transforms


def _pattern(height=64, width=96):
    """Left half class 3, right half class 7 with a class-5 square; image = palette[labels]."""
    sem = np.full((height, width), 3, np.uint8)
    sem[:, width // 2:] = 7
    sem[8:24, 60:80] = 5
    palette = np.zeros((256, 3), np.uint8)
    palette[[3, 5, 7]] = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return {'image': palette[sem], 'sem_seg': sem, 'image_id': 'p', 'file_name': 'p.png'}, palette


def test_train_transform_deterministic_and_aligned():
    sample, palette = _pattern()
    tf = SemanticTrainTransform(crop_size=(64, 96), scale_range=(1.0, 1.0), cat_max_ratio=1.0)
    flips = set()
    for seed in range(12):
        out = tf(sample, seed)
        again = tf(sample, seed)
        np.testing.assert_array_equal(out['data'], again['data'])
        np.testing.assert_array_equal(out['sem_seg'], again['sem_seg'])
        assert out['data'].shape == (3, 64, 96) and out['sem_seg'].shape == (64, 96)
        flipped = np.array_equal(out['sem_seg'], sample['sem_seg'][:, ::-1])
        assert flipped or np.array_equal(out['sem_seg'], sample['sem_seg'])
        flips.add(flipped)
        rgb = np.round(_denormalize(out['data']))
        np.testing.assert_allclose(rgb, palette[out['sem_seg']], atol=1)
    assert flips == {True, False}
    scaled = SemanticTrainTransform(crop_size=(64, 64), scale_range=(0.5, 2.0))
    a, b = scaled(sample, 1), scaled(sample, 2)
    assert not np.array_equal(a['data'], b['data'])


def test_train_transform_pads_with_ignore():
    sample, _ = _pattern(40, 50)
    tf = SemanticTrainTransform(crop_size=(64, 96), scale_range=(1.0, 1.0), cat_max_ratio=1.0)
    for seed in range(4):
        out = tf(sample, seed)
        labelled = out['sem_seg'] != 255
        assert labelled.sum() == 40 * 50 and (out['sem_seg'] == 255).sum() == 64 * 96 - 40 * 50
        assert labelled[:40].any(axis=0).sum() == 50 and not labelled[40:].any()
        # the mean colour (rounded to uint8): ~0 once normalised
        np.testing.assert_allclose(out['data'][:, ~labelled], 0, atol=0.01)


def test_train_transform_base_scale():
    sample, _ = _pattern(32, 48)
    plain = SemanticTrainTransform(crop_size=(64, 96), scale_range=(1.0, 1.0))
    based = SemanticTrainTransform(crop_size=(64, 96), scale_range=(1.0, 1.0), base_scale=(96, 64))
    assert based.base_factor(32, 48) == 2.0  # min(96 / 48, 64 / 32)
    assert (plain(sample, 0)['sem_seg'] == 255).sum() == 64 * 96 - 32 * 48
    out = based(sample, 0)['sem_seg']  # the 64x96 rescaled image fills the crop
    assert (out != 255).all() and (out[:, :48] == 3).all() != (out[:, 48:] == 3).all()


def test_train_transform_respects_cat_max_ratio():
    # 64x512: class 1 on columns 160..351, class 2 elsewhere; a 64x64 crop passes the rule
    # when it straddles a border with 17..47 columns of one class: ~15% of positions
    sem = np.full((64, 512), 2, np.uint8)
    sem[:, 160:352] = 1
    sample = {'image': np.zeros((64, 512, 3), np.uint8), 'sem_seg': sem, 'image_id': 'c'}
    ruled = SemanticTrainTransform(crop_size=(64, 64), scale_range=(1.0, 1.0), cat_max_ratio=0.75,
                                   max_tries=40)
    free = SemanticTrainTransform(crop_size=(64, 64), scale_range=(1.0, 1.0), cat_max_ratio=1.0)
    ok_ruled = [largest_class_share(ruled(sample, s)['sem_seg'])[0] < 0.75 for s in range(30)]
    ok_free = [largest_class_share(free(sample, s)['sem_seg'])[0] < 0.75 for s in range(30)]
    assert all(ok_ruled) and sum(ok_free) < 15


def test_val_transform_keeps_ground_truth(citys):
    s = CityscapesSemantic(citys, 'val', transform=SemanticValTransform())[0]
    assert s['data'].shape == (3, H, W) and s['sem_seg'].shape == (H, W)
    assert set(s) == {'data', 'image', 'sem_seg', 'image_id', 'file_name'}


# ----------------------------------------------------------------------------------------------
# bad inputs: one error naming the file / value


def _citys_label(root, split='val'):
    return sorted(glob.glob(os.path.join(root, 'gtFine', split, '*', '*_labelIds.png')))[0]


def test_missing_label_file(citys, tmp_path):
    root = _copy(citys, tmp_path)
    path = _citys_label(root)
    os.remove(path)
    with pytest.raises(MissingFileError, match=re.escape(os.path.basename(path))):
        CityscapesSemantic(root, 'val')


def test_label_size_mismatch(citys, tmp_path):
    root = _copy(citys, tmp_path)
    path = _citys_label(root)
    cv2.imwrite(path, np.full((H // 2, W), 7, np.uint8))
    ds = CityscapesSemantic(root, 'val')
    name = re.escape(os.path.basename(path))
    with pytest.raises(DataError, match='{}.* is {}x{}'.format(name, H // 2, W)):
        [ds[i] for i in range(len(ds))]


def test_label_values_out_of_range(citys, ade, tmp_path):
    root = _copy(citys, tmp_path)
    path = _citys_label(root)
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    raw[0, 0] = 34
    cv2.imwrite(path, raw)
    ds = CityscapesSemantic(root, 'val')
    with pytest.raises(DataError, match=r'{}.*\[34\]'.format(re.escape(path))):
        [ds[i] for i in range(len(ds))]
    ade_root = _copy(ade, tmp_path / 'a')
    path = sorted(glob.glob(os.path.join(ade_root, '*', 'annotations', 'validation', '*.png')))[0]
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    raw[3, 3], raw[4, 4] = 151, 200
    cv2.imwrite(path, raw)
    with pytest.raises(DataError, match=r'{}.*\[151, 200\]'.format(re.escape(path))):
        ADE20KSemantic(ade_root, 'validation')[0]


def test_empty_or_missing_split(tmp_path):
    empty = tmp_path / 'leftImg8bit' / 'val'
    empty.mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(str(empty))):
        CityscapesSemantic(str(tmp_path), 'val')
    with pytest.raises(MissingFileError, match=re.escape(os.path.join('leftImg8bit', 'train'))):
        CityscapesSemantic(str(tmp_path), 'train')
    ade_images = tmp_path / 'ade' / 'images' / 'training'
    ade_images.mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(str(ade_images))):
        ADE20KSemantic(str(tmp_path / 'ade'), 'training')
    with pytest.raises(MissingFileError, match='nowhere'):
        ADE20KSemantic(str(tmp_path / 'nowhere'), 'training')
