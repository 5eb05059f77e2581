"""Panoptic SegFormer's location decoder: Deformable DETR's decoder with iterative box refinement
and a class / box branch per layer (``PanformerHead`` with ``with_box_refine=True``), and its
training losses (focal, L1, GIoU per layer).

Queries: ``query_embedding`` (Q, 2C) = [positional query | content query]; initial reference
points ``sigmoid(reference_points(positional query))`` (x, y).  After layer ``l`` the box branch
refines the reference: ``box_l = sigmoid(reg_l(q_l) + inverse_sigmoid(ref))`` (layer 0 adds the
2-d reference to (cx, cy) only), and the next layer's reference is ``box_l`` without gradient.
"""
import math
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from ...nn.set_losses import box_l1_loss, focal_classification_loss, giou_loss
from ...nn.transformer import XAVIER, DeformableDecoderLayer, linear_bias_init

__all__ = ['PRIOR_BIAS', 'inverse_sigmoid', 'class_branch', 'box_branch', 'refine_boxes',
           'expand_to_batch', 'LocationDecoder']

#: the class branches' initial bias: sigmoid(bias) = 0.01 (mmcv ``bias_init_with_prob(0.01)``)
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def inverse_sigmoid(F, x, eps=1e-5):
    """mmdet's ``inverse_sigmoid``: ``log(max(x, eps) / max(1 - x, eps))`` of ``x`` clipped to
    [0, 1]."""
    x = F.clip(x, 0, 1)
    return F.log(F.maximum(x, eps) / F.maximum(1 - x, eps))


def _linear(units, in_units, prefix, activation=None, weight_init=None, bias_init=None):
    """``torch.nn.Linear`` with its default initialisation (uniform +-1/sqrt(in_units)) unless
    given."""
    default = linear_bias_init(in_units)
    return nn.Dense(units, activation=activation, flatten=False, in_units=in_units,
                    weight_initializer=weight_init or default,
                    bias_initializer=bias_init or default, prefix=prefix)


def class_branch(num_classes, embed_dims, prefix):
    """``Linear(C, num_classes)`` of sigmoid class logits, bias at the 0.01 prior."""
    return _linear(num_classes, embed_dims, prefix, bias_init=mx.init.Constant(PRIOR_BIAS))


def box_branch(embed_dims, prefix, last_bias=0.):
    """``Linear-ReLU-Linear-ReLU-Linear(C, 4)``; the last layer starts at weight 0 and bias
    ``last_bias`` (a number or the 4 values)."""
    branch = nn.HybridSequential(prefix=prefix)
    with branch.name_scope():
        branch.add(_linear(embed_dims, embed_dims, '0_', 'relu'))
        branch.add(_linear(embed_dims, embed_dims, '2_', 'relu'))
        branch.add(_linear(4, embed_dims, '4_', weight_init='zeros',
                           bias_init=mx.init.Constant(last_bias)))
    return branch


def refine_boxes(F, delta, reference, first):
    """``sigmoid(delta + inverse_sigmoid(reference))`` (B, Q, 4); ``first``: the reference is
    the initial 2-d point (B, Q, 2), added to (cx, cy) only."""
    if not first:
        return F.sigmoid(delta + inverse_sigmoid(F, reference))
    centre = F.slice_axis(delta, axis=-1, begin=0, end=2) + inverse_sigmoid(F, reference)
    return F.sigmoid(F.concat(centre, F.slice_axis(delta, axis=-1, begin=2, end=4), dim=-1))


def expand_to_batch(F, rows, like):
    """Learned rows (N, C) -> (B, N, C) with the batch size of ``like`` (B, ...)."""
    return F.broadcast_like(rows.expand_dims(0), like, lhs_axes=(0,), rhs_axes=(0,))


class LocationDecoder(nn.HybridBlock):
    """Object queries, the deformable decoder layers and the per-layer class / box branches.

    Parameters
    ----------
    num_classes : int
        Thing classes T (sigmoid classifier, no background logit).
    num_queries, num_layers : int
        Q (300) and decoder layers (6).
    embed_dims, num_heads, num_levels, num_points, feedforward_channels, dropout, method
        See :class:`~gluonpan.nn.transformer.DeformableDecoderLayer`.

    Notes
    -----
    Initialisation as the reference: ``query_embedding`` N(0, 1), ``reference_points``
    Xavier-uniform with bias 0, class branches at the 0.01 prior, box branches' last layers 0
    (the first one's bias ``(0, 0, -2, -2)``).  Every layer has its own branches (not shared).
    """

    def __init__(self, num_classes, num_queries=300, num_layers=6, embed_dims=256, num_heads=8,
                 num_levels=4, num_points=4, feedforward_channels=1024, dropout=0.1,
                 method='gather', **kwargs):
        super(LocationDecoder, self).__init__(**kwargs)
        self.num_classes, self.num_queries = num_classes, num_queries
        self.embed_dims, self.num_levels = embed_dims, num_levels
        with self.name_scope():
            self.query_embedding = self.params.get('query_embedding', init=mx.init.Normal(1.),
                                                   shape=(num_queries, 2 * embed_dims))
            self.reference_points = nn.Dense(2, flatten=False, in_units=embed_dims,
                                             weight_initializer=XAVIER,
                                             bias_initializer='zeros',
                                             prefix='reference_points_')
            self.layers = nn.HybridSequential(prefix='layers_')
            self.cls_branches = nn.HybridSequential(prefix='cls_branches_')
            self.reg_branches = nn.HybridSequential(prefix='reg_branches_')
            for i in range(num_layers):
                with self.layers.name_scope():
                    self.layers.add(DeformableDecoderLayer(
                        embed_dims, num_heads, num_levels, num_points, feedforward_channels,
                        dropout, method, prefix='{}_'.format(i)))
                with self.cls_branches.name_scope():
                    self.cls_branches.add(class_branch(num_classes, embed_dims,
                                                       '{}_'.format(i)))
                with self.reg_branches.name_scope():
                    bias = np.array([0., 0., -2., -2.]) if i == 0 else 0.  # (w, h) start small
                    self.reg_branches.add(box_branch(embed_dims, '{}_'.format(i), bias))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, memory, masks, query_embedding):
        """``memory``, ``masks``: the encoder's per-level tokens and masks ->
        ``(query, classes, boxes)``: the last layer's output (B, Q, C) and per layer the class
        logits (B, Q, T) and boxes (B, Q, 4) (normalised cx, cy, w, h)."""
        c = self.embed_dims
        pos = expand_to_batch(F, F.slice_axis(query_embedding, axis=1, begin=0, end=c),
                              memory[0])  # (B, Q, C)
        query = expand_to_batch(F, F.slice_axis(query_embedding, axis=1, begin=c, end=2 * c),
                                memory[0])  # (B, Q, C)
        reference = F.sigmoid(self.reference_points(pos))  # (B, Q, 2)
        classes, boxes = [], []
        for i, (layer, cls, reg) in enumerate(zip(self.layers, self.cls_branches,
                                                  self.reg_branches)):
            per_level = F.repeat(reference.expand_dims(2), repeats=self.num_levels,
                                 axis=2)  # (B, Q, L, 2 or 4): valid ratios are all 1
            query = layer(query, pos, list(memory), list(masks), per_level)
            box = refine_boxes(F, reg(query), reference, first=i == 0)  # (B, Q, 4)
            classes.append(cls(query))
            boxes.append(box)
            reference = F.BlockGrad(box)
        return query, classes, boxes

    def losses(self, classes, boxes, matches, targets, norm):
        """The reference's location losses of every layer, imperatively.

        Parameters
        ----------
        classes, boxes : list of NDArray
            Per layer (B, Q, T) logits and (B, Q, 4) boxes (the training outputs).
        matches : list of dict
            Per layer, :func:`~gluonpan.model_zoo.panoptic_segformer.matching.match_layers`'s
            encodings (NDArrays on the outputs' context).
        targets : BatchTargets
            ``boxes_cxcywh`` (B, G, 4) and ``image_wh`` (B, 1, 4) NDArrays.
        norm : LossNormalizers
            ``things`` (the average factor) and ``things_ratio``.

        Returns
        -------
        OrderedDict
            ``loss_cls``, ``loss_bbox``, ``loss_iou`` of the last layer and ``loss_cls_d{i}``
            ... of the others (the reference's ``d{i}.loss_cls``), unweighted, times the things
            ratio; each (1,).
        """
        out = OrderedDict()
        last = len(classes) - 1
        for i, (logits, pred, match) in enumerate(zip(classes, boxes, matches)):
            suffix = '' if i == last else '_d{}'.format(i)
            out['loss_cls' + suffix] = focal_classification_loss(
                mx.nd, logits, match['cls_targets'], norm.things, weight=1.)
            out['loss_bbox' + suffix] = box_l1_loss(
                mx.nd, pred, targets.boxes_cxcywh, match['gather_index'], match['match_valid'],
                norm.things, weight=1.)
            out['loss_iou' + suffix] = giou_loss(
                mx.nd, pred, targets.boxes_cxcywh, match['gather_index'], match['match_valid'],
                targets.image_wh, norm.things, weight=1.)
        return OrderedDict((k, v * norm.things_ratio) for k, v in out.items())  # (1,) each
