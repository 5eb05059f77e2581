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
import json
import logging
import os
import re
from collections import OrderedDict

import numpy as np

__all__ = ['PRESET', 'maskrcnn_resnet_fpn_spec', 'normalize_keys', 'convert_maskrcnn_state_dict',
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
            raise KeyError('torchvision key {!r} has no gluonpan counterpart'.format(key))
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
        shape that differs (naming both names and shapes).
    """
    import mxnet as mx  # only here: the spec and the conversion itself need numpy alone
    if getattr(net, 'conventions', {}).get('preset') != PRESET:
        logger.warning('converted torchvision weights need preset=%r, the net has conventions %s',
                       PRESET, getattr(net, 'conventions', None))
    arrays = convert_maskrcnn_state_dict(state_dict)
    params = net._collect_params_with_prefix()  # pylint: disable=protected-access
    unknown = sorted(set(arrays) - set(params))
    if unknown:
        raise KeyError('converted names {} are not parameters of the net'.format(unknown[:5]))
    for name, array in arrays.items():
        if tuple(params[name].shape) != array.shape:
            raise ValueError('{}: torchvision gives shape {}, the net has {} (class count or '
                             'backbone depth differ?)'.format(name, array.shape,
                                                              params[name].shape))
    kept = [n for n in params if n not in arrays]
    missing = [n for n in kept if not n.startswith('sem_seg_head.') and
               not n.startswith(('rpn.anchor_generator.', 'roi_heads.box_targets.'))]
    if missing:
        raise KeyError('the state dict lacks {} parameter(s) of the instance branch, e.g. {}'
                       .format(len(missing), missing[:5]))
    for name, array in arrays.items():  # all checked first: a bad state dict changes nothing
        params[name].set_data(mx.nd.array(array, dtype='float32'))
    return kept


def save_converted(net, params_path, network='resnet50_v1b', dataset='citys', source=''):
    """Write converted weights and, beside them, the ``args.json`` that runs them correctly.

    ``args.json`` is what a training run leaves beside its weights (``network``, ``dataset``,
    ``model_kwargs``), so ``eval_panoptic_fpn.py`` / ``demo_panoptic_fpn.py --pretrained
    params_path`` rebuild the net with the source's conventions: ``model_kwargs`` holds every
    resolved convention of ``net.conventions`` explicitly (not only the preset's name, whose
    values could change), plus ``source`` for the record.  Both files are written atomically.

    Parameters
    ----------
    net : PanopticFPN
        The converted network (e.g. after :func:`maskrcnn_to_gluonpan`).
    params_path : str
        Destination ``.params``; ``args.json`` goes to its folder (which should hold nothing else).
    network, dataset : str
        Backbone and dataset names of the zoo model (``--network`` / ``--dataset``).
    source : str
        Where the weights came from (a file name, a URL), recorded as is.
    """
    from ..utils.checkpoint import atomic_write, atomic_write_json
    folder = os.path.dirname(os.path.abspath(params_path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(params_path, net.save_parameters)
    record = {'network': network, 'dataset': dataset, 'converted_from': source,
              'model_kwargs': json.dumps(net.conventions, sort_keys=True)}
    atomic_write_json(os.path.join(folder, 'args.json'), record, indent=1, sort_keys=True)
