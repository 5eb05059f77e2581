"""Registered Panoptic FPN models: ``panoptic_fpn_{backbone}_{dataset}``."""
import mxnet as mx

from ...data.categories import cityscapes_categories
from ..builder import (COCO_CATEGORIES_JSON, coco_model_categories, get_zoo_model,
                       resnet_v1b_backbone)
from ..model_zoo import keyword_names, register_model
from .panoptic_fpn import build_panoptic_fpn

__all__ = ['get_panoptic_fpn', 'resnet_v1b_backbone']


def get_panoptic_fpn(name, backbone, categories, pretrained=False, pretrained_base=False,
                     ctx=mx.cpu(), root=None, norm_layer=None, norm_kwargs=None, **kwargs):
    """Build, initialise and optionally load a Panoptic FPN.

    Every parameter is first initialised with its layer's own initializer (plain
    ``initialize()``), the backbone's deferred shapes are materialised by one 32x32 forward, then
    ``pretrained`` weights (whole network) or ``pretrained_base`` weights (ImageNet backbone) are
    loaded over them (:func:`gluonpan.model_zoo.builder.get_zoo_model`).  See
    :func:`gluonpan.model_zoo.get_model` for the arguments; ``kwargs`` go to
    :func:`build_panoptic_fpn`.
    """
    return get_zoo_model(name, backbone,
                         lambda features: build_panoptic_fpn(features, categories, **kwargs),
                         pretrained, pretrained_base, ctx, root, norm_layer, norm_kwargs)


#: recipe options of every Panoptic FPN builder (what get_model checks ``**kwargs`` against)
OPTIONS = (keyword_names(get_panoptic_fpn, build_panoptic_fpn)
           - {'name', 'backbone', 'categories'})


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
def panoptic_fpn_resnet18_v1b_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-18-v1b, COCO format: a small model for CPU work (the synthetic COCO
    split).

    ``categories``: the dataset's PanopticCategories, its panoptic JSON or its categories list.
    """
    return get_panoptic_fpn('panoptic_fpn_resnet18_v1b_coco', 'resnet18_v1b',
                            coco_model_categories(categories), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet50_v1b_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-50-v1b, COCO (80 things, 53 stuff -> 54 semantic classes).

    ``categories``: the dataset's PanopticCategories, its panoptic JSON or its categories list
    (ids are COCO's; another COCO-format category set works too).
    """
    return get_panoptic_fpn('panoptic_fpn_resnet50_v1b_coco', 'resnet50_v1b',
                            coco_model_categories(categories), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet101_v1b_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-101-v1b, COCO (80 things, 53 stuff -> 54 semantic classes).

    ``categories``: the dataset's PanopticCategories, its panoptic JSON or its categories list
    (ids are COCO's; another COCO-format category set works too).
    """
    return get_panoptic_fpn('panoptic_fpn_resnet101_v1b_coco', 'resnet101_v1b',
                            coco_model_categories(categories), **kwargs)


def _detectron2_model(name, backbone, categories, kwargs):
    """A Panoptic FPN on an MSRA ResNet with detectron2's conventions unless told otherwise."""
    kwargs.setdefault('preset', 'detectron2')
    return get_panoptic_fpn(name, backbone, coco_model_categories(
        COCO_CATEGORIES_JSON if categories is None else categories), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet50_msra_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-50 **MSRA** (stride in the 1x1 conv), COCO, detectron2's conventions.

    The architecture of detectron2's COCO Panoptic FPN R50 (``panoptic_fpn_R_50_{1x,3x}``), for
    its weights converted by ``python -m gluonpan.convert detectron2 model_final_*.pkl``; it
    differs from ``panoptic_fpn_resnet50_v1b_coco`` in the backbone (the MSRA ResNet strides the
    1x1 conv of a bottleneck, ResNetV1b the 3x3 conv) and in the default ``preset='detectron2'``
    (see :mod:`~gluonpan.model_zoo.panoptic_fpn.conventions`).  Input: our usual ImageNet-
    normalised RGB (the converter folds detectron2's BGR input format into the first conv).
    ``categories``: default COCO panoptic's 133 (``gluonpan/data/coco_panoptic_categories.json``).
    """
    return _detectron2_model('panoptic_fpn_resnet50_msra_coco', 'resnet50_msra', categories,
                             kwargs)


@register_model(options=OPTIONS)
def panoptic_fpn_resnet101_msra_coco(categories=None, **kwargs):
    """Panoptic FPN, ResNet-101 **MSRA** (stride in the 1x1 conv), COCO, detectron2's conventions.

    detectron2's ``panoptic_fpn_R_101_3x`` architecture; see
    :func:`panoptic_fpn_resnet50_msra_coco`.
    """
    return _detectron2_model('panoptic_fpn_resnet101_msra_coco', 'resnet101_msra', categories,
                             kwargs)
