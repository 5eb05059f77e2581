"""Region Proposal Network over the pyramid levels P2..P6.

The anchors come from :class:`gluonpan.nn.anchors.FPNAnchors` (the object data workers use to
compute RPN targets), generated inside the graph from each level's size, so any input size works and
no pre-allocated anchor map is stored.  Decoding, clipping and the small-box filter reuse gluoncv's
``RPNProposal``.
"""
import math

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import nn
from gluoncv.model_zoo.rcnn.rpn.proposal import RPNProposal

from .anchors import FPNAnchors

__all__ = ['LevelAnchors', 'RPNHead', 'FPNRPN']


class LevelAnchors(nn.HybridBlock):
    """Anchors of one pyramid level, in FPNAnchors order (row, column, ratio).

    Parameters
    ----------
    stride : int
        Stride of the level.
    base : np.ndarray
        (A, 4) anchors centred at the first location, from ``FPNAnchors``.
    """

    def __init__(self, stride, base, **kwargs):
        super(LevelAnchors, self).__init__(**kwargs)
        self._stride = float(stride)
        with self.name_scope():
            self.base = self.params.get_constant('base', base.reshape((1, -1, 4)))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, feat, base):
        """``feat`` (B, C, h, w) -> (1, h * w * A, 4) corner boxes."""
        xs = F.contrib.arange_like(feat, axis=3) * self._stride  # (w,)
        ys = F.contrib.arange_like(feat, axis=2) * self._stride  # (h,)
        xs = xs.reshape((1, -1, 1))  # (1, w, 1)
        ys = ys.reshape((-1, 1, 1))  # (h, 1, 1)
        sx = F.broadcast_like(xs, ys, lhs_axes=(0,), rhs_axes=(0,))  # (h, w, 1)
        sy = F.broadcast_like(ys, xs, lhs_axes=(1,), rhs_axes=(1,))  # (h, w, 1)
        shifts = F.concat(sx, sy, sx, sy, dim=-1).reshape((-1, 1, 4))  # (h * w, 1, 4)
        anchors = F.broadcast_add(shifts, base)  # (h * w, A, 4)
        return anchors.reshape((1, -1, 4))  # (1, h * w * A, 4)


class RPNHead(nn.HybridBlock):
    """Shared RPN head: 3x3 conv + ReLU, then 1x1 objectness and 1x1 box-delta predictors.

    Parameters
    ----------
    num_anchors : int
        Anchors per location (number of aspect ratios).
    in_channels : int
        Channels of the pyramid levels.
    channels : int
        Channels of the 3x3 conv (256 in the FPN paper; gluoncv's Mask R-CNN FPN uses 1024).
    """

    def __init__(self, num_anchors, in_channels=256, channels=256, **kwargs):
        super(RPNHead, self).__init__(**kwargs)
        init = mx.init.Normal(0.01)
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 3, padding=1, in_channels=in_channels,
                                  activation='relu', weight_initializer=init)
            self.score = nn.Conv2D(num_anchors, 1, in_channels=channels, weight_initializer=init)
            self.loc = nn.Conv2D(num_anchors * 4, 1, in_channels=channels,
                                 weight_initializer=init)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        """``x`` (B, C, h, w) -> scores (B, h * w * A, 1), deltas (B, h * w * A, 4) (raw)."""
        x = self.conv(x)
        # (B, A, h, w) -> (B, h, w, A) -> (B, h * w * A, 1)
        score = self.score(x).transpose((0, 2, 3, 1)).reshape((0, -1, 1))
        # (B, 4A, h, w) -> (B, h, w, 4A) -> (B, h * w * A, 4)
        loc = self.loc(x).transpose((0, 2, 3, 1)).reshape((0, -1, 4))
        return score, loc


class FPNRPN(nn.HybridBlock):
    """RPN on P2..P6 producing raw predictions (for the losses) and NMS-ed proposals.

    Two selections of proposals (``topk_per_level``):

    * global (False, gluoncv): proposals of all levels are pooled, those with a side ``+ 1 <
      min_size`` dropped, the ``pre_nms`` best by objectness enter one class-agnostic NMS;
    * per level (True, torchvision / detectron2): the ``pre_nms`` best of each level by objectness
      logit are taken, those with a side ``< min_size`` dropped, an NMS runs within each level
      (boxes of different levels never suppress each other);

    then the first ``post_nms`` survivors by objectness probability are returned (rows of -1
    where fewer survive).

    Parameters
    ----------
    anchors : FPNAnchors
        Anchor configuration; one level per pyramid output.
    in_channels, channels : int
        See :class:`RPNHead`.
    nms_thresh : float
        IoU threshold of the proposal NMS.
    train_pre_nms, train_post_nms, test_pre_nms, test_post_nms : int
        Proposals kept before / after NMS, in training and inference.
    min_size : float
        Proposals narrower or shorter than this (in input pixels, see above) are dropped.
    topk_per_level : bool
        Per-level top-k and NMS instead of the global ones (see above).
    min_size_strict : bool
        Per level only: drop a side ``<= min_size`` instead of ``< min_size`` (detectron2 keeps
        boxes with both sides ``> 0``).
    clip : float
        Upper bound of the predicted log-size deltas.
    """

    def __init__(self, anchors=None, in_channels=256, channels=256, nms_thresh=0.7,
                 train_pre_nms=12000, train_post_nms=2000, test_pre_nms=6000, test_post_nms=1000,
                 min_size=1, clip=math.log(1000. / 16), topk_per_level=False, min_size_strict=False,
                 **kwargs):
        super(FPNRPN, self).__init__(**kwargs)
        self.topk_per_level = bool(topk_per_level)
        self.min_size_strict = bool(min_size_strict)
        self.min_size = float(min_size)
        self.anchors = anchors if anchors is not None else FPNAnchors()
        self.nms_thresh = nms_thresh
        self.train_pre_nms, self.train_post_nms = train_pre_nms, min(train_post_nms, train_pre_nms)
        self.test_pre_nms, self.test_post_nms = test_pre_nms, min(test_post_nms, test_pre_nms)
        with self.name_scope():
            self.anchor_generator = nn.HybridSequential(prefix='anchors_')
            # a 1x1 input has exactly one location per level: its anchors are the base anchors
            bases = self.anchors(1, 1).reshape((len(self.anchors.strides), -1, 4))  # (L, A, 4)
            for stride, base in zip(self.anchors.strides, bases):
                self.anchor_generator.add(LevelAnchors(stride, base))
            self.head = RPNHead(self.anchors.num_per_location, in_channels, channels)
            # per level, RPNProposal only decodes and clips (its min-size filter, side + 1 < 0,
            # never fires): the filter runs after the top-k
            self.proposer = RPNProposal(clip, 0 if self.topk_per_level else min_size,
                                        stds=(1., 1., 1., 1.))

    def post_nms(self, training):
        """Number of proposals per image the RPN returns in training / inference."""
        return self.train_post_nms if training else self.test_post_nms

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, image, *feats):
        """Raw predictions and proposals.

        Parameters
        ----------
        image : NDArray or Symbol
            The network input (B, 3, H, W); proposals are clipped to its size.
        feats : NDArray or Symbol
            P2..P6.

        Returns
        -------
        raw_scores : (B, N, 1) objectness logits over all N anchors (level-major, FPNAnchors order)
        raw_deltas : (B, N, 4) box deltas
        rois : (B, post_nms, 4) proposals (x1, y1, x2, y2), -1 rows if fewer survive NMS
        roi_scores : (B, post_nms, 1) their objectness probability, -1 for padding rows
        """
        if len(feats) != len(self.anchor_generator):
            raise ValueError('FPNRPN has {} anchor levels but got {} feature maps'
                             .format(len(self.anchor_generator), len(feats)))
        training = autograd.is_training()
        pre_nms = self.train_pre_nms if training else self.test_pre_nms
        scores, deltas, proposals = [], [], []
        for level, (feat, anchor_generator) in enumerate(zip(feats, self.anchor_generator)):
            score, delta = self.head(feat)
            if self.topk_per_level:
                with autograd.pause():
                    proposals.append(self._level_top(F, level, self.proposer(
                        anchor_generator(feat), F.stop_gradient(score), F.stop_gradient(delta),
                        image), pre_nms))
            else:
                proposals.append(self.proposer(anchor_generator(feat), F.sigmoid(score),
                                               F.stop_gradient(delta), image))
            scores.append(score)
            deltas.append(delta)
        with autograd.pause():
            if self.topk_per_level:
                # (B, N, 6): level, probability, x1, y1, x2, y2; an NMS within each level
                proposals = F.contrib.box_nms(
                    F.concat(*proposals, dim=1), overlap_thresh=self.nms_thresh, topk=-1,
                    coord_start=2, score_index=1, id_index=0, force_suppress=False)
                proposals = F.slice_axis(proposals, axis=-1, begin=1, end=None)  # (B, N, 5)
            else:
                proposals = F.concat(*proposals, dim=1)  # (B, N, 5): score, x1, y1, x2, y2
                proposals = F.contrib.box_nms(
                    proposals, overlap_thresh=self.nms_thresh, topk=pre_nms,
                    coord_start=1, score_index=0, id_index=-1, force_suppress=True)
            proposals = F.slice_axis(proposals, axis=1, begin=0, end=self.post_nms(training))
            roi_scores = F.stop_gradient(F.slice_axis(proposals, axis=-1, begin=0, end=1))
            rois = F.stop_gradient(F.slice_axis(proposals, axis=-1, begin=1, end=None))
        return F.concat(*scores, dim=1), F.concat(*deltas, dim=1), rois, roi_scores

    def _level_top(self, F, level, proposals, pre_nms):
        """Per-level selection: (B, N_l, 5) logit + box -> (B, N_l, 6) level, probability, box.

        The ``pre_nms`` best by logit (ties of saturated probabilities do not reorder them), then
        those with a side ``< min_size`` (``<=`` if ``min_size_strict``) and the padding rows
        marked -1.
        """
        # pre_nms padding rows (score -3e38, below valid_thresh: invalid) so that every level has
        # at least pre_nms rows to keep
        ones = F.repeat(F.ones_like(F.slice_axis(proposals, axis=1, begin=0, end=1)),
                        repeats=pre_nms, axis=1)  # (B, pre_nms, 5)
        pad = F.concat(F.slice_axis(ones, axis=-1, begin=0, end=1) * -3e38,
                       F.slice_axis(ones, axis=-1, begin=1, end=5) * -1., dim=-1)
        # a sort and top-k without suppression (IoU never exceeds 1): the pre_nms best come
        # first, in order, then -1 rows; only those pre_nms rows are kept (an NMS over all the
        # anchors of the image costs minutes at 1024x2048)
        top = F.contrib.box_nms(F.concat(proposals, pad, dim=1), overlap_thresh=1.,
                                valid_thresh=-1e30, topk=pre_nms, coord_start=1, score_index=0,
                                id_index=-1, force_suppress=True)
        top = F.slice_axis(top, axis=1, begin=0, end=pre_nms)  # (B, pre_nms, 5)
        logit = F.slice_axis(top, axis=-1, begin=0, end=1)  # (B, N_l, 1)
        boxes = F.slice_axis(top, axis=-1, begin=1, end=5)  # (B, N_l, 4)
        x1, y1, x2, y2 = F.split(boxes, axis=-1, num_outputs=4)  # each (B, N_l, 1)
        # clipped boxes have x1 >= 0: x1 < 0 marks the padding rows
        if self.min_size_strict:
            small = ((x2 - x1) <= self.min_size) + ((y2 - y1) <= self.min_size)
        else:
            small = ((x2 - x1) < self.min_size) + ((y2 - y1) < self.min_size)
        invalid = small + (x1 < 0)
        invalid = invalid > 0  # (B, N_l, 1)
        prob = F.where(invalid, -F.ones_like(logit), F.sigmoid(logit))
        boxes = F.where(F.broadcast_like(invalid, boxes), -F.ones_like(boxes), boxes)
        return F.concat(F.ones_like(logit) * level, prob, boxes, dim=-1)  # (B, N_l, 6)

    def level_anchors(self, *feats):
        """Concatenated anchors the RPN uses for these feature maps: (N, 4), FPNAnchors order."""
        return mx.nd.concat(*[g(f) for g, f in zip(self.anchor_generator, feats)], dim=1)[0]
