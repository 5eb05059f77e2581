"""Reference RPN training targets of detectron2 for ``tests/test_rpn_targets.py``.

Runs with the PyTorch venv that has detectron2 built from source (never with gluonpan's)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_detectron2_rpn_target_fixtures.py \
        [--out tests/fixtures/detectron2_rpn_targets.npz] [--seed 14]

What it does: with the RPN settings of detectron2's default config (``get_cfg()``:
``MODEL.RPN.IOU_THRESHOLDS`` [0.3, 0.7], ``IOU_LABELS`` [0, -1, 1], ``BOUNDARY_THRESH`` -1,
``BATCH_SIZE_PER_IMAGE`` 256, ``POSITIVE_FRACTION`` 0.5, ``BBOX_REG_WEIGHTS`` (1, 1, 1, 1)) and
the anchors of Base-RCNN-FPN (``DefaultAnchorGenerator``, sizes 32..512 on strides 4..64,
ratios 0.5, 1, 2, offset 0), it labels the anchors of a 128x160 input for a few sets of seeded
ground-truth boxes with the functions ``RPN.label_and_sample_anchors`` calls: ``pairwise_iou``,
``Matcher`` (with ``allow_low_quality_matches``), then ``subsample_labels`` (whose counts are
stored: its draw is torch's) and ``Box2BoxTransform.get_deltas`` for every anchor against its
matched box.  The box sets include boxes smaller than every anchor (their best anchors have
IoU < 0.3), boxes crossing the border, a box with ties, and no box.

Stored per case ``i``: ``boxes_{i}`` (M, 4), ``labels_{i}`` (N,) int8 (1, 0, -1 before
sampling), ``match_{i}`` (N,) int16 (matched box; detectron2 gives 0 without boxes),
``deltas_{i}`` (P, 4) of the positive anchors, ``sampled_{i}`` (number positive, number
negative after ``subsample_labels``); and ``anchors`` (N, 4).
"""
import argparse
import json
import logging
import os
import platform
import sys

import numpy as np
import torch
import detectron2
from detectron2.config import get_cfg
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.sampling import subsample_labels
from detectron2.structures import Boxes, pairwise_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import write_fixture  # noqa: E402

HEIGHT, WIDTH = 128, 160
COMMAND = ('OMP_NUM_THREADS=2 /work/refenv/bin/python '
           'tools/reference/make_detectron2_rpn_target_fixtures.py')


def box_sets(seed):
    """Seeded ground-truth boxes (x1, y1, x2, y2) on the 128x160 input, one array per case."""
    rng = np.random.RandomState(seed)
    xy = rng.uniform(0, [WIDTH - 8, HEIGHT - 8], size=(12, 2))
    wh = rng.uniform(6, 90, size=(12, 2))
    random = np.concatenate([xy, np.minimum(xy + wh, [WIDTH, HEIGHT])], axis=1)
    tiny = np.array([[10, 10, 14, 13], [70.5, 40.25, 75, 47], [150, 120, 160, 128]])
    border = np.array([[0, 0, 60, 40], [120, 90, 160, 128], [-0., 50, 30, 128]])
    ties = np.array([[16, 16, 48, 48], [8, 8, 40, 40]])  # on the anchor grid: exact IoU ties
    return [random, tiny, border, ties, np.zeros((0, 4))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default='tests/fixtures/detectron2_rpn_targets.npz')
    p.add_argument('--seed', type=int, default=14)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(args.seed)
    cfg = get_cfg().MODEL.RPN
    assert cfg.BOUNDARY_THRESH == -1, cfg.BOUNDARY_THRESH
    generator = DefaultAnchorGenerator(sizes=[[32], [64], [128], [256], [512]],
                                       aspect_ratios=[[0.5, 1.0, 2.0]],
                                       strides=[4, 8, 16, 32, 64], offset=0.0)
    # the pyramid's sizes: P6 is P5 max-pooled with stride 2 (ceil), 128x160 -> 2x3
    feats = [torch.zeros(1, 1, -(-HEIGHT // s), -(-WIDTH // s)) for s in (4, 8, 16, 32, 64)]
    anchors = Boxes.cat(generator(feats))
    matcher = Matcher(cfg.IOU_THRESHOLDS, cfg.IOU_LABELS, allow_low_quality_matches=True)
    coder = Box2BoxTransform(weights=cfg.BBOX_REG_WEIGHTS)
    out = {'anchors': anchors.tensor.numpy().astype(np.float32)}
    for i, boxes in enumerate(box_sets(args.seed)):
        gt = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
        match, labels = matcher(pairwise_iou(gt, anchors))
        pos, neg = subsample_labels(labels, cfg.BATCH_SIZE_PER_IMAGE, cfg.POSITIVE_FRACTION, 0)
        positive = labels == 1
        deltas = coder.get_deltas(anchors.tensor[positive], gt.tensor[match[positive]]) \
            if len(boxes) else torch.zeros((0, 4))
        out['boxes_{}'.format(i)] = boxes.astype(np.float32)
        out['labels_{}'.format(i)] = labels.numpy().astype(np.int8)
        out['match_{}'.format(i)] = match.numpy().astype(np.int16)
        out['deltas_{}'.format(i)] = deltas.numpy().astype(np.float32)
        out['sampled_{}'.format(i)] = np.array([len(pos), len(neg)], np.int32)
        logging.info('case %d: %d boxes, %d positive / %d negative anchors, sampled %d / %d', i,
                     len(boxes), int(positive.sum()), int((labels == 0).sum()), len(pos), len(neg))
    meta = dict(seed=args.seed, command=COMMAND, torch=torch.__version__,
                detectron2=detectron2.__version__, python=platform.python_version(),
                rpn=dict(IOU_THRESHOLDS=list(cfg.IOU_THRESHOLDS), IOU_LABELS=list(cfg.IOU_LABELS),
                         BATCH_SIZE_PER_IMAGE=cfg.BATCH_SIZE_PER_IMAGE,
                         POSITIVE_FRACTION=cfg.POSITIVE_FRACTION,
                         BBOX_REG_WEIGHTS=list(cfg.BBOX_REG_WEIGHTS)),
                input=[HEIGHT, WIDTH])
    write_fixture(args.out, out, meta)
    logging.info('meta %s', json.dumps(meta))


if __name__ == '__main__':
    main()
