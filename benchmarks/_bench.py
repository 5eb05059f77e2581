"""What the model benchmarks share: the synthetic image (and the training batch PanopticFCN and
Panoptic SegFormer make from it), the networks, the timed steps, the subprocess per measurement,
the result table and the ratio lines.

Used by ``bench_model.py`` (PanopticFCN, Panoptic SegFormer and gluoncv's Mask R-CNN against
Panoptic FPN), ``bench_semantic_fpn.py`` (Semantic FPN against Panoptic FPN), ``bench_export.py``
and ``bench_deformable_attention.py`` (:func:`time_steps`).  The method: every (model, mode)
runs in its own subprocess (``--child MODEL MODE``) so its peak RSS is its own; the network is
hybridized (``static_alloc``) with the parameters its training keeps fixed frozen; ``warmup``
untimed steps then ``iters`` timed ones on one synthetic image.
"""
import ast
import json
import logging
import operator
import resource
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

__all__ = ['FROZEN', 'WARMUP', 'ITERS', 'SGD_RECIPE', 'synthetic_batch', 'model_train_batch',
           'split_model', 'build', 'make_train_step', 'time_steps', 'measurement', 'run_in_child',
           'log_table', 'log_ratios']

logger = logging.getLogger(__name__)

# ours: the stem, res2 and every batch norm of the backbone (gluoncv's train_patterns leave the same)
FROZEN = r'resnetv1b_(conv0_|layers1_|down1_|.*batchnorm).*'
#: default untimed and timed steps of a measurement
WARMUP, ITERS = 2, 3
#: the update of a training step unless the model's recipe says otherwise (the names of a task's
#: ``train_defaults``): SGD with momentum, no weight decay, no clipping
SGD_RECIPE = {'optimizer': 'sgd', 'lr': 1e-5, 'momentum': 0.9, 'wd': 0., 'clip_grad_norm': 0.}


def synthetic_batch(height, width, num_instances=8, num_semantic=12, seed=0):
    """One image with boxes, masks, semantic labels and RPN targets over ``FPNAnchors``."""
    from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator
    from gluonpan.nn.anchors import FPNAnchors
    rng = np.random.RandomState(seed)
    x1 = rng.uniform(0, width * 0.7, num_instances)
    y1 = rng.uniform(0, height * 0.7, num_instances)
    w = rng.uniform(32, width * 0.3, num_instances)
    h = rng.uniform(32, height * 0.3, num_instances)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)  # (M, 4)
    masks = np.zeros((num_instances, height, width), np.uint8)
    for mask, (a, b, c, d) in zip(masks, boxes.astype(int)):
        mask[b:d + 1, a:c + 1] = 1
    gen = RPNTargetGenerator(num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3,
                             pos_ratio=0.5, stds=(1., 1., 1., 1.))
    cls_t, box_t, box_m = gen(mx.nd.array(boxes), mx.nd.array(FPNAnchors()(height, width)),
                              width, height)
    return dict(
        data=mx.nd.array(rng.normal(size=(1, 3, height, width))),
        gt_boxes=mx.nd.array(boxes[None]),
        gt_classes=mx.nd.array(rng.randint(0, 8, (1, num_instances, 1))),
        gt_masks=mx.nd.array(masks[None], dtype='uint8'),
        sem_seg=mx.nd.array(rng.randint(0, num_semantic, (1, height, width))),
        rpn_cls_targets=mx.nd.array(cls_t[None]), rpn_box_targets=mx.nd.array(box_t[None]),
        rpn_box_masks=mx.nd.array(box_m[None]))



def model_train_batch(net, batch, ctx=None):
    """The training batch of a network that makes its own targets (``net.train_targets``:
    PanopticFCN, Panoptic SegFormer) from a :func:`synthetic_batch` (same image, instances and
    semantic map), as the training program makes it.

    The semantic map of :func:`synthetic_batch` is in Panoptic FPN's ``'separated'`` order (stuff
    classes ``0 .. S-1``, "things" ``S``; its default ``num_semantic=12`` is Cityscapes' 11 stuff
    + 1).  The sample handed to ``net.train_targets(net.categories)`` -- what the data workers run
    on each augmented sample -- is what :func:`gluonpan.data.targets.panoptic_targets` gives them:
    that map (uint8), the masks, the thing classes (int32) and the boxes as the masks' extents
    with x2 / y2 the last pixel (the synthetic masks cover the integer part of the synthetic
    boxes, cut at the image's edge).  PanopticFCN's maps the semantic map to its order ("things"
    0, stuff ``1 .. S``) and makes the targets with :class:`gluonpan.data.fcn_targets.FCNTargets`
    for the net's classes; Panoptic SegFormer's
    (:class:`~gluonpan.model_zoo.panoptic_segformer.targets.SegFormerSampleTargets`) makes the
    thing classes, exclusive boxes and stride-4 / stride-8 masks, and the stride-4 mask of every
    stuff class.  The sample is then batched by :func:`gluonpan.data.batchify.train_batchify`
    (the per-slot keys padded) and loaded by :func:`~gluonpan.data.batchify.split_and_load`, as
    in training.

    Parameters
    ----------
    net : gluonpan.model_zoo.panoptic_fcn.PanopticFCN or PanopticSegFormer
        The network the targets are for (its ``categories`` and ``train_targets``).
    batch : dict
        :func:`synthetic_batch` of one image (its ``data``, ``sem_seg``, ``gt_masks``,
        ``gt_boxes``, ``gt_classes`` are read).
    ctx : mx.Context, optional
        Where the batch goes; default ``mx.cpu()``.

    Returns
    -------
    dict
        NDArrays with the keys ``net.TRAIN_INPUTS`` (plus ``image_id``), batch 1.
    """
    from gluonpan.data.batchify import split_and_load, train_batchify
    categories = net.categories
    sem_seg = batch['sem_seg'][0].asnumpy().astype(np.uint8)  # (H, W), 'separated' order
    if sem_seg.max() > categories.num_stuff:
        raise ValueError('semantic label {} is not a "separated" class of {} stuff + "things"'
                         .format(sem_seg.max(), categories.num_stuff))
    height, width = sem_seg.shape
    boxes = np.minimum(np.floor(batch['gt_boxes'][0].asnumpy()),  # (M, 4) the masks' extents
                       np.array([width, height, width, height], np.float32) - 1)
    sample = net.train_targets(categories)(dict(
        sem_seg=sem_seg, gt_masks=batch['gt_masks'][0].asnumpy(), gt_boxes=boxes,
        gt_classes=batch['gt_classes'][0, :, 0].asnumpy().astype(np.int32)))
    sample.update(data=batch['data'][0].asnumpy(), image_id=0)
    return split_and_load(train_batchify([sample]), [ctx or mx.cpu()])[0]


def split_model(model):
    """``'name:key=value,...'`` -> ``(name, {key: value})``, the values read as Python literals
    (``'panoptic_fcn_resnet50_v1b_citys:deform=False'`` -> ``('panoptic_fcn_...', {'deform':
    False})``); a plain name has no overrides."""
    name, _, overrides = model.partition(':')
    return name, {k: ast.literal_eval(v) for k, v in
                  (item.split('=', 1) for item in overrides.split(',') if item)}

def build(model, frozen=FROZEN, options=None):
    """The network, initialised and hybridized, and its trainable parameters.

    Parameters
    ----------
    model : str
        ``'gluoncv'`` / ``'gluoncv_100dets'`` (gluoncv's Mask R-CNN R50-FPN, see
        ``bench_model.py``) or a gluonpan zoo name, optionally with ``get_model`` overrides after
        ``':'`` as ``'name:key=value,...'``.
    frozen : str or None
        Regex of our parameters kept fixed (``grad_req='null'``), as in the model's training;
        ``None`` freezes none.  gluoncv's network keeps its own ``collect_train_params``.
    options : dict, optional
        More ``get_model`` keywords of a gluonpan model, over the overrides in ``model`` (e.g.
        what a benchmark mode requires, or ``pretrained=FILE``).

    Returns
    -------
    net : HybridBlock
    params : dict or ParameterDict
        The parameters to train.
    """
    if model.startswith('gluoncv'):
        if options:
            raise ValueError('{}: no options {} for gluoncv\'s network'.format(model, options))
        from gluoncv.model_zoo import get_model as gcv_get_model
        from gluoncv.model_zoo.rcnn.rpn.anchor import RPNAnchorGenerator
        net = gcv_get_model('mask_rcnn_fpn_resnet50_v1b_coco', pretrained_base=False)
        generators = mx.gluon.nn.HybridSequential()
        for i, (stride, scale) in enumerate(zip((4, 8, 16, 32, 64), (2, 4, 8, 16, 32))):
            size = max(512 // 2 ** i, 16)
            generators.add(RPNAnchorGenerator(stride, 16, (0.5, 1, 2), scale, (size, size)))
        net.rpn.anchor_generator = generators
        if model == 'gluoncv_100dets':
            net._rcnn_max_dets = 100
        net.initialize()
        net.collect_params().setattr('grad_req', 'null')
        params = net.collect_train_params()
        params.setattr('grad_req', 'write')
    else:
        from gluonpan.model_zoo import get_model
        name, kwargs = split_model(model)  # e.g. 'panoptic_fpn_...:rpn_channels=1024'
        kwargs.update(options or {})
        net = get_model(name, **kwargs)
        if frozen:
            net.collect_params(frozen).setattr('grad_req', 'null')
        params = {k: v for k, v in net.collect_params().items() if v.grad_req != 'null'}
    net.hybridize(static_alloc=True)
    return net, params


def make_train_step(params, losses, recipe=None):
    """A training step: ``losses()`` recorded, summed, back-propagated, one update.

    Parameters
    ----------
    params : dict or ParameterDict
        The trainable parameters (the ``gluon.Trainer`` is made here, once; it honours their
        ``lr_mult``).
    losses : callable
        ``losses()`` -> a sequence of loss NDArrays of one batch.
    recipe : dict, optional
        The update, in the names of a task's ``train_defaults`` (e.g.
        ``PanopticSegFormerTask.train_defaults``): ``optimizer`` (``'sgd'`` or ``'adamw'``,
        :class:`gluonpan.utils.optim.AdamW`), ``lr``, ``wd``, ``momentum`` (SGD only) and
        ``clip_grad_norm`` (> 0: the engine's update, ``allreduce_grads``, the gradients scaled
        to that global norm by :func:`gluonpan.utils.optim.clip_global_norm`, ``update``);
        what it leaves out is :data:`SGD_RECIPE`'s, other keys are ignored.

    Returns
    -------
    callable
        The step, which waits for every operation to finish.
    """
    from gluonpan.utils.optim import clip_global_norm  # also registers 'adamw'
    recipe = dict(SGD_RECIPE, **(recipe or {}))
    options = {'learning_rate': recipe['lr'], 'wd': recipe['wd']}
    if recipe['optimizer'] == 'sgd':
        options['momentum'] = recipe['momentum']
    trainer = gluon.Trainer(params, recipe['optimizer'], options)
    max_norm = recipe['clip_grad_norm']

    def train_step():
        with autograd.record():
            total = mx.nd.add_n(*losses())
        total.backward()
        if max_norm:
            trainer.allreduce_grads()
            clip_global_norm(trainer, max_norm, 1)
            trainer.update(1)
        else:
            trainer.step(1)
        mx.nd.waitall()
    return train_step


def time_steps(step, warmup, iters):
    """Seconds of each of the ``iters`` timed calls of ``step()`` after ``warmup`` untimed ones.

    ``step`` must return only once its work is done (``mx.nd.waitall()`` or ``asnumpy()``).
    """
    times = []
    for _ in range(warmup + iters):
        tic = time.time()
        step()
        times.append(time.time() - tic)
    return times[warmup:]


def measurement(model, mode, size, times, note=''):
    """The result dict of one child: mean and spread of ``times``, this process's peak RSS, and
    a ``note`` for the table (what differs from the model's defaults, what the output held)."""
    return dict(model=model, mode=mode, size='{}x{}'.format(*size), mean_s=float(np.mean(times)),
                std_s=float(np.std(times)), iters=len(times),
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                note=note)


def run_in_child(script, model, mode, argv):
    """Run ``script --child MODEL MODE argv...`` in a fresh interpreter; its result dict (logged
    as JSON), or ``None`` (the error logged) when it fails."""
    cmd = [sys.executable, script, '--child', model, mode] + list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        logger.error('%s %s failed:\n%s', model, mode, proc.stderr[-3000:])
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    logger.info(json.dumps(result))
    return result


def log_table(results):
    """Log one line per result: model, mode, size, time (mean +- std), peak RSS and its note."""
    width = max([34] + [len(r['model']) for r in results])
    header = '{:<{w}} {:<9} {:<10} {:>12} {:>14}  {}'.format(
        'model', 'mode', 'size', 'time (s)', 'peak RSS (GiB)',
        'note' if any(r.get('note') for r in results) else '', w=width)
    logger.info('%s', header.rstrip())
    for r in results:
        line = '{:<{w}} {:<9} {:<10} {:6.2f} +- {:4.2f} {:14.2f}  {}'.format(
            r['model'], r['mode'], r['size'], r['mean_s'], r['std_s'], r['peak_rss_gib'],
            r.get('note', ''), w=width)
        logger.info('%s', line.rstrip())


_COMPARE = {'<': operator.lt, '<=': operator.le}


def log_ratios(title, rows):
    """Log ``title``, then per row the time and peak RSS of a result over its peer's, both
    measured in this run, and whether the time ratio meets the row's goal.

    Parameters
    ----------
    title : str
        The heading line.
    rows : list of tuple
        ``(label, result, peer, goal)``: ``result`` and ``peer`` are :func:`measurement` dicts
        (``None``: the line says n/a); ``goal`` is ``None`` or ``(op, limit, text)`` with ``op``
        ``'<'`` or ``'<='``, checked against ``result time / peer time``.
    """
    logger.info('%s', title)
    width = max([0] + [len(row[0]) for row in rows])
    for label, result, peer, goal in rows:
        if result is None or peer is None:
            logger.info('  %-*s  n/a (a measurement failed or was not run)', width, label)
            continue
        time_ratio = result['mean_s'] / peer['mean_s']
        verdict = ''
        if goal is not None:
            op, limit, text = goal
            verdict = '  goal time {} {:.2f}x ({}): {}'.format(
                op, limit, text, 'met' if _COMPARE[op](time_ratio, limit) else 'NOT met')
        logger.info('  %-*s  time %5.2fx   peak RSS %5.2fx%s', width, label, time_ratio,
                    result['peak_rss_gib'] / peer['peak_rss_gib'], verdict)
