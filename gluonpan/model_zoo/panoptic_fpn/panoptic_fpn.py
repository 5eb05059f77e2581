"""Panoptic FPN (Kirillov, Girshick, He and Dollar, CVPR 2019) as one Gluon HybridBlock.

The meta-architecture composes and does not compute: backbone + FPN run once and feed the RPN, the
Mask R-CNN RoI heads and the semantic FPN head; each head (or the loss function beside it) returns
named quantities.  Recipe defaults live in :func:`build_panoptic_fpn`, the single place the model
zoo builders take them from.
"""
import math
import warnings
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet import autograd

from ...data.categories import IGNORE_LABEL
from ...nn.anchors import ANCHOR_STYLES, FPNAnchors
from ...nn.fpn import FPN
from ...nn.losses import rpn_losses, semantic_loss
from ...nn.roi_heads import RoIHeads
from ...nn.rpn import FPNRPN
from ...nn.semantic_head import SemanticFPNHead
from ..two_mode import TwoModeNet
from .conventions import resolve_conventions

__all__ = ['LOSS_NAMES', 'TRAIN_INPUTS', 'DEFAULT_LOSS_WEIGHTS', 'PanopticFPN',
           'build_panoptic_fpn']

#: names of the losses, in the order the training graph returns them
LOSS_NAMES = ('loss_rpn_cls', 'loss_rpn_box', 'loss_rcnn_cls', 'loss_rcnn_box', 'loss_mask',
              'loss_sem_seg')
#: keys of a per-context training batch, in the order the training graph takes them
TRAIN_INPUTS = ('data', 'gt_boxes', 'gt_classes', 'gt_masks', 'sem_seg', 'rpn_cls_targets',
                'rpn_box_targets', 'rpn_box_masks')
#: semantic weight 0.5 as in the COCO references, every other loss 1
DEFAULT_LOSS_WEIGHTS = OrderedDict((name, 0.5 if name == 'loss_sem_seg' else 1.)
                                   for name in LOSS_NAMES)


class PanopticFPN(TwoModeNet):
    """Panoptic FPN: Mask R-CNN with FPN plus a semantic FPN branch on the shared pyramid.

    Modes (``autograd.is_training()`` selects the branch)

    * **training**: ``net(data, gt_boxes, gt_classes, gt_masks, sem_seg, rpn_cls_targets,
      rpn_box_targets, rpn_box_masks)`` (shapes: ``gluonpan`` data contract) returns the six
      *unweighted* losses in :data:`LOSS_NAMES` order, each of shape (1,).  Prefer
      :meth:`~gluonpan.model_zoo.two_mode.TwoModeNet.train_losses`, which takes the batch dict
      and returns an ``OrderedDict`` of the losses times ``net.loss_weights`` (applied outside
      the graph, so changing a weight needs no rebuild).  Each loss is the mean over the context's batch (see :mod:`gluonpan.nn.losses`), as
      ``gluonpan.utils.engine`` expects.
    * **inference**: ``net(data)`` with one image (1, 3, H, W), H and W multiples of 32 (use
      :func:`~gluonpan.model_zoo.panoptic_fpn.predict_panoptic` for any size), or
      ``net(data, window)`` with ``window`` of shape (1, 1, h, w) (its values unused): the image
      is the top-left h x w of the padded ``data``, and proposals and detections are clipped to
      it (:meth:`predict` with ``image_size``; the ``clip_to_image`` convention), returns
      ``ids`` (1, D, 1) thing class or -1, ``scores`` (1, D, 1), ``boxes`` (1, D, 4), ``masks``
      (1, D, 28, 28) probabilities in the box, and ``sem_logits`` (1, K, H, W).

    The net hybridizes; switching a hybridized net between the two modes rebuilds its graph
    automatically (:meth:`forward`), so no ``hybridize()`` call is needed in between.

    Initialisation: ``get_model`` returns every parameter initialised (loaded weights, or each
    layer's own initializer through a plain ``initialize()``).  Do not call ``initialize(Xavier())``
    on top: layers carry their own initializers (Normal(0.01) RPN, MSRA mask head, ...).

    Parameters
    ----------
    backbone : HybridBlock
        Input (B, 3, H, W) -> (C2, C3, C4, C5), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    fpn : gluonpan.nn.FPN
        (C2..C5) -> (P2..P6).
    rpn : gluonpan.nn.FPNRPN
        RPN on P2..P6; its ``anchors`` are ``net.anchors``.
    roi_heads : gluonpan.nn.RoIHeads
        Box and mask heads on P2..P5.
    sem_seg_head : gluonpan.nn.SemanticFPNHead
        Semantic head on P2..P5.
    categories : gluonpan.data.PanopticCategories
        The dataset's categories; class counts of the heads must match them.
    semantic_mode : str
        ``'separated'`` (stuff + one "things" class, the paper) or ``'all'``.
    loss_weights : dict, optional
        Overrides of :data:`DEFAULT_LOSS_WEIGHTS` by loss name.
    conventions : dict, optional
        The resolved conventions the heads were built with
        (:func:`~gluonpan.model_zoo.panoptic_fpn.conventions.resolve_conventions`), kept as
        ``net.conventions``; ``mask_paste`` is read by ``predict_panoptic``.
    """

    TRAIN_INPUTS = TRAIN_INPUTS
    LOSS_NAMES = LOSS_NAMES

    def __init__(self, backbone, fpn, rpn, roi_heads, sem_seg_head, categories,
                 semantic_mode='separated', loss_weights=None, conventions=None, **kwargs):
        super(PanopticFPN, self).__init__(DEFAULT_LOSS_WEIGHTS, loss_weights, **kwargs)
        self.conventions = dict(conventions or {})
        self.categories = categories
        self.semantic_mode = semantic_mode
        self._check_class_counts(roi_heads.num_classes, sem_seg_head.num_classes)
        self.backbone = backbone
        self.fpn = fpn
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.sem_seg_head = sem_seg_head

    @property
    def anchors(self):
        """The :class:`~gluonpan.nn.anchors.FPNAnchors` of the RPN (data workers use the same)."""
        return self.rpn.anchors

    @property
    def batch_size(self):
        """Images per context the training graph is built for."""
        return self.roi_heads.batch_size

    def load_parameters(self, filename, ctx=None, *args, **kwargs):  # pylint: disable=arguments-differ
        """``HybridBlock.load_parameters``, then :meth:`check_anchors` (a ``.params`` file holds
        the anchors the weights were made with, which replace the net's)."""
        super(PanopticFPN, self).load_parameters(filename, ctx, *args, **kwargs)
        self.check_anchors()

    def check_anchors(self):
        """Raise ``ValueError`` unless the graph's anchors are ``net.anchors`` (the data side's).

        Loaded weights bring their anchor constants: weights made with other anchors (another
        ``anchor_style`` or sizes) would run with anchors that the RPN targets do not use.
        """
        anchors = self.anchors
        for level, (generator, base) in enumerate(zip(self.rpn.anchor_generator, anchors._base)):
            loaded = generator.base.data().asnumpy().reshape(base.shape)  # (A, 4)
            if (loaded == base).all():
                continue
            styles = [s for s in ANCHOR_STYLES
                      if (anchors.with_style(s)._base[level] == loaded).all()]
            hint = ''
            if styles and styles[0] == 'detectron1':
                hint = (" (weights trained with gluonpan's former default conventions, without an "
                        "args.json beside them: add --model-kwargs '{\"preset\": \"gluoncv\"}')")
            raise ValueError(
                'the weights were made with other anchors than this net\'s{}{}; build the net '
                'with the conventions the weights were made with (this net: {!r}; P{} first '
                'location {} instead of {})'.format(
                    " (theirs: anchor_style={!r})".format(styles[0]) if styles else '', hint,
                    anchors, level + 2, np.round(loaded, 2).tolist(), np.round(base, 2).tolist()))
        return True

    def _check_class_counts(self, num_things, num_semantic):
        want = (self.categories.num_things,
                self.categories.num_semantic_classes(self.semantic_mode))
        if (num_things, num_semantic) != want:
            raise ValueError('heads predict {} thing / {} semantic classes but the categories have '
                             '{} / {} ({!r} mode)'.format(num_things, num_semantic, want[0],
                                                          want[1], self.semantic_mode))

    def forward(self, x, *args):
        """:meth:`TwoModeNet.forward`, quiet about the box coder's training-only constants."""
        with warnings.catch_warnings():
            # building the inference graph: the box-target coder's constants are training-only
            warnings.filterwarnings(
                'ignore', '.*normalizedperclassboxcenterencoder.*is not used by any computation',
                UserWarning)
            return super(PanopticFPN, self).forward(x, *args)

    def _check_inputs(self, x, args, training):
        B, _, H, W = x.shape
        num_anchors = sum(h * w for h, w in self.anchors.feature_shapes(H, W)) * \
            self.anchors.num_per_location
        if num_anchors < self.rpn.post_nms(training):
            raise ValueError('input {}x{} has {} anchors, fewer than the {} proposals the RPN '
                             'keeps; use a larger input'.format(H, W, num_anchors,
                                                                self.rpn.post_nms(training)))
        if not training:
            window = args[0].shape if len(args) == 1 else None
            if len(args) > 1 or B != 1 or (window is not None and (
                    window[:2] != (1, 1) or window[2] > H or window[3] > W)):
                raise ValueError('inference takes one image (1, 3, H, W) and optionally a (1, 1, '
                                 'h <= H, w <= W) window, got {} and {}'.format(
                                     x.shape, [a.shape for a in args]))
            return
        if len(args) != len(TRAIN_INPUTS) - 1:
            raise ValueError('training forward takes {}, got {} inputs'
                             .format(TRAIN_INPUTS, len(args) + 1))
        shapes = dict(zip(TRAIN_INPUTS, [x.shape] + [a.shape for a in args]))
        if B != self.batch_size:
            raise ValueError('network built for per_device_batch_size={} got a batch of {}; pass '
                             'per_device_batch_size={} to get_model'.format(self.batch_size, B, B))
        if shapes['gt_boxes'][1] > self.roi_heads.max_num_gt:
            raise ValueError('{} ground-truth instances exceed max_num_gt={}; pass a larger '
                             'max_num_gt to get_model'.format(shapes['gt_boxes'][1],
                                                              self.roi_heads.max_num_gt))
        M = shapes['gt_boxes'][1]
        expected = dict(gt_boxes=(B, M, 4), gt_classes=(B, M, 1), gt_masks=(B, M, H, W),
                        sem_seg=(B, H, W), rpn_cls_targets=(B, num_anchors),
                        rpn_box_targets=(B, num_anchors, 4), rpn_box_masks=(B, num_anchors, 4))
        wrong = {k: shapes[k] for k, v in expected.items() if shapes[k] != v}
        if wrong:
            raise ValueError('batch shapes {} do not fit data {} with {} anchors; expected {} (are '
                             'the RPN targets from net.anchors?)'.format(
                                 wrong, x.shape, num_anchors, {k: expected[k] for k in wrong}))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, gt_boxes=None, gt_classes=None, gt_masks=None, sem_seg=None,
                       rpn_cls_targets=None, rpn_box_targets=None, rpn_box_masks=None):
        """See the class docstring for the two modes."""
        feats = self.fpn(*self.backbone(x))  # P2..P6, computed once for all branches
        sem_logits = self.sem_seg_head(x, *feats[:4])
        training = autograd.is_training()
        # inference: the second input is the window (1, 1, h, w) to clip to; its size only
        window = gt_boxes if gt_boxes is not None and not training else x
        raw_scores, raw_deltas, rois, roi_scores = self.rpn(window, *feats)
        if not training:
            return self.roi_heads(window, rois, roi_scores, *feats[:4]) + (sem_logits,)
        beta = self.conventions.get('rpn_box_loss_beta', 1. / 9)
        losses = rpn_losses(F, raw_scores, raw_deltas, rpn_cls_targets, rpn_box_targets,
                            rpn_box_masks, beta=beta)
        losses += self.roi_heads(x, rois, roi_scores, *feats[:4], gt_boxes, gt_classes, gt_masks)
        return losses + (semantic_loss(F, sem_logits, sem_seg, IGNORE_LABEL),)

    def predict(self, data, image_size=None):
        """Inference outputs ``(ids, scores, boxes, masks, sem_logits)`` of one padded image.

        ``image_size`` ``(h, w)``: the image inside the padded ``data``, which proposals and
        detections are clipped to (default: all of ``data``).
        """
        with autograd.predict_mode():
            if image_size is None or tuple(image_size) == tuple(data.shape[2:]):
                return self(data)
            return self(data, mx.nd.zeros((1, 1) + tuple(image_size), ctx=data.context))

    def predict_panoptic(self, data, **thresholds):
        """:func:`~gluonpan.model_zoo.panoptic_fpn.predict_panoptic` of this net: the panoptic
        map and segments of one (1, 3, H, W) normalised image of any size."""
        from .inference import predict_panoptic
        return predict_panoptic(self, data, **thresholds)

    def reset_class(self, categories, reuse_weights=None):
        """Re-target the class-dependent predictors to another category set (fine-tuning).

        Parameters
        ----------
        categories : gluonpan.data.PanopticCategories
            The new categories.
        reuse_weights : dict or True, optional
            ``{new_category_id: old_category_id}`` whose predictor rows are copied (both things or
            both stuff), or ``True`` to pair categories by name.  Background and the "things"
            semantic row are always kept.  New rows are freshly initialised.
        """
        ctx = self.sem_seg_head.predictor.weight.list_ctx()
        pairs = self._reuse_pairs(categories, reuse_weights)
        old_cls, old_box, old_mask = self.roi_heads.reset_class(categories.num_things, ctx)
        old_sem = self.sem_seg_head.reset_class(
            categories.num_semantic_classes(self.semantic_mode), ctx)
        things = [(0, 0)] + [(n + 1, o + 1) for n, o in pairs['thing']]
        _copy_rows(self.roi_heads.class_predictor, old_cls, things)
        _copy_rows(self.roi_heads.box_predictor, old_box,
                   [(4 * n + j, 4 * o + j) for n, o in pairs['thing'] for j in range(4)])
        _copy_rows(self.roi_heads.mask_head.predictor, old_mask, pairs['thing'])
        _copy_rows(self.sem_seg_head.predictor, old_sem, pairs['semantic'])
        self.categories = categories
        self._clear_graph()

    def _reuse_pairs(self, new, reuse_weights):
        """Row pairs (new, old) of thing classes and of semantic classes to copy."""
        old = self.categories
        if reuse_weights is True:
            by_name = {c['name']: int(c['id']) for c in old.categories}
            reuse_weights = {int(c['id']): by_name[c['name']] for c in new.categories
                             if c['name'] in by_name}
        pairs = {'thing': [], 'semantic': []}
        new_sem = new.semantic_class_to_category(self.semantic_mode)
        old_sem = old.semantic_class_to_category(self.semantic_mode)
        if self.semantic_mode == 'separated':  # the merged "things" class (id -1 in both)
            pairs['semantic'].append((len(new_sem) - 1, len(old_sem) - 1))
        for new_id, old_id in (reuse_weights or {}).items():
            is_thing = bool(new.check_category(new_id, 'new categories')['isthing'])
            if is_thing != bool(old.check_category(old_id, 'old categories')['isthing']):
                raise ValueError('reuse_weights pairs thing and stuff: {} -> {}'
                                 .format(new_id, old_id))
            if is_thing:
                pairs['thing'].append((new.thing_id_to_contiguous[new_id],
                                       old.thing_id_to_contiguous[old_id]))
            if new_id in new_sem and old_id in old_sem:
                pairs['semantic'].append((new_sem.index(new_id), old_sem.index(old_id)))
        return pairs


def _copy_rows(new_layer, old_layer, pairs):
    """Copy output rows ``old -> new`` of every parameter (weight, bias) of two layers."""
    for new_param, old_param in zip(new_layer.params.values(), old_layer.params.values()):
        new_data, old_data = new_param.data(), old_param.data()
        for new_row, old_row in pairs:
            new_data[new_row] = old_data[old_row]
        new_param.set_data(new_data)


def build_panoptic_fpn(backbone, categories, anchors=None, semantic_mode='separated',
                       per_device_batch_size=1, loss_weights=None, fpn_channels=256,
                       rpn_channels=256, rpn_nms_thresh=0.7, rpn_train_pre_nms=None,
                       rpn_train_post_nms=None, rpn_test_pre_nms=None, rpn_test_post_nms=None,
                       rpn_min_size=None, rcnn_num_sample=512, rcnn_pos_iou_thresh=0.5,
                       rcnn_pos_ratio=0.25, max_num_gt=300, test_score_thresh=None,
                       test_nms_thresh=None, test_max_dets=None, box_fc_channels=1024,
                       mask_channels=256, sem_seg_channels=128, sem_seg_num_groups=32,
                       preset=None, anchor_style=None, rpn_topk_per_level=None,
                       roi_level_style=None, roi_align_aligned=None,
                       roi_align_sampling_ratio=None, test_min_box_size=None, mask_paste=None,
                       rpn_min_size_strict=None, rpn_box_loss_beta=None,
                       rcnn_box_loss_beta=None, clip_to_image=None, rpn_target_style=None):
    """Assemble a :class:`PanopticFPN`; the keyword defaults are the recipe (Mask R-CNN FPN 1x).

    Parameters
    ----------
    backbone : HybridBlock
        With ``out_channels`` (C2..C5 channels), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    categories : gluonpan.data.PanopticCategories
        Sets the thing and semantic class counts.
    anchors : FPNAnchors, optional
        Default ``FPNAnchors()`` (sizes 32..512 on P2..P6, ratios 0.5, 1, 2) in the anchor style
        of the conventions.  Given anchors keep their style unless ``preset`` or
        ``anchor_style`` is given, which re-make them (same strides, sizes, ratios) in that style;
        ``net.anchors`` is what the data workers must use.
    per_device_batch_size : int
        Images per context in training (the RoI sampler is built for it).
    rpn_channels, rpn_nms_thresh : RPN head width (256) and proposal NMS IoU (0.7).
    rcnn_num_sample, rcnn_pos_iou_thresh, rcnn_pos_ratio : RoI sampling per image.
    max_num_gt : int
        Upper bound of instances per training image.
    box_fc_channels, mask_channels : box head FC width (1024) and mask head conv width (256).
    sem_seg_channels, sem_seg_num_groups : semantic tower width and GroupNorm groups.
    semantic_mode, loss_weights : see :class:`PanopticFPN`.
    preset : str, optional
        Conventions preset: ``'detectron2'`` (the default; what a converted detectron2 Panoptic
        FPN needs), ``'torchvision'`` (a converted torchvision Mask R-CNN) or ``'gluoncv'``
        (gluoncv's Mask R-CNN, our default before b63c07b), see
        :mod:`gluonpan.model_zoo.panoptic_fpn.conventions`.
    anchor_style, rpn_topk_per_level, rpn_train_pre_nms, rpn_train_post_nms, rpn_test_pre_nms, rpn_test_post_nms, rpn_min_size, rpn_min_size_strict, roi_level_style, roi_align_aligned, roi_align_sampling_ratio, test_score_thresh, test_nms_thresh, test_max_dets, test_min_box_size, mask_paste, rpn_box_loss_beta, rcnn_box_loss_beta, clip_to_image, rpn_target_style
        Conventions (documented in :mod:`~gluonpan.model_zoo.panoptic_fpn.conventions`); None
        takes the preset's value (``'detectron2'``: anchors centred at 0, per-level top 2000 /
        1000 -> 1000 proposals per image in training / inference, RoI level without +1,
        ROIAlignV2, scores >= 0.05, NMS 0.5, 100 detections, detectron2's mask paste, boxes
        clipped to the image, L1 box losses, border anchors in the RPN targets).  The mask head runs on the
        ``test_max_dets`` best detections only.
    """
    conv = resolve_conventions(
        preset, anchor_style=anchor_style, rpn_topk_per_level=rpn_topk_per_level,
        rpn_train_pre_nms=rpn_train_pre_nms, rpn_train_post_nms=rpn_train_post_nms,
        rpn_test_pre_nms=rpn_test_pre_nms, rpn_test_post_nms=rpn_test_post_nms,
        rpn_min_size=rpn_min_size, rpn_min_size_strict=rpn_min_size_strict,
        roi_level_style=roi_level_style,
        roi_align_aligned=roi_align_aligned, roi_align_sampling_ratio=roi_align_sampling_ratio,
        test_score_thresh=test_score_thresh, test_nms_thresh=test_nms_thresh,
        test_max_dets=test_max_dets, test_min_box_size=test_min_box_size, mask_paste=mask_paste,
        rpn_box_loss_beta=rpn_box_loss_beta, rcnn_box_loss_beta=rcnn_box_loss_beta,
        clip_to_image=clip_to_image, rpn_target_style=rpn_target_style)
    if anchors is None:
        anchors = FPNAnchors(style=conv['anchor_style'])
    elif preset is None and anchor_style is None:
        conv['anchor_style'] = anchors.style  # explicit anchors keep their own style
    elif anchors.style != conv['anchor_style']:
        anchors = anchors.with_style(conv['anchor_style'])
    fpn = FPN(backbone.out_channels, fpn_channels)
    if tuple(anchors.strides) != fpn.strides:
        raise ValueError('anchor strides {} must be the FPN strides {}'
                         .format(anchors.strides, fpn.strides))
    rpn = FPNRPN(anchors, fpn_channels, rpn_channels, rpn_nms_thresh, conv['rpn_train_pre_nms'],
                 conv['rpn_train_post_nms'], conv['rpn_test_pre_nms'], conv['rpn_test_post_nms'],
                 conv['rpn_min_size'], topk_per_level=conv['rpn_topk_per_level'],
                 min_size_strict=conv['rpn_min_size_strict'])
    max_rois = max(per_device_batch_size * rcnn_num_sample, rpn.test_post_nms)
    if fpn_channels * 7 * 7 <= max_rois:  # see gluonpan.nn.pyramid_roi_align
        raise ValueError('{} RoIs per call need more than {} FPN channels'
                         .format(max_rois, max_rois // 49))
    num_things = categories.num_things
    if conv['test_max_dets'] > num_things * rpn.test_post_nms:
        raise ValueError('test_max_dets={} exceeds classes x proposals = {}'
                         .format(conv['test_max_dets'], num_things * rpn.test_post_nms))
    roi_heads = RoIHeads(num_things, fpn.strides[:4], fpn_channels, fc_channels=box_fc_channels,
                         mask_channels=mask_channels,
                         sampling_ratio=conv['roi_align_sampling_ratio'],
                         batch_size=per_device_batch_size, num_proposals=rpn.train_post_nms,
                         num_sample=rcnn_num_sample, pos_iou_thresh=rcnn_pos_iou_thresh,
                         pos_ratio=rcnn_pos_ratio, max_num_gt=max_num_gt,
                         score_thresh=conv['test_score_thresh'],
                         nms_thresh=conv['test_nms_thresh'], max_dets=conv['test_max_dets'],
                         box_clip=math.log(1000. / 16), roi_level_style=conv['roi_level_style'],
                         roi_align_aligned=conv['roi_align_aligned'],
                         min_box_size=conv['test_min_box_size'],
                         box_loss_beta=conv['rcnn_box_loss_beta'])
    sem_seg_head = SemanticFPNHead(categories.num_semantic_classes(semantic_mode), fpn_channels,
                                   sem_seg_channels, sem_seg_num_groups, fpn.strides[:4])
    return PanopticFPN(backbone, fpn, rpn, roi_heads, sem_seg_head, categories, semantic_mode,
                       loss_weights, conventions=conv)
