"""PanopticFCN's network: architecture (parameter counts from layer shapes), the two modes,
hybridization, the in-graph losses against numpy references, bad inputs."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluonpan.errors import UsageError
from gluonpan.model_zoo import count_parameters, get_model, get_model_list
from gluonpan.model_zoo.panoptic_fcn import LOSS_NAMES, TRAIN_INPUTS, level_shapes
from gluonpan.model_zoo.panoptic_fcn.kernels import (guided_thing_kernels, position_losses,
                                                     thing_mask_loss)
from gluonpan.nn.fpn import FPN
from gluonpan.nn.kernel_heads import coord_features
from gluonpan.nn.losses import dice_loss, sigmoid_focal_loss

TINY = dict(fpn_channels=32, head_channels=32, semantic_channels=32, encoder_channels=16)
#: learnable values of gluoncv's ResNet-18/50 v1b without the classifier (torchvision's counts)
RESNET = {'resnet18_v1b': 11689512 - 513000, 'resnet50_v1b': 25557032 - 2049000}


def _conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def _expected_parameters(backbone, c2_to_c5, T, S, deform, C=256, E=64, semantic=256):
    """The architecture's count, layer by layer (the reference's modules)."""
    fpn = sum(_conv(c, C, 1) + _conv(C, C, 3) for c in c2_to_c5) + 2 * _conv(C, C, 3)  # + P6, P7
    gn = 2 * semantic  # GroupNorm gamma + beta
    # towers of P2, P3, P4 (2 convs), P5 (3 convs); the first conv of each reads the FPN
    semantic_fpn = sum(_conv(C if i in (0, 1, 2, 4) else semantic, semantic, 3, False) + gn
                       for i in range(7))
    encoder = _conv(semantic + 2, E, 3) + 2 * _conv(E, E, 3)
    tower = 3 * (_conv(C, C, 3, False) + 2 * C)
    if deform:
        tower += 3 * _conv(C, 27, 3)  # offset + modulation conv of each DCNv2
    position = tower + _conv(C, T, 3) + _conv(C, S, 3)
    kernel = _conv(C + 2, C, 3, False) + 2 * _conv(C, C, 3, False) + 3 * 2 * C + _conv(C, C, 3)
    embeds = 2 * _conv(C, E, 1)
    return RESNET[backbone] + fpn + semantic_fpn + encoder + position + kernel + embeds


def test_zoo_names_are_registered():
    names = get_model_list()
    for name in ('panoptic_fcn_resnet50_v1b_coco', 'panoptic_fcn_resnet50_v1b_citys',
                 'panoptic_fcn_resnet101_v1b_coco', 'panoptic_fcn_resnet18_v1b_citys'):
        assert name in names


@pytest.mark.parametrize('deform', [False, True])
def test_parameter_count_is_the_architectures(deform):
    net = get_model('panoptic_fcn_resnet18_v1b_citys', deform=deform)
    assert count_parameters(net) == _expected_parameters('resnet18_v1b', (64, 128, 256, 512),
                                                         T=8, S=12, deform=deform)


def test_fpn_p6_p7_are_ceil_halves():
    fpn = FPN((8, 8, 8, 8), 8, top='p6p7')
    fpn.initialize()
    c = [mx.nd.zeros((1, 8, 64 // s, 96 // s)) for s in (4, 8, 16, 32)]  # a 64x96 input's C2..C5
    shapes = [o.shape[2:] for o in fpn(*c)]
    assert shapes == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]  # P6, P7: ceil(x / 2)
    assert level_shapes(256, 512) == [(32, 64), (16, 32), (8, 16), (4, 8), (2, 4)]
    assert level_shapes(96, 160)[-2:] == [(2, 3), (1, 2)]


def test_coord_channels_are_rows_then_columns():
    out = coord_features(mx.nd, mx.nd.zeros((2, 1, 3, 5))).asnumpy()  # (2, 3, 3, 5)
    np.testing.assert_allclose(out[1, 1, :, 0], [-1, 0, 1])
    np.testing.assert_allclose(out[0, 2, 0], np.linspace(-1, 1, 5), atol=1e-7)
    assert (out[:, 1] == out[:, 1, :, :1]).all() and (out[:, 2] == out[:, 2, :1]).all()
    single = coord_features(mx.nd, mx.nd.zeros((1, 1, 1, 2))).asnumpy()
    np.testing.assert_allclose(single[0, 1:, 0], [[-1, -1], [-1, 1]])


@pytest.fixture(scope='module')
def net():
    return get_model('panoptic_fcn_resnet18_v1b_citys', **TINY)


def test_inference_outputs_and_hybridized_graph(net):
    x = mx.nd.random.uniform(shape=(1, 3, 96, 160))
    shapes = level_shapes(96, 160)
    P = sum(h * w for h, w in shapes)
    outs = net.predict(x)
    assert [o.shape for o in outs] == [(1, 8, P), (1, 12, P), (1, P, 16), (1, 60, 16), (1, 60, 2),
                                       (1, 16, 24, 40)]
    stats = outs[4][0].asnumpy().reshape(5, 12, 2)  # (level, class, [count, sum])
    np.testing.assert_array_equal(stats[:, :, 0].sum(1), [h * w for h, w in shapes])
    assert ((outs[0].asnumpy() >= 0) & (outs[0].asnumpy() < 1)).all()
    net.hybridize(static_alloc=True)
    try:
        for a, b in zip(outs, net.predict(x)):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)
    finally:
        net.hybridize(active=False)


def _batch(B=2, H=64, W=128, N=3, T=8, S=12, seed=0):
    rng = np.random.default_rng(seed)
    P = sum(h * w for h, w in level_shapes(H, W))
    guide = np.zeros((B, N, P), np.uint8)
    guide[:, :, 5:30] = 1
    return dict(data=mx.nd.array(rng.standard_normal((B, 3, H, W))),
                center_targets=mx.nd.array(rng.random((B, T, P)) * (rng.random((B, T, P)) > .95)),
                stuff_targets=mx.nd.array(rng.random((B, S, P)) * (rng.random((B, S, P)) > .6)),
                stuff_masks=mx.nd.array(rng.random((B, S, H // 4, W // 4))),
                inst_masks=mx.nd.array(rng.random((B, N, H // 4, W // 4)) > .5),
                inst_guide=mx.nd.array(guide, dtype=np.uint8),
                inst_classes=mx.nd.array([[0, 3, -1], [5, -1, -1]][:B]))


def test_training_losses_are_finite_named_and_the_same_hybridized(net):
    batch = _batch()
    got = []
    for hybrid in (False, True):
        net.hybridize(active=hybrid, static_alloc=True)
        with autograd.record():
            losses = net.train_losses(batch)
        autograd.backward(list(losses.values()))
        got.append({k: float(v.asscalar()) for k, v in losses.items()})
        grad = net.kernel_head.out_conv.weight.grad().abs().sum().asscalar()
        assert np.isfinite(grad) and grad > 0
    net.hybridize(active=False)
    assert list(got[0]) == list(LOSS_NAMES)
    assert all(np.isfinite(v) and v > 0 for v in got[0].values())
    for k in LOSS_NAMES:
        assert got[0][k] == pytest.approx(got[1][k], rel=1e-5)


def test_bad_training_batches_are_named(net):
    batch = _batch()
    batch['inst_guide'] = batch['inst_guide'][:, :, :10]
    with pytest.raises(ValueError, match='inst_guide'):
        net.train_losses(batch)
    with pytest.raises(KeyError, match='stuff_masks'):
        net.train_losses({k: v for k, v in _batch().items() if k != 'stuff_masks'})
    with pytest.raises(ValueError, match='multiples of 32'):
        net.predict(mx.nd.zeros((1, 3, 50, 64)))


def test_deformable_training_on_cpu_is_a_clear_error():
    net = get_model('panoptic_fcn_resnet18_v1b_citys', deform=True, **TINY)
    with pytest.raises(UsageError, match='deform=True needs a GPU'):
        with autograd.record():
            net.train_losses(_batch(B=1))
    assert len(net.predict(mx.nd.zeros((1, 3, 64, 64)))) == 6  # inference runs on the CPU


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_focal(x, t, alpha=0.25, gamma=2.):
    p = _np_sigmoid(x)
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    pt = p * t + (1 - p) * (1 - t)
    return (alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - pt) ** gamma


def test_focal_and_dice_against_numpy():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((3, 7)) * 3, rng.random((3, 7))
    got = sigmoid_focal_loss(mx.nd, mx.nd.array(x), mx.nd.array(t)).asnumpy()
    np.testing.assert_allclose(got, _np_focal(x, t), rtol=1e-4, atol=1e-7)
    p, q = rng.random((4, 9)), rng.random((4, 9))
    want = 1 - 2 * (p * q).sum(1) / ((p ** 2).sum(1) + (q ** 2).sum(1))
    np.testing.assert_allclose(dice_loss(mx.nd, mx.nd.array(p), mx.nd.array(q)).asnumpy(), want,
                               rtol=1e-5)
    assert dice_loss(mx.nd, mx.nd.zeros((1, 4)), mx.nd.zeros((1, 4))).asscalar() == 1


def test_position_losses_normalisation():
    """Things: sum over all / number of slots; stuff: per-level mean, summed, / images."""
    rng = np.random.default_rng(2)
    B, T, S = 2, 3, 2
    c, r = rng.standard_normal((B, T, 5)), rng.standard_normal((B, S, 5))
    ct, st = rng.random((B, T, 5)), (rng.random((B, S, 5)) > .5).astype(np.float32)
    area = np.zeros((B, 2, 5), np.float32)  # two levels of 2x2 and 1x1 positions
    area[:, 0, :4], area[:, 1, 4] = 1 / 4., 1.
    th, stf = position_losses(mx.nd, *[mx.nd.array(a) for a in (c, r, ct, st, area)],
                              mx.nd.array([3.]))
    assert th.asscalar() == pytest.approx(_np_focal(c, ct).sum() / 3, rel=1e-5)
    per_level = [_np_focal(r, st)[:, :, :4].mean(2), _np_focal(r, st)[:, :, 4:].mean(2)]
    assert stf.asscalar() == pytest.approx(sum(l.sum() for l in per_level) / B, rel=1e-5)


def test_guided_kernels_and_weighted_dice_against_the_references_loop():
    """The top-k positions of the slot's class score inside its guide, their kernels, and the
    dice weighted by the normalised scores, as the reference's ``loss_single_level`` and
    ``weighted_dice_loss`` compute them."""
    rng = np.random.default_rng(3)
    B, T, P, N, E, HW, k = 2, 3, 12, 2, 4, 10, 3
    logits, kernels = rng.standard_normal((B, T, P)), rng.standard_normal((B, E, P))
    guide = (rng.random((B, N, P)) > .4).astype(np.float32)
    classes = np.array([[2., 0.], [1., -1.]])
    enc, masks = rng.standard_normal((B, E, HW)), (rng.random((B, N, HW)) > .5).astype('f')
    K, w = guided_thing_kernels(mx.nd, mx.nd.array(logits), mx.nd.array(kernels),
                                mx.nd.array(guide), mx.nd.array(classes), k)
    loss = thing_mask_loss(mx.nd, K, w, mx.nd.array(enc), mx.nd.array(masks),
                           mx.nd.array(classes >= 0), k).asscalar()
    total, slots = 0., 0
    for b in range(B):
        for n in range(N):
            if classes[b, n] < 0:
                continue
            score = _np_sigmoid(logits[b, int(classes[b, n])]) * guide[b, n]  # (P,)
            top = np.argsort(-score, kind='stable')[:k]
            np.testing.assert_allclose(np.sort(w[b, n].asnumpy()), np.sort(score[top]), rtol=1e-5)
            weights = score[top] / max(score[top].sum(), 1e-8)
            for j, pos in enumerate(top):
                p = _np_sigmoid(kernels[b, :, pos] @ enc[b])
                d = 1 - 2 * (p * masks[b, n]).sum() / ((p ** 2).sum() + (masks[b, n] ** 2).sum())
                total += d * weights[j]
            slots += 1
    assert loss == pytest.approx(total / slots, rel=1e-4)

