"""Panoptic SegFormer's encoder: Deformable DETR's (``Deformable_Transformer`` in the reference's
``easymd/models/panformer/deformable_detr.py`` with mmcv 1.3's layers), on per-level tokens.

Each level is flattened row-major, gets the sine positional encoding of its (all-valid) mask plus
a learned level embedding (for the queries / offsets only, never the values) and reference points
at its pixel centres; the levels stay separate lists (the deformable attention reads every level
of the value, :mod:`gluonpan.nn.deformable_attention`), which is the reference's concatenated
sequence without its Python level sizes.
"""
import mxnet as mx
from mxnet.gluon import nn

from ...nn.positional_encoding import SinePositionalEncoding, all_valid_mask
from ...nn.transformer import DeformableEncoderLayer

__all__ = ['flatten_map', 'encoder_reference_points', 'DeformableEncoder']


def flatten_map(F, x):
    """A map (B, C, H, W) -> row-major tokens (B, H * W, C)."""
    return x.reshape((0, 0, -3)).transpose((0, 2, 1))  # (B, C, H * W) -> (B, H * W, C)


def encoder_reference_points(F, mask, num_levels):
    """Reference points of a level's pixels, ``((j + 0.5) / W, (i + 0.5) / H)`` for pixel
    ``(i, j)`` of its mask (B, H, W), the same point on every level -> (B, H * W, L, 2).

    This is Deformable DETR's ``get_reference_points`` with all valid ratios 1 (no padding: the
    reference tests one unpadded image, and our training batches share one crop size).
    """
    rows = F.contrib.arange_like(mask, axis=1)  # (H,)
    cols = F.contrib.arange_like(mask, axis=2)  # (W,)
    y = F.broadcast_div(rows + 0.5, F.sum(F.ones_like(rows)))  # (H,)
    x = F.broadcast_div(cols + 0.5, F.sum(F.ones_like(cols)))  # (W,)
    y = F.broadcast_like(y.reshape((1, -1, 1)), mask)  # (B, H, W)
    x = F.broadcast_like(x.reshape((1, 1, -1)), mask)  # (B, H, W)
    points = F.stack(x, y, axis=-1).reshape((0, -3, 0))  # (B, H, W, 2) -> (B, H * W, 2)
    return F.repeat(points.expand_dims(2), repeats=num_levels, axis=2)  # (B, H * W, L, 2)


class DeformableEncoder(nn.HybridBlock):
    """The encoder: ``num_layers`` post-norm deformable layers (no final norm).

    Parameters
    ----------
    num_layers : int
        Encoder layers (6).
    embed_dims, num_heads, num_levels, num_points, feedforward_channels, dropout, method
        See :class:`~gluonpan.nn.transformer.DeformableEncoderLayer` (256, 8, 4, 4, 1024, 0.1).

    Notes
    -----
    ``level_embeds`` (L, C) start from N(0, 1) (the reference's ``normal_``); the positional
    encoding is mmdet's ``SinePositionalEncoding(C / 2, normalize=True, offset=-0.5)``.
    """

    def __init__(self, num_layers=6, embed_dims=256, num_heads=8, num_levels=4, num_points=4,
                 feedforward_channels=1024, dropout=0.1, method='gather', **kwargs):
        super(DeformableEncoder, self).__init__(**kwargs)
        self.num_levels = num_levels
        with self.name_scope():
            self.level_embeds = self.params.get('level_embeds', shape=(num_levels, embed_dims),
                                                init=mx.init.Normal(1.))
            self.position = SinePositionalEncoding(embed_dims // 2, normalize=True, offset=-0.5,
                                                   prefix='position_')
            self.layers = nn.HybridSequential(prefix='layers_')
            with self.layers.name_scope():
                for i in range(num_layers):
                    self.layers.add(DeformableEncoderLayer(
                        embed_dims, num_heads, num_levels, num_points, feedforward_channels,
                        dropout, method, prefix='{}_'.format(i)))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, feats, level_embeds):
        """``feats``: the L neck maps (B, C, H_l, W_l) -> ``(memory, masks)``: per level the
        encoded tokens (B, H_l * W_l, C) and the all-zero padding masks (B, H_l, W_l) that carry
        the level sizes."""
        if len(feats) != self.num_levels:
            raise ValueError('the encoder takes {} levels, got {}'.format(self.num_levels,
                                                                          len(feats)))
        masks = [all_valid_mask(F, f) for f in feats]
        tokens = [flatten_map(F, f) for f in feats]
        pos = []
        for lvl, mask in enumerate(masks):
            embed = F.slice_axis(level_embeds, axis=0, begin=lvl, end=lvl + 1)  # (1, C)
            pos.append(F.broadcast_add(flatten_map(F, self.position(mask)),
                                       embed.reshape((1, 1, -1))))  # (B, H_l * W_l, C)
        refs = [encoder_reference_points(F, m, self.num_levels) for m in masks]
        for layer in self.layers:
            tokens = layer(tokens, pos, masks, refs)
        return tokens, masks
