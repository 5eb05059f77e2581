"""PanopticFCN (Li, Zhao, Qi, Wang, Li, Sun and Jia, CVPR 2021) as one Gluon HybridBlock.

Things and stuff are predicted the same way, with no boxes: a position head finds thing centres
and stuff regions on P3..P7, a kernel head predicts a kernel at every position, and a mask is a
kernel times the stride-4 encoded features.  The graph stops where the reference's dynamic,
data-dependent steps begin (peak picking, kernel fusion, thresholds): those run in numpy
(:mod:`~gluonpan.model_zoo.panoptic_fcn.inference`), and the training targets are made in the
data workers (:mod:`gluonpan.data.fcn_targets`).  Recipe defaults and presets live in
:func:`build_panoptic_fcn`.
"""
from collections import OrderedDict

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import nn

from ...data.fcn_targets import level_shapes
from ...errors import UsageError
from ...nn.fpn import FPN
from ...nn.kernel_heads import ConvTower, KernelHead, PositionHead
from ...nn.semantic_head import SemanticFPNHead
from ..two_mode import TwoModeNet
from .inference import DEFAULT_INFERENCE_OPTIONS
from .kernels import (embed, flatten_levels, guided_thing_kernels, level_weights, peak_scores,
                      position_losses, region_kernels, stuff_mask_loss, stuff_statistics,
                      thing_mask_loss)

__all__ = ['LOSS_NAMES', 'TRAIN_INPUTS', 'DEFAULT_LOSS_WEIGHTS', 'PRESETS', 'PanopticFCN',
           'build_panoptic_fcn', 'level_shapes']

LOSS_NAMES = ('loss_pos_th', 'loss_pos_st', 'loss_seg_th', 'loss_seg_st')
#: keys of a per-context training batch, in the order the training graph takes them
TRAIN_INPUTS = ('data', 'center_targets', 'stuff_targets', 'stuff_masks', 'inst_masks',
                'inst_guide', 'inst_classes')
#: the reference's LOSS_WEIGHT.POSITION 1 and SEGMENT 3
DEFAULT_LOSS_WEIGHTS = OrderedDict([('loss_pos_th', 1.), ('loss_pos_st', 1.), ('loss_seg_th', 3.),
                                    ('loss_seg_st', 3.)])
#: the reference's average-pool sizes of the centre maps of P3..P7 at inference
POOL_SIZES = (3, 3, 3, 5, 5)
#: inference options of the reference's configs (``configs/PanopticFCN-R50-*.yaml``): name ->
#: (centre threshold, stuff threshold, positives per object, test size (short, max) or None)
PRESETS = OrderedDict([
    ('default', (0.05, 0.05, 7, None)),
    ('fast', (0.2, 0.1, 7, None)),
    ('400', (0.05, 0.05, 3, (400, 666))),
    ('512', (0.05, 0.05, 3, (512, 854))),
    ('600', (0.05, 0.05, 5, (600, 1000))),
    ('fast400', (0.2, 0.1, 3, (400, 666))),
    ('fast512', (0.2, 0.1, 3, (512, 854))),
    ('fast600', (0.2, 0.1, 5, (600, 1000))),
])


class PanopticFCN(TwoModeNet):
    """PanopticFCN: kernels generated on the pyramid, masks from kernels and encoded features.

    Modes (``autograd.is_training()`` selects the branch)

    * **training**: ``net(data, center_targets, stuff_targets, stuff_masks, inst_masks,
      inst_guide, inst_classes)`` (:data:`TRAIN_INPUTS`, shapes: :mod:`gluonpan.data.fcn_targets`)
      returns the four unweighted losses of :data:`LOSS_NAMES`, each (1,); prefer
      :meth:`~gluonpan.model_zoo.two_mode.TwoModeNet.train_losses`, which takes the batch dict
      and applies ``net.loss_weights``.
    * **inference**: ``net(data)`` with one image (1, 3, H, W), H and W multiples of 32, returns
      ``centers`` (1, T, P) peak-filtered centre scores, ``regions`` (1, S, P) stuff region
      probabilities, ``thing_kernels`` (1, P, E), ``stuff_kernels`` (1, 5 * S, E) per (level,
      class) of the argmax regions, ``stuff_stats`` (1, 5 * S, 2) (positions, summed
      probability) and ``encoded`` (1, E, H / 4, W / 4); P = positions of P3..P7 (row-major,
      concatenated).  :func:`~gluonpan.model_zoo.panoptic_fcn.predict_panoptic` turns them into a
      panoptic map.

    Stuff-head classes are the reference's order: 0 = "things", then the categories' stuff classes.

    Parameters
    ----------
    backbone, fpn, semantic_fpn, encoder, position_head, kernel_head : HybridBlock
        C2..C5; P2..P7 (``FPN(top='p6p7')``); the stride-4 merge of P2..P5
        (``SemanticFPNHead(None, ...)``); the CoordConv encoder tower; the heads shared by P3..P7.
    categories : gluonpan.data.PanopticCategories
        The dataset's categories.
    num_positives : int
        Kernels per object in training (the reference's POS_NUM).
    loss_weights : dict, optional
        Overrides of :data:`DEFAULT_LOSS_WEIGHTS`.
    inference_options : dict
        Thresholds of the post-processing (see :func:`build_panoptic_fcn`), ``net.inference_options``.
    """

    TRAIN_INPUTS = TRAIN_INPUTS
    LOSS_NAMES = LOSS_NAMES
    FLOAT_INPUTS = ('inst_guide',)

    def __init__(self, backbone, fpn, semantic_fpn, encoder, position_head, kernel_head,
                 categories, encoder_channels=64, num_positives=7, loss_weights=None,
                 inference_options=None, options=None, **kwargs):
        super(PanopticFCN, self).__init__(DEFAULT_LOSS_WEIGHTS, loss_weights, **kwargs)
        want = (categories.num_things, len(categories.stuff_ids) + 1)
        if (position_head.num_things, position_head.num_stuff) != want:
            raise ValueError('the position head predicts {} thing / {} stuff classes but the '
                             'categories have {} / {} ("things" + stuff)'.format(
                                 position_head.num_things, position_head.num_stuff, *want))
        self.categories = categories
        self.num_positives = int(num_positives)
        self.inference_options = dict(inference_options or {})
        #: the builder options that define the model (recorded with a training run)
        self.options = dict(options or {})
        init = dict(weight_initializer=mx.init.Normal(0.01), in_channels=kernel_head.channels)
        with self.name_scope():
            self.backbone = backbone
            self.fpn = fpn
            self.semantic_fpn = semantic_fpn
            self.encoder = encoder
            self.position_head = position_head
            self.kernel_head = kernel_head
            self.thing_embed = nn.Conv2D(encoder_channels, 1, prefix='thing_embed_', **init)
            self.stuff_embed = nn.Conv2D(encoder_channels, 1, prefix='stuff_embed_', **init)

    def level_shapes(self, height, width):
        """(h, w) of P3..P7 for a padded input of ``height x width``."""
        return level_shapes(height, width)

    @property
    def fusion_defaults(self):
        """The fusion thresholds of the eval / demo flags when neither they nor the training run
        set them: the reference's COMBINE options (score 0.2, overlap 0.5, stuff area 4096)."""
        opts = self.inference_options
        return {'score_thresh': opts['score_threshold'], 'overlap_thresh':
                opts['overlap_threshold'], 'stuff_area': opts['stuff_area_threshold']}

    def train_targets(self, categories):
        """The data workers' target maker for this net (``PanopticTrainTransform(targets=...)``):
        :class:`gluonpan.data.fcn_targets.FCNTargets` with the net's classes."""
        from ...data.fcn_targets import FCNTargets
        from .targets import FCNSampleTargets
        targets = FCNTargets(self.position_head.num_things, self.position_head.num_stuff)
        return FCNSampleTargets(targets, len(categories.stuff_ids), TRAIN_INPUTS[1:])

    def predict_panoptic(self, data, **thresholds):
        """:func:`~gluonpan.model_zoo.panoptic_fcn.inference.predict_panoptic` of this net: the
        panoptic map and segments of one (1, 3, H, W) normalised image of any size."""
        from .inference import predict_panoptic
        return predict_panoptic(self, data, **thresholds)

    def _check_inputs(self, x, args, training):
        B, _, H, W = x.shape
        if H % 32 or W % 32:
            raise ValueError('input {}x{}: height and width must be multiples of 32 (use '
                             'predict_panoptic for any size)'.format(H, W))
        if not training:
            if args or B != 1:
                raise ValueError('inference takes one image (1, 3, H, W), got {} and {} more '
                                 'inputs'.format(x.shape, len(args)))
            return
        if len(args) != len(TRAIN_INPUTS) - 1:
            raise ValueError('training forward takes {}, got {} inputs'
                             .format(TRAIN_INPUTS, len(args) + 1))
        if self.options.get('deform') and x.context.device_type != 'gpu':
            raise UsageError(
                "training with deform=True needs a GPU: MXNet 1.9.1's modulated deformable "
                "convolution has no CPU backward (it runs forward on the CPU, so inference "
                "works); train on the CPU with --model-kwargs '{\"deform\": false}'")
        shapes = dict(zip(TRAIN_INPUTS, [x.shape] + [a.shape for a in args]))
        P = sum(h * w for h, w in self.level_shapes(H, W))
        T, S = self.position_head.num_things, self.position_head.num_stuff
        N = shapes['inst_classes'][1] if len(shapes['inst_classes']) == 2 else -1
        expected = dict(center_targets=(B, T, P), stuff_targets=(B, S, P),
                        stuff_masks=(B, S, H // 4, W // 4), inst_masks=(B, N, H // 4, W // 4),
                        inst_guide=(B, N, P), inst_classes=(B, N))
        wrong = {k: shapes[k] for k, v in expected.items() if shapes[k] != v}
        if wrong:
            raise ValueError('batch shapes {} do not fit data {} with {} positions on P3..P7 and '
                             '{} thing / {} stuff classes; expected {}'.format(
                                 wrong, x.shape, P, T, S, {k: expected[k] for k in wrong}))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, center_targets=None, stuff_targets=None, stuff_masks=None,
                       inst_masks=None, inst_guide=None, inst_classes=None):
        """See the class docstring for the two modes."""
        feats = self.fpn(*self.backbone(x))  # P2..P7
        encoded = self.encoder(self.semantic_fpn(x, *feats[:4]))  # (B, E, H / 4, W / 4)
        heads = [self.position_head(p) for p in feats[1:]]  # shared over P3..P7
        kernel_maps = [self.kernel_head(p) for p in feats[1:]]
        indicator, area_weights = level_weights(F, kernel_maps)  # (B, L, P) each
        kernel_map = flatten_levels(F, kernel_maps)  # (B, C, P)
        thing_kernels = embed(F, self.thing_embed, kernel_map)  # (B, E, P)
        if not autograd.is_training():
            return self._inference(F, heads, kernel_map, thing_kernels, indicator, area_weights,
                                   encoded)
        centers = flatten_levels(F, [c for c, _ in heads])  # (B, T, P)
        regions = flatten_levels(F, [r for _, r in heads])  # (B, S, P)
        encoded = encoded.reshape((0, 0, -1))  # (B, E, HW)
        valid = inst_classes >= 0  # (B, N)
        losses = position_losses(F, centers, regions, center_targets, stuff_targets,
                                 area_weights, F.sum(valid))
        kernels, weights = guided_thing_kernels(F, centers, thing_kernels, inst_guide,
                                                inst_classes, self.num_positives)
        losses += (thing_mask_loss(F, kernels, weights, encoded, inst_masks.reshape((0, 0, -1)),
                                   valid, self.num_positives),)  # masks: (B, N, HW)
        stuff = stuff_targets > 0  # (B, S, P): the regions the stuff kernels pool
        stuff_kernels = embed(F, self.stuff_embed, region_kernels(F, stuff, kernel_map,
                                                                  area_weights))  # (B, E, L*S)
        probs = F.sigmoid(F.batch_dot(stuff_kernels, encoded, transpose_a=True))  # (B, L*S, HW)
        probs = probs.reshape((0, -4, len(heads), -1, 0))  # (B, L, S, HW)
        present = F.batch_dot(indicator, stuff, transpose_b=True) > 0  # (B, L, S)
        return losses + (stuff_mask_loss(F, probs, stuff_masks.reshape((0, 0, -1)), present),)

    def _inference(self, F, heads, kernel_map, thing_kernels, indicator, area_weights, encoded):
        """The outputs of the inference mode (class docstring)."""
        centers = flatten_levels(F, [peak_scores(F, c, k) for (c, _), k in zip(heads,
                                                                                POOL_SIZES)])
        regions = F.sigmoid(flatten_levels(F, [r for _, r in heads]))  # (1, S, P)
        onehot, stats = stuff_statistics(F, regions, indicator)
        stuff_kernels = embed(F, self.stuff_embed, region_kernels(F, onehot, kernel_map,
                                                                  area_weights))  # (1, E, L*S)
        return (centers, regions, F.transpose(thing_kernels, (0, 2, 1)),
                F.transpose(stuff_kernels, (0, 2, 1)), stats, encoded)

    def predict(self, data):
        """Inference outputs (class docstring) of one padded image (1, 3, H, W)."""
        with autograd.predict_mode():
            return self(data)


def build_panoptic_fcn(backbone, categories, fpn_channels=256, head_channels=256, head_convs=3,
                       semantic_channels=256, encoder_channels=64, encoder_convs=3, deform=True,
                       num_positives=None, loss_weights=None, preset='default',
                       center_thresh=None, stuff_thresh=None, center_top_num=None,
                       mask_thresh=None, similarity_thresh=None, class_specific=None,
                       score_threshold=None, overlap_threshold=None, stuff_area_threshold=None,
                       test_size=None):
    """Assemble a :class:`PanopticFCN`; the keyword defaults are the reference's
    (``panopticfcn/config.py`` and ``configs/PanopticFCN-R50-1x.yaml``).

    Parameters
    ----------
    backbone : HybridBlock
        With ``out_channels`` (C2..C5 channels), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    categories : gluonpan.data.PanopticCategories
        Sets the thing and stuff class counts.
    fpn_channels, head_channels, head_convs : int
        FPN width (256), position / kernel head width (256) and depth (3).
    semantic_channels, encoder_channels, encoder_convs : int
        The stride-4 merge of P2..P5 (256, GroupNorm), the encoder's width E (64) and depth (3).
    deform : bool
        Modulated deformable convolutions (DCNv2) in the position head's tower (the reference's
        ``POSITION_HEAD.DEFORM``, default True).  MXNet 1.9.1 runs them forward on the CPU and
        the GPU but back-propagates through them on the GPU only: training on the CPU needs
        ``deform=False`` (the CPU models ``panoptic_fcn_resnet18_v1b_*`` default to it).
    num_positives : int, optional
        Kernels per object in training (POS_NUM); default the preset's.
    preset : str
        A key of :data:`PRESETS`: the reference's inference settings ``default`` (thresholds
        0.05 / 0.05), ``fast`` (0.2 / 0.1), and the short-side 400 / 512 / 600 models (with
        ``fast`` thresholds as ``fast400`` ...), which also resize the image at test time.
    center_thresh, stuff_thresh : float, optional
        Centre and stuff-region score thresholds; default the preset's.
    center_top_num, mask_thresh, similarity_thresh, class_specific
        At most ``center_top_num`` things (100; half of them per level before fusion), mask
        binarisation 0.4, kernel fusion at cosine similarity 0.9 within a class; None takes
        :data:`~gluonpan.model_zoo.panoptic_fcn.inference.DEFAULT_INFERENCE_OPTIONS`.
    score_threshold, overlap_threshold, stuff_area_threshold
        The panoptic fusion's (reference COMBINE: 0.2, 0.5, 4096; None takes the defaults); the
        eval / demo flags override them.
    test_size : tuple of int, optional
        ``(short side, max side)`` the image is resized to at test time; default the preset's
        (None: the image as it is).
    """
    if preset not in PRESETS:
        raise ValueError('unknown preset {!r}; valid: {}'.format(preset, list(PRESETS)))
    p_center, p_stuff, p_positives, p_size = PRESETS[preset]
    options = dict(preset=preset, deform=deform, fpn_channels=fpn_channels,
                   head_channels=head_channels, head_convs=head_convs,
                   semantic_channels=semantic_channels, encoder_channels=encoder_channels,
                   encoder_convs=encoder_convs,
                   num_positives=p_positives if num_positives is None else num_positives)
    given = dict(center_thresh=center_thresh, stuff_thresh=stuff_thresh,
                 center_top_num=center_top_num, mask_thresh=mask_thresh,
                 similarity_thresh=similarity_thresh, class_specific=class_specific,
                 score_threshold=score_threshold, overlap_threshold=overlap_threshold,
                 stuff_area_threshold=stuff_area_threshold)
    inference = dict(DEFAULT_INFERENCE_OPTIONS, center_thresh=p_center, stuff_thresh=p_stuff,
                     test_size=tuple(test_size) if test_size is not None else p_size)
    inference.update((k, v) for k, v in given.items() if v is not None)
    fpn = FPN(backbone.out_channels, fpn_channels, top='p6p7')
    semantic_fpn = SemanticFPNHead(None, fpn_channels, semantic_channels, 32, fpn.strides[:4],
                                   prefix='semantic_fpn_')
    encoder = ConvTower(semantic_channels, encoder_channels, encoder_convs, norm=None, coord=True,
                        prefix='encoder_')
    position_head = PositionHead(categories.num_things, len(categories.stuff_ids) + 1,
                                 fpn_channels, head_channels, head_convs, deform=deform,
                                 prefix='position_head_')
    kernel_head = KernelHead(fpn_channels, head_channels, head_convs, prefix='kernel_head_')
    return PanopticFCN(backbone, fpn, semantic_fpn, encoder, position_head, kernel_head,
                       categories, encoder_channels, options['num_positives'], loss_weights,
                       inference, options)
