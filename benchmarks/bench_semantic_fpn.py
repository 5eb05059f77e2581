"""CPU speed and peak memory of Semantic FPN R50 next to Panoptic FPN R50, in one run.

Measures ``semantic_fpn_resnet50_v1b_citys`` against ``panoptic_fpn_resnet50_v1b_citys`` (zoo
defaults, random weights) with the method of ``bench_model.py`` (shared in ``_bench.py``): every
(model, mode) runs in its own subprocess so its peak RSS is its own, both networks are hybridized
(``static_alloc``), ``--warmup`` untimed steps come before ``--steps`` timed ones, on one synthetic
image.  The modes:

* ``train`` (``--train-size``, 512x1024): one training step of batch 1, ``net.train_losses(batch)``
  inside ``autograd.record()``, backward and a ``gluon.Trainer`` SGD update.  Semantic FPN's batch
  is ``data`` (1, 3, H, W) and ``sem_seg`` (1, H, W) float32 labels 0..18 with 10 % of the pixels
  255 (ignored); Panoptic FPN's is ``bench_model.py``'s (8 boxes and masks, semantic labels, RPN
  targets over its anchors).  Parameters are frozen as each model's training program freezes them
  with ``--pretrained-base`` and frozen batch norm (the task's ``frozen_with_pretrained_base``):
  Panoptic FPN keeps the stem, res2 and the backbone's batch norm fixed (as ``bench_model.py``);
  Semantic FPN's recipe freezes nothing, so its step also back-propagates into the stem and res2
  and updates the backbone's batch norm scales and shifts (its statistics stay fixed).
* ``predict`` (``--size``, 1024x2048): the whole prediction of one image down to its per-pixel
  numpy output: ``predict_semantic_labels(net, data)`` (whole image, one scale; network, softmax,
  argmax) against ``predict_panoptic(net, data)`` (network, mask pasting, fusion; the
  ``panoptic`` mode of ``bench_model.py``).

The ratios printed at the end are semantic / panoptic for the time and peak RSS of each mode,
both measured in this run.  Full size (2 warm-up + 3 timed steps), on an otherwise idle machine::

    OMP_NUM_THREADS=2 python benchmarks/bench_semantic_fpn.py --size 1024x2048 \\
        --train-size 512x1024 --warmup 2 --steps 3

Smoke check (128x256 for both modes, 1 warm-up + 1 timed step)::

    OMP_NUM_THREADS=1 python benchmarks/bench_semantic_fpn.py --quick
"""
import argparse
import json
import logging
import os
import sys

import mxnet as mx
import numpy as np

from _bench import (ITERS, WARMUP, build, log_table, make_train_step, measurement, run_in_child,
                    synthetic_batch, time_steps)

logger = logging.getLogger(__name__)

SEMANTIC = 'semantic_fpn_resnet50_v1b_citys'
PANOPTIC = 'panoptic_fpn_resnet50_v1b_citys'
MODELS = (SEMANTIC, PANOPTIC)
MODES = ('train', 'predict')
#: default sizes ``(height, width)``: inference, training step, and both with ``--quick``
SIZE, TRAIN_SIZE, QUICK_SIZE = (1024, 2048), (512, 1024), (128, 256)
#: default untimed and timed steps with ``--quick``
QUICK_WARMUP, QUICK_STEPS = 1, 1


def parse_size(text):
    """``'HxW'`` (or ``'H,W'``) -> ``(H, W)`` positive ints, for argparse.

    Parameters
    ----------
    text : str
        The flag's value.

    Returns
    -------
    tuple of int
        ``(height, width)``.
    """
    try:
        size = tuple(int(v) for v in text.lower().replace(',', 'x').split('x'))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError('{!r} is not a size HxW, e.g. 512x1024'.format(text))
    return size


def semantic_batch(height, width, ignore_fraction=0.1, seed=0):
    """One synthetic Semantic FPN training batch (Cityscapes train ids).

    Parameters
    ----------
    height, width : int
        Image size.
    ignore_fraction : float
        Share of the pixels labelled ``IGNORE_LABEL`` (255), drawn at random.
    seed : int
        Seed of the image and the labels.

    Returns
    -------
    dict
        ``data`` (1, 3, H, W) float32 normal noise and ``sem_seg`` (1, H, W) float32 labels in
        ``0 .. NUM_CLASSES['citys'] - 1`` or 255.
    """
    from gluonpan.data.categories import IGNORE_LABEL
    from gluonpan.model_zoo.semantic_fpn import NUM_CLASSES
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, NUM_CLASSES['citys'], (1, height, width)).astype(np.float32)
    labels[rng.uniform(size=labels.shape) < ignore_fraction] = IGNORE_LABEL
    return dict(data=mx.nd.array(rng.normal(size=(1, 3, height, width))),
                sem_seg=mx.nd.array(labels))


def frozen_in_training(model):
    """Regex of the parameters ``model``'s training program keeps fixed (``None``: none).

    Parameters
    ----------
    model : str
        :data:`SEMANTIC` or :data:`PANOPTIC`.

    Returns
    -------
    str or None
        The task's ``frozen_with_pretrained_base`` (applied by ``gluonpan.tools.train`` with
        ``--pretrained-base`` and the default frozen batch norm).
    """
    from gluonpan.tasks.panoptic import PanopticFPNTask as PanopticTask
    from gluonpan.tasks.semantic import SemanticTask
    return {SEMANTIC: SemanticTask, PANOPTIC: PanopticTask}[model].frozen_with_pretrained_base


def run_child(model, mode, size, warmup, iters):
    """Time ``warmup + iters`` steps of one model and mode (this process, a fresh one).

    Parameters
    ----------
    model : str
        :data:`SEMANTIC` or :data:`PANOPTIC`.
    mode : str
        ``'train'`` or ``'predict'``.
    size : tuple of int
        ``(height, width)`` of the synthetic image.
    warmup, iters : int
        Untimed then timed steps.

    Returns
    -------
    dict
        ``_bench.measurement``'s result plus ``trainable_params`` (scalars the step updates).
    """
    from gluonpan.model_zoo import predict_panoptic
    from gluonpan.model_zoo.semantic_fpn import predict_semantic_labels
    net, params = build(model, frozen_in_training(model))
    if model == SEMANTIC:
        batch = semantic_batch(*size)
        predict = predict_semantic_labels
    else:
        batch = synthetic_batch(*size)
        predict = predict_panoptic
    steps = {'train': make_train_step(params, lambda: tuple(net.train_losses(batch).values())),
             'predict': lambda: predict(net, batch['data'])}  # both end in numpy: synchronous
    result = measurement(model, mode, size, time_steps(steps[mode], warmup, iters))
    result['trainable_params'] = int(sum(p.data().size for p in params.values()))
    return result


def log_ratios(results):
    """Log semantic / panoptic of the time and peak RSS of every mode measured for both."""
    found = {(r['model'], r['mode']): r for r in results}
    logger.info('semantic / panoptic (%s / %s), this run:', SEMANTIC, PANOPTIC)
    for mode in MODES:
        sem, pan = found.get((SEMANTIC, mode)), found.get((PANOPTIC, mode))
        if sem is None or pan is None:
            logger.info('  %-9s n/a (a measurement failed or was not run)', mode)
            continue
        logger.info('  %-9s %-10s time %5.2fx   peak RSS %5.2fx', mode, sem['size'],
                    sem['mean_s'] / pan['mean_s'], sem['peak_rss_gib'] / pan['peak_rss_gib'])
    trainable = {r['model']: r['trainable_params'] for r in results if r['mode'] == 'train'}
    if trainable:
        logger.info('trainable parameters in the training step (as in training): %s',
                    ', '.join('{} {:,}'.format(k, v) for k, v in sorted(trainable.items())))


def parse_args(argv=None):
    """The command line, with ``--quick`` and the defaults resolved into sizes and step counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=parse_size, default=None,
                        help='inference image HxW (default {}x{})'.format(*SIZE))
    parser.add_argument('--train-size', type=parse_size, default=None,
                        help='training image HxW (default {}x{})'.format(*TRAIN_SIZE))
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed steps first (default {})'.format(WARMUP))
    parser.add_argument('--steps', type=int, default=None,
                        help='timed steps (default {})'.format(ITERS))
    parser.add_argument('--quick', action='store_true',
                        help='smoke check: {}x{} for both modes and {} + {} steps unless given'
                             .format(*QUICK_SIZE, QUICK_WARMUP, QUICK_STEPS))
    parser.add_argument('--child', nargs=2, metavar=('MODEL', 'MODE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = QUICK_SIZE if args.quick else SIZE
    if args.train_size is None:
        args.train_size = QUICK_SIZE if args.quick else TRAIN_SIZE
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else WARMUP
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else ITERS
    if args.warmup < 0 or args.steps < 1:
        parser.error('--warmup must be >= 0 and --steps >= 1')
    return args


def main():
    """Run every (model, mode) in its own process, then log the table and the ratios."""
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    sizes = {'train': args.train_size, 'predict': args.size}
    if args.child:
        model, mode = args.child
        result = run_child(model, mode, sizes[mode], args.warmup, args.steps)
        sys.stdout.write(json.dumps(result) + '\n')
        return
    logger.info('OMP_NUM_THREADS=%s, %d warm-up + %d timed steps, train %dx%d, predict %dx%d',
                os.environ.get('OMP_NUM_THREADS', '(unset)'), args.warmup, args.steps,
                *args.train_size, *args.size)
    results = []
    for mode in MODES:
        for model in MODELS:
            result = run_in_child(__file__, model, mode, sys.argv[1:])
            if result is not None:
                results.append(result)
    log_table(results)
    log_ratios(results)


if __name__ == '__main__':
    main()
