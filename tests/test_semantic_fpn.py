"""Semantic FPN on tiny CPU inputs: zoo names, the model's two modes, and its inference rules."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn
from gluoncv.model_zoo.resnetv1b import resnet50_v1b

from gluonpan.errors import UsageError
from gluonpan.model_zoo import count_parameters, get_model, get_model_list, model_options
from gluonpan.model_zoo.semantic_fpn import (LOSS_NAMES, predict_semantic,
                                             predict_semantic_labels, slide_windows)
from gluonpan.model_zoo.semantic_fpn.inference import resize_to
from gluonpan.nn import GroupNorm, SemanticFPNHead

H, W = 64, 96
TINY = dict(fpn_channels=32, head_channels=16)
NAMES = {'semantic_fpn_resnet18_v1b_citys': 19, 'semantic_fpn_resnet50_v1b_citys': 19,
         'semantic_fpn_resnet101_v1b_citys': 19, 'semantic_fpn_resnet50_v1b_ade': 150,
         'semantic_fpn_resnet101_v1b_ade': 150}


def tiny_net(**kwargs):
    """The resnet18 Cityscapes net with tiny widths and logits of order 1 (the classifier's
    N(0, 0.001) initialisation gives logits so small that softmax is nearly linear in them, and
    averaging logits or probabilities would be indistinguishable)."""
    mx.random.seed(0)
    net = get_model('semantic_fpn_resnet18_v1b_citys', **dict(TINY, **kwargs))
    weight = net.sem_seg_head.predictor.weight
    weight.set_data(mx.nd.random.normal(scale=0.5, shape=weight.shape))
    return net


@pytest.fixture(scope='module')
def net():
    return tiny_net()


def images(shape=(1, 3, H, W), seed=0):
    return mx.nd.array(np.random.RandomState(seed).normal(size=shape))


def softmax(x):
    return mx.nd.softmax(x, axis=1)


# ------------------------------------------------------------------------------------ zoo names

@pytest.mark.parametrize('name', sorted(NAMES))
def test_every_zoo_name_builds_and_predicts_every_class_at_input_size(name):
    net = tiny_net() if 'resnet18' in name else get_model(name, **TINY)
    assert name in get_model_list()
    assert net.num_classes == NAMES[name]
    assert net.predict(images((2, 3, H, W))).shape == (2, NAMES[name], H, W)


def test_options_are_checked():
    assert model_options('semantic_fpn_resnet50_v1b_ade') == [
        'dropout', 'fpn_channels', 'head_channels', 'loss_average', 'norm', 'norm_kwargs',
        'norm_layer']
    with pytest.raises(UsageError, match='head_chanels'):
        get_model('semantic_fpn_resnet18_v1b_citys', head_chanels=16)
    with pytest.raises(UsageError, match="norm='sync'"):
        get_model('semantic_fpn_resnet18_v1b_citys', norm='sync', **TINY)


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


@pytest.mark.parametrize('name,total', [('semantic_fpn_resnet50_v1b_citys', 28478675),
                                        ('semantic_fpn_resnet50_v1b_ade', 28495574)])
def test_parameter_count_decomposition(name, total):
    """Total = backbone + FPN (P2..P5) + head (BN towers, 1x1 classifier), from layer shapes."""
    net = get_model(name)
    K = NAMES[name]
    resnet = resnet50_v1b()
    resnet.initialize()
    resnet(mx.nd.zeros((1, 3, 32, 32)))
    parts = {
        'backbone': count_parameters(resnet) - conv(2048, 1000, 1),  # without the classifier
        'fpn': sum(conv(c, 256, 1) for c in (256, 512, 1024, 2048)) + 4 * conv(256, 256, 3),
        'sem_seg_head': 4 * conv(256, 128, 3, False) + 3 * conv(128, 128, 3, False) +
        7 * 2 * 128 + conv(128, K, 1)}  # BN gamma and beta (running statistics do not count)
    for part, expected in parts.items():
        assert count_parameters(getattr(net, part)) == expected, part
    assert count_parameters(net) == sum(parts.values()) == total


def test_head_defaults_stay_panoptic_fpn():
    head = SemanticFPNHead(num_classes=5, in_channels=32, channels=32)
    assert head.dropout is None and all(isinstance(t[1], GroupNorm) for t in head.towers)
    names = sorted(head._collect_params_with_prefix())  # pylint: disable=protected-access
    assert names == sorted(['predictor.weight', 'predictor.bias'] + [
        'towers.{}.{}.{}'.format(level, 2 * k + j, p) for level, n in enumerate((1, 1, 2, 3))
        for k in range(n) for j, ps in enumerate((('weight',), ('gamma', 'beta'))) for p in ps])


def test_norm_options():
    gn = tiny_net(norm='gn', head_channels=32)
    assert all(isinstance(t[1], GroupNorm) for t in gn.sem_seg_head.towers)
    bn = tiny_net(norm_layer=nn.BatchNorm)
    assert all(type(t[1]) is nn.BatchNorm for t in bn.sem_seg_head.towers)  # noqa: E721
    assert not bn.backbone.bn1._kwargs['use_global_stats']  # trainable backbone norm too
    assert tiny_net().backbone.bn1._kwargs['use_global_stats']  # frozen by default


# ------------------------------------------------------------------------------------ the model

def batch(shape=(2, 3, H, W), num_classes=19, seed=0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, num_classes, (shape[0],) + shape[2:]).astype(np.float32)
    labels[:, :5] = 255
    return {'data': images(shape, seed), 'sem_seg': mx.nd.array(labels)}


@pytest.mark.parametrize('size', [(H, W), (50, 77)])
def test_hybridized_equals_imperative_in_both_modes(size):
    net = tiny_net(dropout=0.)
    b = batch((2, 3) + size)
    logits, loss = net.predict(b['data']), net.train_losses(b)['loss_sem_seg']
    net.hybridize()
    for _ in range(2):  # mode switches rebuild the graph
        np.testing.assert_allclose(net.predict(b['data']).asnumpy(), logits.asnumpy(),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(net.train_losses(b)['loss_sem_seg'].asnumpy(),
                                   loss.asnumpy(), rtol=1e-5)


def test_train_losses_are_finite_and_reach_the_backbone(net):
    with autograd.record():
        losses = net.train_losses(batch())
    assert tuple(losses) == LOSS_NAMES and losses['loss_sem_seg'].shape == (1,)
    assert np.isfinite(losses['loss_sem_seg'].asscalar())
    autograd.backward(list(losses.values()))
    for layer in (net.backbone.conv1, net.backbone.layer1[0].conv1, net.fpn.lateral[0],
                  net.sem_seg_head.towers[3][0]):
        assert np.abs(layer.weight.grad().asnumpy()).sum() > 0, layer.name


@pytest.mark.parametrize('average', ['labelled', 'all'])
def test_loss_ignores_255_pixels(average):
    """255 pixels add nothing; 'labelled' divides by the labelled pixels, 'all' (mmseg's
    CrossEntropyLoss with avg_non_ignore=False) by every pixel."""
    net = tiny_net(norm='gn', head_channels=32, dropout=0., loss_average=average)
    data = images()
    labels = np.full((1, H, W), 255, np.float32)
    pixels = [(3, 4, 7), (30, 50, 0), (63, 95, 18)]
    for y, x, c in pixels:
        labels[0, y, x] = c
    logp = mx.nd.log_softmax(net.predict(data), axis=1).asnumpy()
    expected = -np.sum([logp[0, c, y, x] for y, x, c in pixels]) / (
        len(pixels) if average == 'labelled' else H * W)
    loss = net.train_losses({'data': data, 'sem_seg': mx.nd.array(labels)})['loss_sem_seg']
    np.testing.assert_allclose(loss.asscalar(), expected, rtol=1e-5)
    for dtype in ('uint8', 'int32'):  # a loader's integer labels
        same = net.train_losses({'data': data, 'sem_seg': mx.nd.array(labels, dtype=dtype)})
        assert same['loss_sem_seg'].asscalar() == loss.asscalar()
    none = net.train_losses({'data': data, 'sem_seg': mx.nd.full((1, H, W), 255)})
    assert none['loss_sem_seg'].asscalar() == 0


BAD = [((1, 1, H, W), 'predict'), ((1, 3, 0, W), 'predict'), ((3, H, W), 'predict'),
       ((0, 3, H, W), 'predict'), ((1, 4, H, W), 'slide'), ((1, 3, H, 0), 'tta'),
       ((1, 3, H, W), 'labels')]


@pytest.mark.parametrize('shape,call', BAD)
def test_bad_input_is_a_value_error_naming_the_shape(net, shape, call):
    data = mx.nd.array(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=r'\({}\)'.format(', '.join(map(str, shape)))):
        if call == 'predict':
            net.predict(data)
        elif call == 'labels':
            net.train_losses({'data': data, 'sem_seg': mx.nd.zeros((1, H - 1, W))})
        else:
            predict_semantic(net, data, mode='whole' if call == 'tta' else 'slide',
                             crop_size=32, stride=16, flip=True)


def test_inference_arguments_are_checked(net):
    with pytest.raises(ValueError, match='crop_size and stride'):
        predict_semantic(net, images(), mode='slide')
    with pytest.raises(ValueError, match='outside every'):
        predict_semantic(net, images(), mode='slide', crop_size=16, stride=40)
    with pytest.raises(ValueError, match="mode='full'"):
        predict_semantic(net, images(), mode='full')


# ------------------------------------------------------------------------------------ inference

class ToyNet(nn.HybridBlock):
    """One convolution as a segmentation net: receptive field ``kernel``, optionally with
    left-right symmetric kernels (then exactly flip-equivariant)."""

    def __init__(self, kernel=1, symmetric=False, num_classes=5):
        super(ToyNet, self).__init__()
        with self.name_scope():
            self.conv = nn.Conv2D(num_classes, kernel, padding=kernel // 2, in_channels=3)
        self.initialize(mx.init.Normal(1.))
        if symmetric:
            w = self.conv.weight.data().asnumpy()
            self.conv.weight.set_data(mx.nd.array(w + w[..., ::-1]))

    def hybrid_forward(self, F, x):  # pylint: disable=arguments-differ
        return self.conv(x)

    def predict(self, data):
        return self(data)


def test_slide_windows_are_mmsegmentations_grid():
    # rows: max(64 - 48 + 31, 0) // 32 + 1 = 2, columns: 79 // 32 + 1 = 3; last ones clamped
    assert slide_windows(64, 96, 48, 32) == [
        (y1, y2, x1, x2) for y1, y2 in ((0, 48), (16, 64)) for x1, x2 in ((0, 48), (32, 80),
                                                                          (48, 96))]
    assert slide_windows(30, 40, (64, 128), (32, 64)) == [(0, 30, 0, 40)]  # shrinks to the image
    assert slide_windows(64, 96, 64, 32) == [(0, 64, 0, 64), (0, 64, 32, 96)]


@pytest.mark.parametrize('crop', [(H, W), (100, 128)])
def test_one_covering_window_equals_whole_image(net, crop):
    data = images((2, 3, H, W))
    whole = predict_semantic(net, data)
    slide = predict_semantic(net, data, mode='slide', crop_size=crop, stride=(32, 32))
    np.testing.assert_array_equal(slide.asnumpy(), whole.asnumpy())
    assert whole.shape == (2, 19, H, W)
    np.testing.assert_allclose(whole.sum(axis=1).asnumpy(), 1, rtol=1e-5)


def test_overlapping_windows_equal_whole_image_within_the_receptive_field():
    toy, data = ToyNet(kernel=1), images((1, 3, 50, 77))
    slide = predict_semantic(toy, data, mode='slide', crop_size=(32, 40), stride=(12, 25))
    np.testing.assert_allclose(slide.asnumpy(), predict_semantic(toy, data).asnumpy(),
                               rtol=1e-5, atol=1e-6)


def test_slide_averages_logits_then_softmax(net):
    data, crop, stride = images((1, 3, H, W)), (48, 64), (24, 20)
    total, count = np.zeros((1, 19, H, W), np.float32), np.zeros((H, W), np.float32)
    windows = slide_windows(H, W, crop, stride)
    assert len(windows) == 2 * 3
    for y1, y2, x1, x2 in windows:
        total[:, :, y1:y2, x1:x2] += net.predict(data[:, :, y1:y2, x1:x2]).asnumpy()
        count[y1:y2, x1:x2] += 1
    expected = softmax(mx.nd.array(total / count)).asnumpy()
    got = predict_semantic(net, data, mode='slide', crop_size=crop, stride=stride)
    np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-5, atol=1e-6)


def test_flip_is_the_average_with_the_flipped_back_prediction(net):
    data = images((2, 3, H, W))
    plain = softmax(net.predict(data))
    flipped_back = softmax(net.predict(data.flip(axis=3))).flip(axis=3)
    expected = ((plain + flipped_back) / 2).asnumpy()
    np.testing.assert_allclose(predict_semantic(net, data, flip=True).asnumpy(), expected,
                               rtol=1e-5, atol=1e-6)
    assert (flipped_back - plain).abs().max().asscalar() > 1e-3  # the net is not equivariant


def test_flip_on_an_equivariant_net_equals_the_plain_prediction():
    toy = ToyNet(kernel=3, symmetric=True)
    data = images((1, 3, 20, 31))  # not symmetric: a missing or wrong flip-back would show
    plain = predict_semantic(toy, data).asnumpy()
    np.testing.assert_allclose(predict_semantic(toy, data, flip=True).asnumpy(), plain,
                               rtol=1e-5, atol=1e-6)
    assert np.abs(plain - plain[..., ::-1]).max() > 1e-2


def test_flip_of_a_symmetric_image_is_mirror_symmetric(net):
    half = np.random.RandomState(1).normal(size=(1, 3, H, W // 2))
    data = mx.nd.array(np.concatenate([half, half[..., ::-1]], axis=3))  # left-right symmetric
    plain = predict_semantic(net, data).asnumpy()
    assert np.abs(plain - plain[..., ::-1]).max() > 1e-3  # the net alone is not symmetric
    tta = predict_semantic(net, data, flip=True).asnumpy()
    np.testing.assert_allclose(tta, tta[..., ::-1], rtol=1e-5, atol=1e-6)


def test_multi_scale_flip_averages_probabilities_at_the_input_size(net):
    data, scales = images((1, 3, 50, 77)), (0.5, 1.0, 1.25)
    views = []
    for s in scales:
        view = resize_to(data, int(50 * s + 0.5), int(77 * s + 0.5))  # 25x39, 50x77, 63x96
        for flip in (False, True):
            image = view.flip(axis=3) if flip else view
            prob = softmax(resize_to(net.predict(image), 50, 77))
            views.append(prob.flip(axis=3) if flip else prob)
    expected = (sum(views) / len(views)).asnumpy()
    got = predict_semantic(net, data, scales=scales, flip=True)
    np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-5, atol=1e-6)
    labels = predict_semantic_labels(net, data, scales=scales, flip=True)
    assert labels.shape == (1, 50, 77) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def test_inputs_on_another_context_move_to_the_nets(net):
    data = images()
    shared = data.as_in_context(mx.Context('cpu_shared', 0))
    out = predict_semantic(net, shared, mode='slide', crop_size=48, stride=32)
    assert out.context == mx.cpu(0)
    np.testing.assert_array_equal(
        out.asnumpy(), predict_semantic(net, data, mode='slide', crop_size=48,
                                        stride=32).asnumpy())
