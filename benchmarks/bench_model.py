"""CPU speed and peak memory of PanopticFCN R50 and gluoncv's Mask R-CNN FPN next to Panoptic FPN
R50, in one run.

The peer is ``panoptic_fpn_resnet50_v1b_citys``; it is measured against
``panoptic_fcn_resnet50_v1b_citys`` (also as ``...:deform=False``) and gluoncv's
``mask_rcnn_fpn_resnet50_v1b_coco`` (``gluoncv``, ``gluoncv_100dets``), all with random weights
unless ``--pretrained`` gives a file.  Every (model, mode) runs in its own subprocess so its peak
RSS is its own; every network is hybridized (``static_alloc``); ``--warmup`` untimed steps come
before ``--iters`` timed ones, on one synthetic image (``_bench.synthetic_batch``: normal noise,
8 box-shaped instances of 8 classes, a random 12-class semantic map).  The modes:

* ``train`` (``--train-size``, 512x1024): one training step of batch 1 -- forward, losses,
  backward, one SGD update -- with the stem, res2 and every batch norm of the backbone frozen (as
  gluoncv's recipe and our ``frozen_with_pretrained_base``).  Panoptic FPN's batch: boxes, masks,
  semantic labels and RPN targets over its anchors.  PanopticFCN's: the targets of
  :class:`gluonpan.data.fcn_targets.FCNTargets` made from the same image, instances and semantic
  map (mapped to PanopticFCN's class order) and batched by ``train_batchify``, as in training
  (``_bench.fcn_train_batch``).  The targets are made before the timing (in training the data
  workers make them), like Panoptic FPN's RPN targets.  The synthetic semantic map is pixel
  noise, so almost no position is a stuff target; the stuff branch of the training graph is dense
  (every level and class), so its time does not depend on that.  PanopticFCN trains with
  ``deform=False`` here: MXNet's modulated deformable convolution has no CPU backward (the table
  notes it).
* ``infer`` (``--infer-size``, 1024x2048): the network's forward, ``net.predict(data)`` and
  ``mx.nd.waitall()`` (gluoncv: ``net(data)``).  PanopticFCN with its default ``deform=True`` (the
  reference's); the ``...:deform=False`` row (PanopticFCN models that override ``deform`` are
  measured in this mode only) shows what the deformable convolutions cost.
* ``panoptic`` (1024x2048): ``net.predict_panoptic(data)``, the whole prediction down to the
  panoptic map -- network, post-processing and fusion (not gluoncv: no panoptic output).
* ``fast512`` (PanopticFCN only): ``get_model(..., preset='fast512')``, whose ``predict_panoptic``
  resizes the 1024x2048 image to short side 512 (max 854, so 427x854, padded to 448x864) and
  uses the reference's fast thresholds; compared with Panoptic FPN's ``panoptic`` at 1024x2048.

The table lists time (mean +- std over the timed steps) and peak RSS per row; the ratio lines that
follow are PanopticFCN / Panoptic FPN R50 of the time and peak RSS, both measured in this run,
for train, infer (each PanopticFCN row), panoptic, and fast512 against Panoptic FPN's panoptic,
with the issue's goals: inference (``infer``, ``panoptic``) no slower than Panoptic FPN at the same
resolution, the 512 setting (``fast512``) well under half of it (< 0.5x).

Random weights (the default) make the ``panoptic`` / ``fast512`` post-processing unlike a trained
model's, so read those rows with the table's note, which gives per PanopticFCN row the thing
candidates (centre peaks above the threshold), the masks scored after kernel fusion and the
segments returned.  An untrained PanopticFCN's centre scores are all about 0.1-0.25: at the
default threshold (0.05) every level gives its maximum of peaks (``center_top_num // 2`` = 50;
about 100-160 candidates in all on small smoke images), and every kernel left after fusion gets a
stride-4 mask and a mask-quality score -- more than a trained model, whose peaks are few -- but
none reaches the fusion score (0.2), so no thing mask is resized to the image and fused, which a
trained model does for each kept instance.  ``fast512``'s threshold (0.2) leaves about one
candidate.  Panoptic FPN's random detector has its own, different counts.  ``--pretrained
NAME=FILE`` (repeatable; the network's ``.params``) loads trained weights into every row of zoo
model NAME for representative numbers; ``train`` and ``infer`` do not depend on the weights.

Full size (the issue's numbers), on an otherwise idle machine::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3

Only PanopticFCN against Panoptic FPN (no gluoncv rows)::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3 \\
        --models panoptic_fpn_resnet50_v1b_citys,panoptic_fcn_resnet50_v1b_citys,\\
panoptic_fcn_resnet50_v1b_citys:deform=False

Smoke check (tiny sizes, 1 timed step)::

    OMP_NUM_THREADS=1 python benchmarks/bench_model.py --warmup 0 --iters 1 \\
        --train-size 64,128 --infer-size 128,256

The gluoncv reference is ``mask_rcnn_fpn_resnet50_v1b_coco(pretrained_base=False)``; its anchor map
is pre-allocated for 384x384 P2 cells, too small for 1024x2048, so the benchmark re-creates its
anchor generators for 512x512 (same anchors, larger allocation).  ``gluoncv_100dets`` also caps
its mask head at 100 detections like ours (its default runs it on 1000).  On CPU gluoncv's FPN
RoIAlign reads unwritten memory in a hybridized graph (see ``gluonpan.nn.pyramid_roi_align``): its
values are off, its timing is not.
"""
import argparse
import json
import logging
import os
import sys

import mxnet as mx

from _bench import (ITERS, WARMUP, build, fcn_train_batch, log_ratios, log_table,
                    make_train_step, measurement, run_in_child, split_model, synthetic_batch,
                    time_steps)

logger = logging.getLogger(__name__)

#: the peer every ratio is taken against, and the PanopticFCN it is compared with
PEER = 'panoptic_fpn_resnet50_v1b_citys'
FCN = 'panoptic_fcn_resnet50_v1b_citys'
MODELS = (PEER, FCN, FCN + ':deform=False', 'gluoncv', 'gluoncv_100dets')
MODES = ('train', 'infer', 'panoptic', 'fast512')
#: the peer's mode each PanopticFCN mode is compared with
PEER_MODE = {'train': 'train', 'infer': 'infer', 'panoptic': 'panoptic', 'fast512': 'panoptic'}
#: the issue's goals for the time ratio PanopticFCN / Panoptic FPN: (op, limit, text)
GOALS = {'infer': ('<=', 1.0, 'no slower at the same resolution'),
         'panoptic': ('<=', 1.0, 'no slower at the same resolution'),
         'fast512': ('<', 0.5, 'well under half')}


def is_fcn(model):
    """Whether ``model`` (a ``--models`` entry) is a PanopticFCN."""
    return split_model(model)[0].startswith('panoptic_fcn_')


def skip_reason(model, mode):
    """Why ``model`` is not measured in ``mode`` (``None``: it is).

    Parameters
    ----------
    model : str
        A ``--models`` entry.
    mode : str
        One of :data:`MODES`.

    Returns
    -------
    str or None
    """
    if model.startswith('gluoncv'):
        if mode in ('panoptic', 'fast512'):
            return 'no panoptic output'
        if mode == 'train' and model == 'gluoncv_100dets':
            return 'the detection cap does not act in training'
        return None
    if not is_fcn(model):
        return 'fast512 is a PanopticFCN preset' if mode == 'fast512' else None
    if 'deform' in split_model(model)[1] and mode != 'infer':
        return 'a deform override is a variant of the network forward, measured in infer only'
    return None


def mode_options(model, mode):
    """The ``get_model`` keywords ``mode`` imposes on ``model``, and the table's note of them.

    Returns
    -------
    options : dict
        ``deform=False`` for a PanopticFCN training step (MXNet's modulated deformable
        convolution has no CPU backward), ``preset='fast512'`` in the fast512 mode, else none.
    note : str
    """
    if is_fcn(model) and mode == 'train':
        return {'deform': False}, 'deform=False (DCN has no CPU backward)'
    if mode == 'fast512':
        return {'preset': 'fast512'}, "preset='fast512'"
    return {}, ''


def parse_pretrained(items):
    """``['NAME=FILE', ...]`` (``--pretrained``) -> ``{NAME: FILE}``."""
    pretrained = {}
    for item in items or ():
        name, sep, path = item.partition('=')
        if not (sep and name and path):
            raise ValueError('--pretrained {!r} is not NAME=FILE'.format(item))
        pretrained[name] = path
    return pretrained


def gluoncv_losses(net, batch):
    """gluoncv Mask R-CNN training outputs -> the same five losses, with our loss functions."""
    from gluonpan.nn.losses import mask_loss, rcnn_losses, rpn_losses
    cls_pred, box_pred, mask_pred, roi, _, matches, rpn_score, rpn_box, _, cls_targets, \
        box_targets, box_masks, indices = net(batch['data'], batch['gt_boxes'],
                                              batch['gt_classes'])
    losses = rpn_losses(mx.nd, rpn_score, rpn_box, batch['rpn_cls_targets'],
                        batch['rpn_box_targets'], batch['rpn_box_masks'])
    losses += rcnn_losses(mx.nd, cls_pred, box_pred, cls_targets, box_targets, box_masks)
    pos = indices[0]
    mask_t, mask_w = net.mask_target(roi[0].take(pos).expand_dims(0),
                                     batch['gt_masks'].astype('float32'),
                                     matches[0].take(pos).expand_dims(0),
                                     cls_targets[0].take(pos).expand_dims(0))
    return losses + (mask_loss(mx.nd, mask_pred, mask_t, mask_w),)


def make_step(net, params, model, mode, batch):
    """The timed step of ``model`` in ``mode`` on ``batch``, which returns once its work is done.

    Returns
    -------
    step : callable
    last : list
        Filled by the panoptic steps with their last ``(pan_ids, segments)``.
    """
    gluoncv = model.startswith('gluoncv')
    last = []
    if mode == 'train':
        if gluoncv:
            return make_train_step(params, lambda: gluoncv_losses(net, batch)), last
        train_batch = fcn_train_batch(net, batch) if is_fcn(model) else batch
        return make_train_step(params, lambda: tuple(net.train_losses(train_batch).values())), last
    if mode == 'infer':
        def infer_step():
            out = net(batch['data']) if gluoncv else net.predict(batch['data'])
            mx.nd.waitall()
            return out
        return infer_step, last

    def panoptic_step():  # ends in numpy: synchronous
        last[:] = [net.predict_panoptic(batch['data'])]
    return panoptic_step, last


def count_fcn_candidates():
    """Make PanopticFCN's post-processing (in this process) count its thing candidates.

    Wraps ``thing_candidates`` (centre peaks above ``center_thresh``, at most ``center_top_num
    // 2`` per level) and ``fuse_thing_kernels`` (what is left after kernel fusion: the masks
    ``rescore_things`` computes at stride 4) of
    :mod:`gluonpan.model_zoo.panoptic_fcn.inference`; the wrappers only take a ``len``.

    Returns
    -------
    dict
        ``{'thing_candidates': n, 'fuse_thing_kernels': n}`` of the last prediction, filled as
        ``predict_panoptic`` runs.
    """
    from gluonpan.model_zoo.panoptic_fcn import inference
    counts = {}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)  # (kernels, scores, classes)
            counts[name] = len(out[1])
            return out
        return wrapper
    for name in ('thing_candidates', 'fuse_thing_kernels'):
        setattr(inference, name, counted(name, getattr(inference, name)))
    return counts


def run_child(model, mode, size, warmup, iters, pretrained=None):
    """Time ``warmup + iters`` steps of one model and mode (this process, a fresh one).

    Parameters
    ----------
    model : str
        A ``--models`` entry.
    mode : str
        One of :data:`MODES`.
    size : tuple of int
        ``(height, width)`` of the synthetic image.
    warmup, iters : int
        Untimed then timed steps.
    pretrained : dict, optional
        ``{name: .params file}`` of ``--pretrained``.

    Returns
    -------
    dict
        ``_bench.measurement``'s result; its note says what the mode changed, the weights if
        trained ones were loaded and, for a panoptic prediction, the segments the last one
        returned (for PanopticFCN also its thing candidates and the masks it scored).
    """
    options, note = mode_options(model, mode)
    weights = (pretrained or {}).get(split_model(model)[0])
    if weights:
        options['pretrained'] = weights
    net, params = build(model, options=options)
    batch = synthetic_batch(*size)
    step, last = make_step(net, params, model, mode, batch)
    counts = count_fcn_candidates() if is_fcn(model) and mode in ('panoptic', 'fast512') else {}
    times = time_steps(step, warmup, iters)
    notes = [note] if note else []
    if mode == 'fast512':
        from gluonpan.model_zoo.panoptic_fcn.inference import shortest_edge_size
        notes.append('network at {}x{}'.format(*shortest_edge_size(
            *size, *net.inference_options['test_size'])))
    if counts:
        notes.append('{thing_candidates} thing candidates, {fuse_thing_kernels} masks scored'
                     .format(**counts))
    if last:
        segments = last[0][1]
        notes.append('{} segments ({} things)'.format(
            len(segments), sum(1 for s in segments if s['isthing'])))
    if weights:
        notes.append('weights ' + os.path.basename(weights))
    return measurement(model, mode, size, times, '; '.join(notes))


def ratio_rows(results, models, modes, sizes):
    """The rows of ``_bench.log_ratios``: every PanopticFCN measurement over Panoptic FPN's in
    :data:`PEER_MODE` of its mode, with the mode's goal (:data:`GOALS`); ``sizes`` ``{mode:
    (H, W)}`` label them."""
    found = {(r['model'], r['mode']): r for r in results}
    rows = []
    for mode in modes:
        for model in models:
            if not is_fcn(model) or skip_reason(model, mode):
                continue
            peer_mode = PEER_MODE[mode]
            label = '{} {} {}x{} / {} {}x{}'.format(model, mode, *sizes[mode], peer_mode,
                                                    *sizes[peer_mode])
            rows.append((label, found.get((model, mode)), found.get((PEER, peer_mode)),
                         GOALS.get(mode)))
    return rows


def parse_args(argv=None):
    """The command line, with the sizes parsed into ``args.sizes`` (``{mode: (H, W)}``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=','.join(MODELS),
                        help="comma-separated; ours may carry get_model overrides after ':' as "
                             "'name:key=value' (one override per model here); ratios are taken "
                             "against {} and need it".format(PEER))
    parser.add_argument('--modes', default=','.join(MODES),
                        help='train (--train-size), infer (network forward), panoptic '
                             '(predict_panoptic), fast512 (PanopticFCN preset fast512\'s '
                             'predict_panoptic); the last three at --infer-size')
    parser.add_argument('--train-size', default='512,1024', help='H,W of the training step')
    parser.add_argument('--infer-size', default='1024,2048', help='H,W of the other modes')
    parser.add_argument('--warmup', type=int, default=WARMUP, help='untimed steps first')
    parser.add_argument('--iters', type=int, default=ITERS, help='timed steps')
    parser.add_argument('--pretrained', action='append', metavar='NAME=FILE',
                        help='load trained weights (.params) into every row of zoo model NAME '
                             '(repeatable); default random weights')
    parser.add_argument('--child', nargs=2, metavar=('MODEL', 'MODE'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.modes.split(',')) - set(MODES)
    if unknown:
        parser.error('unknown mode(s) {}; valid: {}'.format(', '.join(sorted(unknown)),
                                                            ', '.join(MODES)))
    try:
        args.pretrained = parse_pretrained(args.pretrained)
        train = tuple(int(v) for v in args.train_size.split(','))
        infer = tuple(int(v) for v in args.infer_size.split(','))
    except ValueError as err:
        parser.error(str(err))
    if len(train) != 2 or len(infer) != 2:
        parser.error('--train-size and --infer-size take H,W')
    if args.warmup < 0 or args.iters < 1:
        parser.error('--warmup must be >= 0 and --iters >= 1')
    args.sizes = {'train': train, 'infer': infer, 'panoptic': infer, 'fast512': infer}
    return args


def main():
    """Run every (model, mode) in its own process, then log the table and the ratios."""
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.child:
        model, mode = args.child
        result = run_child(model, mode, args.sizes[mode], args.warmup, args.iters,
                           args.pretrained)
        sys.stdout.write(json.dumps(result) + '\n')
        return
    models, modes = args.models.split(','), args.modes.split(',')
    logger.info('OMP_NUM_THREADS=%s, %d warm-up + %d timed steps, train %dx%d, infer %dx%d, '
                'weights: %s', os.environ.get('OMP_NUM_THREADS', '(unset)'), args.warmup,
                args.iters, *args.sizes['train'], *args.sizes['infer'],
                args.pretrained or 'random')
    results = []
    for mode in modes:
        for model in models:
            if skip_reason(model, mode):
                continue
            result = run_in_child(__file__, model, mode, sys.argv[1:])
            if result is not None:
                results.append(result)
    log_table(results)
    rows = ratio_rows(results, models, modes, args.sizes)
    if rows:
        log_ratios('PanopticFCN / Panoptic FPN R50 ({}), time and peak RSS measured in this run:'
                   .format(PEER), rows)
    if rows and not args.pretrained.get(FCN):
        logger.info('random PanopticFCN weights: the post-processing of panoptic / fast512 is '
                    'not a trained model\'s (see the notes: candidates, masks scored, segments); '
                    'trained weights: --pretrained NAME=FILE')


if __name__ == '__main__':
    main()
