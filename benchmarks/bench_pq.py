"""Time gluonpan's panoptic-quality evaluator against cityscapesscripts, hotcoco and panopticapi.

Generates (once, cached under ``--root``) ``--num-images`` synthetic street scenes at full
Cityscapes resolution (1024x2048) in the Cityscapes panoptic format (label-id categories, string
image ids, ``*_gtFine_panoptic.png`` + JSON as ``createPanopticImgs`` writes them), plus a perturbed
prediction set (shifted, eroded, dilated, missed, merged, split, relabelled and false-positive
segments).  Then times, in the same run and with the same number of processes/threads:

* ``decode only``: gluonpan's ``read_panoptic_ids`` decoding the two panoptic PNGs of every image,
  nothing else (the floor); ``decode OpenCV``: the same with ``cv2.imread``, for comparison;
* ``metric only``: ``PanopticQuality.update`` on id maps decoded beforehand, one process (the cost
  above the floor, and what an eval script feeding predictions in memory pays);
* ``gluonpan``: :func:`gluonpan.utils.metrics.evaluate_panoptic_files` with ``--workers``;
* ``cityscapesscripts``: ``evaluatePanoptic``, with ``multiprocessing.cpu_count`` patched in its
  module to return ``--workers`` (it otherwise starts one process per CPU);
* ``hotcoco``: ``hotcoco.panoptic.pq_compute`` in a child process started with
  ``RAYON_NUM_THREADS=--workers`` (its Rust thread pool reads that variable once; with 1 its CPU
  time equals its wall time), on copies of the JSONs with integer image ids (it rejects string
  ids), timed inside the child;
* ``panopticapi`` (``--panopticapi``): ``pq_compute``, patched like cityscapesscripts.

Each tool's time is the best of ``--repeat`` interleaved runs (the machine may be shared; the load
average is printed).  Every evaluator's PQ/SQ/RQ (All/Things/Stuff and per class) is checked
against gluonpan's to 1e-9.  Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_pq.py --workers 1
    OMP_NUM_THREADS=1 python benchmarks/bench_pq.py --workers 2
"""
import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from unittest import mock

import cv2
import numpy as np
from PIL import Image

from gluonpan.data.categories import cityscapes_categories, id2rgb
from gluonpan.utils.metrics import (PanopticQuality, evaluate_panoptic_files, read_panoptic_ids,
                                    retain_freed_memory)

H, W = 1024, 2048
CITIES = ('frankfurt', 'lindau', 'munster')
STUFF_LAYERS = (  # (label id, kind): painted back to front
    (23, 'sky'), (11, 'building'), (21, 'blob'), (12, 'wall'), (13, 'fence'), (22, 'blob'),
    (8, 'sidewalk'), (7, 'road'), (17, 'pole'), (19, 'box'), (20, 'box'))
THINGS = (24, 24, 24, 25, 26, 26, 26, 26, 27, 28, 31, 32, 33, 33)  # label ids, drawn by frequency


def _polygon(rng, cx, cy, rx, ry, n=12):
    """A random star-shaped polygon around (cx, cy): (n, 2) int32 x, y."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.6, 1.0, n)
    return np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1).astype(np.int32)


def _paint_stuff(rng, sem):
    """Paint stuff label ids into the (H, W) uint8 map ``sem`` (0 stays void)."""
    horizon = int(rng.uniform(0.35, 0.5) * H)
    for label, kind in STUFF_LAYERS:
        if kind == 'sky':
            xs = np.linspace(0, W, 40)
            ys = horizon - rng.uniform(50, 300, xs.size)
            pts = np.concatenate([[[0, 0], [W, 0]], np.stack([xs[::-1], ys[::-1]], 1)])
            cv2.fillPoly(sem, [pts.astype(np.int32)], label)
        elif kind == 'building':
            for x in range(0, W, int(rng.uniform(150, 300))):
                top = int(horizon - rng.uniform(100, 400))
                cv2.rectangle(sem, (x, top), (x + int(rng.uniform(120, 320)), horizon + 40), label, -1)
        elif kind in ('wall', 'fence'):
            x = int(rng.uniform(0, W - 400))
            cv2.rectangle(sem, (x, horizon - 60), (x + int(rng.uniform(150, 400)), horizon + 30),
                          label, -1)
        elif kind == 'blob':
            for _ in range(rng.integers(2, 5)):
                cx, cy = rng.uniform(0, W), rng.uniform(horizon - 200, horizon + 60)
                cv2.fillPoly(sem, [_polygon(rng, cx, cy, rng.uniform(60, 250), rng.uniform(40, 150))],
                             label)
        elif kind == 'sidewalk':
            cv2.fillPoly(sem, [np.array([[0, horizon + 20], [W, horizon + 20], [W, H], [0, H]])], label)
        elif kind == 'road':
            top_l, top_r = W * rng.uniform(0.3, 0.45), W * rng.uniform(0.55, 0.7)
            pts = np.array([[top_l, horizon + 20], [top_r, horizon + 20], [W * 0.95, H], [W * 0.05, H]])
            cv2.fillPoly(sem, [pts.astype(np.int32)], label)
        elif kind == 'pole':
            for _ in range(rng.integers(2, 6)):
                x = int(rng.uniform(0, W))
                cv2.rectangle(sem, (x, int(horizon - rng.uniform(200, 400))),
                              (x + int(rng.uniform(6, 20)), int(horizon + rng.uniform(50, 200))),
                              label, -1)
        else:  # traffic light / sign
            for _ in range(rng.integers(1, 4)):
                x, y = int(rng.uniform(0, W)), int(horizon - rng.uniform(150, 350))
                cv2.rectangle(sem, (x, y), (x + int(rng.uniform(15, 40)), y + int(rng.uniform(20, 60))),
                              label, -1)
    # ego vehicle (void) at the bottom, and a few void blobs
    cv2.ellipse(sem, (W // 2, H + 60), (int(W * 0.45), 180), 0, 180, 360, 0, -1)
    for _ in range(rng.integers(1, 4)):
        cv2.fillPoly(sem, [_polygon(rng, rng.uniform(0, W), rng.uniform(horizon, H), 60, 40)], 0)
    return horizon


def _paint_things(rng, pan, horizon, count):
    """Paint ``count`` thing instances (far to near) and 0-2 crowd regions into ``pan`` (int32)."""
    next_k = {}
    depths = np.sort(rng.uniform(0, 1, count))
    crowd = set(rng.choice(count, size=rng.integers(0, 3), replace=False).tolist())
    for i, depth in enumerate(depths):
        label = int(rng.choice(THINGS))
        scale = 20 + 200 * depth
        cy = horizon + 30 + depth * (H - horizon - 150)
        cx = rng.uniform(0.05, 0.95) * W
        tall = label in (24, 25, 32, 33)
        rx, ry = (scale * 0.4, scale) if tall else (scale * rng.uniform(1, 2), scale * 0.7)
        if i in crowd:
            seg_id, rx = label, rx * 3  # a group region: raw label id, iscrowd=1
        else:
            seg_id = label * 1000 + next_k.setdefault(label, 0)
            next_k[label] += 1
        cv2.fillPoly(pan, [_polygon(rng, cx, cy - ry / 2, rx, ry / 2, n=16)], seg_id)


def make_ground_truth(rng, num_things):
    """One synthetic Cityscapes panoptic ground truth: (H, W) int32 ids (stuff = label id)."""
    sem = np.zeros((H, W), np.uint8)
    horizon = _paint_stuff(rng, sem)
    pan = sem.astype(np.int32)
    _paint_things(rng, pan, horizon, num_things)
    return pan


def make_prediction(rng, gt):
    """Perturb a ground-truth id map into a plausible prediction (thing = label*1000+k)."""
    pred = np.zeros_like(gt)
    stuff = np.where(gt < 1000, gt, 0)
    stuff[(stuff >= 24)] = 7  # crowd regions: predicted as road below
    dx, dy = rng.integers(-6, 7, 2)
    stuff = np.roll(stuff, (dy, dx), (0, 1))
    stuff[stuff == 0] = 21  # void areas get some stuff class
    for _ in range(rng.integers(2, 6)):  # wrong stuff blobs
        cv2.fillPoly(stuff, [_polygon(rng, rng.uniform(0, W), rng.uniform(0, H), 120, 80)],
                     int(rng.choice([8, 11, 21, 22])))
    pred[:] = stuff
    kernel = np.ones((5, 5), np.uint8)
    k_next = {}
    for seg_id in np.unique(gt[gt >= 1000]):
        r = rng.uniform()
        if r < 0.1:
            continue  # missed
        mask = (gt == seg_id).astype(np.uint8)
        label = int(seg_id // 1000)
        if r < 0.15:
            label = int(rng.choice(THINGS))  # wrong class
        elif r < 0.3:
            mask = cv2.erode(mask, kernel, iterations=int(rng.integers(1, 4)))
        elif r < 0.45:
            mask = cv2.dilate(mask, kernel, iterations=int(rng.integers(1, 4)))
        elif r < 0.6:
            mask = np.roll(mask, tuple(rng.integers(-8, 9, 2)), (0, 1))
        k = k_next.setdefault(label, 0)
        k_next[label] += 1
        xs = np.nonzero(mask.any(0))[0]
        if r > 0.95 and xs.size > 1:  # split into left and right halves
            right = mask.copy()
            right[:, :xs[len(xs) // 2]] = 0
            mask[:, xs[len(xs) // 2]:] = 0
            pred[right > 0] = label * 1000 + 500 + k
        pred[mask > 0] = label * 1000 + k
    for _ in range(rng.integers(1, 4)):  # false positives
        label = int(rng.choice(THINGS))
        k = k_next.setdefault(label, 0)
        k_next[label] += 1
        cv2.fillPoly(pred, [_polygon(rng, rng.uniform(0, W), rng.uniform(H / 2, H), 50, 40)],
                     label * 1000 + k)
    return pred


def _segments_info(pan, categories, crowd_ok):
    """Segments of an id map as createPanopticImgs writes them (sorted ids, COCO bbox)."""
    ids, areas = np.unique(pan, return_counts=True)
    infos = []
    for seg_id, area in zip(ids.tolist(), areas.tolist()):
        if seg_id == 0:
            continue
        label = seg_id // 1000 if seg_id >= 1000 else seg_id
        iscrowd = int(crowd_ok and seg_id < 1000 and label in categories.thing_ids)
        ys, xs = np.nonzero(pan == seg_id)
        infos.append({'id': seg_id, 'category_id': label, 'area': area, 'iscrowd': iscrowd,
                      'bbox': [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
    return infos


def write_dataset(root, num_images, seed=0):
    """Write (or reuse) the synthetic ground truth and predictions under ``root``.

    Returns
    -------
    dict
        ``gt_json``, ``gt_folder``, ``pred_json``, ``pred_folder`` paths.
    """
    paths = {'gt_json': os.path.join(root, 'cityscapes_panoptic_val.json'),
             'gt_folder': os.path.join(root, 'cityscapes_panoptic_val'),
             'pred_json': os.path.join(root, 'pred.json'),
             'pred_folder': os.path.join(root, 'pred')}
    stamp = os.path.join(root, 'done_{}_{}'.format(num_images, seed))
    if os.path.isfile(stamp):
        return paths
    logging.info('generating %d images %dx%d under %s', num_images, H, W, root)
    categories = cityscapes_categories()
    os.makedirs(paths['gt_folder'], exist_ok=True)
    os.makedirs(paths['pred_folder'], exist_ok=True)
    rng = np.random.default_rng(seed)
    images, gt_anns, pred_anns = [], [], []
    for i in range(num_images):
        image_id = '{}_{:06d}_{:06d}'.format(CITIES[i % len(CITIES)], i, 19)
        gt = make_ground_truth(rng, int(rng.integers(25, 45)))
        pred = make_prediction(rng, gt)
        images.append({'id': image_id, 'width': W, 'height': H,
                       'file_name': image_id + '_leftImg8bit.png'})
        for pan, folder, anns, suffix, crowd_ok in (
                (gt, paths['gt_folder'], gt_anns, '_gtFine_panoptic.png', True),
                (pred, paths['pred_folder'], pred_anns, '_pred_panoptic.png', False)):
            Image.fromarray(id2rgb(pan)).save(os.path.join(folder, image_id + suffix))
            anns.append({'image_id': image_id, 'file_name': image_id + suffix,
                         'segments_info': _segments_info(pan, categories, crowd_ok)})
    for key, anns in (('gt_json', gt_anns), ('pred_json', pred_anns)):
        with open(paths[key], 'w') as f:
            json.dump({'images': images, 'annotations': anns,
                       'categories': categories.to_json()}, f)
    open(stamp, 'w').close()
    return paths


def _coco_id_copies(paths):
    """hotcoco wants integer image ids: the same JSONs with ids 0..N-1 (same PNG folders)."""
    out = {}
    for key in ('gt_json', 'pred_json'):
        dst = paths[key].replace('.json', '_int_ids.json')
        if not os.path.isfile(dst):
            with open(paths[key]) as f:
                data = json.load(f)
            index = {im['id']: i for i, im in enumerate(data['images'])}
            for im in data['images']:
                im['id'] = index[im['id']]
            for ann in data['annotations']:
                ann['image_id'] = index[ann['image_id']]
            with open(dst, 'w') as f:
                json.dump(data, f)
        out[key] = dst
    return out


def _read_opencv(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


def _decode_pairs(args):
    reader, pairs = args
    retain_freed_memory()
    for gt_png, pred_png in pairs:
        reader(gt_png), reader(pred_png)


def _run_decode(paths, workers, reader):
    with open(paths['gt_json']) as f:
        gt_anns = json.load(f)['annotations']
    with open(paths['pred_json']) as f:
        pred_files = {a['image_id']: a['file_name'] for a in json.load(f)['annotations']}
    pairs = [(os.path.join(paths['gt_folder'], a['file_name']),
              os.path.join(paths['pred_folder'], pred_files[a['image_id']])) for a in gt_anns]
    if workers == 1:
        return _decode_pairs((reader, pairs))
    with multiprocessing.Pool(workers) as pool:
        pool.map(_decode_pairs, [(reader, pairs[i::workers]) for i in range(workers)])


def run_decode(paths, workers):
    """The floor: decode both PNGs of every image as gluonpan does, nothing else."""
    return _run_decode(paths, workers, read_panoptic_ids)


def run_decode_opencv(paths, workers):
    """Decoding both PNGs with OpenCV instead (``cv2.imread``), for comparison."""
    return _run_decode(paths, workers, _read_opencv)


def run_metric_only(paths, workers):
    """gluonpan's metric alone: ``PanopticQuality.update`` on maps decoded beforehand (the cost
    above the decode floor; what the eval script pays when it feeds predictions in memory).
    Single process whatever ``workers`` is; returns (results, seconds spent in update)."""
    retain_freed_memory()
    with open(paths['gt_json']) as f:
        gt = json.load(f)
    with open(paths['pred_json']) as f:
        preds = {a['image_id']: a for a in json.load(f)['annotations']}
    metric, seconds = PanopticQuality(gt['categories']), 0.0
    for ann in gt['annotations']:
        pred = preds[ann['image_id']]
        gt_ids = read_panoptic_ids(os.path.join(paths['gt_folder'], ann['file_name']))
        pred_ids = read_panoptic_ids(os.path.join(paths['pred_folder'], pred['file_name']))
        start = time.perf_counter()
        metric.update(gt_ids, ann['segments_info'], pred_ids, pred['segments_info'], ann['image_id'])
        seconds += time.perf_counter() - start
    return metric.results(), seconds


def run_gluonpan(paths, workers):
    return evaluate_panoptic_files(paths['gt_json'], paths['gt_folder'], paths['pred_json'],
                                   paths['pred_folder'], workers=workers)


def _with_cpu_count(workers, fn, *args):
    """The references start ``multiprocessing.cpu_count()`` processes: make that ``workers``."""
    with mock.patch('multiprocessing.cpu_count', return_value=workers), \
            contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def run_cityscapesscripts(paths, workers):
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    return _with_cpu_count(workers, evaluatePanoptic, paths['gt_json'], paths['gt_folder'],
                           paths['pred_json'], paths['pred_folder'],
                           os.path.join(os.path.dirname(paths['gt_json']), 'cs_results.json'))


def run_panopticapi(paths, workers):
    from panopticapi.evaluation import pq_compute
    return _with_cpu_count(workers, pq_compute, paths['gt_json'], paths['pred_json'],
                           paths['gt_folder'], paths['pred_folder'])


_HOTCOCO_CHILD = '''
import contextlib, io, json, sys, time
from hotcoco import panoptic
gt_json, pred_json, gt_folder, pred_folder = sys.argv[1:5]
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    res = panoptic.pq_compute(gt_json, pred_json, gt_folder, pred_folder)
seconds = time.perf_counter() - start
print(json.dumps({'seconds': seconds, 'results': {k: res[k] for k in ('All', 'Things', 'Stuff', 'per_class')}}))
'''


def run_hotcoco(paths, workers):
    """hotcoco in a child process whose rayon pool has ``workers`` threads; returns its own timing."""
    ids = _coco_id_copies(paths)
    env = dict(os.environ, RAYON_NUM_THREADS=str(workers))
    out = subprocess.run([sys.executable, '-c', _HOTCOCO_CHILD, ids['gt_json'], ids['pred_json'],
                          paths['gt_folder'], paths['pred_folder']], env=env, check=True,
                         capture_output=True, text=True).stdout
    child = json.loads(out.strip().splitlines()[-1])
    child['results']['per_class'] = {int(k): v for k, v in child['results']['per_class'].items()}
    return child['results'], child['seconds']


def _check_same(name, ours, ref):
    diffs = [abs(ours[g][k] - ref[g][k]) for g in ('All', 'Things', 'Stuff') for k in ('pq', 'sq', 'rq')]
    diffs += [abs(ours['per_class'][c][k] - v[k]) for c, v in ref['per_class'].items()
              for k in ('pq', 'sq', 'rq')]
    same_n = all(ours[g]['n'] == ref[g]['n'] for g in ('All', 'Things', 'Stuff'))
    if max(diffs) > 1e-9 or not same_n:
        raise AssertionError('{} differs from gluonpan: max |diff| {:.3g}, n equal: {}'
                             .format(name, max(diffs), same_n))
    return max(diffs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='/tmp/gluonpan_bench_pq', help='cache of the generated set')
    parser.add_argument('--num-images', type=int, default=20)
    parser.add_argument('--workers', type=int, default=1, help='processes (hotcoco: threads)')
    parser.add_argument('--repeat', type=int, default=3, help='best of this many runs per tool')
    parser.add_argument('--panopticapi', action='store_true', help='also time panopticapi')
    parser.add_argument('--skip-cityscapesscripts', action='store_true')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    logging.getLogger().handlers[0].addFilter(lambda r: not r.getMessage().startswith('evaluating'))
    cv2.setNumThreads(1)
    paths = write_dataset(args.root, args.num_images)
    first = sorted(f for f in os.listdir(paths['gt_folder']) if f.endswith('.png'))[0]
    read_panoptic_ids(os.path.join(paths['gt_folder'], first))  # numba's compile/cache load, once
    tools = [('decode only', run_decode), ('decode OpenCV', run_decode_opencv),
             ('metric only', run_metric_only), ('gluonpan', run_gluonpan)]
    if not args.skip_cityscapesscripts:
        tools.append(('cityscapesscripts', run_cityscapesscripts))
    tools.append(('hotcoco', run_hotcoco))
    if args.panopticapi:
        tools.append(('panopticapi', run_panopticapi))
    best, results, load_start = {}, {}, os.getloadavg()[0]
    for _ in range(args.repeat):  # interleaved, so that load from other processes hits all alike
        for name, fn in tools:
            start = time.perf_counter()
            res = fn(paths, args.workers)
            seconds = time.perf_counter() - start
            if name in ('hotcoco', 'metric only'):
                res, seconds = res  # their own timing: without start-up / without decoding
            best[name] = min(best.get(name, float('inf')), seconds)
            results[name] = res
    logging.info('%d images %dx%d, %d process(es)/thread(s), best of %d; load average %.1f at the '
                 'start, %.1f at the end (on %d CPUs)', args.num_images, H, W, args.workers,
                 args.repeat, load_start, os.getloadavg()[0], os.cpu_count())
    logging.info('PQ %.4f  SQ %.4f  RQ %.4f  (gluonpan)', *(results['gluonpan']['All'][k]
                                                         for k in ('pq', 'sq', 'rq')))
    g_ms = best['gluonpan'] / args.num_images * 1e3
    for name, _ in tools:
        ms = best[name] / args.num_images * 1e3
        if name in ('decode only', 'decode OpenCV', 'metric only'):
            note = '{:4.0f}% of gluonpan\'s time{}'.format(
                100 * ms / g_ms, ' (1 process)' if name == 'metric only' else '')
        else:
            note = 'its time / gluonpan\'s = {:5.2f}'.format(ms / g_ms)
        if name not in ('decode only', 'decode OpenCV', 'gluonpan'):
            note += ', same numbers (max |diff| {:.1e})'.format(
                _check_same(name, results['gluonpan'], results[name]))
        logging.info('%-18s %7.1f ms/image  %s', name, ms, note)


if __name__ == '__main__':
    main()
