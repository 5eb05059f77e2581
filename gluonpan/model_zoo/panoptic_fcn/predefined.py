"""Registered PanopticFCN models: ``panoptic_fcn_{backbone}_{dataset}``."""
import mxnet as mx

from ...data.categories import cityscapes_categories
from ..builder import COCO_CATEGORIES_JSON, coco_model_categories, get_zoo_model
from ..model_zoo import keyword_names, register_model
from .panoptic_fcn import build_panoptic_fcn

__all__ = ['get_panoptic_fcn']

#: the reference's COCO test size: short side 800, long side at most 1333
COCO_TEST_SIZE = (800, 1333)


def get_panoptic_fcn(name, backbone, categories, pretrained=False, pretrained_base=False,
                     ctx=mx.cpu(), root=None, norm_layer=None, norm_kwargs=None, **kwargs):
    """Build, initialise and optionally load a PanopticFCN
    (:func:`gluonpan.model_zoo.builder.get_zoo_model`); ``kwargs`` go to
    :func:`~gluonpan.model_zoo.panoptic_fcn.build_panoptic_fcn`."""
    return get_zoo_model(name, backbone,
                         lambda features: build_panoptic_fcn(features, categories, **kwargs),
                         pretrained, pretrained_base, ctx, root, norm_layer, norm_kwargs)


#: recipe options of every PanopticFCN builder (what get_model checks ``**kwargs`` against)
OPTIONS = (keyword_names(get_panoptic_fcn, build_panoptic_fcn)
           - {'name', 'backbone', 'categories'})


def _citys(name, backbone, kwargs):
    return get_panoptic_fcn(name, backbone, cityscapes_categories(), **kwargs)


def _coco(name, backbone, categories, kwargs, resize=True):
    """A COCO-format model; ``resize``: tested at the reference's COCO size unless a short-side
    preset or ``test_size`` says otherwise."""
    if resize and kwargs.get('preset', 'default') in ('default', 'fast'):
        kwargs.setdefault('test_size', COCO_TEST_SIZE)
    return get_panoptic_fcn(name, backbone, coco_model_categories(categories), **kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet18_v1b_citys(**kwargs):
    """PanopticFCN, ResNet-18-v1b, Cityscapes (8 things, 11 stuff): a small model for CPU work,
    without deformable convolutions by default (they train on GPUs only)."""
    kwargs.setdefault('deform', False)
    return _citys('panoptic_fcn_resnet18_v1b_citys', 'resnet18_v1b', kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet50_v1b_citys(**kwargs):
    """PanopticFCN, ResNet-50-v1b, Cityscapes (8 things, 11 stuff)."""
    return _citys('panoptic_fcn_resnet50_v1b_citys', 'resnet50_v1b', kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet18_v1b_coco(categories=None, **kwargs):
    """PanopticFCN, ResNet-18-v1b, COCO format: a small model for CPU work (the synthetic COCO
    split), without deformable convolutions by default, tested at the image's own size.  ``categories``: the dataset's PanopticCategories,
    its panoptic JSON or its categories list."""
    kwargs.setdefault('deform', False)
    return _coco('panoptic_fcn_resnet18_v1b_coco', 'resnet18_v1b', categories, kwargs,
                 resize=False)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet50_v1b_coco(categories=None, **kwargs):
    """PanopticFCN, ResNet-50-v1b, COCO (80 things, 53 stuff + "things" in the stuff head); tested
    at short side 800 (max 1333) as the reference, unless a short-side preset or ``test_size``
    says otherwise."""
    return _coco('panoptic_fcn_resnet50_v1b_coco', 'resnet50_v1b', categories, kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet101_v1b_coco(categories=None, **kwargs):
    """PanopticFCN, ResNet-101-v1b, COCO; see :func:`panoptic_fcn_resnet50_v1b_coco`."""
    return _coco('panoptic_fcn_resnet101_v1b_coco', 'resnet101_v1b', categories, kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet50_msra_coco(categories=None, **kwargs):
    """PanopticFCN, ResNet-50 **MSRA** (stride in the 1x1 conv), COCO: the architecture of the
    authors' ``PanopticFCN-R50-*`` models (deformable position head by default, as theirs), for
    their weights converted by ``python -m gluonpan.convert panopticfcn FILE``; it differs from
    ``panoptic_fcn_resnet50_v1b_coco`` in the backbone only (the MSRA ResNet strides the 1x1 conv
    of a bottleneck, ResNetV1b the 3x3 conv).  Input: our usual ImageNet-normalised RGB (the
    converter folds the authors' input format into the stem).  ``categories``: default COCO
    panoptic's 133 (``gluonpan/data/coco_panoptic_categories.json``); tested at short side 800
    (max 1333) unless a short-side preset or ``test_size`` says otherwise."""
    return _coco('panoptic_fcn_resnet50_msra_coco', 'resnet50_msra',
                 COCO_CATEGORIES_JSON if categories is None else categories, kwargs)


@register_model(options=OPTIONS)
def panoptic_fcn_resnet101_msra_coco(categories=None, **kwargs):
    """PanopticFCN, ResNet-101 **MSRA**, COCO; see :func:`panoptic_fcn_resnet50_msra_coco`."""
    return _coco('panoptic_fcn_resnet101_msra_coco', 'resnet101_msra',
                 COCO_CATEGORIES_JSON if categories is None else categories, kwargs)
