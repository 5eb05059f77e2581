"""Multiply-accumulates of an inference call, per top-level part of the network.

Explains the time ratios of ``bench_model.py`` by the work each network does: a forward hook on
every convolution, transposed convolution, dense layer and modulated deformable convolution adds
``output elements x (input channels / groups) x kernel area`` (a transposed convolution counts
its input elements instead, a dense layer its output elements x input units) to the part of the
network it belongs to (the network's direct child: ``backbone``, ``fpn``, ``rpn``, ...).
Element-wise operations, pooling, resizes, RoIAlign, NMS and the sampling of deformable
convolutions are not counted; neither is the numpy post-processing.  The network runs
imperatively (hooks need it) with random weights, so Panoptic FPN's RoI heads see what a random
RPN proposes (1000 RoIs per image at inference; the mask head runs on the best 100 detections).

Default (the sizes of ``bench_model.py``'s inference rows)::

    OMP_NUM_THREADS=2 python benchmarks/count_macs.py

    OMP_NUM_THREADS=2 python benchmarks/count_macs.py --size 512,1024 \\
        --models panoptic_fcn_resnet50_v1b_citys:deform=False
"""
import argparse
import collections
import logging
import sys

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from _bench import split_model

MODELS = ('panoptic_fpn_resnet50_v1b_citys', 'panoptic_fcn_resnet50_v1b_citys')

logger = logging.getLogger('count_macs')


def _conv_macs(block, inputs, output):
    """MACs of one Conv2D / Conv2DTranspose call."""
    weight = block.weight.shape  # conv (out, in/groups, kh, kw); deconv (in, out/groups, kh, kw)
    if getattr(block, '_op_name', None) == 'Deconvolution':
        return int(np.prod(inputs[0].shape)) * weight[1] * weight[2] * weight[3]
    return int(np.prod(output.shape)) * weight[1] * weight[2] * weight[3]


def _dense_macs(block, inputs, output):
    """MACs of one Dense call: every output element reads ``in_units`` inputs."""
    return int(np.prod(output.shape)) * block.weight.shape[1]


def _counter(block):
    """The MAC function of a block that computes, or None (containers, norms, activations)."""
    if isinstance(block, nn.Dense):
        return _dense_macs
    if isinstance(block, nn.Conv2D) or isinstance(block, nn.Conv2DTranspose):
        return _conv_macs
    if 'Deform' in type(block).__name__ and hasattr(block, 'weight'):
        return _conv_macs  # gluonpan.nn.kernel_heads._ModulatedDeformConv: a Convolution's weight
    return None


def count_macs(net, data):
    """MACs per direct child of ``net`` during ``net.predict(data)``.

    Parameters
    ----------
    net : HybridBlock
        A gluonpan network with ``predict``, not hybridized.
    data : mx.nd.NDArray
        ``(1, 3, H, W)`` input.

    Returns
    -------
    collections.Counter
        ``{child name: MACs}``.
    """
    macs = collections.Counter()

    def attach(block, part):
        for name, child in block._children.items():
            owner = part or name
            counter = _counter(child)
            if counter is not None:
                child.register_forward_hook(
                    lambda b, i, o, counter=counter, owner=owner:
                    macs.update({owner: counter(b, i, o)}))
            attach(child, owner)

    attach(net, None)
    net.predict(data)
    mx.nd.waitall()
    return macs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', default=','.join(MODELS),
                        help="comma-separated zoo names, each optionally 'name:key=value,...'")
    parser.add_argument('--size', default='1024,2048', help='H,W of the input')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)
    from gluonpan.model_zoo import get_model
    height, width = (int(v) for v in args.size.split(','))
    totals = {}
    for model in args.models.split(','):
        name, kwargs = split_model(model)
        mx.random.seed(0)
        net = get_model(name, **kwargs)
        data = mx.nd.random.normal(shape=(1, 3, height, width))
        macs = count_macs(net, data)
        totals[model] = sum(macs.values())
        logger.info('%s at %dx%d: %.1f GMAC', model, height, width, totals[model] / 1e9)
        for part, value in macs.most_common():
            logger.info('    %-16s %7.1f GMAC', part, value / 1e9)
    first = args.models.split(',')[0]
    for model, total in totals.items():
        if model != first:
            logger.info('%s / %s: %.2fx the MACs', model, first, total / totals[first])


if __name__ == '__main__':
    main()
