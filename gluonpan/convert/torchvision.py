"""torchvision Mask R-CNN R50-FPN weights -> gluonpan Panoptic FPN parameters (pure numpy).

torchvision's ``maskrcnn_resnet50_fpn`` and our ``panoptic_fpn_resnet50_v1b_*`` share the whole
instance branch, layer for layer:

* backbone: torchvision's ResNet-50 puts the stride of a bottleneck in its 3x3 conv (``conv2``), as
  gluoncv's ResNetV1b does; conv / batch-norm names match once ``weight``/``bias`` of a norm are
  called ``gamma``/``beta``;
* FPN: ``inner_blocks`` are our ``lateral`` 1x1 convs, ``layer_blocks`` our ``output`` 3x3 convs
  (P6 is a parameter-free max-pool in both);
* RPN head: ``conv`` / ``cls_logits`` / ``bbox_pred`` are ``conv`` / ``score`` / ``loc``, same
  channel order (anchor-major, then dx, dy, dw, dh);
* box head: ``fc6`` / ``fc7`` are ``box_head.0`` / ``.1``; ``cls_score`` (background first) is
  ``class_predictor``; ``bbox_pred`` has 4 rows for the background class too, which we drop;
* mask head: ``mask_head.{0..3}`` are ``convs.{0..3}``, ``conv5_mask`` is ``deconv`` (same
  ``(in, out, kh, kw)`` layout), ``mask_fcn_logits`` has a background channel, which we drop.

The semantic head has no torchvision counterpart and keeps its own initialisation.  A converted
model must run with torchvision's conventions: build it with ``preset='torchvision'`` (see
:mod:`gluonpan.model_zoo.panoptic_fpn.conventions`).
"""
import logging
import re
from collections import OrderedDict

import numpy as np

from .common import CheckpointMismatch, load_checked, save_converted

__all__ = ['PRESET', 'COCO_NUM_CLASSES', 'maskrcnn_resnet_fpn_spec', 'normalize_keys',
           'select_classes', 'resnet_to_backbone', 'convert_file', 'convert_maskrcnn_state_dict',
           'maskrcnn_to_gluonpan', 'save_converted']

logger = logging.getLogger(__name__)

#: the conventions preset a converted torchvision model runs with
PRESET = 'torchvision'
_BN_LEAVES = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'running_mean',
              'running_var': 'running_var'}
#: torchvision < 0.13 names -> current names (the layers became Conv2dNormActivation blocks)
_LEGACY = ((r'^rpn\.head\.conv\.(weight|bias)$', r'rpn.head.conv.0.0.\1'),
           (r'^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$',
            r'backbone.fpn.\1_blocks.\2.0.\3'))


def maskrcnn_resnet_fpn_spec(num_classes, layers=(3, 4, 6, 3), fpn_channels=256,
                             representation_size=1024, num_anchors=3, mask_channels=256):
    """Names and shapes of torchvision's ``maskrcnn_resnet50_fpn`` state dict (no PyTorch needed).

    Parameters
    ----------
    num_classes : int
        torchvision's ``num_classes``: thing classes plus background.
    layers : tuple of int
        Bottlenecks per stage ((3, 4, 6, 3) is ResNet-50, (3, 4, 23, 3) ResNet-101).

    Returns
    -------
    collections.OrderedDict
        ``{name: shape}`` of every float array (``num_batches_tracked`` counters excluded).
    """
    spec = OrderedDict()

    def conv(name, cout, cin, k, bias=False):
        spec[name + '.weight'] = (cout, cin, k, k)
        if bias:
            spec[name + '.bias'] = (cout,)

    def norm(name, c):
        for leaf in _BN_LEAVES:
            spec['{}.{}'.format(name, leaf)] = (c,)

    body = 'backbone.body.'
    conv(body + 'conv1', 64, 3, 7)
    norm(body + 'bn1', 64)
    cin, outs = 64, []
    for stage, blocks in enumerate(layers, start=1):
        width = 64 * 2 ** (stage - 1)
        for b in range(blocks):
            p = '{}layer{}.{}.'.format(body, stage, b)
            conv(p + 'conv1', width, cin, 1)
            norm(p + 'bn1', width)
            conv(p + 'conv2', width, width, 3)
            norm(p + 'bn2', width)
            conv(p + 'conv3', 4 * width, width, 1)
            norm(p + 'bn3', 4 * width)
            if b == 0:
                conv(p + 'downsample.0', 4 * width, cin, 1)
                norm(p + 'downsample.1', 4 * width)
            cin = 4 * width
        outs.append(cin)
    for i, c in enumerate(outs):
        conv('backbone.fpn.inner_blocks.{}.0'.format(i), fpn_channels, c, 1, bias=True)
    for i in range(len(outs)):
        conv('backbone.fpn.layer_blocks.{}.0'.format(i), fpn_channels, fpn_channels, 3, bias=True)
    conv('rpn.head.conv.0.0', fpn_channels, fpn_channels, 3, bias=True)
    conv('rpn.head.cls_logits', num_anchors, fpn_channels, 1, bias=True)
    conv('rpn.head.bbox_pred', 4 * num_anchors, fpn_channels, 1, bias=True)
    spec['roi_heads.box_head.fc6.weight'] = (representation_size, fpn_channels * 7 * 7)
    spec['roi_heads.box_head.fc6.bias'] = (representation_size,)
    spec['roi_heads.box_head.fc7.weight'] = (representation_size, representation_size)
    spec['roi_heads.box_head.fc7.bias'] = (representation_size,)
    spec['roi_heads.box_predictor.cls_score.weight'] = (num_classes, representation_size)
    spec['roi_heads.box_predictor.cls_score.bias'] = (num_classes,)
    spec['roi_heads.box_predictor.bbox_pred.weight'] = (4 * num_classes, representation_size)
    spec['roi_heads.box_predictor.bbox_pred.bias'] = (4 * num_classes,)
    for i in range(4):
        conv('roi_heads.mask_head.{}.0'.format(i), mask_channels,
             fpn_channels if i == 0 else mask_channels, 3, bias=True)
    conv('roi_heads.mask_predictor.conv5_mask', mask_channels, mask_channels, 2, bias=True)
    conv('roi_heads.mask_predictor.mask_fcn_logits', num_classes, mask_channels, 1, bias=True)
    return spec


def normalize_keys(state_dict):
    """Drop counters and a ``module.`` prefix, rename pre-0.13 torchvision keys to current ones."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith('num_batches_tracked'):
            continue
        key = key[len('module.'):] if key.startswith('module.') else key
        m = re.match(r'^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$', key)
        if m:
            key = 'roi_heads.mask_head.{}.0.{}'.format(int(m.group(1)) - 1, m.group(2))
        for pattern, repl in _LEGACY:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _our_name(key):
    """Our structural parameter name of torchvision key ``key``; None if it has no counterpart."""
    if key.startswith('backbone.body.'):
        name = 'backbone.' + key[len('backbone.body.'):]
        base, _, leaf = name.rpartition('.')
        last = base.rpartition('.')[2]
        if re.match(r'^bn\d$', last) or (last == '1' and base.endswith('downsample.1')):
            leaf = _BN_LEAVES[leaf]
        return base + '.' + leaf
    rules = ((r'^backbone\.fpn\.inner_blocks\.(\d+)\.0\.', r'fpn.lateral.\1.'),
             (r'^backbone\.fpn\.layer_blocks\.(\d+)\.0\.', r'fpn.output.\1.'),
             (r'^rpn\.head\.conv\.0\.0\.', 'rpn.head.conv.'),
             (r'^rpn\.head\.cls_logits\.', 'rpn.head.score.'),
             (r'^rpn\.head\.bbox_pred\.', 'rpn.head.loc.'),
             (r'^roi_heads\.box_head\.fc6\.', 'roi_heads.box_head.0.'),
             (r'^roi_heads\.box_head\.fc7\.', 'roi_heads.box_head.1.'),
             (r'^roi_heads\.box_predictor\.cls_score\.', 'roi_heads.class_predictor.'),
             (r'^roi_heads\.box_predictor\.bbox_pred\.', 'roi_heads.box_predictor.'),
             (r'^roi_heads\.mask_head\.(\d+)\.0\.', r'roi_heads.mask_head.convs.\1.'),
             (r'^roi_heads\.mask_predictor\.conv5_mask\.', 'roi_heads.mask_head.deconv.'),
             (r'^roi_heads\.mask_predictor\.mask_fcn_logits\.', 'roi_heads.mask_head.predictor.'))
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def convert_maskrcnn_state_dict(state_dict):
    """torchvision Mask R-CNN arrays -> ``{our structural name: float32 array}``.

    Parameters
    ----------
    state_dict : dict
        ``{torchvision name: array-like}`` (numpy arrays, or anything ``np.asarray`` takes).

    Returns
    -------
    collections.OrderedDict
        Our names (as ``net._collect_params_with_prefix()`` spells them).  Background rows of the
        box regressor (first 4) and of the mask predictor (first channel) are dropped.

    Raises
    ------
    KeyError
        For a torchvision key with no counterpart (another architecture: nothing is guessed).
    """
    out = OrderedDict()
    for key, value in normalize_keys(state_dict).items():
        name = _our_name(key)
        if name is None:
            raise CheckpointMismatch('torchvision key {!r} has no gluonpan counterpart (another '
                                     'architecture?)'.format(key))
        array = np.asarray(value, dtype=np.float32)
        if key.startswith('roi_heads.box_predictor.bbox_pred.'):
            array = array[4:]  # (4 * (K + 1), ...) -> (4 * K, ...): no background regression
        elif key.startswith('roi_heads.mask_predictor.mask_fcn_logits.'):
            array = array[1:]  # (K + 1, ...) -> (K, ...): no background mask
        out[name] = array
    return out


def maskrcnn_to_gluonpan(state_dict, net):
    """Load a torchvision Mask R-CNN R50-FPN state dict into an initialised Panoptic FPN.

    Parameters
    ----------
    state_dict : dict
        ``{torchvision name: numpy array}`` (e.g. from :func:`gluonpan.convert.pth.load_pth`).
    net : gluonpan.model_zoo.panoptic_fpn.PanopticFPN
        Built with ``preset='torchvision'`` and ``categories`` of K thing classes for
        torchvision's ``num_classes = K + 1``; its parameters initialised (``get_model`` does).

    Returns
    -------
    list of str
        Our parameters that kept their own values (the semantic head, the anchor and box-coder
        constants).

    Raises
    ------
    KeyError, ValueError
        A key without counterpart, a parameter of ours missing from the instance branch, or a
        shape that differs (naming both names and shapes); see
        :func:`gluonpan.convert.common.load_checked`.
    """
    if getattr(net, 'conventions', {}).get('preset') != PRESET:
        logger.warning('converted torchvision weights need preset=%r, the net has conventions %s',
                       PRESET, getattr(net, 'conventions', None))
    return load_checked(net, convert_maskrcnn_state_dict(state_dict), 'torchvision',
                        own_prefixes=('sem_seg_head.', 'rpn.anchor_generator.',
                                      'roi_heads.box_targets.'))


#: torchvision's COCO detection models have 91 class slots: index = COCO category id (0 is the
#: background, 11 ids are unused), so our 80 thing classes are the rows of their ids
COCO_NUM_CLASSES = 91
_CLASS_ROWS = ('roi_heads.box_predictor.cls_score.', 'roi_heads.mask_predictor.mask_fcn_logits.')


def select_classes(state_dict, rows):
    """The state dict with only the class rows ``rows`` (background ``0`` first) of its
    class-dependent predictors: classifier, box regressor (4 rows per class), mask logits."""
    rows = np.asarray(rows, np.int64)
    out = OrderedDict()
    for key, value in state_dict.items():
        value = np.asarray(value)
        if key.startswith(_CLASS_ROWS):
            value = value[rows]  # (num_classes, ...) -> (len(rows), ...)
        elif key.startswith('roi_heads.box_predictor.bbox_pred.'):
            per_class = value.reshape((-1, 4) + value.shape[1:])  # (num_classes, 4, ...)
            value = per_class[rows].reshape((-1,) + value.shape[1:])  # (4 * len(rows), ...)
        out[key] = value
    return out


#: torchvision ImageNet ResNets with the layers of gluoncv's ResNetV1b (stride in the 3x3 conv)
RESNET_DEPTHS = {6: 'resnet50_v1b', 23: 'resnet101_v1b'}


def resnet_to_backbone(state_dict, where='checkpoint'):
    """A torchvision ImageNet ResNet-50 / 101 (``resnet50-*.pth``) as a gluonpan backbone.

    torchvision's ImageNet ResNets take our input format (RGB, ImageNet mean and std) and put
    the stride in the 3x3 conv like ``ResNetV1b``; the classifier ``fc`` is dropped.

    Parameters
    ----------
    state_dict : dict
        ``{torchvision name: array}`` of ``torchvision.models.resnet{50,101}``.
    where : str
        The file, named in errors.

    Returns
    -------
    (str, gluonpan.nn.ResNetV1bFeatures)
        The backbone name (``'resnet50_v1b'`` / ``'resnet101_v1b'``) and the loaded backbone,
        whose ``save_parameters`` file ``get_model(..., pretrained_base=FILE)`` takes.
    """
    import mxnet as mx
    from ..errors import DataError
    from ..model_zoo.panoptic_fpn.predefined import resnet_v1b_backbone
    state = {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
    blocks = {k.split('.')[1] for k in state if k.startswith('layer3.')}
    if 'fc.weight' not in state or len(blocks) not in RESNET_DEPTHS:
        raise DataError('{}: not a torchvision ImageNet ResNet-50 / 101 state dict ({} layer3 '
                        'blocks, fc {})'.format(where, len(blocks), 'fc.weight' in state))
    name = RESNET_DEPTHS[len(blocks)]
    arrays = convert_maskrcnn_state_dict(
        {'backbone.body.' + k: v for k, v in state.items() if not k.startswith('fc.')})
    backbone = resnet_v1b_backbone(name)
    backbone.initialize()
    backbone(mx.nd.zeros((1, 3, 32, 32)))  # deferred shapes
    load_checked(backbone, {k[len('backbone.'):]: v for k, v in arrays.items()},
                 'torchvision ImageNet')
    return name, backbone


def convert_file(path, out_dir, categories=None):
    """``python -m gluonpan.convert torchvision``: a Mask R-CNN R50-FPN ``.pth`` -> our COCO model,
    or an ImageNet ResNet-50 / 101 ``.pth`` -> a ``pretrained_base`` backbone.

    Parameters
    ----------
    path : str
        ``maskrcnn_resnet50_fpn_coco-*.pth`` (91 COCO class slots), a Mask R-CNN state dict of
        K + 1 classes for ``categories`` with K things, or ``resnet{50,101}-*.pth``.
    out_dir : str
        Gets ``panoptic_fpn_resnet50_v1b_coco.params`` and ``args.json``, or
        ``resnet{50,101}_v1b_torchvision.params`` (``get_model(..., pretrained_base=FILE)``).
    categories : PanopticCategories, optional
        Default: COCO panoptic's 133.  The semantic head is freshly initialised.

    Returns
    -------
    str
        The ``.params`` path.
    """
    import os
    from ..errors import DataError
    from ..model_zoo import get_model
    from ..data.categories import coco_categories_from_json
    from ..model_zoo.panoptic_fpn.predefined import COCO_CATEGORIES_JSON
    from ..utils.checkpoint import atomic_write
    from .pth import load_pth, state_dict_of
    state = normalize_keys(state_dict_of(load_pth(path)))
    key = 'roi_heads.box_predictor.cls_score.weight'
    if key not in state and 'fc.weight' in state:
        name, backbone = resnet_to_backbone(state, path)
        params = os.path.join(out_dir, name + '_torchvision.params')
        os.makedirs(out_dir, exist_ok=True)
        atomic_write(params, backbone.save_parameters)
        logger.info('wrote %s: the ImageNet %s of %s (get_model(..., pretrained_base=%r))',
                    params, name, path, params)
        return params
    if key not in state:
        raise DataError('{}: no {} (neither a torchvision Mask R-CNN nor an ImageNet ResNet)'
                        .format(path, key))
    if categories is None:
        categories = coco_categories_from_json(COCO_CATEGORIES_JSON)
    num_classes = state[key].shape[0]
    if num_classes == COCO_NUM_CLASSES and max(categories.thing_ids) < COCO_NUM_CLASSES:
        state = select_classes(state, [0] + categories.thing_ids)
    elif num_classes != categories.num_things + 1:
        raise DataError('{}: {} class slots (background included); the categories have {} thing '
                        'classes (COCO models have {} slots indexed by category id)'.format(
                            path, num_classes, categories.num_things, COCO_NUM_CLASSES))
    name = 'panoptic_fpn_resnet50_v1b_coco'
    net = get_model(name, categories=categories, preset=PRESET)
    maskrcnn_to_gluonpan(state, net)
    params = os.path.join(out_dir, name + '.params')
    save_converted(net, params, 'resnet50_v1b', 'coco', os.path.basename(path),
                   categories.to_json())
    logger.info('wrote %s: the instance branch of %s; the semantic head is untrained', params,
                path)
    return params
