"""Mask R-CNN FPN RoI heads: 2-FC box head and 4-conv mask head on RoIAligned P2..P5 features.

Training: gluoncv's ``RCNNTargetSampler`` draws ``num_sample`` RoIs from the proposals plus the
ground-truth boxes, ``RCNNTargetGenerator`` gives class and per-class box targets and the indices of
(at most ``pos_ratio * num_sample``) positives, and ``MaskTargetGenerator`` RoIAligns the matched
ground-truth masks.  Only the positive RoIs are pooled again (14x14) for the mask head.
Inference: per-class box decoding, a class-aware NMS, then the mask head on the ``max_dets`` best
detections only (gluoncv's default runs it on 1000 RoIs).
"""
import math

import mxnet as mx
from mxnet.gluon import nn
from mxnet import autograd
from gluoncv.model_zoo.rcnn.faster_rcnn.rcnn_target import RCNNTargetSampler, RCNNTargetGenerator
from gluoncv.model_zoo.rcnn.mask_rcnn.rcnn_target import MaskTargetGenerator
from gluoncv.nn.bbox import BBoxClipToImage
from gluoncv.nn.coder import NormalizedBoxCenterDecoder

from .losses import mask_loss, rcnn_losses
from .mask_head import MaskHead

__all__ = ['ROI_LEVEL_STYLES', 'roi_levels', 'pyramid_roi_align', 'RoIHeads']

BOX_STDS = (.1, .1, .2, .2)


#: RoI level formulas: (added to box sides, eps inside the log2, eps added after the log2)
ROI_LEVEL_STYLES = {'detectron1': (1., 1e-6, 0.), 'torchvision': (0., 0., 1e-6),
                    'detectron2': (0., 1e-8, 0.)}


def roi_levels(F, rois, min_level, max_level, style='detectron1', canonical_size=224.,
               canonical_level=4):
    """The FPN level of each RoI (FPN paper, Eq. 1), clipped to ``[min_level, max_level]``.

    ``floor(canonical_level + log2(s / canonical_size + a) + b)`` with ``s = sqrt((w + o) *
    (h + o))``; ``(o, a, b)`` by ``style``: ``'detectron1'`` (1, 1e-6, 0), ``'torchvision'``
    (0, 0, 1e-6), ``'detectron2'`` (0, 1e-8, 0).

    Parameters
    ----------
    rois : NDArray or Symbol
        (R, 5) ``[batch_index, x1, y1, x2, y2]``.

    Returns
    -------
    (R, 1) float levels.
    """
    if style not in ROI_LEVEL_STYLES:
        raise ValueError('unknown RoI level style {!r}; valid: {}'.format(
            style, sorted(ROI_LEVEL_STYLES)))
    offset, eps_in, eps_out = ROI_LEVEL_STYLES[style]
    _, x1, y1, x2, y2 = F.split(rois, axis=-1, num_outputs=5)
    size = F.sqrt((x2 - x1 + offset) * (y2 - y1 + offset))  # (R, 1)
    level = F.floor(canonical_level + F.log2(size / canonical_size + eps_in) + eps_out)
    return F.clip(level, min_level, max_level)  # (R, 1)


def pyramid_roi_align(F, feats, rois, output_size, strides, sampling_ratio=2,
                      canonical_size=224., canonical_level=4, level_style='detectron1',
                      aligned=False):
    """RoIAlign each RoI on the pyramid level its size selects (:func:`roi_levels`).

    Every level
    pools all RoIs, with the RoIs of other levels given batch index -1 so ROIAlign skips them, and
    the levels are summed.  MXNet 1.9's CPU ROIAlign mishandles skipped RoIs: it leaves their rows
    unwritten (garbage in a hybridized graph's reused memory) and instead zeroes *element* n of the
    output for each skipped RoI n, i.e. values of the first RoI.  So a dummy skipped RoI is put
    first and dropped afterwards (this needs C * h * w > R, true for 256 channels), and skipped
    rows are replaced by zeros.

    Parameters
    ----------
    feats : list of NDArray or Symbol
        Pyramid levels, finest first (P2..P5).
    rois : NDArray or Symbol
        (R, 5) ``[batch_index, x1, y1, x2, y2]`` in input pixels.
    output_size : tuple of int
        Pooled (height, width).
    strides : tuple of int
        Stride of each level in ``feats``.
    sampling_ratio : int
        ROIAlign samples per bin side (<= 0: adaptive, ``ceil(bin size)``).
    level_style : str
        RoI level formula, see :func:`roi_levels`.
    aligned : bool
        Half-pixel shift of the RoI coordinates (detectron2's ROIAlignV2; a RoI without area
        pools zeros); False is torchvision's and gluoncv's RoIAlign (RoI sides at least 1
        feature pixel).

    Returns
    -------
    (R, C, output_size[0], output_size[1]) pooled features.
    """
    min_level = int(round(math.log2(strides[0])))
    level = roi_levels(F, rois, min_level, min_level + len(feats) - 1, level_style,
                       canonical_size, canonical_level)  # (R, 1)
    pooled = []
    dummy = -F.ones_like(F.slice_axis(rois, axis=0, begin=0, end=1))  # (1, 5)
    if aligned:
        # MXNet's aligned ROIAlign aborts on a RoI without area (torchvision's and detectron2's
        # pool zeros): such RoIs (padding rows, boxes clipped to a line) go to no level
        _, x1, y1, x2, y2 = F.split(rois, axis=-1, num_outputs=5)  # each (R, 1)
        level = F.where((x2 > x1) * (y2 > y1), level, F.zeros_like(level))  # (R, 1)
    for k, (feat, stride) in enumerate(zip(feats, strides)):
        on_level = level == min_level + k  # (R, 1)
        level_rois = F.where(F.broadcast_like(on_level, rois), rois, -F.ones_like(rois))
        out = F.contrib.ROIAlign(feat, F.concat(dummy, level_rois, dim=0), output_size,
                                 1. / stride, sample_ratio=sampling_ratio,
                                 aligned=aligned)  # (1 + R, C, h, w)
        out = F.slice_axis(out, axis=0, begin=1, end=None)  # (R, C, h, w)
        pooled.append(F.where(on_level.reshape((-1,)), out, F.zeros_like(out)))  # rows (R,)
    return F.ElementWiseSum(*pooled)


def _with_batch_index(F, rois):
    """(B, R, 4) boxes -> (B * R, 5) ``[batch_index, x1, y1, x2, y2]``."""
    index = F.contrib.arange_like(rois, axis=0).reshape((-1, 1, 1))  # (B, 1, 1)
    index = F.broadcast_like(index, F.slice_axis(rois, axis=-1, begin=0, end=1),
                             lhs_axes=(1,), rhs_axes=(1,))  # (B, R, 1)
    return F.concat(index, rois, dim=-1).reshape((-1, 5))  # (B * R, 5)


class RoIHeads(nn.HybridBlock):
    """Box and mask heads with their target generation, losses and inference post-processing.

    Parameters
    ----------
    num_classes : int
        Thing classes C.
    strides : tuple of int
        Strides of the pooled levels (P2..P5).
    in_channels : int
        Channels of the pyramid levels.
    fc_channels : int
        Units of the two hidden FC layers of the box head.
    mask_channels, num_mask_convs : int
        Mask head width and depth.
    box_roi_size, mask_roi_size : int
        RoIAlign output sizes for the box head (7) and the mask head (14 -> 28x28 masks).
    sampling_ratio : int
        ROIAlign samples per bin side (<= 0: adaptive).
    roi_level_style : str
        RoI level formula, see :func:`roi_levels`.
    roi_align_aligned : bool
        Half-pixel-shifted RoIAlign (detectron2) or not (torchvision, gluoncv).
    batch_size : int
        Images per context in training.
    num_proposals : int
        Proposals per image the RPN gives in training.
    num_sample, pos_iou_thresh, pos_ratio : int, float, float
        RoI sampling: RoIs per image, IoU for a positive, maximal positive fraction.
    max_num_gt : int
        Upper bound of ground-truth instances per image.
    score_thresh, nms_thresh, max_dets : float, float, int
        Inference: minimal class score, class-aware NMS IoU, detections kept per image.
    min_box_size : float
        Inference: detections with a side ``< min_box_size`` pixels are dropped before the NMS
        (0: none).
    box_clip : float
        Upper bound of the predicted log-size deltas.
    box_loss_beta : float
        Training: smooth-L1 transition point of the box loss (0: L1).
    """

    def __init__(self, num_classes, strides=(4, 8, 16, 32), in_channels=256, fc_channels=1024,
                 mask_channels=256, num_mask_convs=4, box_roi_size=7, mask_roi_size=14,
                 sampling_ratio=2, batch_size=1, num_proposals=2000, num_sample=512,
                 pos_iou_thresh=0.5, pos_ratio=0.25, max_num_gt=300, score_thresh=0.05,
                 nms_thresh=0.5, max_dets=100, box_clip=math.log(1000. / 16),
                 roi_level_style='detectron1', roi_align_aligned=False, min_box_size=0.,
                 box_loss_beta=1., **kwargs):
        super(RoIHeads, self).__init__(**kwargs)
        if roi_level_style not in ROI_LEVEL_STYLES:
            raise ValueError('unknown roi_level_style {!r}; valid: {}'.format(
                roi_level_style, sorted(ROI_LEVEL_STYLES)))
        self._level_style = roi_level_style
        self._aligned = bool(roi_align_aligned)
        self._min_box_size = float(min_box_size)
        self._box_loss_beta = float(box_loss_beta)
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.batch_size = batch_size
        self.max_num_gt = max_num_gt
        self.max_dets = max_dets
        self._box_roi_size = (box_roi_size, box_roi_size)
        self._mask_roi_size = (mask_roi_size, mask_roi_size)
        self._sampling_ratio = sampling_ratio
        self._num_sample = num_sample
        self._score_thresh = score_thresh
        self._nms_thresh = nms_thresh
        init = mx.init.Normal(0.01)
        with self.name_scope():
            self.box_head = nn.HybridSequential(prefix='box_head_')
            self.box_head.add(
                nn.Dense(fc_channels, activation='relu', weight_initializer=init,
                         in_units=in_channels * box_roi_size ** 2),
                nn.Dense(fc_channels, activation='relu', weight_initializer=init,
                         in_units=fc_channels))
            self.mask_head = MaskHead(num_classes, in_channels, mask_channels, num_mask_convs)
            self.sampler = RCNNTargetSampler(batch_size, num_proposals, num_sample,
                                             pos_iou_thresh, pos_ratio, max_num_gt)
            self.box_decoder = NormalizedBoxCenterDecoder(BOX_STDS, convert_anchor=True,
                                                          clip=box_clip)
            self.box_clipper = BBoxClipToImage()
        self._max_pos = int(round(num_sample * pos_ratio))  # as RCNNTargetSampler rounds it
        self._make_class_layers(num_classes, fc_channels)

    def _make_class_layers(self, num_classes, fc_channels):
        """(Re)create every layer whose shape depends on the number of classes."""
        with self.name_scope():
            self.class_predictor = nn.Dense(num_classes + 1, in_units=fc_channels,
                                            weight_initializer=mx.init.Normal(0.01),
                                            prefix='class_predictor_')
            self.box_predictor = nn.Dense(num_classes * 4, in_units=fc_channels,
                                          weight_initializer=mx.init.Normal(0.001),
                                          prefix='box_predictor_')
            self.box_targets = RCNNTargetGenerator(num_classes, self._max_pos, self.batch_size,
                                                   stds=BOX_STDS)
            self.mask_targets = MaskTargetGenerator(self.batch_size, self._num_sample,
                                                    num_classes, self._mask_size)
        self.num_classes = num_classes

    @property
    def _mask_size(self):
        return tuple(2 * s for s in self._mask_roi_size)

    def _pool(self, F, feats, rois, size):
        """(B, R, 4) boxes -> (B * R, C, size, size) features."""
        return pyramid_roi_align(F, feats, _with_batch_index(F, rois), size, self.strides,
                                 self._sampling_ratio, level_style=self._level_style,
                                 aligned=self._aligned)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, image, rois, roi_scores, p2, p3, p4, p5, gt_boxes=None,
                       gt_classes=None, gt_masks=None):
        """Losses in training, detections in inference.

        Parameters
        ----------
        image : (B, 3, H, W) network input (detections are clipped to its size).
        rois, roi_scores : (B, N, 4), (B, N, 1) RPN proposals.
        p2, p3, p4, p5 : pyramid levels.
        gt_boxes, gt_classes, gt_masks : (B, M, 4), (B, M, 1), (B, M, H, W); training only.

        Returns
        -------
        Training: ``(loss_rcnn_cls, loss_rcnn_box, loss_mask)``, each (1,).
        Inference (B = 1): ``ids`` (1, D, 1) thing class or -1, ``scores`` (1, D, 1), ``boxes``
        (1, D, 4), ``masks`` (1, D, 2S, 2S) probabilities, D = ``max_dets``, best first.
        """
        feats = (p2, p3, p4, p5)
        if autograd.is_training():
            return self._losses(F, feats, rois, roi_scores, gt_boxes, gt_classes, gt_masks)
        return self._detect(F, image, feats, rois)

    def _losses(self, F, feats, rois, roi_scores, gt_boxes, gt_classes, gt_masks):
        B, S, P, C = self.batch_size, self._num_sample, self._max_pos, self.num_classes
        rois, samples, matches = self.sampler(rois, roi_scores, gt_boxes)  # (B, S, *)
        box_feat = self.box_head(self._pool(F, feats, rois, self._box_roi_size))  # (B * S, fc)
        cls_pred = self.class_predictor(box_feat).reshape((B, S, C + 1))  # (B, S, C + 1)
        cls_targets, box_targets, box_masks, pos = self.box_targets(
            rois, samples, matches, gt_classes, gt_boxes)  # pos: (B, P) positives first
        pos = F.broadcast_add(pos, F.contrib.arange_like(pos, axis=0).reshape((-1, 1)) * S)
        pos = pos.reshape((-1,))  # (B * P,) rows of the flattened (B * S) RoIs
        box_pred = self.box_predictor(F.take(box_feat, pos)).reshape((B, P, C, 4))
        pos_rois = F.take(rois.reshape((-1, 4)), pos).reshape((B, P, 4))  # (B, P, 4)
        pos_matches = F.take(matches.reshape((-1,)), pos).reshape((B, P))  # (B, P)
        pos_classes = F.take(cls_targets.reshape((-1,)), pos).reshape((B, P))  # (B, P)
        mask_pred = self.mask_head(self._pool(F, feats, pos_rois, self._mask_roi_size))
        mask_pred = mask_pred.reshape((B, P, C) + self._mask_size)  # (B, P, C, 2S, 2S)
        mask_targets, mask_weights = self.mask_targets(
            pos_rois, F.cast(gt_masks, 'float32'), pos_matches, pos_classes)
        return rcnn_losses(F, cls_pred, box_pred, cls_targets, box_targets, box_masks,
                           beta=self._box_loss_beta) + \
            (mask_loss(F, mask_pred, mask_targets, mask_weights),)

    def _detect(self, F, image, feats, rois):
        C = self.num_classes
        box_feat = self.box_head(self._pool(F, feats, rois, self._box_roi_size))  # (N, fc)
        scores = F.softmax(self.class_predictor(box_feat), axis=-1)  # (N, C + 1)
        valid = F.slice_axis(rois, axis=-1, begin=0, end=1).reshape((-1, 1)) >= 0  # (N, 1)
        scores = F.broadcast_mul(F.slice_axis(scores, axis=-1, begin=1, end=None), valid)
        scores = scores.transpose().expand_dims(-1)  # (C, N, 1)
        deltas = self.box_predictor(box_feat).reshape((0, C, 4)).transpose((1, 0, 2))  # (C, N, 4)
        boxes = self.box_clipper(self.box_decoder(deltas, rois), image)  # (C, N, 4)
        if self._min_box_size > 0:
            x1, y1, x2, y2 = F.split(boxes, axis=-1, num_outputs=4)  # each (C, N, 1)
            small = ((x2 - x1) < self._min_box_size) + ((y2 - y1) < self._min_box_size)
            scores = F.where(small > 0, -F.ones_like(scores), scores)  # (C, N, 1)
        ids = F.contrib.arange_like(scores, axis=0).reshape((-1, 1, 1))  # (C, 1, 1)
        ids = F.broadcast_like(ids, scores, lhs_axes=(1,), rhs_axes=(1,))  # (C, N, 1)
        dets = F.concat(ids, scores, boxes, dim=-1).reshape((1, -1, 6))  # (1, C * N, 6)
        dets = F.contrib.box_nms(dets, overlap_thresh=self._nms_thresh,
                                 valid_thresh=self._score_thresh, topk=-1, coord_start=2,
                                 score_index=1, id_index=0, force_suppress=False)
        dets = F.slice_axis(dets, axis=1, begin=0, end=self.max_dets)  # (1, D, 6), best first
        ids = F.slice_axis(dets, axis=-1, begin=0, end=1)  # (1, D, 1)
        scores = F.slice_axis(dets, axis=-1, begin=1, end=2)  # (1, D, 1)
        boxes = F.slice_axis(dets, axis=-1, begin=2, end=6)  # (1, D, 4)
        logits = self.mask_head(self._pool(F, feats, boxes, self._mask_roi_size))  # (D, C, 2S, 2S)
        cls = F.clip(ids.reshape((-1,)), 0, C - 1)  # (D,)
        masks = F.gather_nd(logits, F.stack(F.contrib.arange_like(cls), cls, axis=0))  # (D, 2S, 2S)
        return ids, scores, boxes, F.sigmoid(masks).expand_dims(0)

    def reset_class(self, num_classes, ctx):
        """Replace the class-dependent layers; returns the old (class, box, mask) predictors."""
        self._clear_cached_op()
        old = (self.class_predictor, self.box_predictor)
        self._make_class_layers(num_classes, old[0].weight.shape[1])
        for layer in (self.class_predictor, self.box_predictor, self.box_targets):
            layer.initialize(ctx=ctx)
        return old + (self.mask_head.reset_class(num_classes, ctx),)
