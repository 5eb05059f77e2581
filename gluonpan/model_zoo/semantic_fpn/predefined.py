"""Registered Semantic FPN models: ``semantic_fpn_{backbone}_{dataset}``.

Seed: mmsegmentation's ``configs/sem_fpn`` (Cityscapes 512x1024 80k: R50 74.52 mIoU, R101 75.80;
ADE20K 512x512 160k: R50 37.49, R101 39.35; single scale, whole-image inference).  Their backbone
is ``ResNetV1c`` (deep 3x3 stem) with trainable SyncBN; ours is gluoncv's ``ResNetV1b`` (7x7
stem) with frozen batch norm unless ``norm_layer`` is given.
"""
import mxnet as mx

from ..builder import get_zoo_model
from ..model_zoo import keyword_names, register_model
from .semantic_fpn import build_semantic_fpn

__all__ = ['NUM_CLASSES', 'get_semantic_fpn']

#: classes each dataset's models predict: Cityscapes' 19 train ids, ADE20K's 150 classes
NUM_CLASSES = {'citys': 19, 'ade': 150}


def get_semantic_fpn(name, backbone, num_classes, pretrained=False, pretrained_base=False,
                     ctx=mx.cpu(), root=None, norm_layer=None, norm_kwargs=None, **kwargs):
    """Build, initialise and optionally load a Semantic FPN.

    As :func:`~gluonpan.model_zoo.panoptic_fpn.get_panoptic_fpn`
    (:func:`gluonpan.model_zoo.builder.get_zoo_model`): plain ``initialize()``, one 32x32 forward
    of the backbone, then ``pretrained`` or ``pretrained_base`` weights.  ``norm_layer`` /
    ``norm_kwargs`` normalise the backbone (default: frozen batch norm) and, with ``norm='bn'``,
    the head; ``kwargs`` go to :func:`build_semantic_fpn`.
    """
    def build(features):
        return build_semantic_fpn(features, num_classes, norm_layer=norm_layer,
                                  norm_kwargs=norm_kwargs, **kwargs)
    return get_zoo_model(name, backbone, build, pretrained, pretrained_base, ctx, root,
                         norm_layer, norm_kwargs)


#: recipe options of every Semantic FPN builder (what get_model checks ``**kwargs`` against)
OPTIONS = (keyword_names(get_semantic_fpn, build_semantic_fpn)
           - {'name', 'backbone', 'num_classes'})


@register_model(options=OPTIONS)
def semantic_fpn_resnet18_v1b_citys(**kwargs):
    """Semantic FPN, ResNet-18-v1b, Cityscapes (19 classes): a small model for CPU work."""
    return get_semantic_fpn('semantic_fpn_resnet18_v1b_citys', 'resnet18_v1b',
                            NUM_CLASSES['citys'], **kwargs)


@register_model(options=OPTIONS)
def semantic_fpn_resnet50_v1b_citys(**kwargs):
    """Semantic FPN, ResNet-50-v1b, Cityscapes (19 classes); mmseg ``fpn_r50`` 512x1024."""
    return get_semantic_fpn('semantic_fpn_resnet50_v1b_citys', 'resnet50_v1b',
                            NUM_CLASSES['citys'], **kwargs)


@register_model(options=OPTIONS)
def semantic_fpn_resnet101_v1b_citys(**kwargs):
    """Semantic FPN, ResNet-101-v1b, Cityscapes (19 classes); mmseg ``fpn_r101`` 512x1024."""
    return get_semantic_fpn('semantic_fpn_resnet101_v1b_citys', 'resnet101_v1b',
                            NUM_CLASSES['citys'], **kwargs)


@register_model(options=OPTIONS)
def semantic_fpn_resnet50_v1b_ade(**kwargs):
    """Semantic FPN, ResNet-50-v1b, ADE20K (150 classes); mmseg ``fpn_r50`` 512x512."""
    return get_semantic_fpn('semantic_fpn_resnet50_v1b_ade', 'resnet50_v1b',
                            NUM_CLASSES['ade'], **kwargs)


@register_model(options=OPTIONS)
def semantic_fpn_resnet101_v1b_ade(**kwargs):
    """Semantic FPN, ResNet-101-v1b, ADE20K (150 classes); mmseg ``fpn_r101`` 512x512."""
    return get_semantic_fpn('semantic_fpn_resnet101_v1b_ade', 'resnet101_v1b',
                            NUM_CLASSES['ade'], **kwargs)
