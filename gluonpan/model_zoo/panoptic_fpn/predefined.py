"""Registered Panoptic FPN models: ``panoptic_fpn_{backbone}_{dataset}``."""
import os

import mxnet as mx
from mxnet.gluon import nn
from gluoncv.model_zoo.resnetv1b import resnet18_v1b, resnet50_v1b, resnet101_v1b

from ...data.categories import PanopticCategories, cityscapes_categories, coco_categories_from_json
from ...nn.backbone import ResNetV1bFeatures
from ..model_store import get_backbone_file, get_model_file
from ...errors import MissingFileError
from ..model_zoo import keyword_names, load_parameters, register_model
from .panoptic_fpn import build_panoptic_fpn

__all__ = ['get_panoptic_fpn', 'resnet_v1b_backbone']

_RESNETS = {'resnet18_v1b': resnet18_v1b, 'resnet50_v1b': resnet50_v1b,
            'resnet101_v1b': resnet101_v1b}
#: COCO panoptic: 80 thing and 53 stuff categories
_COCO_COUNTS = (80, 53)


def resnet_v1b_backbone(name, norm_layer=None, norm_kwargs=None):
    """C2..C5 of a gluoncv ResNetV1b; frozen batch norm unless ``norm_layer`` is given.

    Parameters
    ----------
    name : str
        ``'resnet18_v1b'``, ``'resnet50_v1b'`` or ``'resnet101_v1b'``.
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
    return ResNetV1bFeatures(resnet)


def get_panoptic_fpn(name, backbone, categories, pretrained=False, pretrained_base=False,
                     ctx=mx.cpu(), root=None, norm_layer=None, norm_kwargs=None, **kwargs):
    """Build, initialise and optionally load a Panoptic FPN.

    Every parameter is first initialised with its layer's own initializer (plain
    ``initialize()``), the backbone's deferred shapes are materialised by one 32x32 forward, then
    ``pretrained`` weights (whole network) or ``pretrained_base`` weights (ImageNet backbone) are
    loaded over them.  See :func:`gluonpan.model_zoo.get_model` for the arguments; ``kwargs`` go to
    :func:`build_panoptic_fpn`.
    """
    if isinstance(pretrained, str) and not os.path.isfile(pretrained):
        raise MissingFileError('pretrained={!r}: no such .params file'.format(pretrained))
    net = build_panoptic_fpn(resnet_v1b_backbone(backbone, norm_layer, norm_kwargs), categories,
                             **kwargs)
    net.initialize(ctx=ctx)
    first = ctx[0] if isinstance(ctx, (list, tuple)) else ctx
    net.backbone(mx.nd.zeros((1, 3, 32, 32), ctx=first))  # deferred shapes, on every context
    if pretrained:
        path = pretrained if isinstance(pretrained, str) else get_model_file(name, root)
        load_parameters(net, path, ctx, name)
    elif pretrained_base:
        net.backbone.load_parameters(get_backbone_file(backbone, root), ctx=ctx, ignore_extra=True)
    return net


#: recipe options of every Panoptic FPN builder (what get_model checks ``**kwargs`` against)
OPTIONS = (keyword_names(get_panoptic_fpn, build_panoptic_fpn)
           - {'name', 'backbone', 'categories'})


def _coco_categories(categories):
    if categories is None:
        raise ValueError("COCO category ids come from the dataset's panoptic JSON: pass "
                         "categories=dataset.categories or categories='annotations/"
                         "panoptic_val2017.json'")
    if not isinstance(categories, PanopticCategories):
        categories = coco_categories_from_json(categories)
    if (categories.num_things, categories.num_stuff) != _COCO_COUNTS:
        raise ValueError('COCO panoptic has {} thing and {} stuff categories, got {} and {}; use '
                         'net.reset_class() for another category set'
                         .format(*(_COCO_COUNTS + (categories.num_things, categories.num_stuff))))
    return categories


@register_model(options=OPTIONS)
def panoptic_fpn_resnet18_v1b_citys(**kwargs):
    """Panoptic FPN, ResNet-18-v1b, Cityscapes (8 things, 11 stuff): a small model for CPU work."""
    return get_panoptic_fpn('panoptic_fpn_resnet18_v1b_citys', 'resnet18_v1b',
                            cityscapes_categories(), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet50_v1b_citys(**kwargs):
    """Panoptic FPN, ResNet-50-v1b, Cityscapes (8 things, 11 stuff -> 12 semantic classes)."""
    return get_panoptic_fpn('panoptic_fpn_resnet50_v1b_citys', 'resnet50_v1b',
                            cityscapes_categories(), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet101_v1b_citys(**kwargs):
    """Panoptic FPN, ResNet-101-v1b, Cityscapes (8 things, 11 stuff -> 12 semantic classes)."""
    return get_panoptic_fpn('panoptic_fpn_resnet101_v1b_citys', 'resnet101_v1b',
                            cityscapes_categories(), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet50_v1b_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-50-v1b, COCO (80 things, 53 stuff -> 54 semantic classes).

    ``categories``: the dataset's PanopticCategories or its panoptic JSON (ids are COCO's).
    """
    return get_panoptic_fpn('panoptic_fpn_resnet50_v1b_coco', 'resnet50_v1b',
                            _coco_categories(categories), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet101_v1b_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-101-v1b, COCO (80 things, 53 stuff -> 54 semantic classes).

    ``categories``: the dataset's PanopticCategories or its panoptic JSON (ids are COCO's).
    """
    return get_panoptic_fpn('panoptic_fpn_resnet101_v1b_coco', 'resnet101_v1b',
                            _coco_categories(categories), **kwargs)
