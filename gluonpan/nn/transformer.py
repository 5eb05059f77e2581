"""Transformer blocks of the query-based models (Panoptic SegFormer, Li et al., CVPR 2022), with
the semantics of the PyTorch modules the reference builds on.

* :class:`FFN` -- mmcv's ``FFN``: ``x + Dropout(Linear(Dropout(act(Linear(x)))))``.
* :class:`MultiHeadAttention` -- ``torch.nn.MultiheadAttention`` (one fused in-projection, a
  key padding mask, dropout on the attention weights), batch first.
* :class:`DeformableEncoderLayer`, :class:`DeformableDecoderLayer` -- the post-norm layers of
  Deformable DETR as mmcv 1.3 builds them (``self_attn, norm, [cross_attn, norm,] ffn, norm``).
* :class:`MaskAttention`, :class:`MaskDecoderBlock` -- Panoptic SegFormer's mask decoder
  (``easymd/models/panformer/mask_head.py``): cross-attention whose pre-softmax scaled logits,
  per head and per level, also become a mask (:class:`AttentionMaskFusion`).

Sizes stay inside the graph (no Python int from a shape): multi-level inputs are lists of
per-level token tensors ``(B, H_l * W_l, C)`` with a ``(B, H_l, W_l)`` array per level that gives
its height and width (the padding masks of :mod:`gluonpan.nn.deformable_attention`), and every
reshape uses MXNet's special codes or ``reshape_like``.
"""
import math

import mxnet as mx
from mxnet.gluon import nn

from .deformable_attention import MultiScaleDeformableAttention
from .interpolate import resize_like

__all__ = ['XAVIER', 'linear_bias_init', 'split_heads', 'merge_heads',
           'FFN', 'MultiHeadAttention', 'DeformableEncoderLayer', 'DeformableDecoderLayer',
           'AttentionMaskFusion', 'MaskAttention', 'MaskDecoderBlock']

#: ``torch.nn.init.xavier_uniform_`` (gain 1)
XAVIER = mx.init.Xavier(rnd_type='uniform', factor_type='avg', magnitude=3)
#: added to masked attention logits (``masked_fill(-inf)``: exp underflows to 0 all the same)
_MASKED = -1e9


def linear_bias_init(in_units):
    """``torch.nn.Linear``'s default bias: uniform in ``+-1 / sqrt(in_units)``."""
    return mx.init.Uniform(1. / math.sqrt(in_units))


def split_heads(F, x, num_heads):
    """(B, L, M * d) -> (B * M, L, d), head ``m`` owning channels ``m * d .. (m + 1) * d - 1``."""
    x = x.reshape((0, 0, num_heads, -1))  # (B, L, M, d)
    return x.transpose((0, 2, 1, 3)).reshape((-3, 0, 0))  # (B, M, L, d) -> (B * M, L, d)


def merge_heads(F, x, num_heads):
    """(B * M, L, d) -> (B, L, M * d), the inverse of :func:`split_heads`."""
    x = x.reshape((-4, -1, num_heads, 0, 0))  # (B, M, L, d)
    return x.transpose((0, 2, 1, 3)).reshape((0, 0, -3))  # (B, L, M, d) -> (B, L, M * d)


def _head_scale(embed_dims, num_heads):
    """``d ** -0.5`` of ``num_heads`` heads of ``d = embed_dims / num_heads`` channels."""
    if embed_dims % num_heads:
        raise ValueError('embed_dims ({}) must be a multiple of num_heads ({})'.format(
            embed_dims, num_heads))
    return (embed_dims // num_heads) ** -0.5


def _dense(units, in_units, prefix, bias_initializer=None):
    """``Dense(flatten=False)`` with Xavier-uniform weights and PyTorch's default bias."""
    return nn.Dense(units, flatten=False, in_units=in_units, weight_initializer=XAVIER,
                    bias_initializer=bias_initializer or linear_bias_init(in_units),
                    prefix=prefix)


class FFN(nn.HybridBlock):
    """mmcv's ``FFN``: ``identity + Dropout(fc2(Dropout(act(fc1(x)))))``.

    Parameters
    ----------
    embed_dims, feedforward_channels : int
        Input / output channels C and the hidden width.
    dropout : float
        After the activation and after ``fc2``.
    activation : {'relu', 'gelu'}
        ReLU (Deformable DETR) or the exact (erf) GELU (the mask decoder's ``Mlp``).
    """

    def __init__(self, embed_dims=256, feedforward_channels=1024, dropout=0., activation='relu',
                 **kwargs):
        super(FFN, self).__init__(**kwargs)
        if activation not in ('relu', 'gelu'):
            raise ValueError("activation must be 'relu' or 'gelu', got {!r}".format(activation))
        with self.name_scope():
            self.fc1 = _dense(feedforward_channels, embed_dims, 'fc1_')
            self.act = nn.GELU() if activation == 'gelu' else nn.Activation('relu')
            self.fc2 = _dense(embed_dims, feedforward_channels, 'fc2_')
            self.drop = nn.Dropout(dropout)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, identity=None):
        """(..., C) -> (..., C); the residual is ``x`` unless ``identity`` is given."""
        out = self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
        return (x if identity is None else identity) + out


class MultiHeadAttention(nn.HybridBlock):
    """``torch.nn.MultiheadAttention`` (batch first), without the residual.

    ``softmax(q k^T / sqrt(d) [masked]) v`` per head, with ``q, k, v`` from one fused
    in-projection (rows ``0..C-1`` project the query, ``C..2C-1`` the key, ``2C..3C-1`` the
    value), dropout on the attention weights, and the output projection ``out_proj``.

    Parameters
    ----------
    embed_dims, num_heads : int
        Channels C (a multiple of ``num_heads``) and heads M.
    dropout : float
        Dropout on the attention weights.
    bias_initializer : mx.init.Initializer, optional
        Of the in-projection's bias: zeros as torch's ``MultiheadAttention`` (default); the mask
        decoder's ``SelfAttention`` (a plain ``Linear(C, 3C)``) takes :func:`linear_bias_init`.
    """

    def __init__(self, embed_dims=256, num_heads=8, dropout=0., bias_initializer='zeros',
                 **kwargs):
        super(MultiHeadAttention, self).__init__(**kwargs)
        self.scale = _head_scale(embed_dims, num_heads)
        self.embed_dims, self.num_heads = embed_dims, num_heads
        with self.name_scope():
            self.in_proj_weight = self.params.get('in_proj_weight', init=XAVIER,
                                                  shape=(3 * embed_dims, embed_dims))
            self.in_proj_bias = self.params.get('in_proj_bias', shape=(3 * embed_dims,),
                                                init=bias_initializer)
            self.out_proj = _dense(embed_dims, embed_dims, 'out_proj_', 'zeros')
            self.attn_drop = nn.Dropout(dropout)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, key, value, key_padding_mask=None, in_proj_weight=None,
                       in_proj_bias=None):
        """Attend from ``query`` (B, Nq, C) to ``key`` / ``value`` (B, Nk, C) -> (B, Nq, C).

        ``key_padding_mask`` (B, Nk): 1 = ignore that key (a large negative is added to its
        logits; a row whose keys are all masked gets finite weights, where torch gives NaN).
        """
        c, m = self.embed_dims, self.num_heads
        heads = []
        for i, x in enumerate((query, key, value)):
            weight = F.slice_axis(in_proj_weight, axis=0, begin=i * c, end=(i + 1) * c)
            bias = F.slice_axis(in_proj_bias, axis=0, begin=i * c, end=(i + 1) * c)
            heads.append(split_heads(F, F.FullyConnected(x, weight, bias, num_hidden=c,
                                                         flatten=False), m))  # (B * M, N, d)
        q, k, v = heads
        logits = F.batch_dot(q * self.scale, k, transpose_b=True)  # (B * M, Nq, Nk)
        if key_padding_mask is not None:
            logits = logits.reshape((-4, -1, m, 0, 0))  # (B, M, Nq, Nk)
            mask = key_padding_mask.reshape((0, 1, 1, -1)) * _MASKED  # (B, 1, 1, Nk)
            logits = F.broadcast_add(logits, mask).reshape((-3, 0, 0))  # (B * M, Nq, Nk)
        weights = self.attn_drop(F.softmax(logits, axis=-1))
        return self.out_proj(merge_heads(F, F.batch_dot(weights, v), m))  # (B, Nq, C)


def _layer_norm(channels, eps, prefix):
    """LayerNorm over the last axis of ``channels``."""
    return nn.LayerNorm(epsilon=eps, in_channels=channels, prefix=prefix)


def _deformable_and_ffn(attn_prefix, embed_dims, num_heads, num_levels, num_points,
                        feedforward_channels, dropout, method):
    """The deformable attention and the ReLU FFN of a Deformable DETR layer (call inside the
    layer's ``name_scope``)."""
    return (MultiScaleDeformableAttention(embed_dims, num_heads, num_levels, num_points, dropout,
                                          method, prefix=attn_prefix),
            FFN(embed_dims, feedforward_channels, dropout, prefix='ffn_'))


class DeformableEncoderLayer(nn.HybridBlock):
    """Deformable DETR's encoder layer (post-norm): ``x = LN(MSDA(x) + x)``, ``x = LN(FFN(x))``.

    Works on the per-level token lists of :class:`~gluonpan.nn.MultiScaleDeformableAttention`
    (its encoder mode): every level's tokens are queries, the value is the tokens themselves.

    Parameters
    ----------
    embed_dims, num_heads, num_levels, num_points : int
        Of the deformable attention.
    feedforward_channels : int
        FFN hidden width (ReLU).
    dropout : float
        In the attention output and the FFN.
    method : {'gather', 'bilinear'}
        Sampling of the deformable attention (speed or memory).
    eps : float
        LayerNorm epsilon (1e-5, PyTorch's default).
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=4, num_points=4,
                 feedforward_channels=1024, dropout=0.1, method='gather', eps=1e-5, **kwargs):
        super(DeformableEncoderLayer, self).__init__(**kwargs)
        with self.name_scope():
            self.attn, self.ffn = _deformable_and_ffn('attn_', embed_dims, num_heads, num_levels,
                                                      num_points, feedforward_channels, dropout,
                                                      method)
            self.norm1 = _layer_norm(embed_dims, eps, 'norm1_')
            self.norm2 = _layer_norm(embed_dims, eps, 'norm2_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, tokens, pos, masks, reference_points):
        """Per-level lists: ``tokens`` (B, H_l * W_l, C), ``pos`` (the same, positional and level
        embeddings), ``masks`` (B, H_l, W_l), ``reference_points`` (B, H_l * W_l, L, 2) -> the
        new tokens (list)."""
        out = self.attn(list(tokens), None, list(masks), list(reference_points), list(pos))
        return [self.norm2(self.ffn(self.norm1(x))) for x in out]


class DeformableDecoderLayer(nn.HybridBlock):
    """Deformable DETR's decoder layer (post-norm), as mmcv's ``DetrTransformerDecoderLayer``:

    ``q = LN(q + Dropout(MHA(q + pos, q + pos, q)))``; ``q = LN(MSDA(q, memory, pos) + q)``;
    ``q = LN(FFN(q))``.

    Parameters are those of :class:`DeformableEncoderLayer`; ``dropout`` also drops attention
    weights and the output of the self-attention (mmcv 1.3's ``MultiheadAttention`` uses its
    ``dropout`` for both).
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=4, num_points=4,
                 feedforward_channels=1024, dropout=0.1, method='gather', eps=1e-5, **kwargs):
        super(DeformableDecoderLayer, self).__init__(**kwargs)
        with self.name_scope():
            self.self_attn = MultiHeadAttention(embed_dims, num_heads, dropout,
                                                prefix='self_attn_')
            self.drop = nn.Dropout(dropout)
            self.cross_attn, self.ffn = _deformable_and_ffn(
                'cross_attn_', embed_dims, num_heads, num_levels, num_points,
                feedforward_channels, dropout, method)
            self.norm1 = _layer_norm(embed_dims, eps, 'norm1_')
            self.norm2 = _layer_norm(embed_dims, eps, 'norm2_')
            self.norm3 = _layer_norm(embed_dims, eps, 'norm3_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, query_pos, memory, masks, reference_points):
        """``query``, ``query_pos`` (B, Q, C); ``memory`` per-level tokens (B, H_l * W_l, C) with
        ``masks`` (B, H_l, W_l); ``reference_points`` (B, Q, L, 2 or 4) -> (B, Q, C)."""
        qk = query + query_pos
        query = self.norm1(query + self.drop(self.self_attn(qk, qk, query)))
        query = self.norm2(self.cross_attn(query, list(memory), list(masks), reference_points,
                                           query_pos))
        return self.norm3(self.ffn(query))


class AttentionMaskFusion(nn.HybridBlock):
    """The mask branch of Panoptic SegFormer's attention: attention logits -> a mask.

    Per level ``l`` the scaled logits of the M heads (pre-softmax) pass a ``Linear(M, M)`` over
    the heads and a ReLU (``linear_l1..3``); levels 1.. are resized (bilinear, size-based,
    ``align_corners=False``) to level 0's size; the concatenation ``[level 0, level 1, ...]``
    (``L * M`` channels) passes ``Linear(L * M, 1)`` and a ReLU (``linear``).

    The resize is linear with weights summing to 1, so it commutes with the channel mixing of the
    last linear: each level is mixed to one channel (its slice of that linear's weight) *before*
    being resized, which is the same map (up to float rounding) on M times fewer values.

    Parameters are 1x1 convolution weights: ``level{l}_weight`` (M, M, 1, 1) and
    ``level{l}_bias`` (M,) are the reference's ``linear_l{l+1}.0`` (a ``Linear`` weight with two
    unit axes); ``fuse{l}_weight`` (1, M, 1, 1) is columns ``l * M .. (l + 1) * M - 1`` of
    ``linear.0.weight`` (1, L * M) and ``fuse_bias`` its bias.

    Parameters
    ----------
    num_heads, num_levels : int
        M and L (Panoptic SegFormer: 8 and 3).
    """

    def __init__(self, num_heads=8, num_levels=3, **kwargs):
        super(AttentionMaskFusion, self).__init__(**kwargs)
        self.num_heads, self.num_levels = num_heads, num_levels
        # Linear(L * M, 1) as L slices of (1, M, 1, 1), each initialised as the whole weight
        fuse_init = mx.init.Uniform(math.sqrt(6. / (num_levels * num_heads + 1)))
        with self.name_scope():
            for lvl in range(num_levels):
                self._param('level{}_weight'.format(lvl), (num_heads, num_heads, 1, 1), XAVIER)
                self._param('level{}_bias'.format(lvl), (num_heads,),
                            linear_bias_init(num_heads))
                self._param('fuse{}_weight'.format(lvl), (1, num_heads, 1, 1), fuse_init)
            self.fuse_bias = self.params.get('fuse_bias', shape=(1,),
                                             init=linear_bias_init(num_levels * num_heads))

    def _param(self, name, shape, init):
        """Register a parameter under ``name`` (1x1 convolution weights are kept 4-d: MXNet
        1.9's MKLDNN convolution reorders a reshaped view of a 2-d weight in place, which
        breaks every later use of that array)."""
        setattr(self, name, self.params.get(name, shape=shape, init=init))

    def _level(self, F, logits, shape, weight, bias, fuse):
        """One level's logits (B * M, N, h * w) -> its mixed map (B * N, h, w).

        The heads are the channels of a (B, M, N, h * w) map, so the linears over the heads are
        1x1 convolutions of it (no transpose of the logits).
        """
        m = self.num_heads
        x = logits.reshape((-4, -1, m, 0, 0))  # (B, M, N, hw)
        x = F.relu(F.Convolution(x, weight, bias, kernel=(1, 1), num_filter=m))  # (B, M, N, hw)
        x = F.Convolution(x, fuse, kernel=(1, 1), num_filter=1, no_bias=True)  # (B, 1, N, hw)
        x = x.reshape((0, -3, 0)).reshape((-3, 0))  # (B, N, hw) -> (B * N, hw)
        return F.reshape_like(x, shape, lhs_begin=1, lhs_end=2, rhs_begin=1,
                              rhs_end=3)  # (B * N, h, w)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, logits, shapes, query, fuse_bias, **levels):
        """``logits`` per level (B * M, N, h_l * w_l), ``shapes`` per level (B, h_l, w_l),
        ``query`` (B, N, C) (only its shape) -> the mask (B, N, h_0, w_0), ReLU-ed."""
        total = None
        for lvl, (x, shape) in enumerate(zip(logits, shapes)):
            x = self._level(F, x, shape, *[levels[name.format(lvl)] for name in (
                'level{}_weight', 'level{}_bias', 'fuse{}_weight')])  # (B * N, h_l, w_l)
            total = x if total is None else total + resize_like(F, x, total)
        mask = F.relu(F.broadcast_add(total, fuse_bias.reshape((1, 1, 1))))  # (B * N, h0, w0)
        return F.reshape_like(mask, query, lhs_begin=0, lhs_end=1, rhs_begin=0,
                              rhs_end=2)  # (B, N, h0, w0)


class MaskAttention(nn.HybridBlock):
    """Panoptic SegFormer's ``Attention`` (``with_value=True``) or ``AttentionTail``
    (``with_value=False``): multi-head cross-attention from queries to the memory of levels
    0..L-1, whose scaled logits ``q k^T / sqrt(d)`` also give a mask
    (:class:`AttentionMaskFusion`).

    The softmax runs over the keys of all levels jointly; keys and values are the memory itself
    (no positional encoding, no padding mask: the reference passes none).

    Parameters
    ----------
    embed_dims, num_heads, num_levels : int
        C, M and L.
    with_value : bool
        Also compute the attention output (``v`` and ``proj``); the tail computes the mask only.
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=3, with_value=True, **kwargs):
        super(MaskAttention, self).__init__(**kwargs)
        self.scale = _head_scale(embed_dims, num_heads)
        self.num_heads, self.with_value = num_heads, with_value
        with self.name_scope():
            self.q = _dense(embed_dims, embed_dims, 'q_')
            self.k = _dense(embed_dims, embed_dims, 'k_')
            if with_value:
                self.v = _dense(embed_dims, embed_dims, 'v_')
                self.proj = _dense(embed_dims, embed_dims, 'proj_')
            self.fusion = AttentionMaskFusion(num_heads, num_levels, prefix='fusion_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, memory, shapes):
        """``query`` (B, N, C), ``memory`` per-level tokens (B, h_l * w_l, C), ``shapes`` per
        level (B, h_l, w_l) -> ``(out (B, N, C), mask (B, N, h_0, w_0))``, or the mask alone."""
        m = self.num_heads
        q = split_heads(F, self.q(query), m)  # (B * M, N, d)
        logits = [F.batch_dot(q, split_heads(F, self.k(x), m), transpose_b=True) * self.scale
                  for x in memory]  # (B * M, N, h_l * w_l) each
        mask = self.fusion(logits, list(shapes), query)
        if not self.with_value:
            return mask
        weights = F.softmax(F.concat(*logits, dim=2), axis=-1)  # (B * M, N, sum h_l * w_l)
        values = F.concat(*[split_heads(F, self.v(x), m) for x in memory],
                          dim=1)  # (B * M, sum h_l * w_l, d)
        return self.proj(merge_heads(F, F.batch_dot(weights, values), m)), mask


class MaskDecoderBlock(nn.HybridBlock):
    """Panoptic SegFormer's mask-decoder ``Block`` (post-norm, no dropout):

    ``[q = norm3(q + SelfAttention(q))]``; ``x, mask = MaskAttention(q, memory)``;
    ``q = head_norm1(q + x)``; ``q = head_norm2(q + Mlp(q))`` (GELU, width ``mlp_ratio * C``).

    Parameters
    ----------
    embed_dims, num_heads, num_levels : int
        C, M and the memory levels.
    mlp_ratio : int
        Hidden width of the MLP over C.
    self_attn : bool
        With the self-attention among the queries (the stuff decoder).
    eps : float
        LayerNorm epsilon (the reference's mask heads: 1e-6).
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=3, mlp_ratio=4, self_attn=False,
                 eps=1e-6, **kwargs):
        super(MaskDecoderBlock, self).__init__(**kwargs)
        self.with_self_attn = self_attn
        with self.name_scope():
            if self_attn:
                self.self_attention = MultiHeadAttention(
                    embed_dims, num_heads, bias_initializer=linear_bias_init(embed_dims),
                    prefix='self_attention_')
                self.norm3 = _layer_norm(embed_dims, eps, 'norm3_')
            self.attn = MaskAttention(embed_dims, num_heads, num_levels, prefix='attn_')
            self.head_norm1 = _layer_norm(embed_dims, eps, 'head_norm1_')
            self.mlp = FFN(embed_dims, mlp_ratio * embed_dims, activation='gelu', prefix='mlp_')
            self.head_norm2 = _layer_norm(embed_dims, eps, 'head_norm2_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, memory, shapes):
        """``query`` (B, N, C) (positional query already added), memory and shapes as
        :class:`MaskAttention` -> ``(query (B, N, C), mask (B, N, h_0, w_0))``."""
        if self.with_self_attn:
            query = self.norm3(query + self.self_attention(query, query, query))
        out, mask = self.attn(query, list(memory), list(shapes))
        query = self.head_norm1(query + out)
        return self.head_norm2(self.mlp(query)), mask
