"""CPU speed and peak memory of Panoptic FPN next to gluoncv's Mask R-CNN FPN, in one run.

Every (model, mode) runs in its own subprocess so its peak RSS is its own.  A training step is
forward + losses + backward + SGD update on one synthetic image (frozen stem, layer1 and batch
norm for both networks, as gluoncv's recipe); inference is the network's forward on one image.
Both networks are hybridized.  Example (the numbers in the issue note come from this)::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py --warmup 2 --iters 3

The gluoncv reference is ``mask_rcnn_fpn_resnet50_v1b_coco(pretrained_base=False)``; its anchor map
is pre-allocated for 384x384 P2 cells, too small for 1024x2048, so the benchmark re-creates its
anchor generators for 512x512 (same anchors, larger allocation).  ``gluoncv_100dets`` also caps
its mask head at 100 detections like ours (its default runs it on 1000).  On CPU gluoncv's FPN
RoIAlign reads unwritten memory in a hybridized graph (see ``gluonpan.nn.pyramid_roi_align``): its
values are off, its timing is not.
"""
import argparse
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

MODELS = ('panoptic_fpn_resnet50_v1b_citys', 'gluoncv', 'gluoncv_100dets')
# ours: the stem, res2 and every batch norm of the backbone (gluoncv's train_patterns leave the same)
FROZEN = r'resnetv1b_(conv0_|layers1_|down1_|.*batchnorm).*'


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


def build(model):
    """The network, initialised and hybridized, and its trainable parameters."""
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
        net.collect_params(FROZEN).setattr('grad_req', 'null')
        params = {k: v for k, v in net.collect_params().items() if v.grad_req != 'null'}
    net.hybridize(static_alloc=True)
    return net, params


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


def run_child(model, mode, size, warmup, iters):
    """Time ``warmup + iters`` steps of one model and mode; returns a result dict."""
    from gluonpan.model_zoo import predict_panoptic
    net, params = build(model)
    batch = synthetic_batch(*size)
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': 1e-5, 'momentum': 0.9})

    def train_step():
        with autograd.record():
            if model.startswith('gluoncv'):
                losses = gluoncv_losses(net, batch)
            else:
                losses = tuple(net.train_losses(batch).values())
            total = mx.nd.add_n(*losses)
        total.backward()
        trainer.step(1)
        mx.nd.waitall()

    def infer_step():
        out = net(batch['data']) if model.startswith('gluoncv') else net.predict(batch['data'])
        mx.nd.waitall()
        return out

    steps = {'train': train_step, 'infer': infer_step,
             'panoptic': lambda: predict_panoptic(net, batch['data'])}
    times = []
    for i in range(warmup + iters):
        tic = time.time()
        steps[mode]()
        times.append(time.time() - tic)
    times = times[warmup:]
    return dict(model=model, mode=mode, size='{}x{}'.format(*size), mean_s=float(np.mean(times)),
                std_s=float(np.std(times)), iters=iters,
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default=','.join(MODELS),
                        help="comma-separated; ours may carry get_model overrides after ':' as "
                             "'name:key=value' (one override per model here)")
    parser.add_argument('--modes', default='train,infer,panoptic',
                        help='train (512x1024), infer (1024x2048), panoptic (predict_panoptic, '
                             'ours only, 1024x2048)')
    parser.add_argument('--train-size', default='512,1024')
    parser.add_argument('--infer-size', default='1024,2048')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--child', nargs=2, metavar=('MODEL', 'MODE'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    sizes = {'train': tuple(int(v) for v in args.train_size.split(',')),
             'infer': tuple(int(v) for v in args.infer_size.split(','))}
    sizes['panoptic'] = sizes['infer']
    if args.child:
        model, mode = args.child
        result = run_child(model, mode, sizes[mode], args.warmup, args.iters)
        sys.stdout.write(json.dumps(result) + '\n')
        return
    results = []
    for mode in args.modes.split(','):
        for model in args.models.split(','):
            if (mode == 'panoptic' and model.startswith('gluoncv')) or \
                    (mode == 'train' and model == 'gluoncv_100dets'):
                continue  # no panoptic output; the detection cap does not act in training
            cmd = [sys.executable, __file__, '--child', model, mode] + sys.argv[1:]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                logging.error('%s %s failed:\n%s', model, mode, proc.stderr[-3000:])
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            logging.info(json.dumps(results[-1]))
    logging.info('%-34s %-9s %-10s %12s %14s', 'model', 'mode', 'size', 'time (s)',
                 'peak RSS (GiB)')
    for r in results:
        logging.info('%-34s %-9s %-10s %6.2f +- %4.2f %14.2f', r['model'], r['mode'], r['size'],
                     r['mean_s'], r['std_s'], r['peak_rss_gib'])


if __name__ == '__main__':
    main()
