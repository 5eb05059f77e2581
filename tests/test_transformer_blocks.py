"""The transformer blocks of ``gluonpan.nn.transformer`` against numpy versions of the PyTorch
modules the Panoptic SegFormer reference uses (``torch.nn.MultiheadAttention``, mmcv's ``FFN``,
the mask decoder's ``Attention`` / ``AttentionTail`` / ``Block``), hybridized and imperative, on
level sizes where the stride-8 map is not twice the stride-16 one."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluonpan.model_zoo.model_zoo import count_parameters
from gluonpan.nn.interpolate import resize_like
from gluonpan.nn.transformer import (FFN, AttentionMaskFusion, DeformableDecoderLayer,
                                     DeformableEncoderLayer, MaskAttention, MaskDecoderBlock,
                                     MultiHeadAttention)
from gluonpan.utils.resize import resize_bilinear

#: (h, w) of three memory levels of a 100 x 52 input: 13 x 7 is not 2 x (7 x 4)
LEVELS = ((13, 7), (7, 4), (4, 2))


# ---------------------------------------------------------------------------- numpy references
def np_linear(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_layer_norm(x, gamma, beta, eps):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def heads(x, m):
    """(B, L, C) -> (B, M, L, d)."""
    b, n, c = x.shape
    return x.reshape(b, n, m, c // m).transpose(0, 2, 1, 3)


def np_mha(query, key, value, w, b, w_out, b_out, m, key_padding_mask=None):
    """``torch.nn.MultiheadAttention`` (batch first, eval mode)."""
    c = query.shape[-1]
    q, k, v = [heads(np_linear(x, w[i * c:(i + 1) * c], b[i * c:(i + 1) * c]), m)
               for i, x in enumerate((query, key, value))]
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(c // m)  # (B, M, Nq, Nk)
    if key_padding_mask is not None:
        logits = np.where(key_padding_mask[:, None, None, :] > 0, -np.inf, logits)
    out = np_softmax(logits) @ v  # (B, M, Nq, d)
    out = out.transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], c)
    return np_linear(out, w_out, b_out)


def p(block, name):
    """A parameter of ``block`` by the end of its name, as float64 numpy."""
    found = [v for k, v in block.collect_params().items() if k.endswith(name)]
    assert len(found) == 1, (name, list(block.collect_params()))
    return found[0].data().asnumpy().astype(np.float64)


def np_mask_attention(attn, query, memory, levels, m):
    """The reference's ``Attention.forward`` (heads last, 8-channel resize, concat, Linear 24->1)
    in numpy: returns (out or None, mask (B, N, h0, w0))."""
    b, n, c = query.shape
    q = heads(np_linear(query, p(attn, '_q_weight'), p(attn, '_q_bias')), m)
    keys = np.concatenate(memory, axis=1)
    k = heads(np_linear(keys, p(attn, '_k_weight'), p(attn, '_k_bias')), m)
    logits = (q @ k.transpose(0, 1, 3, 2)) * (c // m) ** -0.5  # (B, M, N, Lk)
    a = logits.transpose(0, 2, 3, 1)  # (B, N, Lk, M)
    feats, start = [], 0
    (h0, w0) = levels[0]
    for lvl, (h, w) in enumerate(levels):
        x = a[:, :, start:start + h * w]  # (B, N, hw, M)
        start += h * w
        weight = p(attn, 'fusion_level{}_weight'.format(lvl))[:, :, 0, 0]
        x = np.maximum(np_linear(x, weight, p(attn, 'fusion_level{}_bias'.format(lvl))), 0)
        x = x.transpose(0, 1, 3, 2).reshape(b * n, m, h, w)  # (B * N, M, h, w)
        x = resize_bilinear(x, h0, w0).astype(np.float64) if lvl else x
        feats.append(x.reshape(b, n, m, h0 * w0).transpose(0, 1, 3, 2))  # (B, N, h0w0, M)
    fuse = np.concatenate([p(attn, 'fusion_fuse{}_weight'.format(lvl))[:, :, 0, 0]
                           for lvl in range(len(levels))], axis=1)  # (1, 3M)
    mask = np.maximum(np_linear(np.concatenate(feats, -1), fuse, p(attn, 'fuse_bias')), 0)
    mask = mask.reshape(b, n, h0, w0)
    if not attn.with_value:
        return None, mask
    v = heads(np_linear(keys, p(attn, '_v_weight'), p(attn, '_v_bias')), m)
    out = (np_softmax(logits) @ v).transpose(0, 2, 1, 3).reshape(b, n, c)
    return np_linear(out, p(attn, '_proj_weight'), p(attn, '_proj_bias')), mask


def nd(x):
    return mx.nd.array(x, dtype='float32')


def memory_levels(rng, b, c, levels=LEVELS):
    memory = [rng.normal(size=(b, h * w, c)) for h, w in levels]
    return memory, [nd(x) for x in memory], [mx.nd.zeros((b, h, w)) for h, w in levels]


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize('hybridize', [False, True])
def test_multi_head_attention_matches_torch_semantics(hybridize):
    rng = np.random.RandomState(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)  # dropout only acts in training
    mha.initialize()
    mha.in_proj_bias.set_data(nd(rng.normal(size=48)))
    if hybridize:
        mha.hybridize()
    q, k = rng.normal(size=(2, 3, 16)), rng.normal(size=(2, 5, 16))
    v = rng.normal(size=(2, 5, 16))
    mask = np.zeros((2, 5))
    mask[0, 3:] = 1
    mask[1, 0] = 1
    args = [p(mha, 'in_proj_weight'), p(mha, 'in_proj_bias'), p(mha, 'out_proj_weight'),
            p(mha, 'out_proj_bias'), 4]
    got = mha(nd(q), nd(k), nd(v), nd(mask)).asnumpy()
    np.testing.assert_allclose(got, np_mha(q, k, v, *args, key_padding_mask=mask), atol=1e-5)
    if hybridize:
        mha.hybridize()  # a new graph: a hybridized block keeps its first call's arguments
    got = mha(nd(q), nd(k), nd(v)).asnumpy()
    np.testing.assert_allclose(got, np_mha(q, k, v, *args), atol=1e-5)


def test_attention_dropout_acts_in_training_only():
    mha = MultiHeadAttention(8, 2, dropout=0.9)
    mha.initialize()
    x = mx.nd.random.normal(shape=(1, 6, 8))
    a, b = mha(x, x, x), mha(x, x, x)
    assert (a == b).asnumpy().all()
    with autograd.train_mode():
        assert not (mha(x, x, x) == a).asnumpy().all()


@pytest.mark.parametrize('activation, act', [('relu', lambda x: np.maximum(x, 0)),
                                             ('gelu', np_gelu)])
def test_ffn_matches_numpy(activation, act):
    rng = np.random.RandomState(1)
    ffn = FFN(8, 12, dropout=0.3, activation=activation)
    ffn.initialize()
    x = rng.normal(size=(2, 3, 8))
    hidden = act(np_linear(x, p(ffn, 'fc1_weight'), p(ffn, 'fc1_bias')))
    expected = x + np_linear(hidden, p(ffn, 'fc2_weight'), p(ffn, 'fc2_bias'))
    np.testing.assert_allclose(ffn(nd(x)).asnumpy(), expected, atol=1e-5)
    identity = rng.normal(size=(2, 3, 8))
    np.testing.assert_allclose(ffn(nd(x), nd(identity)).asnumpy(), expected - x + identity,
                               atol=1e-5)
    with pytest.raises(ValueError, match='activation'):
        FFN(8, 12, activation='tanh')


@pytest.mark.parametrize('src, dst', [((4, 5), (7, 9)), ((7, 4), (13, 7)), ((4, 2), (13, 7)),
                                      ((1, 1), (3, 2)), ((6, 6), (3, 4))])
def test_resize_like_is_torch_bilinear_by_size(src, dst):
    x = np.random.RandomState(2).normal(size=(3,) + src).astype(np.float32)
    got = resize_like(mx.nd, nd(x), mx.nd.zeros((1,) + dst)).asnumpy()
    np.testing.assert_allclose(got, resize_bilinear(x, *dst), atol=1e-5)


@pytest.mark.parametrize('with_value', [True, False])
def test_mask_attention_matches_the_reference_order(with_value):
    """Mixing each level to one channel before resizing equals the reference's resize of the
    eight head channels, concatenation and Linear(24, 1)."""
    rng = np.random.RandomState(3)
    attn = MaskAttention(16, 8, 3, with_value=with_value)
    attn.initialize()
    for lvl in range(3):  # biases that keep part of every level positive
        getattr(attn.fusion, 'level{}_bias'.format(lvl)).set_data(nd(rng.uniform(0, 1, 8)))
    attn.fusion.fuse_bias.set_data(nd([0.5]))
    query = rng.normal(size=(2, 3, 16))
    memory, memory_nd, shapes = memory_levels(rng, 2, 16)
    out = attn(nd(query), memory_nd, shapes)
    want_out, want_mask = np_mask_attention(attn, query, memory, LEVELS, 8)
    mask = out[1] if with_value else out
    assert mask.shape == (2, 3, 13, 7) and (mask.asnumpy() > 0).any()
    np.testing.assert_allclose(mask.asnumpy(), want_mask, atol=1e-4)
    if with_value:
        np.testing.assert_allclose(out[0].asnumpy(), want_out, atol=1e-4)


@pytest.mark.parametrize('self_attn', [False, True])
def test_mask_decoder_block_matches_numpy(self_attn):
    rng = np.random.RandomState(4)
    block = MaskDecoderBlock(16, 4, 3, self_attn=self_attn)
    block.initialize()
    query = rng.normal(size=(1, 5, 16))
    memory, memory_nd, shapes = memory_levels(rng, 1, 16)
    q = query
    if self_attn:
        sa = block.self_attention
        q = np_layer_norm(q + np_mha(q, q, q, p(sa, 'in_proj_weight'), p(sa, 'in_proj_bias'),
                                     p(sa, 'out_proj_weight'), p(sa, 'out_proj_bias'), 4),
                          p(block, 'norm3_gamma'), p(block, 'norm3_beta'), 1e-6)
    out, want_mask = np_mask_attention(block.attn, q, memory, LEVELS, 4)
    q = np_layer_norm(q + out, p(block, 'head_norm1_gamma'), p(block, 'head_norm1_beta'), 1e-6)
    hidden = np_gelu(np_linear(q, p(block, 'mlp_fc1_weight'), p(block, 'mlp_fc1_bias')))
    q = q + np_linear(hidden, p(block, 'mlp_fc2_weight'), p(block, 'mlp_fc2_bias'))
    q = np_layer_norm(q, p(block, 'head_norm2_gamma'), p(block, 'head_norm2_beta'), 1e-6)
    got_q, got_mask = block(nd(query), memory_nd, shapes)
    np.testing.assert_allclose(got_q.asnumpy(), q, atol=1e-4)
    np.testing.assert_allclose(got_mask.asnumpy(), want_mask, atol=1e-4)


def test_mask_block_hybridized_equals_imperative_and_takes_new_sizes():
    """Imperative first, then hybridized at two sizes, forward and backward (MXNet 1.9's MKLDNN
    convolutions once broke a hybridized backward after a transpose, see
    ``AttentionMaskFusion._level``)."""
    rng = np.random.RandomState(5)
    block = MaskDecoderBlock(16, 4, 3, self_attn=True)
    block.initialize()
    query = nd(rng.normal(size=(2, 3, 16)))
    _, memory, shapes = memory_levels(rng, 2, 16)
    want_q, want_mask = block(query, memory, shapes)
    block.hybridize()
    for levels in (LEVELS, ((8, 12), (4, 6), (2, 3))):
        _, mem, shp = memory_levels(rng, 2, 16, levels)
        mem = memory if levels == LEVELS else mem
        shp = shapes if levels == LEVELS else shp
        query.attach_grad()
        with autograd.record():
            got_q, got_mask = block(query, mem, shp)
            (got_q.sum() + got_mask.sum()).backward()
        assert got_mask.shape == (2, 3) + levels[0]
        assert np.isfinite(query.grad.asnumpy()).all()
    got_q, got_mask = block(query, memory, shapes)
    np.testing.assert_allclose(got_q.asnumpy(), want_q.asnumpy(), atol=1e-5)
    np.testing.assert_allclose(got_mask.asnumpy(), want_mask.asnumpy(), atol=1e-5)


def test_decoder_layer_is_post_norm_with_value_without_pos():
    """q = LN1(q + MHA(q + pos, q + pos, q)); q = LN2(MSDA(q, memory, pos)); q = LN3(FFN(q))."""
    rng = np.random.RandomState(6)
    layer = DeformableDecoderLayer(16, 4, 2, 2, 32, dropout=0.)
    layer.initialize()
    query, pos = rng.normal(size=(1, 5, 16)), rng.normal(size=(1, 5, 16))
    memory = [nd(rng.normal(size=(1, h * w, 16))) for h, w in ((4, 6), (2, 3))]
    masks = [mx.nd.zeros((1, h, w)) for h, w in ((4, 6), (2, 3))]
    ref = nd(rng.uniform(0.1, 0.9, size=(1, 5, 2, 4)))
    sa = layer.self_attn
    qk = query + pos
    q = np_layer_norm(query + np_mha(qk, qk, query, p(sa, 'in_proj_weight'),
                                     p(sa, 'in_proj_bias'), p(sa, 'out_proj_weight'),
                                     p(sa, 'out_proj_bias'), 4),
                      p(layer, 'norm1_gamma'), p(layer, 'norm1_beta'), 1e-5)
    q = layer.cross_attn(nd(q), memory, masks, ref, nd(pos)).asnumpy().astype(np.float64)
    q = np_layer_norm(q, p(layer, 'norm2_gamma'), p(layer, 'norm2_beta'), 1e-5)
    q = layer.ffn(nd(q)).asnumpy().astype(np.float64)
    q = np_layer_norm(q, p(layer, 'norm3_gamma'), p(layer, 'norm3_beta'), 1e-5)
    got = layer(nd(query), nd(pos), memory, masks, ref).asnumpy()
    np.testing.assert_allclose(got, q, atol=1e-4)
    layer.hybridize()
    np.testing.assert_allclose(layer(nd(query), nd(pos), memory, masks, ref).asnumpy(), got,
                               atol=1e-5)


def test_encoder_layer_shapes_and_hybridization():
    rng = np.random.RandomState(7)
    layer = DeformableEncoderLayer(16, 4, 2, 2, 32, dropout=0.)
    layer.initialize()

    def inputs(levels):
        tokens = [nd(rng.normal(size=(2, h * w, 16))) for h, w in levels]
        return (tokens, [t * 0.5 for t in tokens], [mx.nd.zeros((2, h, w)) for h, w in levels],
                [nd(rng.uniform(size=(2, h * w, 2, 2))) for h, w in levels])

    first = inputs(((4, 6), (2, 3)))
    want = layer(*first)
    layer.hybridize()
    got = layer(*first)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), atol=1e-5)
    assert [x.shape for x in layer(*inputs(((3, 5), (2, 3))))] == [(2, 15, 16), (2, 6, 16)]


def test_parameter_counts_are_the_references():
    """The rows of PANOPTIC_SEGFORMER_ARCH.md section 3 (C = 256, M = 8, L = 4, P = 4)."""
    blocks = {263168: MultiHeadAttention(256, 8), 525568: FFN(256, 1024),
              756864: DeformableEncoderLayer(), 1020544: DeformableDecoderLayer(),
              263409: MaskAttention(256, 8, 3), 131825: MaskAttention(256, 8, 3, False),
              790001: MaskDecoderBlock(256, 8, 3), 1053681: MaskDecoderBlock(256, 8, 3,
                                                                           self_attn=True),
              8 * 8 * 3 + 8 * 3 + 25: AttentionMaskFusion(8, 3)}
    for count, block in blocks.items():
        assert count_parameters(block) == count, type(block).__name__


@pytest.mark.parametrize('make', [lambda: MultiHeadAttention(10, 4), lambda: MaskAttention(10, 4),
                                  lambda: DeformableEncoderLayer(10, 4)])
def test_heads_must_divide_the_width(make):
    with pytest.raises(ValueError, match='multiple of num_heads'):
        make()
