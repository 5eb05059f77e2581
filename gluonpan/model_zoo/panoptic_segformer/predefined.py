"""Registered Panoptic SegFormer models: ``panoptic_segformer_{backbone}_{dataset}``."""
from ...data.categories import cityscapes_categories
from ..builder import coco_model_categories, get_zoo_model
from ..model_zoo import keyword_names, register_model
from .inference import DEFAULT_INFERENCE_OPTIONS
from .panoptic_segformer import build_panoptic_segformer

__all__ = ['COCO_TEST_SIZE', 'CPU_RECIPE', 'ZOO_OPTIONS', 'OPTIONS', 'get_panoptic_segformer']

#: the reference's COCO test size: short side 800, long side at most 1333 (mmdet ``Resize``)
COCO_TEST_SIZE = (800, 1333)
#: the small CPU model's defaults (``panoptic_segformer_resnet18_v1b_citys``)
CPU_RECIPE = dict(embed_dims=128, feedforward_channels=512, encoder_layers=3, decoder_layers=3,
                  num_queries=100, thing_blocks=2, stuff_blocks=2)


#: :func:`~gluonpan.model_zoo.builder.get_zoo_model`'s own options (``pretrained``, ``ctx``,
#: ``norm_layer`` ...)
ZOO_OPTIONS = keyword_names(get_zoo_model) - {'name', 'backbone', 'build'}
#: recipe options of every Panoptic SegFormer builder (what get_model checks ``**kwargs`` against)
OPTIONS = ((keyword_names(build_panoptic_segformer) | set(DEFAULT_INFERENCE_OPTIONS) |
            ZOO_OPTIONS) - {'backbone', 'categories'})


def get_panoptic_segformer(name, backbone, categories, **kwargs):
    """Build, initialise and optionally load a Panoptic SegFormer: ``kwargs`` of
    :data:`ZOO_OPTIONS` go to :func:`gluonpan.model_zoo.builder.get_zoo_model`, the others to
    :func:`~gluonpan.model_zoo.panoptic_segformer.build_panoptic_segformer`."""
    zoo = {k: kwargs.pop(k) for k in list(kwargs) if k in ZOO_OPTIONS}
    return get_zoo_model(name, backbone,
                         lambda features: build_panoptic_segformer(features, categories, **kwargs),
                         **zoo)


def _coco(name, backbone, categories, kwargs, resize=True):
    if resize:
        kwargs.setdefault('test_size', COCO_TEST_SIZE)
    return get_panoptic_segformer(name, backbone, coco_model_categories(categories), **kwargs)


def _cpu_recipe(kwargs):
    """``kwargs`` with :data:`CPU_RECIPE`'s defaults for what they do not set."""
    return dict(CPU_RECIPE, **kwargs)


@register_model(options=OPTIONS)
def panoptic_segformer_resnet18_v1b_citys(**kwargs):
    """Panoptic SegFormer, ResNet-18-v1b, Cityscapes (8 things, 11 stuff): a small model for CPU
    work (the 256x512 synthetic recipe).  Defaults (:data:`CPU_RECIPE`): width 128 (8 heads of
    16), FFN 512, 3 encoder and 3 decoder layers, 100 queries, 2 thing and 2 stuff mask blocks;
    the reference's 100 thing candidates and thresholds; tested at the image's own size."""
    return get_panoptic_segformer('panoptic_segformer_resnet18_v1b_citys', 'resnet18_v1b',
                                  cityscapes_categories(), **_cpu_recipe(kwargs))


@register_model(options=OPTIONS)
def panoptic_segformer_resnet18_v1b_coco(categories=None, **kwargs):
    """Panoptic SegFormer, ResNet-18-v1b, COCO format: the small CPU model
    (:data:`CPU_RECIPE`) for the synthetic COCO split, tested at the image's own size.
    ``categories``: the dataset's PanopticCategories, its panoptic JSON or categories list."""
    return _coco('panoptic_segformer_resnet18_v1b_coco', 'resnet18_v1b', categories,
                 _cpu_recipe(kwargs), resize=False)


@register_model(options=OPTIONS)
def panoptic_segformer_resnet50_v1b_citys(**kwargs):
    """Panoptic SegFormer, ResNet-50-v1b, Cityscapes (8 things, 11 stuff): the reference's R50
    architecture, tested at the image's own size."""
    return get_panoptic_segformer('panoptic_segformer_resnet50_v1b_citys', 'resnet50_v1b',
                                  cityscapes_categories(), **kwargs)


@register_model(options=OPTIONS)
def panoptic_segformer_resnet50_v1b_coco(categories=None, **kwargs):
    """Panoptic SegFormer, ResNet-50-v1b, COCO (80 things, 53 stuff): the reference's
    ``panformer_r50_*`` (51.27 M parameters); tested at short side 800, long side at most 1333.
    ``categories``: the dataset's PanopticCategories, its panoptic JSON or categories list."""
    return _coco('panoptic_segformer_resnet50_v1b_coco', 'resnet50_v1b', categories, kwargs)


@register_model(options=OPTIONS)
def panoptic_segformer_resnet101_v1b_coco(categories=None, **kwargs):
    """Panoptic SegFormer, ResNet-101-v1b, COCO: the reference's ``panformer_r101_24e``; see
    :func:`panoptic_segformer_resnet50_v1b_coco`."""
    return _coco('panoptic_segformer_resnet101_v1b_coco', 'resnet101_v1b', categories, kwargs)
