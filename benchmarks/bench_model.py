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
import json
import logging
import sys

import mxnet as mx

from _bench import (ITERS, WARMUP, build, log_table, make_train_step, measurement, run_in_child,
                    synthetic_batch, time_steps)

MODELS = ('panoptic_fpn_resnet50_v1b_citys', 'gluoncv', 'gluoncv_100dets')


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
    if model.startswith('gluoncv'):
        train_step = make_train_step(params, lambda: gluoncv_losses(net, batch))
    else:
        train_step = make_train_step(params, lambda: tuple(net.train_losses(batch).values()))

    def infer_step():
        out = net(batch['data']) if model.startswith('gluoncv') else net.predict(batch['data'])
        mx.nd.waitall()
        return out

    steps = {'train': train_step, 'infer': infer_step,
             'panoptic': lambda: predict_panoptic(net, batch['data'])}
    return measurement(model, mode, size, time_steps(steps[mode], warmup, iters))


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
    parser.add_argument('--warmup', type=int, default=WARMUP)
    parser.add_argument('--iters', type=int, default=ITERS)
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
            result = run_in_child(__file__, model, mode, sys.argv[1:])
            if result is not None:
                results.append(result)
    log_table(results)


if __name__ == '__main__':
    main()
