"""Time gluonpan's Cityscapes semantic files evaluator against cityscapesscripts on the same files.

Generates ``--num-images`` synthetic scenes (:func:`gluonpan.data.synthetic.generate_cityscapes`,
gtFine ``labelIds`` + ``instanceIds``) in a temporary folder (or ``--root``), degrades their ground
truth into predictions (a shifted half, relabelled instances, wrong-class boxes, unlabeled pixels)
written as label-id PNGs by :class:`gluonpan.utils.semantic_writer.SemanticWriter`, then times in
the same run, best of ``--repeat`` interleaved runs:

* ``gluonpan``: :func:`gluonpan.utils.metrics.evaluate_cityscapes_semantic_files` (IoU and iIoU);
* ``cityscapesscripts``: ``evalPixelLevelSemanticLabeling.evaluateImgLists`` (IoU and iIoU, quiet,
  no JSON written; its Cython confusion matrix is used when it is built).

Both get the same image lists; every class and category IoU/iIoU is checked to agree to 1e-9.
Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_semantic_metric.py
    OMP_NUM_THREADS=1 python benchmarks/bench_semantic_metric.py --num-images 4 \
        --height 1024 --width 2048
"""
import argparse
import contextlib
import glob
import io
import logging
import math
import os
import tempfile
import time

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels

from gluonpan.data.synthetic import generate_cityscapes
from gluonpan.utils.metrics import evaluate_cityscapes_semantic_files
from gluonpan.utils.semantic_writer import SemanticWriter

LABEL_TO_TRAIN = np.full(256, 255, np.uint8)
for _l in labels:
    if _l.id >= 0 and not _l.ignoreInEval:
        LABEL_TO_TRAIN[_l.id] = _l.trainId


def degrade(rng, train, inst):
    """A plausible prediction (train ids) from ground-truth train ids and instance ids."""
    pred = train.copy()
    h, w = pred.shape
    half = pred[:, :w // 2]
    half[...] = np.roll(half, max(1, w // 64), axis=1)
    things = np.unique(inst[inst > 1000])
    for inst_id in things[rng.permutation(things.size)[:max(1, things.size // 4)]]:
        pred[inst == inst_id] = rng.choice([11, 12, 13, 14, 18])  # relabelled instances
    for _ in range(4):  # wrong-class boxes
        bh, bw = h // 8, w // 8
        y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
        pred[y:y + bh, x:x + bw] = rng.integers(0, 19)
    pred[h - h // 16:, :w // 10] = 255  # written as label 0: misses
    return pred


def make_files(root, num_images, height, width, seed):
    """Ground truth and predictions under ``root``; returns the prediction folder."""
    generate_cityscapes(root, splits=(('val', num_images),), height=height, width=width,
                        seed=seed, write_color=False, overwrite=True)
    pred_dir = os.path.join(root, 'results')
    writer = SemanticWriter(pred_dir)
    rng = np.random.default_rng(seed)
    for gt_file in sorted(glob.glob(os.path.join(root, 'gtFine', 'val', '*', '*_labelIds.png'))):
        lab = cv2.imread(gt_file, cv2.IMREAD_UNCHANGED)
        inst = cv2.imread(gt_file.replace('labelIds', 'instanceIds'), cv2.IMREAD_UNCHANGED)
        writer.write(gt_file, degrade(rng, LABEL_TO_TRAIN[lab], inst))
    return pred_dir


def run_reference(root, pred_dir, export_dir):
    """cityscapesscripts' ``evaluateImgLists`` on the split, quiet; returns (seconds, results)."""
    os.environ['CITYSCAPES_EXPORT_DIR'] = export_dir  # read when the module is first imported
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    args = ev.CArgs()
    vars(args).update(vars(ev.args))
    vars(args).update(predictionPath=pred_dir, predictionWalk=None, JSONOutput=False, quiet=True,
                      evalPixelAccuracy=False, evalInstLevelScore=True, colorized=False,
                      exportFile=os.path.join(export_dir, 'result.json'))
    start = time.perf_counter()
    gts = sorted(glob.glob(os.path.join(root, 'gtFine', 'val', '*', '*_gtFine_labelIds.png')))
    with contextlib.redirect_stdout(io.StringIO()):
        preds = [ev.getPrediction(args, gt) for gt in gts]
        results = ev.evaluateImgLists(preds, gts, args)
    return time.perf_counter() - start, results, ev.CSUPPORT


def differences(ours, ref):
    """Names of the scores that differ by more than 1e-9 (NaN only equals NaN)."""
    bad = []
    for key in ('classScores', 'classInstScores', 'categoryScores', 'categoryInstScores'):
        for name, value in ref[key].items():
            mine = ours[key].get(name, float('nan'))
            if not ((math.isnan(value) and math.isnan(mine)) or abs(mine - value) <= 1e-9):
                bad.append('{} {}'.format(key, name))
    return bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--height', type=int, default=512)
    parser.add_argument('--width', type=int, default=1024)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeat', type=int, default=2, help='interleaved runs; best time counts')
    parser.add_argument('--root', help='work folder (default: a temporary one, deleted after)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        start = time.perf_counter()
        pred_dir = make_files(root, args.num_images, args.height, args.width, args.seed)
        logging.info('%d images of %dx%d written in %.1f s (load average %s)', args.num_images,
                     args.height, args.width, time.perf_counter() - start,
                     ', '.join('{:.2f}'.format(x) for x in os.getloadavg()))
        ours_t, ref_t = [], []
        for _ in range(args.repeat):
            ours = evaluate_cityscapes_semantic_files(pred_dir, root, 'val')
            ours_t.append(ours['seconds'])
            seconds, ref, csupport = run_reference(root, pred_dir, tmp)
            ref_t.append(seconds)
    bad = differences(ours, ref)
    same = abs(ours['averageScoreClasses'] - ref['averageScoreClasses']) <= 1e-9
    logging.info('gluonpan %.3f s, cityscapesscripts %.3f s (Cython: %s): speed-up %.1fx; '
                 'mIoU %.6f vs %.6f (%s), iIoU %.6f vs %.6f, %s', min(ours_t), min(ref_t),
                 csupport, min(ref_t) / min(ours_t), ours['averageScoreClasses'],
                 ref['averageScoreClasses'], 'same' if same else 'DIFFERENT',
                 ours['averageScoreInstClasses'], ref['averageScoreInstClasses'],
                 'all class/category scores equal to 1e-9' if not bad else
                 'DIFFERENT: {}'.format(', '.join(bad)))
    return 0 if same and not bad else 1


if __name__ == '__main__':
    raise SystemExit(main())
