"""Our Panoptic FPN with ``preset='detectron2'`` against detectron2's own Panoptic FPN.

The fixture ``tests/fixtures/detectron2_panoptic_fpn.npz`` holds what detectron2 (commit 02b5c4e,
built from source, CPU) computes with its config ``COCO-PanopticSegmentation/
panoptic_fpn_R_50_1x.yaml`` (8 thing / 12 semantic classes), every weight drawn by
:func:`gluonpan.convert.seeded.seeded_weights`, on three seeded images (128x160, 160x224, and
120x150, which both pad to multiples of 32 and clip proposals and detections to). Here the same
weights are regenerated with numpy alone, written as a ``model_final``-style ``.pkl`` and converted
by :mod:`gluonpan.convert.detectron2` (once through ``python -m gluonpan.convert``), and our
hybridized ``panoptic_fpn_resnet50_msra_coco`` (MSRA ResNet: stride in the 1x1 conv), given
Cityscapes-sized categories and fed our usual ImageNet-normalised RGB, must give stage by stage:
the same anchors, the FPN features to 1e-4 of each level's largest value, the same proposals (1e-3
px, same order but for a few swaps of scores tied within float32 rounding, same objectness), the
same detections (boxes to 1e-3 px, same order, scores, classes), the same 28x28 mask probabilities
and pasted masks (pixels within float error of 0.5 may flip), the same semantic logits and argmax,
and the same panoptic map and segments. The weights are random: detectron2's layers, not its
training, are what is checked.

Regenerate the fixture (PyTorch + detectron2 venv; see the script's docstring)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_detectron2_fixtures.py
"""
import argparse
import json
import os
import pickle

import mxnet as mx
import numpy as np
import pytest

from gluonpan.convert.detectron2 import detectron2_to_gluonpan, load_checkpoint, panoptic_fpn_spec
from gluonpan.convert.seeded import fingerprint, seeded_images, seeded_weights
from gluonpan.data.categories import cityscapes_categories
from gluonpan.model_zoo import get_model
from gluonpan.model_zoo.panoptic_fpn import pad_input, predict_panoptic
from gluonpan.model_zoo.panoptic_fpn.inference import paste_masks_detectron2
from gluonpan.nn.anchors import FPNAnchors

from _reference import (assert_detections, assert_fpn_features, assert_pasted,
                        assert_weights_regenerated, load_fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'detectron2_panoptic_fpn.npz')
MODEL = 'panoptic_fpn_resnet50_msra_coco'


@pytest.fixture(scope='module')
def reference():
    return load_fixture(FIXTURE)


def images(meta):
    """The fixture's images in our input format (make_detectron2_fixtures.images)."""
    return [seeded_images(meta['seed'] + i, 1, h, w)[0] for i, (h, w) in enumerate(meta['sizes'])]


@pytest.fixture(scope='module')
def weights(reference):
    meta = reference['meta']
    spec = panoptic_fpn_spec(meta['num_things'], meta['num_semantic'], 50)
    return seeded_weights(spec, meta['seed'], meta['gains'], meta['zero_mean'])


@pytest.fixture(scope='module')
def checkpoint(weights, reference, tmp_path_factory):
    """The weights as a released model_final_*.pkl holds them (with the buffers older detectron2
    versions saved: pixel mean / std and the RPN's cell anchors)."""
    path = str(tmp_path_factory.mktemp('d2') / 'model_final_seeded.pkl')
    model = dict(weights, pixel_mean=np.array([103.530, 116.280, 123.675]).reshape((3, 1, 1)),
                 pixel_std=np.ones((3, 1, 1)))
    for level, cell in enumerate(reference['anchors_base']):
        model['proposal_generator.anchor_generator.cell_anchors.{}'.format(level)] = cell
    with open(path, 'wb') as f:
        pickle.dump({'model': model, '__author__': 'seeded', 'matching_heuristics': True}, f,
                    protocol=2)
    return path


def citys_net(**options):
    return get_model(MODEL, categories=cityscapes_categories(), **options)


@pytest.fixture(scope='module')
def d2_net(checkpoint):
    net = citys_net()
    detectron2_to_gluonpan(load_checkpoint(checkpoint), net, checkpoint)
    net.hybridize(static_alloc=True)
    return net


def run(net, reference, num_images=None):
    """Stage-wise outputs of our net on the fixture's images, numpy, one dict per image."""
    outs = []
    for image in images(reference['meta'])[:num_images]:
        h, w = image.shape[1:]
        x = pad_input(mx.nd.array(image[None]))  # detectron2 pads to multiples of 32 as well
        window = mx.nd.zeros((1, 1, h, w))  # and clips proposals and detections to the image
        feats = net.fpn(*net.backbone(x))
        _, _, rois, roi_scores = net.rpn(window, *feats)
        ids, scores, boxes, masks, sem_logits = net.predict(x, (h, w))
        valid, found = roi_scores[0, :, 0].asnumpy() >= 0, ids[0, :, 0].asnumpy() >= 0
        pan_ids, segments = predict_panoptic(net, mx.nd.array(image[None]))
        outs.append(dict(feats=[f[0].asnumpy() for f in feats],
                         proposals=rois[0].asnumpy()[valid],
                         proposal_scores=roi_scores[0, :, 0].asnumpy()[valid],
                         classes=ids[0, :, 0].asnumpy()[found].astype(np.int64),
                         scores=scores[0, :, 0].asnumpy()[found], boxes=boxes[0].asnumpy()[found],
                         mask_probs=masks[0].asnumpy()[found], sem_logits=sem_logits[0].asnumpy(),
                         pan_ids=pan_ids, segments=segments))
    return outs


@pytest.fixture(scope='module')
def ours(d2_net, reference):
    return run(d2_net, reference)


def test_seeded_weights_and_images_are_regenerated_exactly(reference, weights):
    meta = reference['meta']
    assert_weights_regenerated(weights, meta)
    assert fingerprint({str(i): im for i, im in enumerate(images(meta))}) == \
        meta['images_fingerprint']


def test_anchors(reference):
    np.testing.assert_array_equal(np.stack(FPNAnchors(style='detectron2')._base),
                                  reference['anchors_base'])


def test_fpn_features(reference, ours):
    assert_fpn_features(reference, ours)


def assert_same_rows(ours, ref, ref_scores, where, atol=1e-3, tie=1e-5):
    """Same rows (to ``atol``) in the same order; rows whose scores are within ``tie`` of each
    other (float32 rounding of two implementations) may come in either order, a few times."""
    assert ours.shape == ref.shape, '{}: {} rows instead of {}'.format(where, len(ours), len(ref))
    differ = np.flatnonzero(np.abs(ours - ref).max(axis=1) > atol)
    for i in differ:
        tied = np.flatnonzero(np.abs(ref_scores - ref_scores[i]) <= tie)
        assert (np.abs(ref[tied] - ours[i]).max(axis=1) <= atol).any(), \
            '{}: row {} is {}, detectron2 has {}'.format(where, i, ours[i], ref[i])
    assert len(differ) <= max(2, 0.01 * len(ref)), '{}: {} rows swapped'.format(where, len(differ))


def test_proposals(reference, ours):
    for i, out in enumerate(ours):
        logits = reference['proposal_logits_{}'.format(i)].astype(np.float64)
        prob = 1. / (1. + np.exp(-logits))
        assert_same_rows(out['proposals'], reference['proposals_{}'.format(i)], prob,
                         'image {} proposals'.format(i))
        np.testing.assert_allclose(np.sort(out['proposal_scores']), np.sort(prob), rtol=0,
                                   atol=1e-5)


def test_detections(reference, ours):
    assert_detections(reference, ours, labels='classes')


def test_masks(reference, ours):
    for i, out in enumerate(ours):
        ref = reference['mask_probs_{}'.format(i)]
        np.testing.assert_allclose(out['mask_probs'], ref, rtol=0, atol=1e-4)
        h, w = reference['meta']['sizes'][i]
        assert_pasted(reference, i, paste_masks_detectron2(out['mask_probs'], out['boxes'], (w, h)))


def test_semantic_logits(reference, ours):
    """detectron2's "things" class 0 is our last class: same logits, same argmax."""
    for i, out in enumerate(ours):
        theirs_order = np.roll(out['sem_logits'], 1, axis=0)  # (K, H, W), "things" first
        ref = reference['sem_logits_{}'.format(i)]
        scale = np.abs(ref).max()
        err = np.abs(theirs_order[:, ::4, ::4] - ref).max() / scale
        assert err < 1e-4, 'image {}: semantic logits differ by {:.2e} of max |x|'.format(i, err)
        argmax = theirs_order.argmax(axis=0)
        differ = int((argmax != reference['sem_argmax_{}'.format(i)]).sum())
        assert differ <= 2, 'image {}: {} semantic labels differ'.format(i, differ)


def _ours_from_detectron2(panoptic, segments, categories):
    """detectron2's (panoptic_seg, segments_info) in our ids: category * 1000 + k / category."""
    out = np.zeros(panoptic.shape, np.int32)
    count = {}
    stuff = categories.stuff_ids
    for s in segments:
        if s['isthing']:
            cid = categories.thing_ids[s['category_id']]
            out[panoptic == s['id']] = cid * 1000 + count.get(cid, 0)
            count[cid] = count.get(cid, 0) + 1
        else:
            out[panoptic == s['id']] = stuff[s['category_id'] - 1]  # "things" is class 0
    return out


def test_panoptic(reference, ours, d2_net):
    meta = reference['meta']
    for i, out in enumerate(ours):
        segments = meta['segments_info'][i]
        ref = _ours_from_detectron2(reference['panoptic_{}'.format(i)], segments,
                                    d2_net.categories)
        assert [(s['isthing'], s['category_id']) for s in out['segments']] == \
            [(int(s['isthing']), ref_cid) for s, ref_cid in zip(
                segments, [d2_net.categories.thing_ids[s['category_id']] if s['isthing'] else
                           d2_net.categories.stuff_ids[s['category_id'] - 1] for s in segments])]
        differ = int((out['pan_ids'] != ref).sum())
        assert differ <= 1e-4 * ref.size, 'image {}: {} panoptic pixels differ'.format(i, differ)


def test_default_conventions_do_not_reproduce_detectron2(reference, weights):
    """The conventions matter: torchvision's (otherwise closest) give other results."""
    net = citys_net(preset='torchvision')
    detectron2_to_gluonpan(weights, net)
    out = run(net, reference, 1)[0]
    ref = reference['boxes_0']
    assert out['proposals'].shape != reference['proposals_0'].shape or \
        np.abs(out['proposals'] - reference['proposals_0']).max() > 1
    assert out['boxes'].shape != ref.shape or np.abs(out['boxes'] - ref).max() > 1e-2 or \
        np.abs(out['mask_probs'] - reference['mask_probs_0']).max() > 1e-2


def test_msra_backbone_matters(reference, weights):
    """The same weights in a ResNetV1b (stride in the 3x3 conv) give other features."""
    net = get_model('panoptic_fpn_resnet50_v1b_coco', categories=cityscapes_categories(),
                    preset='detectron2')
    detectron2_to_gluonpan(weights, net)
    x = mx.nd.array(images(reference['meta'])[0][None])
    p2 = net.fpn(*net.backbone(x))[0][0].asnumpy()
    ref = reference['feat0_slice_0']
    assert np.abs(p2[::32] - ref).max() > 0.1 * np.abs(ref).max()


def test_cli_writes_a_model_that_runs_like_detectron2(checkpoint, reference, ours, tmp_path):
    from gluonpan.convert.__main__ import main
    from gluonpan.utils.cli import load_model, run_args
    categories = str(tmp_path / 'citys_categories.json')
    with open(categories, 'w') as f:
        json.dump({'categories': cityscapes_categories().to_json()}, f)
    params = main(['detectron2', checkpoint, '--out', str(tmp_path / 'out'),
                   '--categories-json', categories])
    assert os.path.basename(params) == MODEL + '.params'
    saved = run_args(params)
    assert saved['network'] == 'resnet50_msra' and saved['dataset'] == 'coco'
    args = argparse.Namespace(pretrained=params, network='resnet18_v1b', dataset='coco',
                              model_kwargs=None)
    net = load_model(args, mx.cpu(), saved=saved)
    assert net.conventions['preset'] == 'detectron2' and net.anchors.style == 'detectron2'
    assert net.categories.thing_ids == cityscapes_categories().thing_ids
    x = mx.nd.array(images(reference['meta'])[0][None])
    ids, scores, boxes, _, _ = net.predict(x)
    found = ids[0, :, 0].asnumpy() >= 0
    np.testing.assert_allclose(boxes[0].asnumpy()[found], ours[0]['boxes'], rtol=0, atol=1e-4)



def test_clipping_to_the_image_matters(reference, d2_net, ours):
    """The 120x150 image runs padded to 128x160: detections clipped to the padded input (the
    'gluoncv' clip_to_image=False) are not detectron2's."""
    image = images(reference['meta'])[2]
    ids, _, boxes, _, _ = d2_net.predict(pad_input(mx.nd.array(image[None])))
    boxes = boxes[0].asnumpy()[ids[0, :, 0].asnumpy() >= 0]
    ref = reference['boxes_2']
    assert (boxes[:, 2] > 150).any() and (ref[:, 2] <= 150).all()
    assert boxes.shape != ref.shape or np.abs(boxes - ref).max() > 1
    np.testing.assert_allclose(ours[2]['boxes'], ref, rtol=0, atol=1e-3)
