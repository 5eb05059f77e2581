"""Semantic metrics against direct per-class counts, mmsegmentation's definition, cityscapesscripts.

The Cityscapes numbers are compared with ``evalPixelLevelSemanticLabeling.evaluateImgLists`` run on
the same files: a synthetic gtFine split (with a car group region, a caravan instance and ignored
labels added) and predictions degraded from its ground truth, written by our writer.
"""
import contextlib
import glob
import io
import os
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels
from PIL import Image

from gluonpan.data.synthetic import generate_cityscapes
from gluonpan.errors import DataError, MissingFileError
from gluonpan.utils.metrics import (CITYSCAPES_AVG_CLASS_SIZE, CityscapesSemanticMetric,
                                    SemanticMetric, evaluate_ade20k_files,
                                    evaluate_cityscapes_semantic_files, read_label_png)
from gluonpan.utils.semantic_writer import (SemanticWriter, cityscapes_prediction_name,
                                            default_palette, semantic_overlay, train_to_label_ids,
                                            write_cityscapes_labels, write_label_png)

LABEL_TO_TRAIN = np.full(256, 255, np.uint8)
for _l in labels:
    if _l.id >= 0 and not _l.ignoreInEval:
        LABEL_TO_TRAIN[_l.id] = _l.trainId


def _mmseg_areas(pred, label, num_classes, ignore):
    """mmseg's ``intersect_and_union`` steps for one image, with np.histogram as torch.histc."""
    mask = label != ignore
    pred, label = pred[mask], label[mask]
    inter = pred[pred == label]

    def hist(x):
        return np.histogram(x, bins=num_classes, range=(0, num_classes - 1))[0]
    return np.stack([hist(inter), hist(pred) + hist(label) - hist(inter), hist(pred), hist(label)])


def _mmseg_metrics(areas):
    """mmseg's ``total_area_to_metrics`` (fractions, not rounded percents)."""
    inter, union, _, label = np.sum(areas, 0).astype(np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou, acc = inter / union, inter / label
    return {'aAcc': inter.sum() / label.sum(), 'IoU': iou, 'Acc': acc}


def _random_batches(rng, num_classes=7, ignore=255):
    """Label/prediction pairs with ignore pixels; class C-2 only predicted, class C-1 nowhere."""
    out = []
    for shape in ((2, 24, 40), (30, 20), (1, 17, 33)):
        label = rng.integers(0, num_classes - 2, shape)
        label[rng.random(shape) < 0.15] = ignore
        pred = np.where(rng.random(shape) < 0.6, np.minimum(label, num_classes - 3),
                        rng.integers(0, num_classes - 1, shape))
        out.append((pred.astype(np.uint8), label.astype(np.uint8)))
    return out


def test_semantic_metric_matches_direct_counts_and_mmseg():
    rng = np.random.default_rng(3)
    c = 7
    metric = SemanticMetric(c, class_names=['c{}'.format(i) for i in range(c)])
    metric.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    metric.reset()
    batches = _random_batches(rng, c)
    areas = []
    for pred, label in batches:
        metric.update(pred, label)
        per_image = (-1,) + pred.shape[-2:]  # reshape: (B, H, W)
        for p, lab in zip(pred.reshape(per_image), label.reshape(per_image)):
            areas.append(_mmseg_areas(p, lab, c, 255))
    res = metric.results()
    iou, acc = np.array(list(res['IoU'].values())), np.array(list(res['Acc'].values()))
    # direct per-class counts over all pixels
    preds = np.concatenate([p.ravel() for p, _ in batches])
    labs = np.concatenate([lab.ravel() for _, lab in batches])
    valid = labs != 255
    for k in range(c):
        inter = np.sum(valid & (preds == k) & (labs == k))
        union = np.sum(valid & ((preds == k) | (labs == k)))
        area = np.sum(valid & (labs == k))
        assert (np.isnan(iou[k]) and union == 0) or abs(iou[k] - inter / union) < 1e-12
        assert (np.isnan(acc[k]) and area == 0) or abs(acc[k] - inter / area) < 1e-12
    assert np.isnan(iou[c - 1]) and np.isnan(acc[c - 1])  # nowhere
    assert iou[c - 2] == 0 and np.isnan(acc[c - 2])  # predicted only
    assert 0 < res['mIoU'] < 1 and 0 < res['mAcc'] < 1
    assert res['aAcc'] == pytest.approx(np.sum(valid & (preds == labs)) / valid.sum(), abs=1e-12)
    ref = _mmseg_metrics(areas)
    np.testing.assert_allclose(iou, ref['IoU'], rtol=0, atol=1e-12)
    np.testing.assert_allclose(acc, ref['Acc'], rtol=0, atol=1e-12)
    assert res['mIoU'] == pytest.approx(np.nanmean(ref['IoU']), abs=1e-12)
    assert res['mAcc'] == pytest.approx(np.nanmean(ref['Acc']), abs=1e-12)
    assert res['aAcc'] == pytest.approx(ref['aAcc'], abs=1e-12)
    assert res['num_images'] == 4
    assert metric.get() == (['aAcc', 'mIoU', 'mAcc'], [res['aAcc'], res['mIoU'], res['mAcc']])


def test_semantic_metric_bad_values_are_named():
    metric = SemanticMetric(19)
    label = np.zeros((3, 4), np.uint8)
    with pytest.raises(ValueError, match='predicted value 19 '):
        metric.update(np.full((3, 4), 19, np.uint8), label)
    with pytest.raises(ValueError, match='predicted value -1 '):
        metric.update(np.full((3, 4), -1), label)
    with pytest.raises(ValueError, match='label value 19 '):
        metric.update(label, np.full((3, 4), 19, np.uint8))
    with pytest.raises(ValueError, match='same'):
        metric.update(label, label[:2])
    with pytest.raises(ValueError, match='num_classes'):
        SemanticMetric(0)


# ------------------------------------------------------------------------------------------
# Cityscapes files against cityscapesscripts


def _edit_ground_truth(root):
    """Add a car group region, a caravan instance and ignored labels to the generated gtFine."""
    files = sorted(glob.glob(os.path.join(root, 'gtFine', 'val', '*', '*_gtFine_labelIds.png')))
    for i, gt_file in enumerate(files):
        inst_file = gt_file.replace('labelIds', 'instanceIds')
        lab, inst = cv2.imread(gt_file, -1), cv2.imread(inst_file, -1)
        edits = ((26, 26, (slice(40, 56), slice(4, 30))),  # car group: instanceIds holds 26
                 (29, 29000 + i, (slice(2, 12), slice(90, 120))),  # caravan (ignoreInEval)
                 (0, 0, (slice(0, 6), slice(0, 20))), (5, 5, (slice(56, 64), slice(60, 80))))
        for label_id, inst_id, where in edits[i % 2::1 + i % 2]:
            lab[where], inst[where] = label_id, inst_id
        cv2.imwrite(gt_file, lab)
        cv2.imwrite(inst_file, inst)
    return files


def _degrade(rng, train, inst):
    """A prediction from ground-truth train ids: a shifted half, relabelled instances, wrong
    classes, ignore pixels."""
    pred = train.copy()
    h, w = pred.shape
    pred[:, :w // 2] = np.roll(pred[:, :w // 2], 3, axis=1)
    things = np.unique(inst[inst > 1000])
    for inst_id in things[rng.permutation(things.size)[:2]]:
        pred[inst == inst_id] = rng.choice([11, 12, 13, 14, 18])
    for _ in range(3):
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 16)
        pred[y:y + 10, x:x + 16] = rng.integers(0, 19)
    pred[h - 4:, :10] = 255
    return pred


@pytest.fixture(scope='module')
def citys_files(tmp_path_factory):
    """(gt root, prediction folder, [(train-id prediction, label ids, instance ids)])."""
    root = str(tmp_path_factory.mktemp('citys_sem'))
    generate_cityscapes(root, splits=(('val', 4),), height=64, width=128)
    gt_files = _edit_ground_truth(root)
    pred_dir = os.path.join(root, 'results')
    rng = np.random.default_rng(0)
    arrays = []
    for i, gt_file in enumerate(gt_files):
        lab = cv2.imread(gt_file, -1)
        inst = cv2.imread(gt_file.replace('labelIds', 'instanceIds'), -1)
        pred = _degrade(rng, LABEL_TO_TRAIN[lab], inst)
        city = os.path.basename(gt_file).split('_')[0]
        path = SemanticWriter(os.path.join(pred_dir, city)).write(gt_file, pred)
        if i == 1:  # label ids no train id has: caravan, trailer, parking
            ids = read_label_png(path)
            ids[20:30, 40:60], ids[30:34, :], ids[:, 100:104] = 29, 30, 9
            write_label_png(path, ids)
            pred = None
        arrays.append((pred, lab, inst))
    return root, pred_dir, arrays


def _reference(root, pred_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('CITYSCAPES_DATASET', root)
    monkeypatch.setenv('CITYSCAPES_RESULTS', pred_dir)
    monkeypatch.setenv('CITYSCAPES_EXPORT_DIR', str(tmp_path))
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    args = ev.CArgs()
    vars(args).update(vars(ev.args))
    vars(args).update(predictionPath=pred_dir, predictionWalk=None, JSONOutput=False,
                      quiet=True, evalPixelAccuracy=False, evalInstLevelScore=True,
                      exportFile=str(tmp_path / 'ref.json'), colorized=False)
    gts = sorted(glob.glob(os.path.join(root, 'gtFine', 'val', '*', '*_gtFine_labelIds.png')))
    with contextlib.redirect_stdout(io.StringIO()):
        preds = [ev.getPrediction(args, gt) for gt in gts]
        return ev.evaluateImgLists(preds, gts, args), ev


def _assert_same(ours, ref):
    for key in ('classScores', 'classInstScores', 'categoryScores', 'categoryInstScores',
                'priors'):
        assert list(ours[key]) == list(ref[key]), key
        for name, value in ref[key].items():
            assert (np.isnan(value) and np.isnan(ours[key][name])) or \
                abs(ours[key][name] - value) <= 1e-9, (key, name, ours[key][name], value)
    for key in ('Classes', 'InstClasses', 'Categories', 'InstCategories'):
        assert abs(ours['averageScore' + key] - ref['averageScore' + key]) <= 1e-9, key
    np.testing.assert_array_equal(ours['confMatrix'], np.array(ref['confMatrix']))


def test_cityscapes_files_match_cityscapesscripts(citys_files, tmp_path, monkeypatch):
    root, pred_dir, arrays = citys_files
    ours = evaluate_cityscapes_semantic_files(pred_dir, root, 'val')
    ref, ev = _reference(root, pred_dir, tmp_path, monkeypatch)
    _assert_same(ours, ref)
    assert not os.path.exists(tmp_path / 'ref.json')
    assert CITYSCAPES_AVG_CLASS_SIZE == ev.args.avgClassSize
    # non-trivial: partly right, instance weighting changes the numbers, caravan predicted
    scores = [v for v in ours['classScores'].values() if not np.isnan(v)]
    assert 0.3 < np.mean(scores) < 0.95 and min(scores) < 0.5
    assert not np.isnan(ours['averageScoreInstCategories'])
    assert abs(ours['classInstScores']['car'] - ours['classScores']['car']) > 1e-3
    assert ours['confMatrix'][:, 29].sum() > 0 and ours['confMatrix'][29].sum() > 0
    # in memory, from train ids, equals the files (images without a label-id edit)
    metric, files = CityscapesSemanticMetric(), CityscapesSemanticMetric()
    for (pred, lab, inst), gt in zip(arrays, sorted(glob.glob(os.path.join(
            root, 'gtFine', 'val', '*', '*_labelIds.png')))):
        if pred is not None:
            metric.update(train_to_label_ids(pred), lab, inst)
            name = cityscapes_prediction_name(gt)
            found = glob.glob(os.path.join(pred_dir, '*', name))
            files.update(read_label_png(found[0]), lab, inst)
    _assert_same(metric.results(), files.results())
    no_inst = evaluate_cityscapes_semantic_files(pred_dir, root, 'val', instance_level=False)
    np.testing.assert_equal(no_inst['classScores'], ours['classScores'])  # NaN == NaN
    assert np.isnan(no_inst['averageScoreInstClasses'])


@pytest.fixture
def pred_copy(citys_files, tmp_path):
    root, pred_dir, _ = citys_files
    dst = str(tmp_path / 'pred')
    shutil.copytree(pred_dir, dst)
    return root, dst, sorted(glob.glob(os.path.join(dst, '*', '*.png')))


def test_cityscapes_bad_predictions_are_named(pred_copy):
    root, pred_dir, preds = pred_copy
    victim = preds[0]
    good = read_label_png(victim)
    cases = ((lambda: write_label_png(victim, good[:32]), DataError, 'is 32x128'),
             (lambda: open(victim, 'wb').write(b'not a png'), DataError, 'not a PNG'),
             (lambda: cv2.imwrite(victim, np.dstack([good] * 3)), DataError, 'single-channel'),
             (lambda: write_label_png(victim, np.where(good == 7, 40, good).astype(np.uint8)),
              DataError, 'predicted value 40 '),
             (lambda: shutil.copy(victim, victim.replace('pred_', 'copy_')), DataError, 'several'),
             (lambda: os.remove(victim), MissingFileError, 'no prediction'))
    for make, error, words in cases:
        write_label_png(victim, good)
        for extra in glob.glob(os.path.join(pred_dir, '*', '*copy_*')):
            os.remove(extra)
        make()
        with pytest.raises(error, match=words) as info:
            evaluate_cityscapes_semantic_files(pred_dir, root, 'val')
        stem = os.path.basename(victim).split('_pred')[0]
        assert stem in str(info.value), str(info.value)
    with pytest.raises(DataError, match='not a Cityscapes train id'):
        write_cityscapes_labels(str(pred_copy[1]) + '/x.png', np.full((2, 2), 19))


def _png(arr, filters):
    """A grayscale PNG of ``arr`` (uint8 or uint16) whose row ``y`` uses filter
    ``filters[y % len(filters)]`` (our own encoder: OpenCV does not let one choose filters)."""
    height, width = arr.shape
    bpp = arr.dtype.itemsize
    data = arr.astype('>u{}'.format(bpp)).view(np.uint8).reshape(height, width * bpp)  # (H, W*bpp)
    data = data.astype(np.int32)
    rows, prev = [], np.zeros(width * bpp, np.int32)
    for y in range(height):
        cur = data[y]
        a = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        b = prev
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        kind = filters[y % len(filters)]
        pred = [0, a, b, (a + b) // 2, paeth][kind] if kind <= 4 else 0  # > 4: invalid
        rows.append(bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind, payload):
        return struct.pack('>I', len(payload)) + kind + payload + struct.pack(
            '>I', zlib.crc32(kind + payload))
    ihdr = struct.pack('>IIBBBBB', width, height, 8 * bpp, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
            chunk(b'IDAT', zlib.compress(b''.join(rows))) + chunk(b'IEND', b''))


def test_read_label_png_every_filter_equals_opencv(tmp_path):
    rng = np.random.default_rng(1)
    blocks = cv2.resize(rng.integers(0, 34, (5, 7)).astype(np.uint8), (37, 23),
                        interpolation=cv2.INTER_NEAREST)
    noise = rng.integers(0, 65536, (23, 37))
    for arr in (blocks, noise.astype(np.uint8), blocks.astype(np.uint16) * 1000 + 7,
                noise.astype(np.uint16)):
        for filters in ([0], [1], [2], [3], [4], [4, 3, 2, 1, 0, 1, 4]):
            path = str(tmp_path / 'f.png')
            with open(path, 'wb') as f:
                f.write(_png(arr, filters))
            ours = read_label_png(path)
            assert ours.dtype == arr.dtype
            np.testing.assert_array_equal(ours, cv2.imread(path, cv2.IMREAD_UNCHANGED))
            np.testing.assert_array_equal(ours, arr)
    data = _png(blocks, [1, 7])
    for bad, words in ((data, 'unknown filter type 7 in row 1'), (data[:60], 'truncated')):
        with open(path, 'wb') as f:
            f.write(bad)
        with pytest.raises(DataError, match=words) as info:
            read_label_png(path)
        assert path in str(info.value)


# ------------------------------------------------------------------------------------------
# ADE20K files


@pytest.fixture
def ade_files(tmp_path):
    rng = np.random.default_rng(5)
    ann = tmp_path / 'ADEChallengeData2016' / 'annotations' / 'validation'
    ann.mkdir(parents=True)
    writer = SemanticWriter(str(tmp_path / 'pred'), dataset='ade20k')
    pairs = []
    for i in range(3):
        blocks = rng.integers(0, 12, (6, 8))  # labels 0..11: 0 ignored, classes 11..149 absent
        gt = cv2.resize(blocks.astype(np.uint8), (64, 48), interpolation=cv2.INTER_NEAREST)
        classes = np.where(rng.random(gt.shape) < 0.7, np.maximum(gt.astype(int) - 1, 0),
                           rng.integers(0, 12, gt.shape))
        name = 'ADE_val_{:08d}.png'.format(i + 1)
        if i == 2:  # a palette PNG: the indices are the labels
            img = Image.fromarray(gt, 'P')
            img.putpalette(default_palette().ravel().tolist())  # 256 colours: saved 8-bit
            img.save(str(ann / name))
            assert Image.open(str(ann / name)).mode == 'P'
        else:
            cv2.imwrite(str(ann / name), gt)
        writer.write(name.replace('.png', '.jpg'), classes)
        pairs.append((classes, gt))
    return str(tmp_path), str(tmp_path / 'pred'), pairs


def test_ade20k_files_match_mmseg_definition(ade_files):
    root, pred_dir, pairs = ade_files
    ours = evaluate_ade20k_files(pred_dir, root)
    areas = []
    for classes, gt in pairs:
        label = gt.astype(np.int64) - 1  # mmseg's reduce_zero_label: 0 -> 255, k -> k - 1
        label[gt == 0] = 255
        areas.append(_mmseg_areas(classes, label, 150, 255))
    ref = _mmseg_metrics(areas)
    iou = np.array(list(ours['IoU'].values()))
    np.testing.assert_allclose(iou, ref['IoU'], rtol=0, atol=1e-12)
    assert ours['mIoU'] == pytest.approx(np.nanmean(ref['IoU']), abs=1e-12)
    assert ours['aAcc'] == pytest.approx(ref['aAcc'], abs=1e-12)
    assert (iou[:11] > 0).all() and 0.2 < ours['mIoU'] < 0.9
    assert iou[11] == 0 and np.isnan(ours['Acc']['11'])  # predicted only
    assert np.isnan(iou[12:]).all()
    # predictions on the zero label do not count; class k is annotation k + 1
    classes, gt = pairs[0]
    moved = np.where(gt == 0, 149, classes)
    SemanticWriter(pred_dir, dataset='ade20k').write('ADE_val_00000001.png', moved)
    np.testing.assert_equal(evaluate_ade20k_files(pred_dir, root)['IoU'], ours['IoU'])
    assert read_label_png(os.path.join(pred_dir, 'ADE_val_00000001.png')).max() == 150


def test_ade20k_bad_predictions_are_named(ade_files):
    root, pred_dir, pairs = ade_files
    victim = os.path.join(pred_dir, 'ADE_val_00000002.png')
    good = read_label_png(victim)
    for values, words in ((np.where(good == 3, 0, good), 'value 0 is not a class'),
                          (np.where(good == 3, 151, good), 'value 151 is not a class')):
        write_label_png(victim, values.astype(np.uint8))
        with pytest.raises(DataError, match=words) as info:
            evaluate_ade20k_files(pred_dir, root)
        assert victim in str(info.value)
    os.remove(victim)
    with pytest.raises(MissingFileError, match='ADE_val_00000002.png'):
        evaluate_ade20k_files(pred_dir, root)


def test_overlay_colours():
    image = np.full((4, 6, 3), 100, np.uint8)
    classes = np.full((4, 6), 255, np.uint8)
    classes[:2] = 13  # car
    out = semantic_overlay(image, classes, 'cityscapes', alpha=1.0)
    assert (out[:2] == (0, 0, 142)).all() and (out[2:] == 100).all()
    other = semantic_overlay(image, classes, alpha=0.5)
    assert (other[2:] == 100).all() and (other[:2] != 100).any()
    np.testing.assert_array_equal(other, semantic_overlay(image, classes, alpha=0.5))
