"""PanopticQuality against cityscapesscripts and panopticapi on generated data with every error kind."""
import contextlib
import io
import json
import os
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from gluonpan.data.categories import cityscapes_categories, id2rgb, rgb2id
from gluonpan.utils.metrics import PanopticQuality, evaluate_panoptic_files, read_panoptic_ids

H, W = 64, 128
SKY, BUILDING, ROAD, VEGETATION = 23, 11, 7, 21
PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = 24, 25, 26, 27, 28, 33


def _box(pan, y0, y1, x0, x1, seg_id):
    pan[y0:y1, x0:x1] = seg_id


def _background(void_cols=8):
    pan = np.zeros((H, W), np.int64)
    pan[:20], pan[20:40], pan[40:] = SKY, BUILDING, ROAD
    pan[40:, W - void_cols:] = 0
    return pan


def _segments(pan, crowd_ok):
    """segments_info as createPanopticImgs writes it (a thing's raw label id is a crowd region)."""
    things = cityscapes_categories().thing_ids
    infos = []
    for seg_id, area in zip(*np.unique(pan, return_counts=True)):
        if seg_id == 0:
            continue
        label = int(seg_id // 1000 if seg_id >= 1000 else seg_id)
        ys, xs = np.nonzero(pan == seg_id)
        infos.append({'id': int(seg_id), 'category_id': label, 'area': int(area),
                      'iscrowd': int(crowd_ok and seg_id < 1000 and label in things),
                      'bbox': [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]})
    return infos


def _mix():
    """Exact, shifted, dilated, merged, missed, wrong-class, crowd and void false positives."""
    gt, pred = _background(), _background()
    pred[18:22] = SKY  # stuff boundary moved
    pred[40:, W - 8:] = ROAD  # void predicted as road
    _box(gt, 44, 54, 4, 20, CAR * 1000), _box(pred, 44, 54, 4, 20, CAR * 1000)  # exact
    _box(gt, 44, 54, 24, 40, CAR * 1000 + 1), _box(pred, 44, 54, 27, 43, CAR * 1000 + 1)  # shift
    _box(gt, 56, 63, 4, 20, CAR * 1000 + 2), _box(pred, 55, 64, 3, 21, CAR * 1000 + 2)  # dilated
    _box(gt, 30, 50, 44, 50, PERSON * 1000), _box(gt, 30, 50, 50, 56, PERSON * 1000 + 1)
    _box(pred, 30, 50, 44, 56, PERSON * 1000)  # merged: IoU 0.5 with each, no match
    _box(gt, 45, 59, 60, 80, TRUCK * 1000)  # missed
    _box(gt, 25, 41, 84, 92, RIDER * 1000), _box(pred, 25, 41, 84, 92, PERSON * 1000 + 1)  # class
    _box(gt, 50, 61, 95, 112, BICYCLE)  # crowd region
    _box(pred, 51, 60, 96, 104, BICYCLE * 1000)  # on crowd of its class: ignored
    _box(pred, 51, 60, 104, 111, CAR * 1000 + 3)  # on crowd of another class: FP
    _box(pred, 44, 64, 121, 128, PERSON * 1000 + 2)  # on void: ignored
    _box(pred, 41, 45, 110, 126, CAR * 1000 + 4)  # 6/16 on void: FP
    return gt, pred


def _iou_half():
    """IoU exactly 0.5 (no match), and 0.5 + epsilon once a predicted pixel lies on void."""
    gt, pred = _background(), _background()
    _box(gt, 44, 54, 0, 12, CAR * 1000), _box(pred, 44, 54, 4, 16, CAR * 1000)  # 80 / 160
    _box(gt, 42, 52, 30, 40, BUS * 1000), _box(pred, 42, 62, 30, 40, BUS * 1000)  # 100 / 200
    _box(gt, 44, 54, 100, 110, PERSON * 1000)  # 100 px; pred 200 px with 1 on void
    _box(pred, 44, 54, 100, 110, PERSON * 1000), _box(pred, 54, 64, 100, 110, PERSON * 1000)
    gt[62, 100] = 0
    return gt, pred


def _split_erode():
    gt, pred = _background(), _background()
    _box(gt, 10, 40, 10, 60, CAR * 1000)
    _box(pred, 10, 40, 10, 40, CAR * 1000), _box(pred, 10, 40, 40, 60, CAR * 1000 + 1)  # split
    _box(gt, 20, 50, 70, 80, PERSON * 1000), _box(pred, 22, 48, 71, 79, PERSON * 1000)  # eroded
    _box(gt, 45, 60, 85, 105, BUS * 1000), _box(pred, 45, 60, 97, 117, BUS * 1000)  # far shift
    return gt, pred


def _stuff_only():
    gt, pred = _background(), _background()
    gt[:, :30] = VEGETATION
    pred[:, :28] = VEGETATION
    _box(pred, 50, 60, 114, 126, CAR * 1000)  # exactly half on void: still a FP
    return gt, pred


def _empty_prediction():
    gt, _ = _mix()
    return gt, np.zeros((H, W), np.int64)


def _empty_ground_truth():
    pred = _background()
    _box(pred, 10, 20, 10, 30, CAR * 1000)
    return np.zeros((H, W), np.int64), pred


SCENES = (_mix, _iou_half, _split_erode, _stuff_only, _empty_prediction, _empty_ground_truth)


def _write_set(folder, name, images, pans, crowd_ok, categories):
    os.makedirs(os.path.join(folder, name))
    anns = []
    for image, pan in zip(images, pans):
        file_name = image['id'] + ('_gtFine_panoptic.png' if crowd_ok else '_pred.png')
        Image.fromarray(id2rgb(pan)).save(os.path.join(folder, name, file_name))
        anns.append({'image_id': image['id'], 'file_name': file_name,
                     'segments_info': _segments(pan, crowd_ok)})
    path = os.path.join(folder, name + '.json')
    with open(path, 'w') as f:
        json.dump({'images': images, 'annotations': anns, 'categories': categories}, f)
    return path, os.path.join(folder, name), anns


@pytest.fixture(scope='module')
def cityscapes_set(tmp_path_factory):
    """Ground truth and predictions of every scene in the Cityscapes panoptic format."""
    root = str(tmp_path_factory.mktemp('pq_citys'))
    cats = cityscapes_categories().to_json()
    pairs = [scene() for scene in SCENES]
    images = [{'id': 'city_{:06d}_000019'.format(i), 'width': W, 'height': H,
               'file_name': 'city_{:06d}_000019_leftImg8bit.png'.format(i)} for i in range(len(pairs))]
    gt_json, gt_dir, gt_anns = _write_set(root, 'gt', images, [g for g, _ in pairs], True, cats)
    pred_json, pred_dir, pred_anns = _write_set(root, 'pred', images, [p for _, p in pairs], False, cats)
    return dict(root=root, gt_json=gt_json, gt_dir=gt_dir, pred_json=pred_json, pred_dir=pred_dir,
                pairs=pairs, gt_anns=gt_anns, pred_anns=pred_anns)


def _quiet(fn, *args):
    """Run a reference evaluator in one process, without its prints."""
    with mock.patch('multiprocessing.cpu_count', return_value=1), \
            contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _assert_same(ours, ref, categories):
    for group in ('All', 'Things', 'Stuff'):
        assert ours[group]['n'] == ref[group]['n'], group
        for key in ('pq', 'sq', 'rq'):
            assert abs(ours[group][key] - ref[group][key]) < 1e-9, (group, key)
    assert set(ref['per_class']) == set(ours['per_class']) == set(categories)
    for cid, ref_cls in ref['per_class'].items():
        for key in ('pq', 'sq', 'rq'):
            assert abs(ours['per_class'][cid][key] - ref_cls[key]) < 1e-9, (cid, key)


def test_matches_cityscapesscripts_and_panopticapi(cityscapes_set):
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    from panopticapi.evaluation import pq_compute
    s = cityscapes_set
    cs = _quiet(evaluatePanoptic, s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'],
                os.path.join(s['root'], 'cs.json'))
    coco = _quiet(pq_compute, s['gt_json'], s['pred_json'], s['gt_dir'], s['pred_dir'])
    ours = evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'])
    cats = cityscapes_categories().by_id
    _assert_same(ours, cs, cats)
    for group in ('All', 'Things', 'Stuff'):  # panopticapi gives no per-class table for all groups
        assert ours[group] == pytest.approx(coco[group], abs=1e-9)
    assert ours['format'] == 'cityscapes' and ours['num_images'] == len(SCENES)
    # the scenes exercise every rule: some TPs, FPs and FNs, and at least one class absent
    tp = sum(r['tp'] for r in ours['per_class'].values())
    fp = sum(r['fp'] for r in ours['per_class'].values())
    fn = sum(r['fn'] for r in ours['per_class'].values())
    assert tp > 0 and fp > 0 and fn > 0 and ours['All']['n'] < len(cats)


def _dense_miou(pairs, gt_anns, pred_anns, categories):
    """mIoU from per-pixel category maps (independent of the metric's run-length counting)."""
    index = categories.all_id_to_contiguous
    num = len(index)
    conf = np.zeros((num, num + 1), np.int64)
    for (gt, pred), gt_ann, pred_ann in zip(pairs, gt_anns, pred_anns):
        gcat = np.full(gt.shape, -1)
        for seg in gt_ann['segments_info']:
            gcat[gt == seg['id']] = index[seg['category_id']]
        pcat = np.full(pred.shape, num)
        for seg in pred_ann['segments_info']:
            pcat[pred == seg['id']] = index[seg['category_id']]
        np.add.at(conf, (gcat[gcat >= 0], pcat[gcat >= 0]), 1)
    inter = np.diag(conf)
    union = conf.sum(1) + conf[:, :num].sum(0) - inter
    return (inter[union > 0] / union[union > 0]).mean()


def test_in_memory_update_equals_files(cityscapes_set):
    s = cityscapes_set
    categories = cityscapes_categories()
    metric = PanopticQuality(categories)
    for (gt, pred), gt_ann, pred_ann in zip(s['pairs'], s['gt_anns'], s['pred_anns']):
        metric.update(gt.astype(np.int32), gt_ann['segments_info'], pred.astype(np.int32),
                      pred_ann['segments_info'], gt_ann['image_id'])
    files = evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'])
    mem = metric.results()
    _assert_same(mem, files, categories.by_id)
    assert mem['mIoU'] == pytest.approx(_dense_miou(s['pairs'], s['gt_anns'], s['pred_anns'],
                                                    categories), abs=1e-12)
    names, values = metric.get()
    assert names[:3] == ['PQ', 'SQ', 'RQ'] and names[-1] == 'mIoU' and len(names) == len(values)
    assert values[0] == mem['All']['pq'] and dict(metric.get_name_value())['PQ_th'] == mem['Things']['pq']
    metric.reset()
    assert metric.num_inst == 0 and metric.get()[1][0] == 0.0


def test_iou_exactly_half_is_not_a_match():
    categories = cityscapes_categories()
    gt, pred = _iou_half()
    metric = PanopticQuality(categories)
    metric.update(gt, _segments(gt, True), pred, _segments(pred, False))
    per = metric.results()['per_class']
    assert (per[CAR]['tp'], per[CAR]['fp'], per[CAR]['fn']) == (0, 1, 1)
    assert (per[BUS]['tp'], per[BUS]['fp'], per[BUS]['fn']) == (0, 1, 1)
    # person: inter 100, union 200 + 100 - 100 - 1 (the predicted pixel on void) -> matched
    assert per[PERSON]['tp'] == 1 and per[PERSON]['sq'] == pytest.approx(100 / 199, abs=1e-15)


def test_id_map_dtypes_and_empty_maps(cityscapes_set):
    """Any integer dtypes (mixed too) give the same numbers; an empty map is an error naming it."""
    s = cityscapes_set
    (gt, pred), gt_ann, pred_ann = s['pairs'][0], s['gt_anns'][0], s['pred_anns'][0]
    results = []
    for gt_type, pred_type in [(np.int64, np.int64), (np.uint32, np.int32), (np.int32, np.uint64)]:
        metric = PanopticQuality(cityscapes_categories())
        metric.update(gt.astype(gt_type), gt_ann['segments_info'], pred.astype(pred_type),
                      pred_ann['segments_info'])
        results.append(metric.results())
    for other in results[1:]:
        _assert_same(other, results[0], cityscapes_categories().by_id)
    with pytest.raises(ValueError, match='image frankfurt_x.*non-empty'):
        PanopticQuality(cityscapes_categories()).update(
            np.zeros((0, 4), np.int64), [], np.zeros((0, 4), np.int64), [], 'frankfurt_x')


def test_workers_give_the_same_numbers(cityscapes_set):
    s = cityscapes_set
    one = evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'])
    two = evaluate_panoptic_files(s['gt_json'], s['gt_dir'], s['pred_json'], s['pred_dir'], workers=2)
    _assert_same(two, one, cityscapes_categories().by_id)
    assert two['mIoU'] == pytest.approx(one['mIoU'], abs=1e-15)


def test_read_panoptic_ids_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256 ** 3, (7, 9))
    path = str(tmp_path / 'ids.png')
    Image.fromarray(id2rgb(ids)).save(path)
    assert (read_panoptic_ids(path) == ids).all()
    rgba = np.concatenate([id2rgb(ids), rng.integers(0, 256, (7, 9, 1), dtype=np.uint8)], 2)
    Image.fromarray(rgba, 'RGBA').save(path)  # alpha is ignored, as by the references
    assert (read_panoptic_ids(path) == rgb2id(rgba[..., :3])).all()
