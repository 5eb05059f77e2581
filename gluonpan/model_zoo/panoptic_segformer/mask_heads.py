"""Panoptic SegFormer's mask decoders (``MaskHead`` of ``easymd/models/panformer/mask_head.py``)
for things and stuff, and their training losses.

Both read the encoder memory of levels 0..2 (strides 8, 16, 32; the stride-64 level is not
used) as keys and values without positional encoding, and give masks at stride 8 that are ReLU
outputs (no sigmoid), trained with the authors' dice loss on the raw values.

* things: the location decoder's last-layer queries picked by an index -- the queries matched to
  the ground truth in training, the top-scoring (query, class) pairs at inference -- through
  ``num_blocks`` blocks without self-attention and a tail; no positional query.
* stuff: one learned query per stuff class (``stuff_query`` (S, 2C) = [content | position],
  the opposite order of the object queries), ``num_blocks`` blocks with self-attention (the
  position re-added before every block and the tail), and a 1-logit class branch per block.
"""
from collections import OrderedDict

import mxnet as mx
from mxnet.gluon import nn

from ...nn.set_losses import focal_classification_loss, mask_dice_loss
from ...nn.transformer import MaskAttention, MaskDecoderBlock
from .location_decoder import box_branch, class_branch, expand_to_batch

__all__ = ['MaskDecoder', 'ZeroWeightThingBranches', 'ThingMaskHead', 'StuffMaskHead']

#: the dice losses compare the predictions upsampled x2 (stride 4) with the resized targets
DICE_SCALE = 2


class MaskDecoder(nn.HybridBlock):
    """``num_blocks`` :class:`~gluonpan.nn.transformer.MaskDecoderBlock` and the mask-only tail
    (``AttentionTail``).

    Parameters
    ----------
    num_blocks : int
        Blocks (things 4, stuff 6).
    embed_dims, num_heads, num_levels : int
        C, M and the memory levels (256, 8, 3).
    self_attn : bool
        Blocks with self-attention (stuff).
    """

    def __init__(self, num_blocks, embed_dims=256, num_heads=8, num_levels=3, self_attn=False,
                 **kwargs):
        super(MaskDecoder, self).__init__(**kwargs)
        with self.name_scope():
            self.blocks = nn.HybridSequential(prefix='blocks_')
            with self.blocks.name_scope():
                for i in range(num_blocks):
                    self.blocks.add(MaskDecoderBlock(embed_dims, num_heads, num_levels,
                                                     self_attn=self_attn,
                                                     prefix='{}_'.format(i)))
            self.tail = MaskAttention(embed_dims, num_heads, num_levels, with_value=False,
                                      prefix='tail_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, memory, shapes, pos=None):
        """``query`` (B, N, C), per-level ``memory`` (B, h_l * w_l, C) and ``shapes``
        (B, h_l, w_l), ``pos`` (B, N, C) added before every block and the tail (the
        reference's ``with_pos_embed(query, pos_query)``) -> ``(mask, block masks, block
        queries)``: the tail's mask (B, N, h_0, w_0) and, per block, its mask and output query."""
        memory, shapes = list(memory), list(shapes)
        masks, queries = [], []
        for block in self.blocks:
            query, mask = block(query if pos is None else query + pos, memory, shapes)
            masks.append(mask)
            queries.append(query)
        final = self.tail(query if pos is None else query + pos, memory, shapes)
        return final, masks, queries


def _branches(prefix, count, make):
    """``count`` blocks ``make(prefix_i)`` in a HybridSequential (one per decoder block)."""
    seq = nn.HybridSequential(prefix=prefix)
    with seq.name_scope():
        for i in range(count):
            seq.add(make('{}_'.format(i)))
    return seq


class ZeroWeightThingBranches(nn.HybridBlock):
    """The reference's ``cls_thing_branches`` and ``reg_branches2``: a class and a box branch per
    thing block, applied in training with losses multiplied by 0 and never used at inference.

    Kept for checkpoint parity (and the parameter count) only: never computed, frozen
    (``grad_req='null'``, so the trainer does not ask for their gradients).

    Parameters
    ----------
    num_classes, num_blocks, embed_dims : int
        Thing classes T, thing blocks and C.
    """

    def __init__(self, num_classes, num_blocks=4, embed_dims=256, **kwargs):
        super(ZeroWeightThingBranches, self).__init__(**kwargs)
        with self.name_scope():
            self.cls_branches = _branches('cls_branches_', num_blocks,
                                          lambda p: class_branch(num_classes, embed_dims, p))
            self.reg_branches = _branches('reg_branches_', num_blocks,
                                          lambda p: box_branch(embed_dims, p))
        self.collect_params().setattr('grad_req', 'null')

    def hybrid_forward(self, F, *args):  # pylint: disable=arguments-differ
        raise NotImplementedError('the zero-weight thing branches are never computed')


class ThingMaskHead(nn.HybridBlock):
    """The thing mask decoder on selected location-decoder queries.

    Parameters
    ----------
    num_blocks, embed_dims, num_heads, num_levels
        See :class:`MaskDecoder` (4, 256, 8, 3).
    """

    def __init__(self, num_blocks=4, embed_dims=256, num_heads=8, num_levels=3, **kwargs):
        super(ThingMaskHead, self).__init__(**kwargs)
        with self.name_scope():
            self.decoder = MaskDecoder(num_blocks, embed_dims, num_heads, num_levels,
                                       prefix='decoder_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, queries, index, memory, shapes):
        """``queries`` (B, Q, C) at ``index`` (2, B, K) (``[image, query]`` for ``gather_nd``),
        memory and shapes as :class:`MaskDecoder` -> ``(mask (B, K, h_0, w_0), block masks)``."""
        things = F.gather_nd(queries, index)  # (B, K, C)
        final, masks, _ = self.decoder(things, list(memory), list(shapes))
        return final, masks

    @staticmethod
    def losses(outputs, match, targets, norm):
        """Dice losses of the tail's and every block's masks against the matched ground truth.

        Parameters
        ----------
        outputs : tuple
            This head's training outputs: the final mask and the block masks, (B, K, h0, w0).
        match : dict
            :func:`~gluonpan.model_zoo.panoptic_segformer.matching.match_thing_masks` as
            NDArrays: ``gather_index`` ``[image, thing slot]`` of each ground truth.
        targets : BatchTargets
            ``thing_masks`` (B, G, 2 h0, 2 w0).
        norm : LossNormalizers

        Returns
        -------
        OrderedDict
            ``loss_mask_things`` (tail) and ``loss_mask_things_d{i}`` (block ``i``; the
            reference's ``d{i}.loss_mask_things_f``), each (1,), times the things ratio.
        """
        final, blocks = outputs
        named = [('loss_mask_things', final)] + [('loss_mask_things_d{}'.format(i), m)
                                                 for i, m in enumerate(blocks)]
        return OrderedDict((name, mask_dice_loss(
            mx.nd, masks, targets.thing_masks, match['gather_index'], match['match_valid'],
            norm.things, weight=1., scale=DICE_SCALE) * norm.things_ratio)  # (1,) each
            for name, masks in named)


class StuffMaskHead(nn.HybridBlock):
    """The stuff mask decoder: one query per stuff class, masks and presence logits.

    Parameters
    ----------
    num_classes : int
        Stuff classes S.
    num_blocks, embed_dims, num_heads, num_levels
        See :class:`MaskDecoder` (6, 256, 8, 3).
    """

    def __init__(self, num_classes, num_blocks=6, embed_dims=256, num_heads=8, num_levels=3,
                 **kwargs):
        super(StuffMaskHead, self).__init__(**kwargs)
        self.embed_dims = embed_dims
        with self.name_scope():
            self.stuff_query = self.params.get('stuff_query', init=mx.init.Normal(1.),
                                               shape=(num_classes, 2 * embed_dims))
            self.decoder = MaskDecoder(num_blocks, embed_dims, num_heads, num_levels,
                                       self_attn=True, prefix='decoder_')
            self.cls_branches = _branches('cls_branches_', num_blocks,
                                          lambda p: class_branch(1, embed_dims, p))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, memory, shapes, stuff_query):
        """Memory and shapes as :class:`MaskDecoder` -> ``(mask (B, S, h_0, w_0), block masks,
        block logits (B, S, 1))``."""
        c = self.embed_dims
        query = expand_to_batch(F, F.slice_axis(stuff_query, axis=1, begin=0, end=c),
                                memory[0])  # (B, S, C)
        pos = expand_to_batch(F, F.slice_axis(stuff_query, axis=1, begin=c, end=2 * c),
                              memory[0])  # (B, S, C)
        final, masks, queries = self.decoder(query, list(memory), list(shapes), pos)
        return final, masks, [cls(q) for cls, q in zip(self.cls_branches, queries)]

    @staticmethod
    def losses(outputs, targets, norm):
        """Dice losses of the stuff masks and focal losses of the presence logits.

        Every stuff query is its class; a class absent from the image has weight 0 in the dice
        loss and the target "background" in the focal loss (label 1 of a 1-class sigmoid).

        Parameters
        ----------
        outputs : tuple
            This head's training outputs (see ``hybrid_forward``).
        targets : BatchTargets
            ``stuff_masks`` (B, S, 2 h0, 2 w0), ``stuff_index`` (2, B, S), ``stuff_present``
            (B, S) NDArrays.
        norm : LossNormalizers
            ``stuff`` (the average factor), ``stuff_ratio``, ``has_things``.

        Returns
        -------
        OrderedDict
            ``loss_mask_stuff`` (tail), ``loss_mask_stuff_d{i}`` and ``loss_cls_stuff_d{i}``
            (block ``i``), each (1,), times the stuff ratio.  As the reference, the class losses
            are multiplied by 0 when no thing query was matched on this context (its test reads
            the thing branch's prediction count).
        """
        final, blocks, logits = outputs
        out = OrderedDict([('loss_mask_stuff', final)])
        out.update(('loss_mask_stuff_d{}'.format(i), m) for i, m in enumerate(blocks))
        out = OrderedDict((name, mask_dice_loss(
            mx.nd, masks, targets.stuff_masks, targets.stuff_index, targets.stuff_present,
            norm.stuff, weight=1., scale=DICE_SCALE)) for name, masks in out.items())
        absent = 1 - targets.stuff_present  # (B, S): class 0 = present, 1 = background
        for i, logit in enumerate(logits):
            loss = focal_classification_loss(mx.nd, logit, absent, norm.stuff, weight=1.)
            out['loss_cls_stuff_d{}'.format(i)] = loss * float(norm.has_things)
        return OrderedDict((k, v * norm.stuff_ratio) for k, v in out.items())  # (1,) each
