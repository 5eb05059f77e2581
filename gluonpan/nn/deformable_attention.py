"""Multi-scale deformable attention (MSDA) of Deformable DETR (Zhu et al., ICLR 2021), as used by
Panoptic SegFormer's encoder and decoder, with the semantics of mmcv 1.x
``MultiScaleDeformableAttention`` (batch-first layout).

Each query looks at ``num_points`` points per head and per level around its reference point,
samples the level's projected value bilinearly there (zero outside the map; a location ``(x, y)``
in [0, 1] of the map's width and height, pixel centres at ``(i + 0.5) / W``: torch's
``grid_sample(..., padding_mode='zeros', align_corners=False)`` of ``2 * loc - 1``) and returns
the attention-weighted sum over levels and points, per head.

API: levels are kept apart, never concatenated by Python sizes
--------------------------------------------------------------
Image sizes vary and the block must hybridize, so no level size ever becomes a Python int.  The
value is a *list* of per-level token tensors and each level's padding mask gives its (H_l, W_l)::

    value[l]       (N, H_l * W_l, C)  tokens in row-major pixel order (a (N, C, H_l, W_l) map
                                      ``.reshape((0, 0, -3)).transpose((0, 2, 1))``)
    value_masks[l] (N, H_l, W_l)      1 = padded pixel, 0 = valid, in the queries' float dtype;
                                      all zeros when nothing is padded, but always given: it is
                                      what tells the block the level's height and width

Queries are a tensor (N, Q, C) with reference points (N, Q, L, 2) or (N, Q, L, 4), or a list of
such groups sharing one value projection (the output is then a list too):

* **encoder** (queries = every pixel of every level): pass the level tokens as ``query`` and
  ``None`` as ``value`` ("the queries"): ``L`` query groups, one per level, with their
  positional encodings (plus level embeddings) as ``query_pos``.  A query's output depends only
  on that query, so nothing is ever split; the value is projected once.  Reference points of
  level ``l``'s pixel ``(i, j)``: ``((j + 0.5) / (W_l * vr_x[l]), (i + 0.5) / (H_l *
  vr_y[l]))`` times every level's valid ratios ``vr`` (Deformable DETR's
  ``get_reference_points``; a level's valid ratio is the fraction of its rows / columns that
  are not padded, ``get_valid_ratio``), i.e. (N, H_l * W_l, L, 2).
* **decoder** (300 object queries): ``query`` (N, 300, C) with ``query_pos``, the encoder's
  output levels as ``value``, and the sigmoid-ed reference points (N, 300, 2 or 4) times each
  level's valid ratios ``(vr_x, vr_y)`` (boxes: ``(vr_x, vr_y, vr_x, vr_y)``): (N, 300, L, 2
  or 4).

Reference points are points ``(x, y)`` in [0, 1] of the padded map (offsets divided by each
level's ``(W_l, H_l)``) or boxes ``(cx, cy, w, h)`` (offsets times ``(w, h) * 0.5 /
num_points``), as in mmcv; the same block (hybridized or not) takes either: the last axis' size
is read inside the graph (both scalings are computed and one kept, a few small elementwise
operations).

Gluon 1.x blocks take positional arguments only: ``msda(query, value, value_masks,
reference_points, query_pos, identity)`` (trailing ones may be left out, ``None`` for a missing
one in the middle), and a hybridized block keeps the argument structure of its first call
(grouped or not, which arguments are None).

Precision: tested in float32 (and float64).  float16 would need care: the softmax (compute it in
float32) and above all the sampling locations (a pixel of a 256-wide level is 1/256 in [0, 1],
float16's resolution near 1 is 1/2048, and the bilinear fractions would be coarse): run the
core in float32.  The corner indices are computed in int32 (exact for N * K * num_heads < 2^31,
K = all tokens of all levels).
"""
import math

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

__all__ = ['ms_deform_attn_core', 'sampling_offset_bias', 'MultiScaleDeformableAttention']

#: BilinearSampler reads the locations through ``int(floor(.))``: far-away locations are clipped
#: (in the grid coordinates of the zero-bordered map, where everything beyond +-1 samples zeros)
_GRID_LIMIT = 1.5


def _axis_size(F, x, axis):
    """The size of ``x`` along ``axis`` as a (1,) array of ``x``'s dtype (no Python int)."""
    return F.sum(F.ones_like(F.contrib.arange_like(x, axis=axis)))


def _level_sizes(F, value_shapes):
    """(W_l,) and (H_l,) of every level, (L,) arrays of the shape sources' dtype."""
    widths = F.concat(*[_axis_size(F, s, 2) for s in value_shapes], dim=0)  # (L,)
    heights = F.concat(*[_axis_size(F, s, 1) for s in value_shapes], dim=0)  # (L,)
    return widths, heights


def _per_level(F, level_values, like):
    """(L,) -> broadcast like ``like`` (N, Q, M, L, P, k), without gradient."""
    level_values = F.BlockGrad(level_values).reshape((1, 1, 1, -1, 1, 1))  # (1, 1, 1, L, 1, 1)
    return F.broadcast_like(level_values, like)  # (N, Q, M, L, P, k)


def _as_groups(x, grouped, count):
    """``x`` as a list of query groups: ``x`` itself when ``grouped``, else ``[x]``; None ->
    ``count`` Nones."""
    if x is None:
        return [None] * count
    return list(x) if grouped else [x]


def _prepare_gather(F, values, value_shapes, num_heads):
    """The value of all levels as one table of head vectors: (N*K*M, D), K = all tokens."""
    table = F.concat(*values, dim=1)  # (N, K, C)
    table = table.reshape((0, 0, -4, num_heads, -1))  # (N, K, M, D)
    return table.reshape((-3, -2)).reshape((-3, -2))  # (N*K*M, D)


def _sample_gather(F, table, value_shapes, loc, attn, num_heads):
    """:func:`ms_deform_attn_core` by gathering the 4 corners of every sampling point from the
    table of :func:`_prepare_gather`."""
    widths, heights = _level_sizes(F, value_shapes)  # (L,) each
    widths_i = F.cast(widths, 'int32')
    sizes_i = widths_i * F.cast(heights, 'int32')  # (L,) tokens per level
    starts_i = F.cumsum(sizes_i, axis=0, dtype='int32') - sizes_i  # (L,) first token of each
    loc_x = F.slice_axis(loc, axis=-1, begin=0, end=1)  # (N, Q, M, L, P, 1)
    loc_y = F.slice_axis(loc, axis=-1, begin=1, end=2)  # (N, Q, M, L, P, 1)
    # pixel coordinates, pixel centres at integers (align_corners=False)
    px = loc_x * _per_level(F, widths, loc_x) - 0.5
    py = loc_y * _per_level(F, heights, loc_y) - 0.5
    x0, y0 = F.BlockGrad(F.floor(px)), F.BlockGrad(F.floor(py))
    fx, fy = px - x0, py - y0
    att = attn.expand_dims(-1)  # (N, Q, M, L, P, 1)
    top, bottom = (1 - fy) * att, fy * att
    # corners (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1) on the last axis
    weight = F.concat((1 - fx) * top, fx * top, (1 - fx) * bottom, fx * bottom,
                      dim=-1)  # (N, Q, M, L, P, 4)
    x = F.concat(x0, x0 + 1, x0, x0 + 1, dim=-1)  # (N, Q, M, L, P, 4)
    y = F.concat(y0, y0, y0 + 1, y0 + 1, dim=-1)  # (N, Q, M, L, P, 4)
    w4, h4 = _per_level(F, widths, x), _per_level(F, heights, x)
    weight = weight * ((x >= 0) * (x < w4) * (y >= 0) * (y < h4))  # zero padding
    xi = F.cast(F.minimum(F.maximum(x, 0), w4 - 1), 'int32')
    yi = F.cast(F.minimum(F.maximum(y, 0), h4 - 1), 'int32')
    key = yi * _per_level(F, widths_i, xi) + xi + _per_level(F, starts_i, xi)  # level token
    num_keys = F.sum(sizes_i).reshape((1, 1, 1, 1, 1, 1))  # (1, 1, 1, 1, 1, 1): K
    image = F.cast(F.contrib.arange_like(loc, axis=0), 'int32')
    image = image.reshape((-1, 1, 1, 1, 1, 1))  # (N, 1, 1, 1, 1, 1)
    head = F.cast(F.contrib.arange_like(loc, axis=2), 'int32')
    head = head.reshape((1, 1, -1, 1, 1, 1))  # (1, 1, M, 1, 1, 1)
    row = F.broadcast_add(key, F.broadcast_mul(image, num_keys)) * num_heads
    row = F.broadcast_add(row, head)  # (N, Q, M, L, P, 4): row of (n, k, m) in the table
    row = row.reshape((0, 0, 0, -1))  # (N, Q, M, L*P*4)
    corners = F.take(table, row, axis=0)  # (N, Q, M, L*P*4, D)
    corners = corners.reshape((-3, -2)).reshape((-3, -2))  # (N*Q*M, L*P*4, D)
    weight = weight.reshape((0, 0, 0, -1))  # (N, Q, M, L*P*4)
    flat = weight.reshape((-3, -2)).reshape((-3, -2)).expand_dims(1)  # (N*Q*M, 1, L*P*4)
    out = F.batch_dot(flat, corners)  # (N*Q*M, 1, D)
    out = F.reshape_like(out, weight, lhs_begin=0, lhs_end=1, rhs_begin=0,
                         rhs_end=3)  # (N, Q, M, 1, D)
    return out.reshape((0, 0, -1))  # (N, Q, M*D)


def _prepare_bilinear(F, values, value_shapes, num_heads):
    """Per level, the head maps bordered with a ring of zeros: (N*M, D, H_l + 2, W_l + 2)."""
    bordered = []
    for tokens, shape in zip(values, value_shapes):
        value = tokens.transpose((0, 2, 1))  # (N, C, HW)
        value = F.reshape_like(value, shape, lhs_begin=2, lhs_end=3, rhs_begin=1,
                               rhs_end=3)  # (N, C, H, W)
        value = value.reshape((0, -4, num_heads, -1, -2))  # (N, M, D, H, W)
        value = value.reshape((-3, -2))  # (N*M, D, H, W)
        bordered.append(F.pad(value, mode='constant', pad_width=(0, 0, 0, 0, 1, 1, 1, 1),
                              constant_value=0))  # (N*M, D, H+2, W+2)
    return bordered


def _sample_bilinear(F, bordered, value_shapes, loc, attn, num_heads):
    """:func:`ms_deform_attn_core` with MXNet's ``BilinearSampler``, level by level, on the maps
    of :func:`_prepare_bilinear`."""
    out = None
    widths, heights = _level_sizes(F, value_shapes)  # (L,) each
    for lvl, value in enumerate(bordered):
        wh = F.concat(F.slice_axis(widths, axis=0, begin=lvl, end=lvl + 1),
                      F.slice_axis(heights, axis=0, begin=lvl, end=lvl + 1), dim=0)  # (2,)
        wh = wh.reshape((1, 1, 1, 1, 1, 2))  # (1, 1, 1, 1, 1, 2): (W, H) of the level
        level_loc = F.slice_axis(loc, axis=3, begin=lvl, end=lvl + 1)  # (N, Q, M, 1, P, 2)
        grid = F.broadcast_mul(level_loc * 2 - 1, F.broadcast_div(wh, wh + 1))
        grid = F.clip(grid, -_GRID_LIMIT, _GRID_LIMIT)  # (N, Q, M, 1, P, 2)
        grid = grid.reshape((0, 0, 0, -3, 0))  # (N, Q, M, P, 2)
        grid = grid.transpose((0, 2, 4, 1, 3))  # (N, M, 2, Q, P)
        grid = grid.reshape((-3, -2))  # (N*M, 2, Q, P)
        sampled = F.BilinearSampler(value, grid)  # (N*M, D, Q, P)
        weight = F.slice_axis(attn, axis=3, begin=lvl, end=lvl + 1)  # (N, Q, M, 1, P)
        weight = weight.reshape((0, 0, 0, -3))  # (N, Q, M, P)
        weight = weight.transpose((0, 2, 1, 3))  # (N, M, Q, P)
        weight = weight.reshape((-3, -2)).expand_dims(1)  # (N*M, 1, Q, P)
        level_out = F.sum(sampled * F.broadcast_like(weight, sampled), axis=3)  # (N*M, D, Q)
        out = level_out if out is None else out + level_out
    out = out.reshape((-4, -1, num_heads, -2))  # (N, M, D, Q)
    out = out.reshape((0, -3, 0))  # (N, M*D, Q)
    return out.transpose((0, 2, 1))  # (N, Q, M*D)


def ms_deform_attn_core(F, values, value_shapes, sampling_locations, attention_weights,
                        num_heads, method='gather'):
    """Sample every level bilinearly at its locations and sum, weighted, over levels and points.

    Parameters
    ----------
    F : mxnet.ndarray or mxnet.symbol
    values : list of L arrays (N, H_l * W_l, num_heads * D)
        Per-level value tokens (row-major pixels), head ``m`` owning channels
        ``m * D .. (m + 1) * D - 1``.
    value_shapes : list of L arrays (N, H_l, W_l)
        Anything of that shape and of the locations' dtype (the padding masks): only its shape
        is used, read inside the graph.
    sampling_locations : (N, Q, num_heads, L, P, 2)
        ``(x, y)`` in [0, 1] of each level's map (pixel ``i`` centred at ``(i + 0.5) / W``);
        a bilinear corner outside the map counts as zero.
    attention_weights : (N, Q, num_heads, L, P)
        Used as given (the block has normalised them by a softmax over ``L * P``).
    num_heads : int
    method : {'gather', 'bilinear'}
        ``'gather'``: gather the 4 corners of every point from all levels at once (``take``)
        and reduce them with one ``batch_dot``; the fastest, but it holds (N, Q, M, L * P * 4,
        D) corner values, 4x the sampled values, also kept for the backward pass.
        ``'bilinear'``: ``BilinearSampler`` per level (see Notes); 2x to 4x slower on CPU (it
        recomputes the bilinear weights for every channel), a quarter of the memory.

    Returns
    -------
    (N, Q, num_heads * D): heads concatenated along the channels (mmcv's layout).

    Notes
    -----
    MXNet's ``BilinearSampler`` maps grid -1..1 to the first..last pixel *centre* (torch's
    ``align_corners=True``), zeroes each corner outside the map, but for a map of width (height)
    1 it reads pixel 0 with weight 1 wherever the point is.  The ``'bilinear'`` method therefore
    borders each map with one ring of zeros: pixel ``p = loc * W - 0.5`` of the map is pixel
    ``p + 1`` of the bordered one of width ``W + 2``, i.e. grid ``2 (p + 1) / (W + 1) - 1 =
    (2 loc - 1) W / (W + 1)``; this is exact, also for 1-pixel-wide levels and outside (the
    ring is zero).  At a location exactly on a pixel centre (a kink) the location gradient is
    one-sided: torch's side with ``'gather'`` (float64 matches it exactly), either side with
    ``'bilinear'`` (the grid round trip rounds).
    """
    if method not in _METHODS:
        raise ValueError('method must be one of {}, got {!r}'.format(sorted(_METHODS), method))
    if len(values) != len(value_shapes):
        raise ValueError('{} value levels but {} shapes'.format(len(values), len(value_shapes)))
    prepare, sample = _METHODS[method]
    return sample(F, prepare(F, values, value_shapes, num_heads), value_shapes,
                  sampling_locations, attention_weights, num_heads)


#: method -> (prepare the value once, sample it for a query group)
_METHODS = {'gather': (_prepare_gather, _sample_gather),
            'bilinear': (_prepare_bilinear, _sample_bilinear)}


def sampling_offset_bias(num_heads, num_levels, num_points):
    """mmcv's initial bias of the sampling offsets, (num_heads * num_levels * num_points * 2,).

    Head ``m`` points along the angle ``2 pi m / num_heads``, its ``(cos, sin)`` divided by the
    larger of their absolute values (a point of the square's border), point ``i`` at ``i + 1``
    times that, the same for every level; flattened in (head, level, point, xy) order.
    """
    theta = np.arange(num_heads, dtype=np.float64) * (2 * math.pi / num_heads)
    direction = np.stack([np.cos(theta), np.sin(theta)], axis=-1)  # (M, 2)
    direction /= np.abs(direction).max(axis=-1, keepdims=True)
    scale = np.arange(1, num_points + 1, dtype=np.float64)  # (P,)
    grid = direction[:, None, None, :] * scale[None, None, :, None]  # (M, 1, P, 2)
    grid = np.broadcast_to(grid, (num_heads, num_levels, num_points, 2))  # (M, L, P, 2)
    return grid.reshape(-1).astype(np.float32)  # (M*L*P*2,)


class MultiScaleDeformableAttention(nn.HybridBlock):
    """mmcv's ``MultiScaleDeformableAttention``, batch first, levels as lists (module docstring).

    ``output = dropout(output_proj(msda(value_proj(value), query + query_pos))) + identity``
    where ``identity`` defaults to ``query`` (without ``query_pos``) and ``value`` to ``query``.

    Parameters
    ----------
    embed_dims : int
        Channels C of queries and values.
    num_heads : int
        Heads M (``embed_dims`` must be a multiple).
    num_levels : int
        Levels L of the value.
    num_points : int
        Sampling points P per head and level.
    dropout : float
        Dropout on the projected output (before the residual).
    method : {'gather', 'bilinear'}
        How the core samples (:func:`ms_deform_attn_core`): fast, or a quarter of the memory.

    Notes
    -----
    Layers are ``Dense(flatten=False)`` named as mmcv's ``nn.Linear`` (``sampling_offsets``,
    ``attention_weights``, ``value_proj``, ``output_proj``), with mmcv's initialisation: offsets'
    weight 0 and bias :func:`sampling_offset_bias`, attention weights' weight and bias 0, the
    two projections Xavier-uniform (gain 1) with bias 0.  The offsets' output is ordered (head,
    level, point, xy) and the attention weights' (head, level, point), as mmcv's.
    """

    def __init__(self, embed_dims=256, num_heads=8, num_levels=4, num_points=4, dropout=0.1,
                 method='gather', **kwargs):
        super(MultiScaleDeformableAttention, self).__init__(**kwargs)
        if embed_dims % num_heads:
            raise ValueError('embed_dims ({}) must be a multiple of num_heads ({})'.format(
                embed_dims, num_heads))
        if method not in _METHODS:
            raise ValueError('method must be one of {}, got {!r}'.format(sorted(_METHODS),
                                                                         method))
        self.method = method
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        xavier = mx.init.Xavier(rnd_type='uniform', factor_type='avg', magnitude=3)
        bias = sampling_offset_bias(num_heads, num_levels, num_points)
        with self.name_scope():
            self.sampling_offsets = nn.Dense(
                num_heads * num_levels * num_points * 2, flatten=False, in_units=embed_dims,
                weight_initializer='zeros', bias_initializer=mx.init.Constant(bias),
                prefix='sampling_offsets_')
            self.attention_weights = nn.Dense(
                num_heads * num_levels * num_points, flatten=False, in_units=embed_dims,
                weight_initializer='zeros', bias_initializer='zeros',
                prefix='attention_weights_')
            self.value_proj = nn.Dense(embed_dims, flatten=False, in_units=embed_dims,
                                       weight_initializer=xavier, bias_initializer='zeros',
                                       prefix='value_proj_')
            self.output_proj = nn.Dense(embed_dims, flatten=False, in_units=embed_dims,
                                        weight_initializer=xavier, bias_initializer='zeros',
                                        prefix='output_proj_')
            self.dropout = nn.Dropout(dropout)

    def _projected_values(self, F, value, value_masks):
        """Per level: value tokens (N, HW, C) projected, padded pixels zeroed (mmcv's
        ``masked_fill``)."""
        projected = []
        for tokens, mask in zip(value, value_masks):
            keep = 1 - mask.reshape((0, -3)).expand_dims(2)  # (N, HW, 1)
            v = self.value_proj(tokens)  # (N, HW, C)
            projected.append(v * F.broadcast_like(keep, v))  # (N, HW, C)
        return projected

    def _sampling_locations(self, F, reference_points, offsets, point_scale):
        """Locations (N, Q, M, L, P, 2) of ``offsets`` (N, Q, M, L, P, 2) around the reference
        points (N, Q, L, 2 or 4); ``point_scale`` (L, 2) is ``1 / (W_l, H_l)``."""
        ref = reference_points
        xy = F.slice_axis(ref, axis=-1, begin=0, end=2)  # (N, Q, L, 2)
        # boxes: (w, h); points: (x, y) again, only to keep one graph for both (weighted by 0)
        wh = F.slice_axis(F.concat(ref, ref, dim=-1), axis=-1, begin=2, end=4)  # (N, Q, L, 2)
        is_box = _axis_size(F, ref, -1) == 4  # (1,): 1 for (..., 4), 0 for (..., 2)
        box_scale = wh * (0.5 / self.num_points)  # (N, Q, L, 2)
        point_scale = point_scale.reshape((1, 1, -1, 2))  # (1, 1, L, 2)
        scale = F.broadcast_add(F.broadcast_mul(box_scale, is_box),
                                F.broadcast_mul(point_scale, 1 - is_box))  # (N, Q, L, 2)
        scale = scale.expand_dims(2).expand_dims(4)  # (N, Q, 1, L, 1, 2)
        xy = xy.expand_dims(2).expand_dims(4)  # (N, Q, 1, L, 1, 2)
        # broadcast_like + elementwise: MXNet's broadcast_mul/add backward is far slower
        return F.broadcast_like(xy, offsets) + offsets * F.broadcast_like(
            scale, offsets)  # (N, Q, M, L, P, 2)

    def _attend(self, F, prepared, value_masks, point_scale, query, reference_points, query_pos,
                identity):
        """One query group (N, Q, C) -> (N, Q, C)."""
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        m, l, p = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(query).reshape((0, 0, m, l, p, 2))  # (N, Q, M, L, P, 2)
        weights = self.attention_weights(query).reshape((0, 0, m, l * p))  # (N, Q, M, L*P)
        weights = F.softmax(weights, axis=-1).reshape((0, 0, 0, l, p))  # (N, Q, M, L, P)
        locations = self._sampling_locations(F, reference_points, offsets, point_scale)
        sample = _METHODS[self.method][1]
        out = sample(F, prepared, value_masks, locations, weights, m)  # (N, Q, C)
        return self.dropout(self.output_proj(out)) + identity

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, value, value_masks, reference_points, query_pos=None,
                       identity=None):
        """Attend from the queries to the multi-level value.

        Parameters
        ----------
        query : (N, Q, C) or list of G such groups
            Queries (without positional encoding).
        value : list of L arrays (N, H_l * W_l, C), or None
            Value tokens per level; None: ``query``, which must then be a list of L levels.
        value_masks : list of L arrays (N, H_l, W_l)
            1 = padded pixel (its value is zeroed after the projection), 0 = valid.
        reference_points : (N, Q, L, 2) or (N, Q, L, 4), or a list of G of them
            Points ``(x, y)`` or boxes ``(cx, cy, w, h)``, normalised to [0, 1] of the padded map.
        query_pos : like ``query``, or None
            Added to the query for the offsets and attention weights only.
        identity : like ``query``, or None
            The residual (default: ``query``).

        Returns
        -------
        (N, Q, C), or a list of G when ``query`` is a list.
        """
        grouped = isinstance(query, (list, tuple))
        groups = _as_groups(query, grouped, 1)
        value = groups if value is None else value
        if len(value) != self.num_levels or len(value_masks) != self.num_levels:
            raise ValueError('expected {} value levels and masks, got {} and {}'.format(
                self.num_levels, len(value), len(value_masks)))
        prepare = _METHODS[self.method][0]
        prepared = prepare(F, self._projected_values(F, value, value_masks), value_masks,
                           self.num_heads)
        point_scale = 1 / F.stack(*_level_sizes(F, value_masks), axis=1)  # (L, 2): 1 / (W, H)
        outs = [self._attend(F, prepared, value_masks, point_scale, *args) for args in zip(
            groups, *[_as_groups(x, grouped, len(groups))
                      for x in (reference_points, query_pos, identity)])]
        return outs if grouped else outs[0]
