"""FPN, semantic head, RoI pooling and losses on tiny CPU inputs."""
import math
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

from gluoncv.model_zoo.rcnn.rpn.anchor import generate_base_anchors

from gluonpan.model_zoo.panoptic_fpn import resnet_v1b_backbone
from gluonpan.model_zoo.panoptic_fpn.inference import (paste_masks_detectron2,
                                                       paste_masks_torchvision, resize_bilinear)
from gluonpan.nn import (FPN, FPNAnchors, FPNRPN, GroupNorm, MaskHead, SemanticFPNHead,
                         pyramid_roi_align)
from gluonpan.nn.roi_heads import roi_levels
from gluonpan.nn.losses import rpn_losses, semantic_loss
from gluonpan.nn.semantic_head import _upsample_like

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def backbone_and_fpn():
    backbone = resnet_v1b_backbone('resnet18_v1b')
    fpn = FPN(backbone.out_channels, channels=32)
    backbone.initialize()
    fpn.initialize()
    return backbone, fpn


@pytest.mark.parametrize('size', [(128, 256), (130, 257), (97, 161)])
def test_fpn_strides_and_channels(backbone_and_fpn, size):
    backbone, fpn = backbone_and_fpn
    feats = fpn(*backbone(mx.nd.random.normal(shape=(1, 3) + size)))
    assert len(feats) == 5
    for feat, stride in zip(feats, (4, 8, 16, 32, 64)):
        assert feat.shape == (1, 32, math.ceil(size[0] / stride), math.ceil(size[1] / stride))


def test_group_norm_is_per_group_statistics_with_per_channel_affine():
    x = np.random.RandomState(0).normal(size=(2, 8, 3, 5)).astype(np.float32)
    gamma, beta = np.arange(1, 9, dtype=np.float32), np.arange(8, dtype=np.float32) - 4
    layer = GroupNorm(8, num_groups=4, epsilon=1e-5)
    layer.initialize()
    layer.gamma.set_data(mx.nd.array(gamma))
    layer.beta.set_data(mx.nd.array(beta))
    groups = x.reshape(2, 4, -1)  # (B, G, C/G * H * W)
    ref = (groups - groups.mean(-1, keepdims=True)) / np.sqrt(groups.var(-1, keepdims=True) + 1e-5)
    ref = ref.reshape(x.shape)  # (B, C, H, W)
    ref = ref * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)  # affine (1, C, 1, 1)
    np.testing.assert_allclose(layer(mx.nd.array(x)).asnumpy(), ref, rtol=1e-4, atol=1e-4)


def bilinear_half_pixel(x, out_h, out_w):
    """Reference resize with align_corners=False (half-pixel centres, edge clamped)."""
    h, w = x.shape

    def coords(n_out, n_in):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, fy = coords(out_h, h)
    x0, x1, fx = coords(out_w, w)
    top = x[y0][:, x0] * (1 - fx) + x[y0][:, x1] * fx
    bottom = x[y1][:, x0] * (1 - fx) + x[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def test_semantic_head_towers_and_upsampling_are_half_pixel():
    head = SemanticFPNHead(num_classes=5, in_channels=16, channels=16, num_groups=4)
    assert [len(t) // 2 for t in head.towers] == [1, 1, 2, 3]  # convs per level P2..P5
    head.initialize()
    image = mx.nd.zeros((1, 3, 64, 96))
    feats = [mx.nd.random.normal(shape=(1, 16, 64 // s, 96 // s)) for s in (4, 8, 16, 32)]
    logits = head(image, *feats)
    assert logits.shape == (1, 5, 64, 96)
    # the paper's order: every tower upsampled to stride 4 on its own, then summed
    stride4 = None
    for level, (tower, feat) in enumerate(zip(head.towers, feats)):
        x = feat
        for k in range(len(tower) // 2):
            x = mx.nd.relu(tower[2 * k + 1](tower[2 * k](x)))
            if level:
                x = mx.nd.contrib.BilinearResize2D(x, scale_height=2, scale_width=2,
                                                   align_corners=False)
        stride4 = x if stride4 is None else stride4 + x
    low = head.predictor(stride4)[0, 0].asnumpy()
    # then a 4x upsampling of the stride-4 prediction with align_corners=False
    np.testing.assert_allclose(logits[0, 0].asnumpy(), bilinear_half_pixel(low, 64, 96),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('factor', [2, 4])
@pytest.mark.parametrize('shape', [(5, 7), (1, 3), (1, 1), (16, 24)])
def test_upsampling_is_half_pixel_bilinear(factor, shape):
    x = np.random.RandomState(0).normal(size=(2, 3) + shape)
    like = mx.nd.zeros((2, 3, shape[0] * factor, shape[1] * factor))
    up = _upsample_like(mx.nd, mx.nd.array(x), like, factor).asnumpy()
    for b, c in ((0, 0), (1, 2)):
        np.testing.assert_allclose(up[b, c], bilinear_half_pixel(x[b, c], *like.shape[2:]),
                                   rtol=1e-5, atol=1e-6)
    # a smaller target keeps the top-left, stride-aligned part
    crop = _upsample_like(mx.nd, mx.nd.array(x), like[:, :, :-1, :-1], factor).asnumpy()
    np.testing.assert_array_equal(crop, up[:, :, :-1, :-1])


def test_semantic_head_backward_is_repeatable_with_two_threads():
    """contrib.BilinearResize2D's CPU backward sums in a thread-dependent order; ours must not."""
    code = """if True:
        import mxnet as mx, numpy as np
        from mxnet import autograd
        from gluonpan.nn import SemanticFPNHead
        mx.random.seed(0)
        head = SemanticFPNHead(num_classes=5, in_channels=16, channels=16, num_groups=4)
        head.initialize()
        head.hybridize()
        feats = [mx.nd.random.normal(shape=(2, 16, 256 // s, 512 // s)) for s in (4, 8, 16, 32)]
        grads = []
        for _ in range(4):
            with autograd.record():
                logits = head(mx.nd.zeros((2, 3, 256, 512)), *feats)
            logits.backward(mx.nd.sin(mx.nd.arange(logits.size).reshape(logits.shape)))
            grads.append([p.grad().asnumpy() for p in head.collect_params().values()])
        assert all((a == b).all() for g in grads[1:] for a, b in zip(g, grads[0])), 'differs'
    """
    env = dict(os.environ, OMP_NUM_THREADS='2', MXNET_MKLDNN_ENABLED='1')
    subprocess.run([sys.executable, '-c', code], check=True, env=env, cwd=ROOT)


@pytest.mark.parametrize('size', [(64, 96), (66, 99)])
def test_semantic_head_output_is_input_size(size):
    head = SemanticFPNHead(num_classes=3, in_channels=8, channels=8, num_groups=2)
    head.initialize()
    feats = [mx.nd.random.normal(shape=(1, 8, math.ceil(size[0] / s), math.ceil(size[1] / s)))
             for s in (4, 8, 16, 32)]
    assert head(mx.nd.zeros((2, 3) + size), *[f.tile((2, 1, 1, 1)) for f in feats]).shape == \
        (2, 3) + size


class Pool(nn.HybridBlock):
    def hybrid_forward(self, F, rois, p2, p3, p4, p5):
        return pyramid_roi_align(F, (p2, p3, p4, p5), rois, (7, 7), (4, 8, 16, 32))


def test_pyramid_roi_align_levels_and_hybridized_zeros():
    feats = [mx.nd.random.normal(shape=(2, 4, 256 // s, 256 // s)) for s in (4, 8, 16, 32)]
    # sizes 32 -> P2, 112 -> P3, 224 -> P4, 448 -> P5 (canonical 224 on P4); one in image 1
    rois = mx.nd.array([[0, 0, 0, 31, 31], [0, 10, 10, 121, 121], [1, 0, 0, 223, 223],
                        [0, 0, 0, 447, 447], [0, -1, -1, -1, -1]])
    pool = Pool()
    imperative = pool(rois, *feats)
    pool.hybridize()
    hybridized = pool(rois, *feats)
    for row, level in zip(range(4), range(4)):
        direct = mx.nd.contrib.ROIAlign(feats[level], rois[row:row + 1], (7, 7),
                                        1. / (4 * 2 ** level), sample_ratio=2)
        np.testing.assert_allclose(imperative[row].asnumpy(), direct[0].asnumpy(), rtol=1e-5)
    # CPU ROIAlign leaves skipped rows unwritten; the hybridized graph reuses memory
    np.testing.assert_allclose(hybridized.asnumpy(), imperative.asnumpy(), rtol=1e-5, atol=1e-6)


def test_mask_head_shape():
    head = MaskHead(num_classes=3, in_channels=8, channels=8, num_convs=2)
    head.initialize()
    assert head(mx.nd.zeros((5, 8, 14, 14))).shape == (5, 3, 28, 28)


def test_semantic_loss_is_the_mean_over_labelled_pixels():
    logits = np.random.RandomState(1).normal(size=(2, 3, 2, 2)).astype(np.float32)
    labels = np.array([[[0, 1], [2, 255]], [[255, 255], [1, 1]]], np.float32)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    picked = [-log_p[b, int(labels[b, i, j]), i, j] for b in range(2) for i in range(2)
              for j in range(2) if labels[b, i, j] != 255]
    loss = semantic_loss(mx.nd, mx.nd.array(logits), mx.nd.array(labels))
    assert loss.asscalar() == pytest.approx(np.mean(picked), rel=1e-5)
    empty = semantic_loss(mx.nd, mx.nd.array(logits), mx.nd.full((2, 2, 2), 255))
    assert empty.asscalar() == 0


def test_rpn_losses_against_numpy():
    rng = np.random.RandomState(2)
    scores, deltas = rng.normal(size=(1, 6, 1)), rng.normal(size=(1, 6, 4))
    cls_t = np.array([[1, 0, -1, 0, 1, -1]], np.float32)
    box_t = rng.normal(size=(1, 6, 4))
    box_m = (cls_t[..., None] > 0).repeat(4, -1).astype(np.float32)
    cls, box = rpn_losses(mx.nd, *[mx.nd.array(a) for a in (scores, deltas, cls_t, box_t, box_m)],
                          beta=1. / 9)
    s = scores[0, :, 0]
    bce = np.maximum(s, 0) - s * cls_t[0] + np.log1p(np.exp(-np.abs(s)))
    sampled = cls_t[0] >= 0
    assert cls.asscalar() == pytest.approx(bce[sampled].mean(), rel=1e-5)
    d = np.abs(deltas - box_t)
    smooth = np.where(d < 1. / 9, 0.5 * d ** 2 * 9, d - 0.5 / 9) * box_m
    assert box.asscalar() == pytest.approx(smooth.sum() / sampled.sum(), rel=1e-5)


def test_roi_level_styles():
    # sides 111: sqrt(112 * 112) / 224 = 1/2 -> P3 with Detectron1's +1; 111 / 224 < 1/2 -> P2
    # sides 224: exactly the canonical size -> P4 in every style (the eps keeps floor at 4)
    rois = mx.nd.array([[0, 0, 0, 111, 111], [0, 10, 10, 234, 234], [0, 0, 0, 2000, 2000],
                        [0, 0, 0, 1, 1]])
    want = {'detectron1': [3, 4, 5, 2], 'torchvision': [2, 4, 5, 2], 'detectron2': [2, 4, 5, 2]}
    for style, levels in want.items():
        got = roi_levels(mx.nd, rois, 2, 5, style).asnumpy()[:, 0]
        np.testing.assert_array_equal(got, levels, err_msg=style)
    with pytest.raises(ValueError, match='RoI level style'):
        roi_levels(mx.nd, rois, 2, 5, 'detectron')


class AlignedPool(nn.HybridBlock):
    def hybrid_forward(self, F, rois, p2, p3, p4, p5):
        return pyramid_roi_align(F, (p2, p3, p4, p5), rois, (7, 7), (4, 8, 16, 32),
                                 sampling_ratio=0, level_style='torchvision', aligned=True)


def test_pyramid_roi_align_aligned_adaptive():
    feats = [mx.nd.random.normal(shape=(1, 4, 256 // s, 256 // s)) for s in (4, 8, 16, 32)]
    rois = mx.nd.array([[0, 3, 5, 40, 30], [0, 0, 0, 230, 240]])  # P2 and P4
    pool = AlignedPool()
    pool.hybridize()
    out = pool(rois, *feats)
    for row, level in ((0, 0), (1, 2)):
        direct = mx.nd.contrib.ROIAlign(feats[level], rois[row:row + 1], (7, 7),
                                        1. / (4 * 2 ** level), sample_ratio=0, aligned=True)
        np.testing.assert_allclose(out[row].asnumpy(), direct[0].asnumpy(), rtol=1e-5, atol=1e-6)
    unaligned = mx.nd.contrib.ROIAlign(feats[0], rois[0:1], (7, 7), 0.25, sample_ratio=0)
    assert np.abs(out[0].asnumpy() - unaligned[0].asnumpy()).max() > 1e-3


def test_pyramid_roi_align_aligned_pools_zeros_for_rois_without_area():
    """MXNet's aligned ROIAlign aborts the process on them (CHECK roi_width > 0); detectron2's
    and torchvision's pool zeros."""
    feats = [mx.nd.random.normal(shape=(1, 4, 256 // s, 256 // s)) for s in (4, 8, 16, 32)]
    rois = mx.nd.array([[0, 3, 5, 40, 30], [0, 7, 7, 7, 20], [0, 9, 9, 30, 9],
                        [0, -1, -1, -1, -1]])  # a box, two lines, a padding row
    pool = AlignedPool()
    pool.hybridize()
    out = pool(rois, *feats).asnumpy()
    assert not out[1:].any() and np.abs(out[0]).max() > 0
    direct = mx.nd.contrib.ROIAlign(feats[0], rois[0:1], (7, 7), 0.25, sample_ratio=0,
                                    aligned=True)
    np.testing.assert_allclose(out[0], direct[0].asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('strict', [False, True])
def test_rpn_min_size_strict_drops_proposals_without_area(strict):
    rpn = FPNRPN(FPNAnchors(style='detectron2'), min_size=0, topk_per_level=True,
                 min_size_strict=strict)
    # (1, 4, 5): logit, box; a box clipped to a line at the right edge, a point, a normal box
    proposals = mx.nd.array([[[3, 160, 0, 160, 10], [2, 5, 5, 5, 5], [1, 0, 0, 10, 10],
                              [0, 4, 4, 6, 6]]])
    top = rpn._level_top(mx.nd, 2, proposals, 3).asnumpy()[0]  # (3, 6) level, prob, box
    assert top.shape == (3, 6)  # the level keeps its top 3 rows only (the 4th box is not there)
    np.testing.assert_array_equal(top[:, 0], 2)
    kept = top[:, 1] >= 0
    np.testing.assert_array_equal(kept, [not strict, not strict, True])
    np.testing.assert_allclose(top[2, 1], 1 / (1 + np.exp(-1.)), rtol=1e-6)
    # a level with fewer anchors than pre_nms: its rows, best first, then -1 padding rows
    more = rpn._level_top(mx.nd, 4, proposals, 6).asnumpy()[0]  # (6, 6)
    assert more.shape == (6, 6) and (more[:, 0] == 4).all()
    np.testing.assert_array_equal(more[:, 1] >= 0, [not strict, not strict, True, True, False,
                                                    False])
    np.testing.assert_array_equal(more[4:, 2:], -1)


def test_anchor_styles():
    # Detectron1: gluoncv's boxes, centred on (stride - 1) / 2
    d1 = FPNAnchors(style='detectron1')
    np.testing.assert_array_equal(d1._base[0], generate_base_anchors(4, (32,), (0.5, 1, 2)))
    first = d1(8, 8)[:3]  # (3, 4) the first location of P2
    np.testing.assert_array_equal((first[:, :2] + first[:, 2:]) / 2, 1.5)
    # detectron2 (default): centred on 0, unrounded w = size / sqrt(r), h = size * sqrt(r)
    assert FPNAnchors().style == 'detectron2'
    d2 = FPNAnchors()._base[0]
    w, h = 32 / np.sqrt([0.5, 1, 2]), 32 * np.sqrt([0.5, 1, 2])
    np.testing.assert_allclose(d2, np.stack([-w, -h, w, h], 1) / 2, rtol=1e-6)
    # torchvision: the same, half-sides rounded; every style shifts by stride per location
    tv = FPNAnchors(style='torchvision')
    np.testing.assert_array_equal(tv._base[0], np.round(d2))
    full = tv(8, 12)  # P2 is 2 x 3 locations
    np.testing.assert_array_equal(full[3 * 4:3 * 5], tv._base[0] + [4, 4, 4, 4])  # row 1, col 1
    assert tv.with_style('detectron1').sizes == tv.sizes
    with pytest.raises(ValueError, match='anchor style'):
        FPNAnchors(style='torchvison')


@pytest.mark.parametrize('shape', [(30, 30), (7, 3)])
@pytest.mark.parametrize('out', [(61, 45), (5, 2), (1, 1)])
def test_resize_bilinear_is_half_pixel(shape, out):
    x = np.random.RandomState(3).uniform(size=shape).astype(np.float32)
    np.testing.assert_allclose(resize_bilinear(x, *out), bilinear_half_pixel(x, *out), rtol=1e-5,
                               atol=1e-6)


def test_paste_masks_torchvision_boxes_and_clipping():
    probs = np.ones((2, 28, 28), np.float32)
    boxes = np.array([[10, 20, 38, 48], [150, 0, 160, 10]], np.float32)
    pasted = paste_masks_torchvision(probs, boxes, (160, 64))
    # box scaled by 30/28 about its centre, truncated: x 9..39, y 19..49; the padding ring
    # (probability 0) keeps the outermost pixels below 0.5
    rows, cols = np.nonzero(pasted[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 48, 10, 38)
    assert pasted[1].any() and not pasted[1][:, :149].any()  # clipped at the image's right edge
    assert paste_masks_torchvision(probs[:0], boxes[:0], (160, 64)).shape == (0, 64, 160)


def test_paste_masks_detectron2_samples_the_unpadded_box():
    probs = np.ones((3, 28, 28), np.float32)
    boxes = np.array([[10, 20, 38, 48], [150, 0, 160, 10], [5, 5, 5, 9]], np.float32)
    pasted = paste_masks_detectron2(probs, boxes, (160, 64))
    # pixel centres x + 0.5 inside [10, 38] sample the mask at >= 0.5 (half a cell of zeros
    # outside it): columns 10..37, rows 20..47 (torchvision's padded box gives 10..38, 20..48)
    rows, cols = np.nonzero(pasted[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 47, 10, 37)
    rows, cols = np.nonzero(pasted[1])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 9, 150, 159)
    assert not pasted[2].any()  # a box without area
    half = np.zeros((1, 28, 28), np.float32)
    half[:, :, :14] = 1  # the left half of the box
    cols = np.nonzero(paste_masks_detectron2(half, boxes[:1], (160, 64))[0].any(axis=0))[0]
    np.testing.assert_array_equal(cols, np.arange(10, 24))
