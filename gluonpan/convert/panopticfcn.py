"""The authors' PanopticFCN weights (detectron2 format) -> gluonpan PanopticFCN (pure numpy).

The authors' code (``yanwei-li/PanopticFCN``, a detectron2 project) and our
``panoptic_fcn_resnet{50,101}_msra_coco`` are the same network layer for layer (checked stage by
stage by ``tests/test_reference_panopticfcn.py``; names and shapes from the authors' own state
dict, ``tools/reference/PANOPTICFCN_NOTES.md``):

* ``backbone.bottom_up.*`` (MSRA ResNet, stride in the 1x1 conv, FrozenBN) and
  ``backbone.fpn_{lateral,output}{2..5}``: as detectron2's Panoptic FPN
  (:func:`gluonpan.convert.detectron2.backbone_fpn_name`); ``backbone.top_block.p6`` / ``.p7``
  are ``fpn.p6`` / ``fpn.p7``;
* ``semantic_fpn.p{l}.{2k}`` (conv, no bias) and its ``.norm`` (GroupNorm 32) are
  ``semantic_fpn.towers.{l-2}.{2k}`` and ``.{2k+1}`` (the odd Sequential indices of theirs are
  parameter-free upsamplings);
* ``feature_encoder.encode_head.encode_head_head_{k}`` are ``encoder.convs.{k-1}`` (with bias);
* ``{position,kernel}_head.{position,kernel}_head.*_head_{k}`` (conv, ``.norm``) are
  ``{position,kernel}_head.tower.convs.{k-1}`` and ``.norms.{k-1}``; with deformable convolutions
  (``POSITION_HEAD.DEFORM``, the authors' default) the conv is ``*_head_{k}.dcnv2`` and its
  offset / modulation conv ``*_head_{k}.offset_mask_conv`` is our ``convs.{k-1}.offset_mask``
  (27 channels: the offsets 0..17 in DCNv2's (dy, dx) per-tap order, which MXNet's
  ``ModulatedDeformableConvolution`` shares, then the 9 modulation logits -- from the source:
  detectron2 has no CPU deformable convolution to check it on);
* ``position_head.out_{inst,sem}``, ``kernel_head.out_conv`` keep their names;
  ``{thing,stuff}_generator.embed_extractor`` are ``{thing,stuff}_embed``.

No row moves: the centre head's thing classes are contiguous in category-id order in both, and
the region head's stuff classes are "things" (0) then the stuff categories in category-id order
(detectron2's ``*_panoptic_separated`` datasets, the authors' ``STUFF.WITH_THING``), which is our
stuff head's order.

Input format.  The checkpoint's network saw ``(image - PIXEL_MEAN) / PIXEL_STD`` of detectron2's
``INPUT.FORMAT`` (BGR 0..255 by default), zero-padded to a multiple of 32 *after* that
normalisation; ours sees ImageNet-normalised RGB ``(x / 255 - mean) / std``.  Per input
channel, theirs is ``scale * ours + offset``: the scale folds into the stem conv exactly; a
non-zero ``offset`` adds ``sum(w * offset)`` to every stem-conv output whose 7x7 window lies
inside the image, which is folded into the frozen ``bn1`` (its ``running_mean`` shifted by it).
That is exact (up to float rounding) wherever the window is inside the image: for an h x w
image, stem output (y, x) (stride 2, pad 3) is exact iff ``2 <= y <= (h - 4) / 2`` and
``2 <= x <= (w - 4) / 2``.  The others, whose window reaches the conv's zero padding or the
padding to a multiple of 32 -- the first two and the last one or two rows and columns of the
image's stem output (centred on pixels within 3 px of the image border) and all of the padding
-- differ (the reference sees 0 outside the image, the folded net the offset), and so,
attenuated, does everything whose receptive field holds them.  The
authors' configs set ``PIXEL_MEAN [123.675, 116.28, 103.53]`` (ImageNet's RGB mean) while
``INPUT.FORMAT`` stays ``BGR``, so their models were trained on ``B - 123.675, G - 116.28,
R - 103.53``: offsets B -20.145, G 0, R +20.145 (0..255 units) -- the case above, logged when
converting.  A checkpoint trained with detectron2's BGR mean ``[103.53, 116.28, 123.675]`` has no
offset and converts exactly.  ``input_format='normalized'`` is a network that was fed our input
as it is (``PIXEL_MEAN 0``, ``PIXEL_STD 1``; the reference fixture): nothing is folded.

Nothing here imports PyTorch.
"""
import logging
import os
import re
from collections import OrderedDict

import numpy as np

from ..errors import DataError, UsageError
from .common import load_checked, save_converted
from .detectron2 import DEPTHS, backbone_fpn_name, load_checkpoint, panoptic_fpn_spec

__all__ = ['PIXEL_MEAN', 'PIXEL_STD', 'INPUT_FORMATS', 'panoptic_fcn_spec', 'architecture_of',
           'input_fold', 'convert_panoptic_fcn_state_dict', 'panopticfcn_to_gluonpan',
           'convert_file']

logger = logging.getLogger(__name__)

#: the authors' MODEL.PIXEL_MEAN (``configs/PanopticFCN-*.yaml``), subtracted from detectron2's
#: BGR input channels in this order (so B - 123.675, G - 116.28, R - 103.53), and PIXEL_STD
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (1., 1., 1.)
#: INPUT.FORMAT of the checkpoint's training: ``'BGR'`` / ``'RGB'`` 0..255 minus ``pixel_mean``,
#: divided by ``pixel_std``; ``'normalized'``: our normalised RGB as it is (nothing to fold)
INPUT_FORMATS = ('BGR', 'RGB', 'normalized')
#: our input channel c (RGB) is the checkpoint's input channel _SOURCE_CHANNEL[format][c]
_SOURCE_CHANNEL = {'BGR': (2, 1, 0), 'RGB': (0, 1, 2)}
_GN_LEAVES = {'weight': 'gamma', 'bias': 'beta'}
_STEM = 'backbone.bottom_up.stem.conv1.'


def panoptic_fcn_spec(num_things, num_stuff, depth=50, deform=False, channels=256,
                      encoder_channels=64, num_convs=3):
    """Names and shapes of the authors' PanopticFCN state dict (no PyTorch needed).

    Parameters
    ----------
    num_things : int
        ``POSITION_HEAD.THING.NUM_CLASSES`` (COCO 80).
    num_stuff : int
        ``POSITION_HEAD.STUFF.NUM_CLASSES``: "things" + the stuff classes (COCO 54).
    depth : int
        50 or 101.
    deform : bool
        ``POSITION_HEAD.DEFORM`` (modulated deformable convolutions in the position head).
    channels, encoder_channels, num_convs : int
        FPN / head / semantic-FPN width (256), encoder width (64), convs per head (3).

    Returns
    -------
    collections.OrderedDict
        ``{name: shape}`` of every array.
    """
    spec = OrderedDict((k, v) for k, v in panoptic_fpn_spec(1, 2, depth, channels).items()
                       if k.startswith('backbone.'))  # the MSRA ResNet and FPN P2..P5

    def conv(name, cout, cin, k, bias=True, norm=False):
        spec[name + '.weight'] = (cout, cin, k, k)
        if bias:
            spec[name + '.bias'] = (cout,)
        if norm:
            spec[name + '.norm.weight'] = spec[name + '.norm.bias'] = (cout,)

    for level in (6, 7):
        conv('backbone.top_block.p{}'.format(level), channels, channels, 3)
    for level in range(2, 6):
        for k in range(max(1, level - 2)):
            conv('semantic_fpn.p{}.{}'.format(level, 2 * k), channels, channels, 3, False, True)
    for k in range(1, num_convs + 1):
        name = 'position_head.position_head.position_head_head_{}'.format(k)
        if deform:
            conv(name + '.offset_mask_conv', 27, channels, 3)
            name += '.dcnv2'
        conv(name, channels, channels, 3, bias=False, norm=True)
    conv('position_head.out_inst', num_things, channels, 3)
    conv('position_head.out_sem', num_stuff, channels, 3)
    for k in range(1, num_convs + 1):
        conv('kernel_head.kernel_head.kernel_head_head_{}'.format(k), channels,
             channels + 2 * (k == 1), 3, bias=False, norm=True)  # CoordConv before the first
    conv('kernel_head.out_conv', channels, channels, 3)
    for k in range(1, num_convs + 1):
        conv('feature_encoder.encode_head.encode_head_head_{}'.format(k), encoder_channels,
             channels + 2 if k == 1 else encoder_channels, 3)
    for kind in ('thing', 'stuff'):
        conv('{}_generator.embed_extractor'.format(kind), encoder_channels, channels, 1)
    return spec


def _rows(state_dict, name, where):
    """The number of rows (output channels) of ``state_dict[name]``, or a DataError."""
    if name not in state_dict:
        raise DataError('{}: no {} (not a PanopticFCN R50/R101 checkpoint?)'.format(where, name))
    return int(np.shape(state_dict[name])[0])


def architecture_of(state_dict, where='checkpoint'):
    """``(depth, num_things, num_stuff, deform)`` of an authors' PanopticFCN state dict, checked.

    Every name and shape must be those of :func:`panoptic_fcn_spec` for what the checkpoint's own
    arrays say (``num_batches_tracked`` counters are ignored).

    Raises
    ------
    gluonpan.errors.DataError
        Naming what does not match: another model (a detectron2 Panoptic FPN, ...), a backbone
        depth other than 50 / 101, names missing or unexpected, a shape that differs.
    """
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
    if 'position_head.out_inst.weight' not in state_dict:
        kind = ('a detectron2 Panoptic FPN checkpoint (python -m gluonpan.convert detectron2)'
                if any(k.startswith('sem_seg_head.') for k in state_dict) else 'another model')
        raise DataError('{}: no position_head.out_inst.weight: {}, not a PanopticFCN'
                        .format(where, kind))
    res4 = 'backbone.bottom_up.res4.{}.conv1.weight'
    depth = next((d for d, blocks in DEPTHS.items() if res4.format(blocks[2] - 1) in state_dict
                  and res4.format(blocks[2]) not in state_dict), None)
    if depth is None:
        found = sum(1 for k in state_dict if re.match(res4.replace('.', r'\.').format(r'\d+'), k))
        raise DataError('{}: {} res4 blocks; a ResNet-50 has 6 and a ResNet-101 23 (other '
                        'backbones are not supported)'.format(where, found))
    num_things = _rows(state_dict, 'position_head.out_inst.weight', where)
    num_stuff = _rows(state_dict, 'position_head.out_sem.weight', where)
    deform = any('.offset_mask_conv.' in k for k in state_dict)
    spec = panoptic_fcn_spec(num_things, num_stuff, depth, deform)
    missing = [k for k in spec if k not in state_dict]
    extra = [k for k in state_dict if k not in spec]
    if missing or extra:
        raise DataError('{}: not the PanopticFCN R{} layout (deform={}): {} name(s) missing {}, '
                        '{} unexpected {}'.format(where, depth, deform, len(missing), missing[:3],
                                                  len(extra), extra[:3]))
    for name, shape in spec.items():
        if tuple(np.shape(state_dict[name])) != shape:
            raise DataError('{}: {} has shape {}, a PanopticFCN R{} with {} thing / {} stuff '
                            'classes has {}'.format(where, name, np.shape(state_dict[name]),
                                                    depth, num_things, num_stuff, shape))
    return depth, num_things, num_stuff, deform


def input_fold(input_format='BGR', pixel_mean=None, pixel_std=None):
    """How the checkpoint's input channels derive from ours.

    Parameters
    ----------
    input_format : str
        One of :data:`INPUT_FORMATS`.
    pixel_mean, pixel_std : sequence of 3 float, optional
        The checkpoint's ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` in the order of its input channels
        (default :data:`PIXEL_MEAN`, :data:`PIXEL_STD`, the authors' configs); not allowed with
        ``'normalized'``.

    Returns
    -------
    tuple or None
        ``(source, scale, offset)``: the checkpoint's channel ``source[c]`` is ``scale[c] *
        ours[c] + offset[c]`` for our RGB channel c (float64 (3,) arrays, offset in the
        checkpoint's units); None for ``'normalized'``.

    Raises
    ------
    gluonpan.errors.UsageError
        An unknown format, a pixel mean / std that is not 3 numbers (std > 0), or one given with
        ``'normalized'``.
    """
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD  # imports cv2: only when needed
    if input_format not in INPUT_FORMATS:
        raise UsageError('input format {!r}: valid are {}'.format(input_format, INPUT_FORMATS))
    if input_format == 'normalized':
        if pixel_mean is not None or pixel_std is not None:
            raise UsageError("input format 'normalized' (our input as it is) takes no pixel "
                             "mean / std, got {} / {}".format(pixel_mean, pixel_std))
        return None
    mean = np.asarray(PIXEL_MEAN if pixel_mean is None else pixel_mean, np.float64)
    std = np.asarray(PIXEL_STD if pixel_std is None else pixel_std, np.float64)
    if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
        raise UsageError('pixel mean {} / std {}: 3 numbers each (std > 0) in the order of the '
                         '{} input channels'.format(mean.tolist(), std.tolist(), input_format))
    source = np.asarray(_SOURCE_CHANNEL[input_format])
    scale = 255. * np.asarray(IMAGENET_STD, np.float64) / std[source]  # (3,) our channel order
    offset = (255. * np.asarray(IMAGENET_MEAN, np.float64) - mean[source]) / std[source]  # (3,)
    return source, scale, offset


def _our_name(key):
    """Our structural name of the authors' key ``key`` (None: not ours)."""
    name = backbone_fpn_name(key)
    if name is not None:
        return name
    m = re.match(r'^semantic_fpn\.p(\d)\.(\d+)\.(norm\.)?(weight|bias)$', key)
    if m:
        level, index, norm, leaf = m.groups()
        return 'semantic_fpn.towers.{}.{}.{}'.format(
            int(level) - 2, int(index) + bool(norm), _GN_LEAVES[leaf] if norm else leaf)
    m = re.match(r'^(position|kernel)_head\.\1_head\.\1_head_head_(\d)\.(offset_mask_conv\.)?'
                 r'(?:dcnv2\.)?(norm\.)?(weight|bias)$', key)
    if m:
        head, k, offset, norm, leaf = m.groups()
        part = 'convs.{}.offset_mask'.format(int(k) - 1) if offset else \
            '{}.{}'.format('norms' if norm else 'convs', int(k) - 1)
        return '{}_head.tower.{}.{}'.format(head, part, _GN_LEAVES[leaf] if norm else leaf)
    m = re.match(r'^feature_encoder\.encode_head\.encode_head_head_(\d)\.(weight|bias)$', key)
    if m:
        return 'encoder.convs.{}.{}'.format(int(m.group(1)) - 1, m.group(2))
    m = re.match(r'^(thing|stuff)_generator\.embed_extractor\.(weight|bias)$', key)
    if m:
        return '{}_embed.{}'.format(*m.groups())
    m = re.match(r'^backbone\.top_block\.(p6|p7)\.(weight|bias)$', key)
    if m:
        return 'fpn.{}.{}'.format(*m.groups())
    if re.match(r'^(position_head\.out_(inst|sem)|kernel_head\.out_conv)\.(weight|bias)$', key):
        return key
    return None


def _fold_stem(state_dict, fold, where):
    """The stem conv weight (our channels) and bn1 running mean that take our input."""
    source, scale, offset = fold
    # (64, 3, 7, 7): their weights, input channels in our order
    theirs = np.asarray(state_dict[_STEM + 'weight'], np.float64)[:, source]
    mean = np.asarray(state_dict[_STEM + 'norm.running_mean'], np.float64)  # (64,)
    # their conv output = ours + sum over the window of w * offset (window inside the image)
    constant = theirs.sum(axis=(2, 3)).dot(offset)  # (64,)
    if np.abs(offset).max() > 1e-9:
        var = np.asarray(state_dict[_STEM + 'norm.running_var'], np.float64)  # (64,)
        gamma = np.asarray(state_dict[_STEM + 'norm.weight'], np.float64)  # (64,)
        # a border output misses part of the window's sum: at most all of its |w * offset|
        bound = np.abs(theirs * offset.reshape((1, 3, 1, 1))).sum(axis=(1, 2, 3))  # (64,)
        bound = np.abs(gamma / np.sqrt(var + 1e-5)) * bound  # (64,) in bn1 output units
        logger.warning(
            '%s: its input is ours plus a constant offset %s per channel (RGB order, the '
            "checkpoint's units): folded into bn1.running_mean, exact except where the stem "
            "conv's 7x7 window reaches outside the image (pixels within 3 px of the image border "
            'and the padding to a multiple of 32), where bn1 outputs are off by at most %.3g',
            where, np.round(offset, 4).tolist(), bound.max())
    weight = theirs * scale.reshape((1, 3, 1, 1))  # (64, 3, 7, 7)
    return weight.astype(np.float32), (mean - constant).astype(np.float32)


def convert_panoptic_fcn_state_dict(state_dict, where='checkpoint', input_format='BGR',
                                    pixel_mean=None, pixel_std=None):
    """Authors' PanopticFCN arrays -> ``{our structural name: float32 array}``, checked.

    Parameters
    ----------
    state_dict : dict
        ``{name: np.ndarray}`` (e.g. from :func:`gluonpan.convert.detectron2.load_checkpoint`).
    where : str
        The file, named in errors and logs.
    input_format, pixel_mean, pixel_std
        The checkpoint's input (:func:`input_fold`): ``'BGR'`` with the authors' pixel mean by
        default; ``'normalized'`` folds nothing.

    Returns
    -------
    collections.OrderedDict
        Our names; the stem conv and ``bn1`` take our input format (see the module).

    Raises
    ------
    gluonpan.errors.DataError
        See :func:`architecture_of`.
    gluonpan.errors.UsageError
        See :func:`input_fold`.
    """
    architecture_of(state_dict, where)
    fold = input_fold(input_format, pixel_mean, pixel_std)
    folded = {}
    if fold is not None:
        folded[_STEM + 'weight'], folded[_STEM + 'norm.running_mean'] = _fold_stem(
            state_dict, fold, where)
    out = OrderedDict()
    for key, value in state_dict.items():
        name = None if key.endswith('num_batches_tracked') else _our_name(key)
        if name is not None:
            out[name] = np.ascontiguousarray(folded.get(key, np.asarray(value, np.float32)))
    return out


def panopticfcn_to_gluonpan(state_dict, net, where='checkpoint', input_format='BGR',
                            pixel_mean=None, pixel_std=None):
    """Load an authors' PanopticFCN state dict into an initialised gluonpan PanopticFCN.

    Parameters
    ----------
    state_dict : dict
        ``{name: np.ndarray}``.
    net : gluonpan.model_zoo.panoptic_fcn.PanopticFCN
        ``panoptic_fcn_resnet{50,101}_msra_*`` built with the checkpoint's ``deform`` and
        categories of its thing / stuff counts (category-id order, as
        :class:`~gluonpan.data.PanopticCategories` sorts them).
    where : str
        The file, named in errors.
    input_format, pixel_mean, pixel_std
        See :func:`input_fold`.

    Returns
    -------
    list of str
        Our parameters that kept their own values (none).

    Raises
    ------
    gluonpan.errors.DataError
        Another architecture, depth, class count or ``deform`` than the net's (naming both);
        nothing is loaded then.
    """
    depth, num_things, num_stuff, deform = architecture_of(state_dict, where)
    blocks = len(net.backbone.layer3)
    if blocks != DEPTHS[depth][2]:
        raise DataError("{}: a ResNet-{} checkpoint; the net's backbone has {} res4 blocks, not {}"
                        .format(where, depth, blocks, DEPTHS[depth][2]))
    head = net.position_head
    if (num_things, num_stuff) != (head.num_things, head.num_stuff):
        raise DataError('{}: {} thing / {} stuff classes ("things" + {} stuff); the net has {} / '
                        '{}: pass the categories the checkpoint was trained with'.format(
                            where, num_things, num_stuff, num_stuff - 1, head.num_things,
                            head.num_stuff))
    if bool(net.options.get('deform')) != deform:
        raise DataError('{}: a checkpoint with deform={} (POSITION_HEAD.DEFORM); the net has '
                        'deform={}'.format(where, deform, net.options.get('deform')))
    arrays = convert_panoptic_fcn_state_dict(state_dict, where, input_format, pixel_mean,
                                             pixel_std)
    return load_checked(net, arrays, 'PanopticFCN')


def convert_file(path, out_dir, categories=None, input_format='BGR', pixel_mean=None,
                 pixel_std=None):
    """``python -m gluonpan.convert panopticfcn``: an authors' checkpoint -> a complete gluonpan
    ``panoptic_fcn_resnet{50,101}_msra_coco`` (with the checkpoint's ``deform``).

    Parameters
    ----------
    path : str
        The checkpoint: a ``.pth`` of the authors' detectron2 training (``torch.save`` zip
        format) or a ``.pkl`` (see :func:`gluonpan.convert.detectron2.load_checkpoint`).
    out_dir : str
        Gets ``panoptic_fcn_resnet{depth}_msra_coco.params`` and ``args.json`` (the model's
        options and categories).
    categories : PanopticCategories, optional
        The categories the checkpoint was trained with, default COCO panoptic's 133.
    input_format, pixel_mean, pixel_std
        See :func:`input_fold` (default: the authors' configs).

    Returns
    -------
    str
        The ``.params`` path.
    """
    from ..model_zoo import get_model
    from ..model_zoo.builder import COCO_CATEGORIES_JSON, coco_model_categories
    state = load_checkpoint(path)
    depth, num_things, num_stuff, deform = architecture_of(state, path)
    categories = coco_model_categories(COCO_CATEGORIES_JSON if categories is None else categories)
    if (num_things, num_stuff - 1) != (categories.num_things, categories.num_stuff):
        raise DataError('{}: {} thing / {} stuff classes, the categories have {} / {}: give the '
                        'categories it was trained with (--categories-json)'.format(
                            path, num_things, num_stuff - 1, categories.num_things,
                            categories.num_stuff))
    name = 'panoptic_fcn_resnet{}_msra_coco'.format(depth)
    net = get_model(name, categories=categories, deform=deform)
    panopticfcn_to_gluonpan(state, net, path, input_format, pixel_mean, pixel_std)
    params = os.path.join(out_dir, name + '.params')
    save_converted(net, params, 'resnet{}_msra'.format(depth), 'coco', os.path.basename(path),
                   categories.to_json())
    logger.info('wrote %s (ResNet-%d MSRA, %d thing / %d stuff classes, deform=%s, input %s)',
                params, depth, num_things, num_stuff - 1, deform, input_format)
    return params
