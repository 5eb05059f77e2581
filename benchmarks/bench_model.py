"""CPU speed and peak memory of PanopticFCN R50, Panoptic SegFormer R50 and gluoncv's Mask R-CNN
FPN next to Panoptic FPN R50, in one run.

The peer is ``panoptic_fpn_resnet50_v1b_citys``; it is measured against
``panoptic_fcn_resnet50_v1b_citys`` (also as ``...:deform=False``),
``panoptic_segformer_resnet50_v1b_citys`` (the zoo defaults, the reference's R50 architecture:
width 256, 6 encoder and 6 location-decoder layers, 300 queries, 4 thing and 6 stuff mask
blocks, deformable attention ``msda_method='gather'``) and gluoncv's
``mask_rcnn_fpn_resnet50_v1b_coco`` (``gluoncv``, ``gluoncv_100dets``), all with random weights
unless ``--pretrained`` gives a file.  Every (model, mode) runs in its own subprocess so its peak
RSS is its own; every network is hybridized (``static_alloc``); ``--warmup`` untimed steps come
before ``--iters`` timed ones, on one synthetic image (``_bench.synthetic_batch``: normal noise,
8 box-shaped instances of 8 classes, a random 12-class semantic map).  The modes:

* ``train`` (``--train-size``, 512x1024): one training step of batch 1 -- forward, losses,
  backward, one SGD update (Panoptic SegFormer: its task's AdamW, below) -- with the stem, res2
  and every batch norm of the backbone frozen (as gluoncv's recipe and our
  ``frozen_with_pretrained_base``, which Panoptic SegFormer's task uses too).  Panoptic FPN's
  batch: boxes, masks, semantic labels and RPN targets over its anchors.  PanopticFCN's: the
  targets of
  :class:`gluonpan.data.fcn_targets.FCNTargets` made from the same image, instances and semantic
  map (mapped to PanopticFCN's class order) and batched by ``train_batchify``, as in training
  (``_bench.model_train_batch``).  Panoptic SegFormer's: what its ``net.train_targets``
  (``SegFormerSampleTargets``) makes of the same sample -- thing classes, boxes, stride-4 and
  stride-8 thing masks, every stuff class's stride-4 mask -- batched and loaded the same way.
  The targets are made before the timing (in training the data workers make them), like Panoptic
  FPN's RPN targets.  The synthetic semantic map is pixel noise, so almost no position is a
  PanopticFCN stuff target (every Panoptic SegFormer stuff class is present, as a noisy mask);
  PanopticFCN's stuff branch of the training graph is dense (every level and class), so its time
  does not depend on that.  PanopticFCN trains with
  ``deform=False`` here: MXNet's modulated deformable convolution has no CPU backward (the table
  notes it).  Panoptic SegFormer's step is the engine's: ``net.train_losses(batch,
  net.batch_totals(batch))`` -- the hybridized forward (dropout on), the numpy Hungarian
  matching of every decoder layer, the thing mask decoder on the matched queries, the losses --
  then backward and the update of ``PanopticSegFormerTask.train_defaults`` (AdamW, lr 1.4e-4,
  weight decay 1e-4, the gradients clipped to a global norm of 0.1: ``allreduce_grads``, the
  norm, the scaling, ``update``), the backbone, sampling offsets and reference points at
  ``lr_mult`` 0.1 as the model sets them (the table notes the recipe).
* ``infer`` (``--infer-size``, 1024x2048): the network's forward, ``net.predict(data)`` and
  ``mx.nd.waitall()`` (gluoncv: ``net(data)``).  PanopticFCN with its default ``deform=True`` (the
  reference's); the ``...:deform=False`` row (PanopticFCN models that override ``deform`` are
  measured in this mode only) shows what the deformable convolutions cost.  Panoptic SegFormer
  sees the 1024x2048 image as it is, neither resized nor padded: its encoder reads 4 levels of
  128x256, 64x128, 32x64 and 16x32 (43520 tokens), and its mask decoders return the 100 thing
  candidates' and 11 stuff classes' masks at 128x256 (stride 8).
* ``panoptic`` (1024x2048): ``net.predict_panoptic(data)``, the whole prediction down to the
  panoptic map -- network, post-processing and fusion (not gluoncv: no panoptic output).
  Panoptic SegFormer's network runs at 1024x2048 here too: its ``resize_for_test`` resizes only
  when ``inference_options['test_size']`` is set (the COCO models' (800, 1333)); the Cityscapes
  models have none, as the reference tests Cityscapes at full size (the table notes the
  network's size when it is not the image's).  Its masks are then resized to 1024x2048 and
  merged.
* ``fast512`` (PanopticFCN only): ``get_model(..., preset='fast512')``, whose ``predict_panoptic``
  resizes the 1024x2048 image to short side 512 (max 854, so 427x854, padded to 448x864) and
  uses the reference's fast thresholds; compared with Panoptic FPN's ``panoptic`` at 1024x2048.

The table lists time (mean +- std over the timed steps) and peak RSS per row; the ratio lines that
follow are PanopticFCN / Panoptic FPN R50 of the time and peak RSS, both measured in this run,
for train, infer (each PanopticFCN row), panoptic, and fast512 against Panoptic FPN's panoptic,
with the issue's goals: inference (``infer``, ``panoptic``) no slower than Panoptic FPN at the same
resolution, the 512 setting (``fast512``) well under half of it (< 0.5x); then Panoptic SegFormer
/ Panoptic FPN R50 for train, infer and panoptic, without a goal (the issue asks for the ratios
only).

Random weights (the default) make the ``panoptic`` / ``fast512`` post-processing unlike a trained
model's, so read those rows with the table's note, which gives per PanopticFCN row the thing
candidates (centre peaks above the threshold), the masks scored after kernel fusion and the
segments returned, per Panoptic SegFormer row the candidates whose masks were resized to the
image to be scored, and the segments.  An untrained PanopticFCN's centre scores are all about
0.1-0.25: at the default threshold (0.05) every level gives its maximum of peaks
(``center_top_num // 2`` = 50; about 100-160 candidates in all on small smoke images), and every
kernel left after fusion gets a stride-4 mask and a mask-quality score -- more than a trained
model, whose peaks are few -- but none reaches the fusion score (0.2), so no thing mask is
resized to the image and fused, which a trained model does for each kept instance.
``fast512``'s threshold (0.2) leaves about one candidate.  An untrained Panoptic SegFormer's class scores stay near its classifiers' prior
(sigmoid 0.01; 0.006-0.04 on a smoke image) and its mask values below 2, so no candidate's score
bound (score x peak mask value squared) reaches the quality threshold (0.25): its note says ``0
of 111 candidates scored at the image size`` and no mask is resized to the image or merged,
which a trained model does for its confident candidates.  Panoptic FPN's random detector has its
own, different counts.  ``--pretrained NAME=FILE`` (repeatable; the network's ``.params``) loads
trained weights into every row of zoo model NAME for representative numbers; ``train`` and
``infer`` do not depend on the weights.

Full size (the issue's numbers), on an otherwise idle machine::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3

Only PanopticFCN against Panoptic FPN (no gluoncv rows)::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3 \\
        --models panoptic_fpn_resnet50_v1b_citys,panoptic_fcn_resnet50_v1b_citys,\\
panoptic_fcn_resnet50_v1b_citys:deform=False

Only Panoptic SegFormer against Panoptic FPN::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3 \\
        --models panoptic_fpn_resnet50_v1b_citys,panoptic_segformer_resnet50_v1b_citys \\
        --modes train,infer,panoptic

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

from _bench import (ITERS, WARMUP, build, log_ratios, log_table, make_train_step, measurement,
                    model_train_batch, run_in_child, split_model, synthetic_batch, time_steps)

logger = logging.getLogger(__name__)

#: the peer every ratio is taken against, and the PanopticFCN and Panoptic SegFormer compared
PEER = 'panoptic_fpn_resnet50_v1b_citys'
FCN = 'panoptic_fcn_resnet50_v1b_citys'
SEGFORMER = 'panoptic_segformer_resnet50_v1b_citys'
MODELS = (PEER, FCN, FCN + ':deform=False', SEGFORMER, 'gluoncv', 'gluoncv_100dets')
MODES = ('train', 'infer', 'panoptic', 'fast512')
#: the peer's mode each mode is compared with
PEER_MODE = {'train': 'train', 'infer': 'infer', 'panoptic': 'panoptic', 'fast512': 'panoptic'}
#: the issue's goals for the time ratio PanopticFCN / Panoptic FPN: (op, limit, text) (Panoptic
#: SegFormer's ratios have none)
GOALS = {'infer': ('<=', 1.0, 'no slower at the same resolution'),
         'panoptic': ('<=', 1.0, 'no slower at the same resolution'),
         'fast512': ('<', 0.5, 'well under half')}


def is_fcn(model):
    """Whether ``model`` (a ``--models`` entry) is a PanopticFCN."""
    return split_model(model)[0].startswith('panoptic_fcn_')


def is_segformer(model):
    """Whether ``model`` (a ``--models`` entry) is a Panoptic SegFormer."""
    return split_model(model)[0].startswith('panoptic_segformer_')


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
    """What ``mode`` imposes on ``model``: ``get_model`` keywords, the training update, and the
    table's note of them.

    Returns
    -------
    options : dict
        ``deform=False`` for a PanopticFCN training step (MXNet's modulated deformable
        convolution has no CPU backward), ``preset='fast512'`` in the fast512 mode, else none.
    recipe : dict or None
        ``_bench.make_train_step``'s ``recipe`` of a training step: Panoptic SegFormer's task
        defaults (``PanopticSegFormerTask.train_defaults``: AdamW, clipping to a global norm),
        else ``None`` (``_bench.SGD_RECIPE``).
    note : str
    """
    if is_fcn(model) and mode == 'train':
        return {'deform': False}, None, 'deform=False (DCN has no CPU backward)'
    if is_segformer(model) and mode == 'train':
        from gluonpan.tasks.panoptic import PanopticSegFormerTask
        recipe = PanopticSegFormerTask.train_defaults
        return {}, recipe, ('{optimizer} lr {lr:g} wd {wd:g}, clip grad norm {clip_grad_norm:g} '
                            '(task defaults)'.format(**recipe))
    if mode == 'fast512':
        return {'preset': 'fast512'}, None, "preset='fast512'"
    return {}, None, ''


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


def train_losses(net, batch):
    """``losses()`` of one of our networks' training step on ``batch``, called as the engine
    calls it.

    A network that makes its own targets (``net.train_targets``: PanopticFCN, Panoptic
    SegFormer) gets its training batch made from ``batch`` first (``_bench.model_train_batch``),
    Panoptic FPN ``batch`` itself (RPN targets included); a network with ``batch_totals``
    (Panoptic SegFormer) gets them with its losses, as ``gluonpan.utils.engine`` passes them.

    Returns
    -------
    callable
        ``losses()`` -> the tuple of the network's loss NDArrays.
    """
    if hasattr(net, 'train_targets'):
        batch = model_train_batch(net, batch)
    if hasattr(net, 'batch_totals'):
        return lambda: tuple(net.train_losses(batch, net.batch_totals(batch)).values())
    return lambda: tuple(net.train_losses(batch).values())


def make_step(net, params, model, mode, batch, recipe=None):
    """The timed step of ``model`` in ``mode`` on ``batch``, which returns once its work is done;
    ``recipe``: the training step's update (:func:`mode_options`).

    Returns
    -------
    step : callable
    last : list
        Filled by the panoptic steps with their last ``(pan_ids, segments)``.
    """
    gluoncv = model.startswith('gluoncv')
    last = []
    if mode == 'train':
        losses = (lambda: gluoncv_losses(net, batch)) if gluoncv else train_losses(net, batch)
        return make_train_step(params, losses, recipe), last
    if mode == 'infer':
        def infer_step():
            out = net(batch['data']) if gluoncv else net.predict(batch['data'])
            mx.nd.waitall()
            return out
        return infer_step, last

    def panoptic_step():  # ends in numpy: synchronous
        last[:] = [net.predict_panoptic(batch['data'])]
    return panoptic_step, last


def _count_calls(module, counters):
    """Wrap the functions of ``module`` named in ``counters`` (``{name: count(output)}``) so that
    each call stores ``count(output)`` in the returned dict under its name."""
    counts = {}

    def counted(name, fn, count):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            counts[name] = count(out)
            return out
        return wrapper
    for name, count in counters.items():
        setattr(module, name, counted(name, getattr(module, name), count))
    return counts


def count_candidates(net, model):
    """Make the panoptic post-processing of ``model`` (in this process) count what it works on.

    PanopticFCN: wraps ``thing_candidates`` (centre peaks above ``center_thresh``, at most
    ``center_top_num // 2`` per level) and ``fuse_thing_kernels`` (what is left after kernel
    fusion: the masks ``rescore_things`` computes at stride 4) of
    :mod:`gluonpan.model_zoo.panoptic_fcn.inference`.  Panoptic SegFormer: wraps ``fused_scores``
    of :mod:`gluonpan.model_zoo.panoptic_segformer.inference`, which gets the candidates (of the
    ``num_candidates`` things and one per stuff class) whose score bound can reach the quality
    threshold: their stride-8 masks are resized to the image to score them.  The wrappers only
    take a ``len``.

    Returns
    -------
    counts : dict
        Filled as ``predict_panoptic`` runs, by the last prediction.
    template : str
        The table's note of ``counts`` (``str.format``); ``''`` (and no counts) for other models.
    """
    if is_fcn(model):
        from gluonpan.model_zoo.panoptic_fcn import inference
        counters = {name: lambda out: len(out[1])  # (kernels, scores, classes)
                    for name in ('thing_candidates', 'fuse_thing_kernels')}
        return (_count_calls(inference, counters),
                '{thing_candidates} thing candidates, {fuse_thing_kernels} masks scored')
    if is_segformer(model):
        from gluonpan.model_zoo.panoptic_segformer import inference
        total = net.num_candidates + net.categories.num_stuff
        return (_count_calls(inference, {'fused_scores': len}),
                '{fused_scores} of %d candidates scored at the image size' % total)
    return {}, ''


def network_size(net, model, mode, size):
    """(H, W) the network sees in ``mode`` on an image of ``size`` when it is not ``size``
    (``None`` otherwise): PanopticFCN's fast512 resizes to its test size, a Panoptic SegFormer's
    ``predict_panoptic`` to ``inference_options['test_size']`` when set (the Cityscapes models
    have none: the image's own size)."""
    test_size = (getattr(net, 'inference_options', None) or {}).get('test_size')
    if mode == 'fast512':
        from gluonpan.model_zoo.panoptic_fcn.inference import shortest_edge_size
        return shortest_edge_size(*size, *test_size)
    if is_segformer(model) and mode == 'panoptic' and test_size:
        from gluonpan.model_zoo.panoptic_segformer.inference import keep_ratio_size
        return keep_ratio_size(*size, *test_size)
    return None


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
        returned (for PanopticFCN also its thing candidates and the masks it scored, for Panoptic
        SegFormer the candidates it scored at the image size).
    """
    options, recipe, note = mode_options(model, mode)
    weights = (pretrained or {}).get(split_model(model)[0])
    if weights:
        options['pretrained'] = weights
    net, params = build(model, options=options)
    batch = synthetic_batch(*size)
    step, last = make_step(net, params, model, mode, batch, recipe)
    counts, template = (count_candidates(net, model) if mode in ('panoptic', 'fast512')
                        else ({}, ''))
    times = time_steps(step, warmup, iters)
    notes = [note] if note else []
    seen = network_size(net, model, mode, size)
    if seen:
        notes.append('network at {}x{}'.format(*seen))
    if counts:
        notes.append(template.format(**counts))
    if last:
        segments = last[0][1]
        notes.append('{} segments ({} things)'.format(
            len(segments), sum(1 for s in segments if s['isthing'])))
    if weights:
        notes.append('weights ' + os.path.basename(weights))
    return measurement(model, mode, size, times, '; '.join(notes))


def compared(model):
    """Whether ``model`` gets ratio lines against :data:`PEER` (PanopticFCN, Panoptic
    SegFormer)."""
    return is_fcn(model) or is_segformer(model)


def ratio_rows(results, models, modes, sizes):
    """The rows of ``_bench.log_ratios``: every PanopticFCN and Panoptic SegFormer measurement
    over Panoptic FPN's in :data:`PEER_MODE` of its mode, with the mode's goal (:data:`GOALS`,
    PanopticFCN only); ``sizes`` ``{mode: (H, W)}`` label them."""
    found = {(r['model'], r['mode']): r for r in results}
    rows = []
    for mode in modes:
        for model in models:
            if not compared(model) or skip_reason(model, mode):
                continue
            peer_mode = PEER_MODE[mode]
            label = '{} {} {}x{} / {} {}x{}'.format(model, mode, *sizes[mode], peer_mode,
                                                    *sizes[peer_mode])
            rows.append((label, found.get((model, mode)), found.get((PEER, peer_mode)),
                         GOALS.get(mode) if is_fcn(model) else None))
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
        log_ratios('PanopticFCN, Panoptic SegFormer / Panoptic FPN R50 ({}), time and peak RSS '
                   'measured in this run:'.format(PEER), rows)
    untrained = sorted({split_model(m)[0] for m in models if compared(m)} - set(args.pretrained))
    if rows and untrained and {'panoptic', 'fast512'} & set(modes):
        logger.info('random weights of %s: the post-processing of panoptic / fast512 is not a '
                    'trained model\'s (see the notes: candidates, masks scored, segments); '
                    'trained weights: --pretrained NAME=FILE', ', '.join(untrained))


if __name__ == '__main__':
    main()
