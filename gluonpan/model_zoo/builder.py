"""What every zoo builder shares: the ResNet backbone, initialisation and loading of weights.

A builder names its architecture's assembly function (``build_panoptic_fpn``,
``build_semantic_fpn``) and hands it to :func:`get_zoo_model` with the backbone name; the backbone,
the ``pretrained`` / ``pretrained_base`` rules and their errors are the same for all of them.
"""
import os

import mxnet as mx
from mxnet.gluon import nn
from gluoncv.model_zoo.resnetv1b import resnet18_v1b, resnet50_v1b, resnet101_v1b

from ..data.categories import PanopticCategories, coco_categories_from_json
from ..errors import DataError, MissingFileError, UsageError
from ..nn.backbone import ResNetV1bFeatures, stride_in_1x1
from .model_store import get_backbone_file, get_model_file
from .model_zoo import load_parameters

__all__ = ['COCO_CATEGORIES_JSON', 'resnet_v1b_backbone', 'get_zoo_model', 'coco_model_categories']

#: COCO panoptic's 133 categories (id, name, isthing, color), the default of converted models
COCO_CATEGORIES_JSON = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'data', 'coco_panoptic_categories.json')
_RESNETS = {'resnet18_v1b': resnet18_v1b, 'resnet50_v1b': resnet50_v1b,
            'resnet101_v1b': resnet101_v1b, 'resnet50_msra': resnet50_v1b,
            'resnet101_msra': resnet101_v1b}
#: ResNetV1b layers with the stride in the 1x1 conv (detectron2's STRIDE_IN_1X1, MSRA weights)
_MSRA = ('resnet50_msra', 'resnet101_msra')


def resnet_v1b_backbone(name, norm_layer=None, norm_kwargs=None):
    """C2..C5 of a gluoncv ResNetV1b; frozen batch norm unless ``norm_layer`` is given.

    Parameters
    ----------
    name : str
        ``'resnet18_v1b'``, ``'resnet50_v1b'``, ``'resnet101_v1b'``, or ``'resnet50_msra'`` /
        ``'resnet101_msra'`` (the same layers with the stride in the 1x1 conv, see
        :func:`gluonpan.nn.stride_in_1x1`).
    norm_layer : type, optional
        Normalisation layer, e.g. ``mxnet.gluon.contrib.nn.SyncBatchNorm`` (trainable).  Default:
        ``BatchNorm`` with ``use_global_stats=True`` (frozen statistics, the detection default).
    norm_kwargs : dict, optional
        Keyword arguments of ``norm_layer`` (e.g. ``{'num_devices': 8}``).
    """
    resnet = _RESNETS[name](pretrained=False, dilated=False,
                            norm_layer=norm_layer or nn.BatchNorm,
                            norm_kwargs=dict(norm_kwargs or {}),
                            use_global_stats=norm_layer is None)
    return ResNetV1bFeatures(stride_in_1x1(resnet) if name in _MSRA else resnet)


def get_zoo_model(name, backbone, build, pretrained=False, pretrained_base=False, ctx=mx.cpu(),
                  root=None, norm_layer=None, norm_kwargs=None):
    """Build, initialise and optionally load a zoo network on a ResNet backbone.

    Every parameter is first initialised with its layer's own initializer (plain
    ``initialize()``), the backbone's deferred shapes are materialised by one 32x32 forward, then
    ``pretrained`` weights (whole network) or ``pretrained_base`` weights (ImageNet backbone) are
    loaded over them.

    Parameters
    ----------
    name : str
        The zoo name (the file of its released weights).
    backbone : str
        A :func:`resnet_v1b_backbone` name.
    build : callable
        ``build(features)`` -> the network, with ``features`` the backbone block; the network
        keeps it as ``net.backbone``.
    pretrained, pretrained_base, ctx, root
        See :func:`gluonpan.model_zoo.get_model`.
    norm_layer, norm_kwargs
        The backbone's normalisation, see :func:`resnet_v1b_backbone`.
    """
    if isinstance(pretrained, str) and not os.path.isfile(pretrained):
        raise MissingFileError('pretrained={!r}: no such .params file'.format(pretrained))
    net = build(resnet_v1b_backbone(backbone, norm_layer, norm_kwargs))
    net.initialize(ctx=ctx)
    first = ctx[0] if isinstance(ctx, (list, tuple)) else ctx
    net.backbone(mx.nd.zeros((1, 3, 32, 32), ctx=first))  # deferred shapes, on every context
    if pretrained:
        path = pretrained if isinstance(pretrained, str) else get_model_file(name, root)
        load_parameters(net, path, ctx, name)
    elif isinstance(pretrained_base, str):  # a converted backbone (python -m gluonpan.convert)
        if not os.path.isfile(pretrained_base):
            raise MissingFileError('pretrained_base={!r}: no such .params file'
                                   .format(pretrained_base))
        load_parameters(net.backbone, pretrained_base, ctx, 'the {} backbone'.format(backbone))
    elif pretrained_base and backbone in _MSRA:
        raise UsageError('pretrained_base: no ImageNet {} weights in the store; start from '
                         'converted weights (pretrained=FILE)'.format(backbone))
    elif pretrained_base:
        load_parameters(net.backbone, get_backbone_file(backbone, root), ctx,
                        'the {} backbone'.format(backbone), ignore_extra=True)
    return net


def coco_model_categories(categories):
    """The categories of a COCO-format model: COCO panoptic's own (133: 80 things, 53 stuff) or any
    other set in the COCO panoptic format (a user's data, the synthetic COCO split)."""
    if categories is None:
        raise UsageError("COCO-format models take their category ids from the dataset's panoptic "
                         "JSON: pass categories=dataset.categories, a panoptic JSON path such as "
                         "'annotations/panoptic_val2017.json', or its 'categories' list")
    if isinstance(categories, PanopticCategories):
        return categories
    if isinstance(categories, (list, tuple)):
        return PanopticCategories(categories)
    categories = coco_categories_from_json(categories)
    if not categories.num_things or not categories.num_stuff:
        raise DataError('a panoptic model needs thing and stuff categories, got {} and {}'.format(
            categories.num_things, categories.num_stuff))
    return categories
