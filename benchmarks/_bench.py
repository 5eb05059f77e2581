"""What the model benchmarks share: the synthetic image, the networks, the timed steps, the
subprocess per measurement and the result table.

Used by ``bench_model.py`` (Panoptic FPN against gluoncv's Mask R-CNN) and
``bench_semantic_fpn.py`` (Semantic FPN against Panoptic FPN).  The method: every (model, mode)
runs in its own subprocess (``--child MODEL MODE``) so its peak RSS is its own; the network is
hybridized (``static_alloc``) with the parameters its training keeps fixed frozen; ``warmup``
untimed steps then ``iters`` timed ones on one synthetic image.
"""
import ast
import json
import logging
import resource
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

__all__ = ['FROZEN', 'WARMUP', 'ITERS', 'synthetic_batch', 'build', 'make_train_step',
           'time_steps', 'measurement', 'run_in_child', 'log_table']

logger = logging.getLogger(__name__)

# ours: the stem, res2 and every batch norm of the backbone (gluoncv's train_patterns leave the same)
FROZEN = r'resnetv1b_(conv0_|layers1_|down1_|.*batchnorm).*'
#: default untimed and timed steps of a measurement
WARMUP, ITERS = 2, 3


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


def build(model, frozen=FROZEN):
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

    Returns
    -------
    net : HybridBlock
    params : dict or ParameterDict
        The parameters to train.
    """
    if model.startswith('gluoncv'):
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
        name, _, overrides = model.partition(':')  # e.g. 'panoptic_fpn_...:rpn_channels=1024'
        kwargs = {k: ast.literal_eval(v) for k, v in
                  (item.split('=') for item in overrides.split(',') if item)}
        net = get_model(name, **kwargs)
        if frozen:
            net.collect_params(frozen).setattr('grad_req', 'null')
        params = {k: v for k, v in net.collect_params().items() if v.grad_req != 'null'}
    net.hybridize(static_alloc=True)
    return net, params


def make_train_step(params, losses):
    """A training step: ``losses()`` recorded, summed, back-propagated, one SGD update.

    Parameters
    ----------
    params : dict or ParameterDict
        The trainable parameters (the ``gluon.Trainer`` is made here, once).
    losses : callable
        ``losses()`` -> a sequence of loss NDArrays of one batch.

    Returns
    -------
    callable
        The step, which waits for every operation to finish.
    """
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': 1e-5, 'momentum': 0.9})

    def train_step():
        with autograd.record():
            total = mx.nd.add_n(*losses())
        total.backward()
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


def measurement(model, mode, size, times):
    """The result dict of one child: mean and spread of ``times``, this process's peak RSS."""
    return dict(model=model, mode=mode, size='{}x{}'.format(*size), mean_s=float(np.mean(times)),
                std_s=float(np.std(times)), iters=len(times),
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


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
    """Log one line per result: model, mode, size, time (mean +- std) and peak RSS."""
    logger.info('%-34s %-9s %-10s %12s %14s', 'model', 'mode', 'size', 'time (s)',
                'peak RSS (GiB)')
    for r in results:
        logger.info('%-34s %-9s %-10s %6.2f +- %4.2f %14.2f', r['model'], r['mode'], r['size'],
                    r['mean_s'], r['std_s'], r['peak_rss_gib'])
