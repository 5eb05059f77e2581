"""detectron2 Panoptic FPN weights (``model_final_*.pkl``) -> gluonpan Panoptic FPN (pure numpy).

detectron2's COCO Panoptic FPN (``COCO-PanopticSegmentation/panoptic_fpn_R_{50,101}_*``) and our
``panoptic_fpn_resnet{50,101}_msra_coco`` are the same network layer for layer:

* backbone ``backbone.bottom_up.``: the MSRA ResNet (``STRIDE_IN_1X1``: the stride of a
  bottleneck in its first 1x1 conv, :func:`gluonpan.nn.stride_in_1x1`); ``stem.conv1`` is our
  ``conv1``, ``res{s}.{b}.conv{i}`` our ``layer{s-1}.{b}.conv{i}``, ``shortcut`` our
  ``downsample.0``; each conv's ``norm`` (``FrozenBatchNorm2d``, eps 1e-5: ``weight``, ``bias``,
  ``running_mean``, ``running_var``) is the batch norm after it (frozen, eps 1e-5);
* FPN ``backbone.fpn_lateral{k}`` / ``fpn_output{k}`` (k = 2..5) are ``fpn.lateral.{k-2}`` /
  ``fpn.output.{k-2}``; P6 is a parameter-free max-pool in both;
* RPN ``proposal_generator.rpn_head.{conv, objectness_logits, anchor_deltas}`` are
  ``rpn.head.{conv, score, loc}`` (same anchor-major channel order);
* box head ``roi_heads.box_head.fc{1,2}`` are ``roi_heads.box_head.{0,1}``;
  ``box_predictor.cls_score`` has the background class **last** (ours first: the row moves);
  ``box_predictor.bbox_pred`` is class-specific without background, as ours;
* mask head ``mask_fcn{1..4}``, ``deconv``, ``predictor`` (no background channel) are
  ``convs.{0..3}``, ``deconv``, ``predictor``;
* semantic head ``sem_seg_head.p{l}.{2k}`` (conv) and ``.norm`` (GroupNorm 32) are
  ``sem_seg_head.towers.{l-2}.{2k}`` and ``.{2k+1}``; ``predictor`` has detectron2's "things"
  class at index 0 and the stuff classes 1..S in category-id order, ours the stuff 0..S-1 then
  "things": the row moves last.

Input format: detectron2 feeds ``BGR 0..255 - pixel_mean`` divided by ``pixel_std`` (defaults
``[103.530, 116.280, 123.675]``, ``[1, 1, 1]``); we feed RGB ``(x / 255 - mean) / std`` with the
ImageNet mean and std.  detectron2's pixel mean is the ImageNet mean times 255 (in BGR order), so
its input is ours with the channels reversed and each scaled by ``255 * std / pixel_std``: no
offset, zero padding stays zero.  The converter folds that into the first conv's weights (exact up
to float rounding), so one data pipeline serves every model.  A checkpoint whose ``pixel_mean``
differs cannot be folded and is refused.

Run with ``preset='detectron2'`` (the default of the ``*_msra_*`` zoo models; see
:mod:`gluonpan.model_zoo.panoptic_fpn.conventions`).  Nothing here imports PyTorch.
"""
import io
import logging
import pickle
import re
import zipfile
from collections import OrderedDict

import numpy as np

from ..errors import DataError, MissingFileError
from .common import load_checked, save_converted

__all__ = ['PRESET', 'PIXEL_MEAN', 'PIXEL_STD', 'DEPTHS', 'panoptic_fpn_spec', 'load_checkpoint',
           'architecture_of', 'backbone_fpn_name', 'convert_panoptic_fpn_state_dict',
           'detectron2_to_gluonpan', 'convert_file']

logger = logging.getLogger(__name__)

#: the conventions preset a converted detectron2 model runs with
PRESET = 'detectron2'
#: detectron2's default MODEL.PIXEL_MEAN (BGR, 0..255) and MODEL.PIXEL_STD
PIXEL_MEAN = (103.530, 116.280, 123.675)
PIXEL_STD = (1., 1., 1.)
#: bottlenecks per stage of the ResNet depths detectron2's Panoptic FPN uses
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
#: arrays a checkpoint may hold beyond the network's weights (buffers of older detectron2)
_OPTIONAL = re.compile(r'^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\.'
                       r'cell_anchors\.\d+)$')
_NORM_LEAVES = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'running_mean',
                'running_var': 'running_var'}


def panoptic_fpn_spec(num_things, num_semantic, depth=50, fpn_channels=256, fc_channels=1024,
                      mask_channels=256, sem_channels=128, num_anchors=3):
    """Names and shapes of detectron2's PanopticFPN state dict (no detectron2 needed).

    Parameters
    ----------
    num_things : int
        ``MODEL.ROI_HEADS.NUM_CLASSES`` (COCO 80).
    num_semantic : int
        ``MODEL.SEM_SEG_HEAD.NUM_CLASSES``: stuff classes + "things" (COCO 54).
    depth : int
        50 or 101.

    Returns
    -------
    collections.OrderedDict
        ``{name: shape}`` of every array (the optional buffers excluded).
    """
    spec = OrderedDict()

    def conv(name, cout, cin, k, bias=False, norm=None):
        spec[name + '.weight'] = (cout, cin, k, k)
        if bias:
            spec[name + '.bias'] = (cout,)
        for leaf in (norm or ()):
            spec['{}.norm.{}'.format(name, leaf)] = (cout,)

    frozen_bn = tuple(_NORM_LEAVES)
    body = 'backbone.bottom_up.'
    conv(body + 'stem.conv1', 64, 3, 7, norm=frozen_bn)
    cin, outs = 64, []
    for stage, blocks in enumerate(DEPTHS[depth], start=2):
        width = 64 * 2 ** (stage - 2)
        for b in range(blocks):
            p = '{}res{}.{}.'.format(body, stage, b)
            if b == 0:
                conv(p + 'shortcut', 4 * width, cin, 1, norm=frozen_bn)
            conv(p + 'conv1', width, cin, 1, norm=frozen_bn)
            conv(p + 'conv2', width, width, 3, norm=frozen_bn)
            conv(p + 'conv3', 4 * width, width, 1, norm=frozen_bn)
            cin = 4 * width
        outs.append(cin)
    for level, c in enumerate(outs, start=2):
        conv('backbone.fpn_lateral{}'.format(level), fpn_channels, c, 1, bias=True)
        conv('backbone.fpn_output{}'.format(level), fpn_channels, fpn_channels, 3, bias=True)
    rpn = 'proposal_generator.rpn_head.'
    conv(rpn + 'conv', fpn_channels, fpn_channels, 3, bias=True)
    conv(rpn + 'objectness_logits', num_anchors, fpn_channels, 1, bias=True)
    conv(rpn + 'anchor_deltas', 4 * num_anchors, fpn_channels, 1, bias=True)
    for k, cin in ((1, fpn_channels * 7 * 7), (2, fc_channels)):
        spec['roi_heads.box_head.fc{}.weight'.format(k)] = (fc_channels, cin)
        spec['roi_heads.box_head.fc{}.bias'.format(k)] = (fc_channels,)
    spec['roi_heads.box_predictor.cls_score.weight'] = (num_things + 1, fc_channels)
    spec['roi_heads.box_predictor.cls_score.bias'] = (num_things + 1,)
    spec['roi_heads.box_predictor.bbox_pred.weight'] = (4 * num_things, fc_channels)
    spec['roi_heads.box_predictor.bbox_pred.bias'] = (4 * num_things,)
    for k in range(1, 5):
        conv('roi_heads.mask_head.mask_fcn{}'.format(k), mask_channels,
             fpn_channels if k == 1 else mask_channels, 3, bias=True)
    conv('roi_heads.mask_head.deconv', mask_channels, mask_channels, 2, bias=True)
    conv('roi_heads.mask_head.predictor', num_things, mask_channels, 1, bias=True)
    for level in range(2, 6):
        for k in range(max(1, level - 2)):
            conv('sem_seg_head.p{}.{}'.format(level, 2 * k), sem_channels,
                 fpn_channels if k == 0 else sem_channels, 3, norm=('weight', 'bias'))
    conv('sem_seg_head.predictor', num_semantic, sem_channels, 1, bias=True)
    return spec


# ----------------------------------------------------------------------------------------------
# reading a checkpoint without running code from it

def _reconstruct(*args):
    return np.core.multiarray._reconstruct(*args)  # pylint: disable=protected-access


def _scalar(*args):
    return np.core.multiarray.scalar(*args)


def _encode(text, encoding='latin1'):
    return text.encode(encoding)  # how pickles of Python 2 bytes are stored


def _ordered_dict(*args):
    return OrderedDict(*args)


_GLOBALS = {('_reconstruct',): _reconstruct, ('scalar',): _scalar, ('ndarray',): np.ndarray,
            ('dtype',): np.dtype}
_MODULES = ('numpy', 'numpy.core.multiarray', 'numpy._core.multiarray')


class _Unpickler(pickle.Unpickler):
    """Only numpy arrays, dtypes, scalars and dicts: loading a file runs no code from it."""

    def __init__(self, data, where):
        super(_Unpickler, self).__init__(data, encoding='latin1')
        self._where = where

    def find_class(self, module, name):
        if module in _MODULES and (name,) in _GLOBALS:
            return _GLOBALS[(name,)]
        if (module, name) == ('_codecs', 'encode'):
            return _encode
        if (module, name) == ('collections', 'OrderedDict'):
            return _ordered_dict
        raise DataError('{}: a detectron2 checkpoint holds numpy arrays, this one refers to '
                        '{}.{}'.format(self._where, module, name))


def load_checkpoint(path):
    """The ``{name: np.ndarray}`` weights of a detectron2 checkpoint.

    Parameters
    ----------
    path : str
        A released ``model_final_*.pkl`` (a pickle of ``{'model': {name: np.ndarray}, ...}``) or a
        ``model_final.pth`` a detectron2 training wrote (``torch.save`` zip format, read by
        :func:`gluonpan.convert.pth.load_pth`).

    Raises
    ------
    gluonpan.errors.MissingFileError
        No such file.
    gluonpan.errors.DataError
        A truncated or damaged file, not a pickle, objects other than arrays, or no state dict.
    """
    from .pth import load_pth, state_dict_of
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise MissingFileError('detectron2 checkpoint {} does not exist'.format(path)) from None
    if zipfile.is_zipfile(io.BytesIO(raw)):
        return OrderedDict(state_dict_of(load_pth(path)))
    try:
        checkpoint = _Unpickler(io.BytesIO(raw), path).load()
    except DataError:
        raise
    except Exception as err:  # pylint: disable=broad-except
        raise DataError('{}: not a readable detectron2 checkpoint ({} bytes; truncated or not a '
                        'pickle: {}: {})'.format(path, len(raw), type(err).__name__,
                                                 err)) from None
    try:
        state = state_dict_of(checkpoint)
    except DataError as err:
        raise DataError('{}: {}'.format(path, err)) from None
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise DataError('{}: entries {} of the state dict are not arrays'.format(path, bad[:5]))
    return OrderedDict(state)


# ----------------------------------------------------------------------------------------------
# architecture checks

def _shape(state_dict, name, where):
    if name not in state_dict:
        raise DataError('{}: no {} (not a detectron2 Panoptic FPN R50/R101 checkpoint?)'
                        .format(where, name))
    return tuple(np.shape(state_dict[name]))


def architecture_of(state_dict, where='checkpoint'):
    """``(depth, num_things, num_semantic)`` of a detectron2 Panoptic FPN state dict, checked.

    Every name and shape must be those of :func:`panoptic_fpn_spec` for the depth and class
    counts the checkpoint's own arrays give (plus the optional buffers ``pixel_mean``,
    ``pixel_std`` and the RPN's ``cell_anchors``).

    Raises
    ------
    gluonpan.errors.DataError
        Naming what does not match: no semantic head (a Mask R-CNN checkpoint), another backbone
        depth, names missing or unexpected, a shape that differs.
    """
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
    if not any(k.startswith('sem_seg_head.') for k in state_dict):
        kind = 'a Mask R-CNN / GeneralizedRCNN' if any(
            k.startswith('roi_heads.') for k in state_dict) else 'another model'
        raise DataError('{}: no sem_seg_head.* arrays: {} checkpoint, not a Panoptic FPN'
                        .format(where, kind))
    blocks = sorted({int(m.group(1)) for m in (re.match(r'^backbone\.bottom_up\.res4\.(\d+)\.', k)
                                               for k in state_dict) if m})
    depth = next((d for d, layers in DEPTHS.items() if len(blocks) == layers[2]), None)
    if depth is None:
        raise DataError('{}: {} res4 blocks; a ResNet-50 has 6 and a ResNet-101 23 (other '
                        'backbones are not supported)'.format(where, len(blocks)))
    num_things = _shape(state_dict, 'roi_heads.box_predictor.cls_score.weight', where)[0] - 1
    num_semantic = _shape(state_dict, 'sem_seg_head.predictor.weight', where)[0]
    spec = panoptic_fpn_spec(num_things, num_semantic, depth)
    missing = [k for k in spec if k not in state_dict]
    extra = [k for k in state_dict if k not in spec and not _OPTIONAL.match(k)]
    if missing or extra:
        raise DataError('{}: not the detectron2 Panoptic FPN R{} layout: {} name(s) missing {}, '
                        '{} unexpected {}'.format(where, depth, len(missing), missing[:3],
                                                  len(extra), extra[:3]))
    for name, shape in spec.items():
        if tuple(np.shape(state_dict[name])) != shape:
            raise DataError('{}: {} has shape {}, a Panoptic FPN R{} with {} thing / {} semantic '
                            'classes has {}'.format(where, name, np.shape(state_dict[name]),
                                                    depth, num_things, num_semantic, shape))
    return depth, num_things, num_semantic


# ----------------------------------------------------------------------------------------------
# conversion

def _renamed(key, rules):
    """``key`` renamed by the first ``(pattern, replacement)`` of ``rules`` it matches, or None."""
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def backbone_fpn_name(key):
    """Our structural name of a detectron2 backbone key, or None for any other key.

    The MSRA ResNet ``backbone.bottom_up.*`` (``stem.conv1`` -> ``conv1``, ``res{s}.{b}`` ->
    ``layer{s-1}.{b}``, ``shortcut`` -> ``downsample.0``, each ``norm`` (FrozenBN: ``weight``,
    ``bias``, ``running_mean``, ``running_var``) -> the batch norm after its conv) and the FPN's
    ``backbone.fpn_lateral{k}`` / ``fpn_output{k}`` (k = 2..5) -> ``fpn.lateral.{k-2}`` /
    ``fpn.output.{k-2}``.  Shared by every detectron2-format converter (Panoptic FPN here,
    PanopticFCN in :mod:`gluonpan.convert.panopticfcn`).

    Parameters
    ----------
    key : str
        A detectron2 state-dict name.

    Returns
    -------
    str or None
        The name in ``net._collect_params_with_prefix()``.
    """
    m = re.match(r'^backbone\.bottom_up\.(.+)$', key)
    if m:
        name = m.group(1)
        name = re.sub(r'^stem\.conv1\.norm\.', 'bn1.', name)
        name = re.sub(r'^stem\.', '', name)
        name = re.sub(r'^res(\d)\.', lambda s: 'layer{}.'.format(int(s.group(1)) - 1), name)
        name = re.sub(r'\.conv(\d)\.norm\.', r'.bn\1.', name)
        name = re.sub(r'\.shortcut\.norm\.', '.downsample.1.', name)
        name = re.sub(r'\.shortcut\.weight$', '.downsample.0.weight', name)
        base, _, leaf = name.rpartition('.')
        if re.search(r'(^|\.)(bn\d|downsample\.1)$', base):
            leaf = _NORM_LEAVES[leaf]
        return 'backbone.{}.{}'.format(base, leaf)
    rules = ((r'^backbone\.fpn_lateral(\d)\.', lambda s: 'fpn.lateral.{}.'.format(
                 int(s.group(1)) - 2)),
             (r'^backbone\.fpn_output(\d)\.', lambda s: 'fpn.output.{}.'.format(
                 int(s.group(1)) - 2)))
    return _renamed(key, rules)


def _our_name(key):
    """Our structural name of detectron2 key ``key`` (None: an optional buffer)."""
    name = backbone_fpn_name(key)
    if name is not None:
        return name
    m = re.match(r'^sem_seg_head\.p(\d)\.(\d+)\.norm\.(weight|bias)$', key)
    if m:
        return 'sem_seg_head.towers.{}.{}.{}'.format(int(m.group(1)) - 2, int(m.group(2)) + 1,
                                                     _NORM_LEAVES[m.group(3)])
    rules = ((r'^proposal_generator\.rpn_head\.conv\.', 'rpn.head.conv.'),
             (r'^proposal_generator\.rpn_head\.objectness_logits\.', 'rpn.head.score.'),
             (r'^proposal_generator\.rpn_head\.anchor_deltas\.', 'rpn.head.loc.'),
             (r'^roi_heads\.box_head\.fc(\d)\.', lambda s: 'roi_heads.box_head.{}.'.format(
                 int(s.group(1)) - 1)),
             (r'^roi_heads\.box_predictor\.cls_score\.', 'roi_heads.class_predictor.'),
             (r'^roi_heads\.box_predictor\.bbox_pred\.', 'roi_heads.box_predictor.'),
             (r'^roi_heads\.mask_head\.mask_fcn(\d)\.', lambda s: 'roi_heads.mask_head.convs.{}.'
                 .format(int(s.group(1)) - 1)),
             (r'^roi_heads\.mask_head\.(deconv|predictor)\.', r'roi_heads.mask_head.\1.'),
             (r'^sem_seg_head\.p(\d)\.(\d+)\.', lambda s: 'sem_seg_head.towers.{}.{}.'.format(
                 int(s.group(1)) - 2, s.group(2))),
             (r'^sem_seg_head\.predictor\.', 'sem_seg_head.predictor.'))
    return _renamed(key, rules)


def _input_fold(state_dict, where):
    """Per-input-channel factors (ours, RGB) that turn detectron2's first conv into ours.

    ``x_d2[2 - c] = x_ours[c] * 255 * std[c] / pixel_std[2 - c]`` when ``pixel_mean[2 - c] =
    255 * mean[c]``; anything else is refused.
    """
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD  # imports cv2: only when needed
    mean = np.asarray(state_dict.get('pixel_mean', PIXEL_MEAN), np.float64).reshape(-1)  # (3,)
    std = np.asarray(state_dict.get('pixel_std', PIXEL_STD), np.float64).reshape(-1)  # (3,)
    ours = 255. * np.asarray(IMAGENET_MEAN, np.float64)[::-1]  # BGR
    if mean.shape != (3,) or np.abs(mean - ours).max() > 1e-3:
        raise DataError('{}: pixel_mean {} is not the ImageNet mean x 255 in BGR order {}, so '
                        "detectron2's input format cannot be folded into the first conv"
                        .format(where, mean.tolist(), ours.round(3).tolist()))
    return 255. * np.asarray(IMAGENET_STD, np.float64) / std[::-1]  # (3,) RGB order


def convert_panoptic_fpn_state_dict(state_dict, where='checkpoint'):
    """detectron2 Panoptic FPN arrays -> ``{our structural name: float32 array}``, checked.

    Parameters
    ----------
    state_dict : dict
        ``{detectron2 name: np.ndarray}`` (e.g. from :func:`load_checkpoint`).
    where : str
        The file, named in errors.

    Returns
    -------
    collections.OrderedDict
        Our names.  The first conv takes our input format, the background row of the classifier
        comes first and the "things" row of the semantic predictor last (see the module).

    Raises
    ------
    gluonpan.errors.DataError
        See :func:`architecture_of`.
    """
    architecture_of(state_dict, where)
    fold = _input_fold(state_dict, where)
    out = OrderedDict()
    for key, value in state_dict.items():
        name = None if key.endswith('num_batches_tracked') else _our_name(key)
        if name is None:
            continue  # pixel_mean, pixel_std, cell_anchors (checked against ours on load)
        array = np.asarray(value, dtype=np.float32)
        if key == 'backbone.bottom_up.stem.conv1.weight':
            # (64, 3, 7, 7): BGR -> RGB input channels, scaled to our normalisation
            array = (array[:, ::-1].astype(np.float64) *
                     fold.reshape((1, 3, 1, 1))).astype(np.float32)  # (64, 3, 7, 7)
        elif key.startswith('roi_heads.box_predictor.cls_score.'):
            array = np.roll(array, 1, axis=0)  # (K + 1, ...): background last -> first
        elif key.startswith('sem_seg_head.predictor.'):
            array = np.roll(array, -1, axis=0)  # (S + 1, ...): "things" first -> last
        out[name] = np.ascontiguousarray(array)
    return out


def _check_anchors(state_dict, net, where):
    """The checkpoint's RPN cell anchors (if it stores them) must be the net's."""
    for level, base in enumerate(net.anchors._base):  # pylint: disable=protected-access
        stored = state_dict.get('proposal_generator.anchor_generator.cell_anchors.{}'
                                .format(level))
        if stored is not None and (np.shape(stored) != base.shape or
                                   np.abs(np.asarray(stored) - base).max() > 1e-3):
            raise DataError('{}: cell anchors of P{} are {}, the net\'s {!r} are {}'.format(
                where, level + 2, np.asarray(stored).tolist(), net.anchors, base.tolist()))


def detectron2_to_gluonpan(state_dict, net, where='checkpoint'):
    """Load a detectron2 Panoptic FPN state dict into an initialised gluonpan Panoptic FPN.

    Parameters
    ----------
    state_dict : dict
        ``{detectron2 name: np.ndarray}``.
    net : gluonpan.model_zoo.panoptic_fpn.PanopticFPN
        ``panoptic_fpn_resnet{50,101}_msra_*`` (built with ``preset='detectron2'``) whose
        categories have the checkpoint's thing and stuff counts, in detectron2's contiguous order
        (category-id order, as :class:`~gluonpan.data.PanopticCategories` sorts them).
    where : str
        The file, named in errors.

    Returns
    -------
    list of str
        Our parameters that kept their own values (anchor and box-coder constants).

    Raises
    ------
    gluonpan.errors.DataError
        Another architecture, class count or depth than the net's (naming both), a checkpoint
        that is not a Panoptic FPN; nothing is loaded then.
    """
    depth, num_things, num_semantic = architecture_of(state_dict, where)
    blocks = len(net.backbone.layer3)
    if blocks != DEPTHS[depth][2]:
        raise DataError('{}: a ResNet-{} checkpoint; the net\'s backbone has {} res4 blocks, not {}'
                        .format(where, depth, blocks, DEPTHS[depth][2]))
    want = (net.categories.num_things, net.categories.num_semantic_classes(net.semantic_mode))
    if (num_things, num_semantic) != want or net.semantic_mode != 'separated':
        raise DataError('{}: {} thing / {} semantic classes ("things" + {} stuff); the net has {} '
                        '/ {} ({} categories, {!r} mode): pass the categories the checkpoint was '
                        'trained with'.format(where, num_things, num_semantic, num_semantic - 1,
                                              want[0], want[1], len(net.categories.categories),
                                              net.semantic_mode))
    if getattr(net, 'conventions', {}).get('preset') != PRESET:
        logger.warning('converted detectron2 weights need preset=%r, the net has conventions %s',
                       PRESET, getattr(net, 'conventions', None))
    _check_anchors(state_dict, net, where)
    arrays = convert_panoptic_fpn_state_dict(state_dict, where)
    return load_checked(net, arrays, 'detectron2',
                        own_prefixes=('rpn.anchor_generator.', 'roi_heads.box_targets.'))


def convert_file(path, out_dir, categories=None):
    """``python -m gluonpan.convert detectron2``: ``model_final_*.pkl`` -> a complete gluonpan
    Panoptic FPN (``panoptic_fpn_resnet{50,101}_msra_coco``, semantic head included).

    Parameters
    ----------
    path : str
        The checkpoint (see :func:`load_checkpoint`).
    out_dir : str
        Gets ``panoptic_fpn_resnet{depth}_msra_coco.params`` and ``args.json`` (conventions and
        categories: ``eval_panoptic_fpn.py --pretrained`` runs it as detectron2 does).
    categories : PanopticCategories, optional
        The categories the checkpoint was trained with, default COCO panoptic's 133 (detectron2's
        contiguous ids are the category-id order of things and of stuff).

    Returns
    -------
    str
        The ``.params`` path.
    """
    import os
    from ..model_zoo import get_model
    from ..data.categories import coco_categories_from_json
    from ..model_zoo.panoptic_fpn.predefined import COCO_CATEGORIES_JSON
    state = load_checkpoint(path)
    depth, num_things, num_semantic = architecture_of(state, path)
    if categories is None:
        categories = coco_categories_from_json(COCO_CATEGORIES_JSON)
    if (num_things, num_semantic - 1) != (categories.num_things, categories.num_stuff):
        raise DataError('{}: {} thing / {} stuff classes, the categories have {} / {}: give the '
                        'categories it was trained with (--categories-json)'.format(
                            path, num_things, num_semantic - 1, categories.num_things,
                            categories.num_stuff))
    name = 'panoptic_fpn_resnet{}_msra_coco'.format(depth)
    net = get_model(name, categories=categories)
    detectron2_to_gluonpan(state, net, path)
    params = os.path.join(out_dir, name + '.params')
    save_converted(net, params, 'resnet{}_msra'.format(depth), 'coco', os.path.basename(path),
                   categories.to_json())
    logger.info('wrote %s (ResNet-%d MSRA, %d thing / %d stuff classes, preset %r)', params,
                depth, num_things, num_semantic - 1, PRESET)
    return params
