"""Semantic FPN (Kirillov, Girshick, He and Dollar, CVPR 2019) as one Gluon HybridBlock.

Semantic segmentation only: backbone (C2..C5) -> FPN (P2..P5) -> the semantic FPN head, every
class predicted.  The seed recipe is mmsegmentation's ``configs/sem_fpn`` (``FPNHead`` with
128 channels, batch norm and a 0.1 channel dropout); the head is the one Panoptic FPN uses
(:class:`gluonpan.nn.SemanticFPNHead`) with those options.  Recipe defaults live in
:func:`build_semantic_fpn`, the single place the zoo builders take them from.
"""
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

from ...data.categories import IGNORE_LABEL
from ...errors import UsageError
from ...nn.fpn import FPN
from ...nn.losses import semantic_loss
from ...nn.semantic_head import SemanticFPNHead

__all__ = ['LOSS_NAMES', 'TRAIN_INPUTS', 'NORMS', 'SemanticFPN', 'build_semantic_fpn',
           'check_images']

#: names of the losses ``train_losses`` returns
LOSS_NAMES = ('loss_sem_seg',)
#: keys of a per-context training batch, in the order the training graph takes them
TRAIN_INPUTS = ('data', 'sem_seg')
#: head norms: mmsegmentation's batch norm, or Panoptic FPN's GroupNorm (32 groups)
NORMS = ('bn', 'gn')


def check_images(data, what='SemanticFPN'):
    """Raise ``ValueError`` naming the shape unless ``data`` is a non-empty (B, 3, H, W) batch."""
    shape = tuple(data.shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
        raise ValueError('{} takes images (B, 3, H, W) with B, H, W >= 1, got shape {}'
                         .format(what, shape))


class SemanticFPN(nn.HybridBlock):
    """Semantic FPN: per-pixel class logits from the pyramid of a ResNet.

    Modes (the number of inputs selects the branch)

    * **training**: ``net(data, sem_seg)`` with ``data`` (B, 3, H, W) and ``sem_seg`` (B, H, W)
      class ids (``ignore_label`` for void and padding) returns ``loss_sem_seg`` (1,), the
      softmax cross-entropy averaged over the batch's pixels (``loss_average``).  Prefer
      :meth:`train_losses`, which takes the batch dict, runs in training mode (dropout, batch
      statistics of a trainable norm) and returns an ``OrderedDict``.
    * **inference**: ``net(data)`` returns the logits (B, K, H, W) at the input size; prefer
      :meth:`predict` (inference mode) or
      :func:`~gluonpan.model_zoo.semantic_fpn.predict_semantic` (probabilities, sliding window,
      multi-scale and flip).

    Any input size works, without padding: every pyramid level has ``ceil(H / s)`` rows (as in
    mmsegmentation) and each 2x / 4x bilinear upsampling (``align_corners=False``) is cropped to
    the finer map.  On sizes that are multiples of 32 this is exactly mmsegmentation's
    arithmetic; on other sizes mmsegmentation resizes to the odd size instead of cropping, which
    moves the sampling grid by at most a quarter of the coarser pixel.

    The net hybridizes; switching a hybridized net between the two modes rebuilds its graph
    automatically (:meth:`forward`).  ``get_model`` returns every parameter initialised by its
    layer's own initializer; do not call ``initialize(Xavier())`` on top.

    Parameters
    ----------
    backbone : HybridBlock
        Input (B, 3, H, W) -> (C2, C3, C4, C5), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    fpn : gluonpan.nn.FPN
        (C2..C5) -> (P2..P6); P6 is not used (the hybridized graph drops it).
    sem_seg_head : gluonpan.nn.SemanticFPNHead
        P2..P5 -> (B, K, H, W) logits.
    ignore_label : int
        Label excluded from the loss (255).
    loss_average : str
        How the loss is averaged (:func:`gluonpan.nn.losses.semantic_loss`): ``'all'`` pixels
        (mmsegmentation's default, the seed's) or the ``'labelled'`` ones (Panoptic FPN's).
    """

    #: what the shared programs and :func:`gluonpan.predict` produce for this model
    task = 'semantic'

    def __init__(self, backbone, fpn, sem_seg_head, ignore_label=IGNORE_LABEL, loss_average='all',
                 **kwargs):
        super(SemanticFPN, self).__init__(**kwargs)
        if loss_average not in ('all', 'labelled'):
            raise UsageError("loss_average={!r}: use 'all' or 'labelled'".format(loss_average))
        self.ignore_label = ignore_label
        self.loss_average = loss_average
        self._graph_mode = None
        self.backbone = backbone
        self.fpn = fpn
        self.sem_seg_head = sem_seg_head

    @property
    def num_classes(self):
        """Number of predicted classes K."""
        return self.sem_seg_head.num_classes

    def forward(self, x, *args):
        """Check NDArray inputs, and rebuild a hybridized graph when the mode changes."""
        if isinstance(x, mx.nd.NDArray):
            self._check_inputs(x, args)
        mode = len(args)
        if mode != self._graph_mode:
            self._clear_cached_op()
            self._graph_mode = mode
        return super(SemanticFPN, self).forward(x, *args)

    def _check_inputs(self, x, args):
        check_images(x)
        if len(args) > 1:
            raise ValueError('SemanticFPN takes (data) or (data, sem_seg), got {} inputs'
                             .format(len(args) + 1))
        if args and tuple(args[0].shape) != (x.shape[0],) + tuple(x.shape[2:]):
            raise ValueError('sem_seg of shape {} does not fit data of shape {}; expected {}'
                             .format(args[0].shape, x.shape, (x.shape[0],) + x.shape[2:]))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, sem_seg=None):
        """See the class docstring for the two modes."""
        feats = self.fpn(*self.backbone(x))  # P2..P6
        logits = self.sem_seg_head(x, *feats[:4])  # (B, K, H, W) from P2..P5
        if sem_seg is None:
            return logits
        return semantic_loss(F, logits, sem_seg, self.ignore_label, self.loss_average)

    def train_losses(self, batch):
        """Losses of one per-context training batch.

        Parameters
        ----------
        batch : dict
            NDArrays on one context: ``data`` (B, 3, H, W) float32 and ``sem_seg`` (B, H, W)
            class ids of any dtype (uint8 and int32 are cast to float32, as the graph takes
            them); other keys are ignored.

        Returns
        -------
        collections.OrderedDict
            ``{'loss_sem_seg': (1,) NDArray}``.  Call inside ``autograd.record()`` to
            back-propagate; the training branch (dropout on) is taken either way.
        """
        missing = [k for k in TRAIN_INPUTS if k not in batch]
        if missing:
            raise KeyError('training batch lacks {}; it has {}'.format(missing, sorted(batch)))
        labels = batch['sem_seg']
        if labels.dtype != np.float32:
            labels = labels.astype(np.float32)
        with autograd.train_mode():
            loss = self(batch['data'], labels)
        return OrderedDict(zip(LOSS_NAMES, (loss,)))

    def predict(self, data):
        """Logits (B, K, H, W) of ``data`` (B, 3, H, W) on the net's context, inference mode."""
        with autograd.predict_mode():
            return self(data)


def build_semantic_fpn(backbone, num_classes, fpn_channels=256, head_channels=128, dropout=0.1,
                       norm='bn', norm_layer=None, norm_kwargs=None, loss_average='all'):
    """Assemble a :class:`SemanticFPN`; the keyword defaults are mmsegmentation's ``fpn_r50``.

    Parameters
    ----------
    backbone : HybridBlock
        With ``out_channels`` (C2..C5 channels), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    num_classes : int
        Classes predicted (Cityscapes 19 train ids, ADE20K 150).
    fpn_channels : int
        Channels of the pyramid levels (256).
    head_channels : int
        Channels of the head's towers (128).
    dropout : float
        Channel dropout before the classifier (0.1, PyTorch's ``Dropout2d``).
    norm : str
        Norm of the head's towers: ``'bn'`` (the reference's batch norm: ``norm_layer`` if given,
        else ``mxnet.gluon.nn.BatchNorm``, trainable statistics) or ``'gn'`` (Panoptic FPN's
        per-channel-affine GroupNorm, 32 groups; ``head_channels`` a multiple of 32).
    norm_layer, norm_kwargs : type, dict, optional
        The norm layer (e.g. ``SyncBatchNorm``) and its arguments, for the head when
        ``norm='bn'``; the zoo builders give the same to the backbone.
    loss_average : str
        ``'all'`` (mmsegmentation's loss: averaged over every pixel, ignored ones included) or
        ``'labelled'`` (averaged over the labelled pixels, as Panoptic FPN's semantic loss).
    """
    if norm not in NORMS:
        raise UsageError('norm={!r}: use one of {}'.format(norm, NORMS))
    fpn = FPN(backbone.out_channels, fpn_channels)
    batch_norm = norm == 'bn'
    head = SemanticFPNHead(num_classes, fpn_channels, head_channels, strides=fpn.strides[:4],
                           norm_layer=(norm_layer or nn.BatchNorm) if batch_norm else None,
                           norm_kwargs=norm_kwargs if batch_norm else None, dropout=dropout)
    return SemanticFPN(backbone, fpn, head, loss_average=loss_average)
