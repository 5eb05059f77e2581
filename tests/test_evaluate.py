"""File-level evaluation: COCO format against panopticapi, the sanity checks, and the CLI."""
import contextlib
import io
import json
import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from gluonpan.data.categories import id2rgb
from gluonpan.errors import DataError
from gluonpan.evaluate import main
from gluonpan.utils.metrics import PanopticQuality, evaluate_panoptic_files

H, W = 48, 64
CATEGORIES = [{'id': 1, 'name': 'person', 'isthing': 1}, {'id': 3, 'name': 'car', 'isthing': 1},
              {'id': 7, 'name': 'road', 'isthing': 0}, {'id': 12, 'name': 'sky', 'isthing': 0},
              {'id': 20, 'name': 'boat', 'isthing': 1}]  # boat never appears: excluded from n


def _seg(seg_id, cat, pan, crowd=0, area=None):
    return {'id': seg_id, 'category_id': cat, 'iscrowd': crowd,
            'area': int((pan == seg_id).sum()) if area is None else area}


def _coco_image_0(rng):
    """Two crowd regions of one category (only the last counts), a GT id missing from the JSON,
    a JSON area that is not the pixel count, arbitrary 24-bit ids."""
    ids = rng.choice(np.arange(1, 256 ** 3), 12, replace=False).tolist()
    gt, pred = np.zeros((H, W), np.int64), np.zeros((H, W), np.int64)
    gt[:20], gt[20:] = ids[0], ids[1]  # sky, road
    gt[25:35, 2:12] = ids[2]  # crowd person A (first)
    gt[25:35, 40:50] = ids[3]  # crowd person B (last)
    gt[5:15, 20:30] = ids[4]  # car, JSON area 150 instead of 100
    gt[38:46, 20:30] = ids[5]  # in the PNG, not in the JSON: neither void nor a segment
    gt_segs = [_seg(ids[0], 12, gt), _seg(ids[1], 7, gt), _seg(ids[2], 1, gt, crowd=1),
               _seg(ids[3], 1, gt, crowd=1), _seg(ids[4], 3, gt, area=150)]
    pred[:21], pred[21:] = ids[6], ids[7]
    pred[26:34, 3:11] = ids[8]  # on crowd A: counts as FP (only the last crowd is kept)
    pred[5:15, 21:31] = ids[9]  # car: IoU 90 / (100 + 150 - 90) = 0.5625
    pred[38:46, 21:29] = ids[10]  # person on the unlisted GT id: a FP
    pred[34:35, 2:12] = ids[11]  # person on crowd A too
    pred_segs = [{'id': i, 'category_id': c} for i, c in zip(ids[6:], (12, 7, 1, 3, 1, 1))]
    return gt, gt_segs, pred, pred_segs


def _coco_image_1(rng):
    gt, pred = np.zeros((H, W), np.int64), np.zeros((H, W), np.int64)
    gt[:, :30], gt[:, 30:] = 5, 6
    gt[10:30, 5:15], gt[10:30, 35:45] = 1000, 1001
    pred[:, :33], pred[:, 33:] = 50, 60
    pred[12:30, 5:17], pred[0:8, 0:8] = 700, 0
    gt_segs = [_seg(5, 7, gt), _seg(6, 12, gt), _seg(1000, 1, gt), _seg(1001, 3, gt)]
    pred_segs = [{'id': 50, 'category_id': 7}, {'id': 60, 'category_id': 12},
                 {'id': 700, 'category_id': 1}]
    return gt, gt_segs, pred, pred_segs


def _write(root, name, images, segs_list):
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    anns = []
    for image_id, (pan, segs) in enumerate(zip(images, segs_list)):
        file_name = '{:012d}.png'.format(image_id)
        Image.fromarray(id2rgb(pan)).save(os.path.join(folder, file_name))
        anns.append({'image_id': image_id, 'file_name': file_name, 'segments_info': segs})
    path = folder + '.json'
    with open(path, 'w') as f:
        json.dump({'images': [{'id': i, 'file_name': '{:012d}.jpg'.format(i), 'height': H,
                               'width': W} for i in range(len(images))],
                   'annotations': anns, 'categories': CATEGORIES}, f)
    return path, folder


@pytest.fixture()
def coco_set(tmp_path):
    rng = np.random.default_rng(3)
    scenes = [_coco_image_0(rng), _coco_image_1(rng)]
    gt = _write(str(tmp_path), 'gt', [s[0] for s in scenes], [s[1] for s in scenes])
    pred = _write(str(tmp_path), 'pred', [s[2] for s in scenes], [s[3] for s in scenes])
    return dict(gt_json=gt[0], gt_dir=gt[1], pred_json=pred[0], pred_dir=pred[1], scenes=scenes)


def test_coco_format_matches_panopticapi(coco_set):
    from panopticapi.evaluation import pq_compute
    s = coco_set
    with mock.patch('multiprocessing.cpu_count', return_value=1), \
            contextlib.redirect_stdout(io.StringIO()):
        ref = pq_compute(s['gt_json'], s['pred_json'], s['gt_dir'], s['pred_dir'])
    ours = evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'])
    assert ours['format'] == 'coco'
    for group in ('All', 'Things', 'Stuff'):
        assert ours[group]['n'] == ref[group]['n']
        for key in ('pq', 'sq', 'rq'):
            assert abs(ours[group][key] - ref[group][key]) < 1e-9, (group, key)
    for cid, ref_cls in ref['per_class'].items():
        for key in ('pq', 'sq', 'rq'):
            assert abs(ours['per_class'][cid][key] - ref_cls[key]) < 1e-9, (cid, key)
    person = ours['per_class'][1]
    assert (person['tp'], person['fp'], person['fn']) == (1, 3, 0)  # crowd A and unlisted-id FPs
    assert ours['per_class'][3]['sq'] == pytest.approx(90 / 160, abs=1e-15)  # JSON area used
    metric = PanopticQuality(CATEGORIES)
    for gt, gt_segs, pred, pred_segs in s['scenes']:
        metric.update(gt, gt_segs, pred, pred_segs)
    assert metric.results()['per_class'] == ours['per_class']


def _edit_pred(s, edit):
    with open(s['pred_json']) as f:
        pred = json.load(f)
    edit(pred)
    with open(s['pred_json'], 'w') as f:
        json.dump(pred, f)


def _evaluate(s):
    return evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'])


@pytest.mark.parametrize('edit, error, words', [
    (lambda p: p['annotations'][1]['segments_info'].pop(0), DataError, ['ID 1', '[50]', 'PNG']),
    (lambda p: p['annotations'][1]['segments_info'].append({'id': 99, 'category_id': 7}),
     DataError, ['ID 1', '[99]', 'JSON']),
    (lambda p: p['annotations'][1]['segments_info'][2].update(category_id=2), DataError,
     ['image 1', 'segment id 700', 'category_id 2']),
    (lambda p: p['annotations'].pop(1), DataError, ['no prediction', 'id: 1']),
    (lambda p: [a.update(image_id=str(a['image_id'])) for a in p['annotations']], DataError,
     ['no prediction', 'str']),
    (lambda p: p['annotations'][0]['segments_info'][0].pop('category_id'), DataError,
     ['image 0', 'category_id']),
])
def test_sanity_checks_name_image_and_segment(coco_set, edit, error, words):
    _edit_pred(coco_set, edit)
    with pytest.raises(error) as info:
        _evaluate(coco_set)
    for word in words:
        assert word in str(info.value)


def test_bad_files_are_named(coco_set):
    png = os.path.join(coco_set['pred_dir'], '000000000001.png')
    with open(png, 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(DataError, match='000000000001.png'):
        _evaluate(coco_set)
    os.remove(png)
    with pytest.raises(FileNotFoundError, match='000000000001.png'):
        _evaluate(coco_set)
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(png)
    with pytest.raises(ValueError, match='image 1'):
        _evaluate(coco_set)


def test_cli_prints_tables_and_writes_json(coco_set, tmp_path, caplog):
    out = str(tmp_path / 'res.json')
    s = coco_set
    with caplog.at_level('INFO'):
        results = main(['--gt-json', s['gt_json'], '--pred-json', s['pred_json'],
                        '--workers', '2', '--output', out])  # folders default to JSON minus .json
    text = caplog.text
    assert 'person' in text and 'Things' in text and 'mIoU' in text
    with open(out) as f:
        saved = json.load(f)
    assert saved['All'] == results['All'] and saved['per_class']['3']['sq'] == pytest.approx(
        results['per_class'][3]['sq'])
    _edit_pred(s, lambda p: p['annotations'].pop(0))
    with pytest.raises(DataError, match='no prediction for the image with id: 0'):
        main(['--gt-json', s['gt_json'], '--pred-json', s['pred_json']])


def test_evaluation_does_not_import_mxnet():
    """The evaluator CLI and the metric workers start without MXNet (import time, fork cost)."""
    code = ('import sys, gluonpan.evaluate, gluonpan.utils.metrics, gluonpan.data.io; '
            'assert "mxnet" not in sys.modules, "mxnet imported"; '
            'import gluonpan; gluonpan.data.CityscapesPanoptic; assert "mxnet" in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True)
