"""Multi-scale deformable attention and the sine positional encoding (``gluonpan.nn``).

The core is checked against a numpy bilinear sampler written here (torch's ``grid_sample`` with
zero padding and ``align_corners=False``: pixel ``i`` centred at ``(i + 0.5) / W``), against a
fixture made with torch itself (``tools/reference/make_msda_fixture.py``: forward and autograd
gradients) and by finite differences in float64.  The block is checked against a numpy version of
mmcv 1.x's ``MultiScaleDeformableAttention.forward``, the positional encoding against mmdet's
``SinePositionalEncoding`` formula in numpy.
"""
import math
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluonpan.nn.deformable_attention import MultiScaleDeformableAttention, ms_deform_attn_core
from gluonpan.nn.positional_encoding import SinePositionalEncoding, all_valid_mask

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'msda_reference.npz')
#: (H, W) of the levels of the numpy checks: a 1xW, an Hx1 and a 1x1 level among them
LEVELS = ((3, 5), (1, 4), (4, 1), (2, 3), (1, 1))


# ---------------------------------------------------------------------------- numpy references
def np_bilinear(img, x, y):
    """Zero-padded bilinear sample of ``img`` (C, H, W) at pixel coordinates ``(x, y)``."""
    _, h, w = img.shape
    x0, y0 = math.floor(x), math.floor(y)
    out = np.zeros(img.shape[0], np.float64)
    for xi in (x0, x0 + 1):
        for yi in (y0, y0 + 1):
            if 0 <= xi < w and 0 <= yi < h:
                out += (1 - abs(x - xi)) * (1 - abs(y - yi)) * img[:, yi, xi]
    return out


def np_msda(values, loc, weights, num_heads):
    """Deformable attention in numpy: values (N, M*D, H_l, W_l), loc (N, Q, M, L, P, 2),
    weights (N, Q, M, L, P) -> (N, Q, M*D)."""
    n, q, m, num_levels, p, _ = loc.shape
    d = values[0].shape[1] // num_heads
    out = np.zeros((n, q, m, d))
    for b, i, head, lvl, k in np.ndindex(n, q, m, num_levels, p):
        img = values[lvl][b, head * d:(head + 1) * d].astype(np.float64)
        h, w = img.shape[1:]
        x, y = loc[b, i, head, lvl, k].astype(np.float64) * (w, h) - 0.5
        out[b, i, head] += weights[b, i, head, lvl, k] * np_bilinear(img, x, y)
    return out.reshape(n, q, m * d)


def special_locations(rng, shape, levels):
    """Locations (N, Q, M, L, P, 2): pixel centres and edges, points half a pixel and more
    outside, and uniform ones in [-0.25, 1.25]."""
    offsets = np.array([-1.7, -1., -0.5, -0.25, 0., 0.3, 0.5])  # pixels from an edge
    loc = rng.uniform(-0.25, 1.25, size=shape)
    for lvl, (h, w) in enumerate(levels):
        for axis, size in ((0, w), (1, h)):
            sel = (Ellipsis, lvl, slice(None), axis)
            pixel = np.concatenate([offsets, size - 1 - offsets])
            special = (pixel[rng.randint(0, len(pixel), loc[sel].shape)] + 0.5) / size
            loc[sel] = np.where(rng.rand(*loc[sel].shape) < 0.7, special, loc[sel])
    return loc


def np_block(net, query, value, masks, ref, query_pos):
    """mmcv's ``MultiScaleDeformableAttention.forward`` (batch first, eval) in numpy."""
    par = {k[len(net.prefix):]: v.data().asnumpy().astype(np.float64)
           for k, v in net.collect_params().items()}

    def dense(x, name):
        return x @ par[name + '_weight'].T + par[name + '_bias']
    n, q, _ = query.shape
    m, num_levels, p = net.num_heads, net.num_levels, net.num_points
    maps, sizes = [], []
    for tokens, mask in zip(value, masks):
        v = dense(tokens, 'value_proj') * (1 - mask.reshape(n, -1, 1))
        maps.append(v.transpose(0, 2, 1).reshape((n, -1) + mask.shape[1:]))
        sizes.append((mask.shape[2], mask.shape[1]))
    qp = query + query_pos
    off = dense(qp, 'sampling_offsets').reshape(n, q, m, num_levels, p, 2)
    logits = dense(qp, 'attention_weights').reshape(n, q, m, num_levels * p)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn = (attn / attn.sum(-1, keepdims=True)).reshape(n, q, m, num_levels, p)
    if ref.shape[-1] == 2:
        loc = ref[:, :, None, :, None, :] + off / np.array(sizes)[None, None, None, :, None, :]
    else:
        loc = ref[:, :, None, :, None, :2] + off / p * ref[:, :, None, :, None, 2:] * 0.5
    return dense(np_msda(maps, loc, attn, m), 'output_proj') + query


def np_sine(mask, num_feats, temperature, normalize, scale, eps, offset):
    """mmdet's ``SinePositionalEncoding.forward`` in numpy float32."""
    not_mask = 1 - mask.astype(np.float32)
    y = np.cumsum(not_mask, 1, dtype=np.float32)
    x = np.cumsum(not_mask, 2, dtype=np.float32)
    if normalize:
        y = (y + offset) / (y[:, -1:, :] + eps) * scale
        x = (x + offset) / (x[:, :, -1:] + eps) * scale
    dim_t = np.arange(num_feats, dtype=np.float32)
    dim_t = (temperature ** (2 * (dim_t // 2) / num_feats)).astype(np.float32)
    pos_x, pos_y = x[..., None] / dim_t, y[..., None] / dim_t
    n, h, w = mask.shape
    pos_x = np.stack((np.sin(pos_x[..., 0::2]), np.cos(pos_x[..., 1::2])), 4).reshape(n, h, w, -1)
    pos_y = np.stack((np.sin(pos_y[..., 0::2]), np.cos(pos_y[..., 1::2])), 4).reshape(n, h, w, -1)
    return np.concatenate((pos_y, pos_x), 3).transpose(0, 3, 1, 2)


# ------------------------------------------------------------------------------------- the core
def run_core(values, loc, weights, num_heads, dtype, method, cotangent=None):
    """Our core on numpy inputs, value maps (N, C, H, W) given as tokens; with ``cotangent``
    also the gradients of ``sum(out * cot)`` (those of the values as maps)."""
    tokens = [v.reshape(v.shape[:2] + (-1,)).transpose(0, 2, 1) for v in values]  # (N, HW, C)
    args = [mx.nd.array(x, dtype=dtype) for x in tokens + [loc, weights]]
    shapes = [mx.nd.zeros((v.shape[0],) + v.shape[2:], dtype=dtype) for v in values]
    for a in args:
        a.attach_grad()
    with autograd.record():
        out = ms_deform_attn_core(mx.nd, args[:-2], shapes, args[-2], args[-1], num_heads,
                                  method)
    if cotangent is None:
        return out.asnumpy()
    out.backward(mx.nd.array(cotangent, dtype=dtype))
    grads = [a.grad.asnumpy() for a in args]
    grads[:-2] = [g.transpose(0, 2, 1).reshape(v.shape) for g, v in zip(grads, values)]
    return out.asnumpy(), grads


@pytest.mark.parametrize('method', ['gather', 'bilinear'])
@pytest.mark.parametrize('dtype,tol', [('float32', 2e-6), ('float64', 1e-12)])
def test_core_matches_numpy_sampler(dtype, tol, method):
    rng = np.random.RandomState(0)
    n, q, m, d, p = 2, 5, 2, 3, 4
    values = [rng.normal(size=(n, m * d, h, w)) for h, w in LEVELS]
    loc = special_locations(rng, (n, q, m, len(LEVELS), p, 2), LEVELS)
    loc[0, 0, 0, :, 0] = [1e9, -1e9]  # far away: zeros, no overflow
    weights = rng.uniform(size=(n, q, m, len(LEVELS), p))
    ours = run_core(values, loc, weights, m, dtype, method)
    assert ours.shape == (n, q, m * d)
    np.testing.assert_allclose(ours, np_msda(values, loc, weights, m), rtol=0, atol=tol)


@pytest.mark.parametrize('method', ['gather', 'bilinear'])
def test_core_matches_torch_fixture(method):
    fix = np.load(FIXTURE)
    values = [fix['value_{}'.format(lvl)] for lvl in range(4)]
    levels = [v.shape[2:] for v in values]
    assert sorted(levels) == [(1, 1), (1, 4), (3, 5), (4, 1)]
    m = 2
    for dtype, tol in (('float64', 1e-12), ('float32', 1e-5)):
        out, grads = run_core(values, fix['locations'], fix['weights'], m, dtype, method,
                              cotangent=fix['cotangent'])
        np.testing.assert_allclose(out, fix['output'], rtol=0, atol=tol)
        for lvl in range(4):
            np.testing.assert_allclose(grads[lvl], fix['grad_value_{}'.format(lvl)], rtol=0,
                                       atol=tol)
        np.testing.assert_allclose(grads[5], fix['grad_weights'], rtol=0, atol=5 * tol)
        # the location gradient jumps where a coordinate crosses a pixel centre: skip those
        pixel = fix['locations'].astype(np.float64) * np.array(
            [(w, h) for h, w in levels])[:, None, :] - 0.5
        smooth = np.abs(pixel - np.round(pixel)) > 1e-3
        assert smooth.mean() > 0.7
        if method == 'gather' and dtype == 'float64':  # torch's side at the kinks too
            smooth[:] = True
        np.testing.assert_allclose(grads[4][smooth], fix['grad_locations'][smooth], rtol=0,
                                   atol=20 * tol)


@pytest.mark.parametrize('method', ['gather', 'bilinear'])
def test_core_gradients_by_finite_differences(method):
    rng = np.random.RandomState(1)
    levels, n, q, m, d, p = ((2, 3), (1, 3), (3, 1)), 1, 3, 2, 2, 2
    values = [rng.normal(size=(n, m * d, h, w)) for h, w in levels]
    # pixel coordinates at least 0.15 from a pixel centre (the kinks), inside, on and off the map
    loc = np.zeros((n, q, m, len(levels), p, 2))
    for lvl, (h, w) in enumerate(levels):
        for axis, size in ((0, w), (1, h)):
            pixel = rng.randint(-1, size + 1, loc[..., lvl, :, axis].shape) + \
                rng.uniform(0.15, 0.85, loc[..., lvl, :, axis].shape)
            loc[..., lvl, :, axis] = (pixel + 0.5) / size
    weights = rng.uniform(size=(n, q, m, len(levels), p))
    cot = rng.normal(size=(n, q, m * d))
    _, grads = run_core(values, loc, weights, m, 'float64', method, cotangent=cot)
    inputs = values + [loc, weights]
    eps = 1e-6
    for k, x in enumerate(inputs):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            saved = x[idx]
            losses = []
            for step in (eps, -eps):
                x[idx] = saved + step
                losses.append((run_core(inputs[:-2], inputs[-2], inputs[-1], m, 'float64',
                                        method) * cot).sum())
            x[idx] = saved
            numeric[idx] = (losses[0] - losses[1]) / (2 * eps)
        assert np.abs(numeric).max() > 0.1, k
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-6, atol=1e-7, err_msg=str(k))


# ------------------------------------------------------------------------------------ the block
def make_block(embed_dims=16, num_heads=2, num_levels=3, num_points=2, seed=0, **kwargs):
    """An initialised block whose offsets and attention weights vary with the query."""
    net = MultiScaleDeformableAttention(embed_dims, num_heads, num_levels, num_points, **kwargs)
    net.initialize()
    rng = np.random.RandomState(seed)
    for dense, gain in ((net.sampling_offsets, 0.5), (net.attention_weights, 0.5)):
        dense.weight.set_data(mx.nd.array(rng.normal(0, gain, dense.weight.shape)))
    net.value_proj.bias.set_data(mx.nd.array(rng.normal(0, 1, (embed_dims,))))
    return net


def block_inputs(rng, shapes, n=2, q=5, c=16, ref_dims=2, padded=((2, 3), (1, 1), (1, 1))):
    """The block's arguments: queries, value tokens, masks (the last image padded to ``padded``
    valid rows / columns per level; padded tokens hold garbage), reference points (N, Q, L,
    ref_dims) and query_pos."""
    value, masks = [], []
    for (h, w), (vh, vw) in zip(shapes, padded):
        mask = np.zeros((n, h, w))
        mask[-1, vh:, :] = mask[-1, :, vw:] = 1
        value.append(rng.normal(size=(n, h * w, c)) + 100 * mask.reshape(n, -1, 1))
        masks.append(mask)
    query, pos = rng.normal(size=(n, q, c)), rng.normal(size=(n, q, c))
    ref = rng.uniform(0, 1, size=(n, q, len(shapes), ref_dims))
    if ref_dims == 4:
        ref[..., 2:] = rng.uniform(0.1, 0.6, ref[..., 2:].shape)
    return query, value, masks, ref, pos


def nd_args(*arrays):
    return [[mx.nd.array(a) for a in x] if isinstance(x, list) else mx.nd.array(x)
            for x in arrays]


@pytest.mark.parametrize('method', ['gather', 'bilinear'])
@pytest.mark.parametrize('ref_dims', [2, 4])
def test_block_matches_mmcv_numpy(ref_dims, method):
    net = make_block(method=method)
    shapes = ((3, 4), (1, 5), (4, 1))
    query, value, masks, ref, pos = block_inputs(np.random.RandomState(2), shapes,
                                                 ref_dims=ref_dims)
    expected = np_block(net, query, value, masks, ref, pos)
    ours = net(*nd_args(query, value, masks, ref, pos))
    np.testing.assert_allclose(ours.asnumpy(), expected, rtol=0, atol=2e-5)
    # the same hybridized instance takes points and boxes, and another size
    net.hybridize()
    np.testing.assert_allclose(net(*nd_args(query, value, masks, ref, pos)).asnumpy(), expected,
                               rtol=0, atol=2e-5)
    query, value, masks, ref, pos = block_inputs(np.random.RandomState(3), ((2, 7), (3, 3),
                                                                            (1, 2)), q=4,
                                                 ref_dims=6 - ref_dims, padded=((1, 4),) * 3)
    np.testing.assert_allclose(net(*nd_args(query, value, masks, ref, pos)).asnumpy(),
                               np_block(net, query, value, masks, ref, pos), rtol=0, atol=2e-5)


@pytest.mark.parametrize('method', ['gather', 'bilinear'])
def test_block_hybridized_equals_imperative_across_sizes(method):
    net = make_block(seed=4, method=method)
    rng = np.random.RandomState(5)
    cases = [block_inputs(rng, s, n=n, q=q) for s, n, q in (
        (((3, 4), (2, 2), (1, 1)), 2, 5), (((5, 8), (3, 4), (2, 2)), 1, 9),
        (((3, 4), (2, 2), (1, 1)), 2, 5))]
    imperative = [net(*nd_args(*c)).asnumpy() for c in cases]
    net.hybridize(static_alloc=True)  # as gluonpan's train / evaluate tools
    for case, want in zip(cases, imperative):
        got = net(*nd_args(*case)).asnumpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_block_query_groups_share_the_value():
    """The encoder's use: one query group per level, value = the queries themselves."""
    net = make_block(seed=6)
    shapes = ((3, 4), (2, 2), (1, 3))
    rng = np.random.RandomState(7)
    _, value, masks, _, _ = block_inputs(rng, shapes)
    refs = [rng.uniform(size=(2, h * w, 3, 2)) for h, w in shapes]
    pos = [rng.normal(size=v.shape) for v in value]
    value_nd, masks_nd, refs_nd, pos_nd = nd_args(value, masks, refs, pos)
    singles = [net(value_nd[lvl], value_nd, masks_nd, refs_nd[lvl], pos_nd[lvl])
               for lvl in range(3)]
    net.hybridize()  # a hybridized instance keeps the argument structure of its first call
    outs = net(value_nd, None, masks_nd, refs_nd, pos_nd)
    assert [o.shape for o in outs] == [v.shape for v in value]
    for lvl, single in enumerate(singles):
        np.testing.assert_allclose(outs[lvl].asnumpy(), single.asnumpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(
            outs[lvl].asnumpy(), np_block(net, value[lvl], value, masks, refs[lvl], pos[lvl]),
            rtol=0, atol=2e-5)


def test_padding_masks_hide_padded_values():
    net = make_block(seed=8)
    shapes = ((3, 4), (2, 3), (2, 2))
    query, value, masks, ref, pos = block_inputs(np.random.RandomState(9), shapes)
    ref = ref * 1.5 - 0.25  # also points on the padded part and outside
    other = [v + 1e3 * np.random.RandomState(10).normal(size=v.shape) * m.reshape(2, -1, 1)
             for v, m in zip(value, masks)]
    assert any(m.sum() for m in masks)
    out = net(*nd_args(query, value, masks, ref, pos)).asnumpy()
    np.testing.assert_allclose(net(*nd_args(query, other, masks, ref, pos)).asnumpy(), out,
                               rtol=0, atol=1e-4)
    # without the masks the garbage shows (the check above can fail)
    zeros = [np.zeros_like(m) for m in masks]
    unmasked = net(*nd_args(query, value, zeros, ref, pos)).asnumpy()
    assert np.abs(unmasked[1] - out[1]).max() > 1.
    np.testing.assert_allclose(unmasked[0], out[0], rtol=0, atol=1e-5)  # image 0 unpadded


def test_block_init_follows_mmcv():
    net = MultiScaleDeformableAttention(num_levels=2, num_points=3)
    net.initialize()
    directions = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]
    expected = np.array([[[[k * x, k * y] for k in (1, 2, 3)]] * 2 for x, y in directions])
    bias = net.sampling_offsets.bias.data().asnumpy()
    np.testing.assert_allclose(bias, expected.reshape(-1), rtol=0, atol=1e-6)
    for arr in (net.sampling_offsets.weight, net.attention_weights.weight,
                net.attention_weights.bias, net.value_proj.bias, net.output_proj.bias):
        assert not arr.data().asnumpy().any(), arr.name
    bound = math.sqrt(6. / (256 + 256))  # xavier_uniform, gain 1
    for dense in (net.value_proj, net.output_proj):
        w = dense.weight.data().asnumpy()
        assert w.shape == (256, 256) and np.abs(w).max() <= bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound


def test_parameter_count_and_shapes_match_mmcv():
    net = MultiScaleDeformableAttention()
    net.initialize()
    shapes = {k[len(net.prefix):]: v.shape for k, v in net.collect_params().items()}
    # mmcv's nn.Linear weights (out, in): sampling_offsets 256 -> 8*4*4*2, attention_weights
    # 256 -> 8*4*4, value_proj and output_proj 256 -> 256; each with its bias
    assert shapes == {'sampling_offsets_weight': (256, 256), 'sampling_offsets_bias': (256,),
                      'attention_weights_weight': (128, 256), 'attention_weights_bias': (128,),
                      'value_proj_weight': (256, 256), 'value_proj_bias': (256,),
                      'output_proj_weight': (256, 256), 'output_proj_bias': (256,)}
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert total == (256 * 256 + 256) * 3 + 256 * 128 + 128 == 230272


def test_block_dropout_and_level_count():
    net = make_block(seed=11, dropout=0.5)
    shapes = ((3, 4), (2, 3), (2, 2))
    query, value, masks, ref, pos = block_inputs(np.random.RandomState(12), shapes)
    args = nd_args(query, value, masks, ref, pos)
    with autograd.train_mode():
        out = net(*args).asnumpy()
    dropped = np.isclose(out, query, rtol=0, atol=1e-7).mean()  # the residual is never dropped
    assert 0.35 < dropped < 0.65
    with pytest.raises(ValueError):
        net(args[0], args[1][:2], args[2][:2], args[3], args[4])


# ---------------------------------------------------------------------- the positional encoding
@pytest.mark.parametrize('normalize,offset', [(True, -0.5), (True, 0.), (False, 0.)])
def test_sine_positional_encoding_matches_mmdet(normalize, offset):
    mask = np.zeros((3, 5, 7), np.float32)
    mask[1, 3:, :] = mask[1, :, 4:] = 1  # batch padding (bottom, right)
    mask[2] = np.random.RandomState(13).rand(5, 7) < 0.3  # any mask: a cumsum, not a box
    mask[2, :, 6] = 1  # a column without valid pixels
    kwargs = dict(num_feats=8, temperature=10000, normalize=normalize, scale=2 * math.pi,
                  eps=1e-6, offset=offset)
    pe = SinePositionalEncoding(**kwargs)
    expected = np_sine(mask, **kwargs)
    got = pe(mx.nd.array(mask)).asnumpy()
    pe.hybridize()
    np.testing.assert_allclose(pe(mx.nd.array(mask, dtype='uint8')).asnumpy(), got, rtol=0,
                               atol=1e-6)
    assert got.shape == (3, 16, 5, 7)
    # rows / columns without a valid pixel have huge float32 phases: just sines there
    col_valid = (1 - mask).sum(1, keepdims=True) > 0  # (N, 1, W): y features usable
    row_valid = (1 - mask).sum(2, keepdims=True) > 0  # (N, H, 1): x features usable
    usable = np.concatenate([np.broadcast_to(col_valid[:, None], (3, 8, 5, 7)),
                             np.broadcast_to(row_valid[:, None], (3, 8, 5, 7))], axis=1)
    if normalize and offset:
        assert not usable.all()
    else:
        usable[:] = True
    np.testing.assert_allclose(got[usable], expected[usable], rtol=0, atol=1e-5)
    assert np.all(np.abs(got) <= 1)


def test_sine_positional_encoding_without_padding():
    feature = mx.nd.ones((2, 4, 3, 6))
    mask = all_valid_mask(mx.nd, feature)
    assert mask.shape == (2, 3, 6) and not mask.asnumpy().any()
    pe = SinePositionalEncoding(num_feats=4)
    got = pe(mask).asnumpy()
    np.testing.assert_allclose(got, np_sine(np.zeros((2, 3, 6)), 4, 10000, True, 2 * math.pi,
                                            1e-6, -0.5), rtol=0, atol=1e-5)
    # defaults are Panoptic SegFormer's: 128 features per axis, y first: pos[0] = sin(y0)
    full = SinePositionalEncoding()(mask).asnumpy()
    assert full.shape == (2, 256, 3, 6)
    np.testing.assert_allclose(full[0, 0, :, 0],
                               np.sin((np.arange(3) + 0.5) / (3 + 1e-6) * 2 * math.pi),
                               rtol=0, atol=1e-6)
