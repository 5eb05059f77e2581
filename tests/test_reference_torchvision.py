"""Our Panoptic FPN with ``preset='torchvision'`` against torchvision's Mask R-CNN R50-FPN.

The fixture ``tests/fixtures/torchvision_maskrcnn.npz`` holds what torchvision 0.29 computes with
seeded random weights (every array of its state dict, batch norm statistics included, drawn by
:func:`gluonpan.convert.seeded.seeded_weights`) on two seeded 128x160 images.  Here the same
weights are regenerated with numpy alone, converted by
:func:`gluonpan.convert.torchvision.maskrcnn_to_gluonpan`, and our hybridized network must give,
stage by stage: the same anchors, the FPN features to 1e-4 of each level's largest value, the same
proposals (1e-3 px, same order) with the same objectness, the same detections (boxes to 1e-3 px,
same order, scores, labels), the same 28x28 mask probabilities and the same pasted masks.

``tests/fixtures/tiny_checkpoint.pth`` is a small ``torch.save`` file for the torch-free ``.pth``
reader.  Regenerate both fixtures (PyTorch venv; see the script's docstring for what they hold)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_torchvision_fixtures.py
"""
import argparse
import os
import pickle
import zipfile

import mxnet as mx
import numpy as np
import pytest

from gluonpan.convert.pth import load_pth, state_dict_of
from gluonpan.convert.seeded import fingerprint, seeded_images, seeded_weights, uniform
from gluonpan.convert.torchvision import (maskrcnn_resnet_fpn_spec, maskrcnn_to_gluonpan,
                                          save_converted)
from gluonpan.errors import DataError
from gluonpan.model_zoo import get_model
from gluonpan.model_zoo.panoptic_fpn.inference import paste_masks_torchvision
from gluonpan.nn.anchors import FPNAnchors
from gluonpan.utils.cli import load_model, run_args

from _reference import (assert_detections, assert_fpn_features, assert_pasted,
                        assert_weights_regenerated, load_fixture)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
FIXTURE = os.path.join(FIXTURES, 'torchvision_maskrcnn.npz')
MODEL = 'panoptic_fpn_resnet50_v1b_citys'


@pytest.fixture(scope='module')
def reference():
    return load_fixture(FIXTURE)


@pytest.fixture(scope='module')
def weights(reference):
    meta = reference['meta']
    return seeded_weights(maskrcnn_resnet_fpn_spec(meta['num_classes']), meta['seed'],
                          meta['gains'])


def converted(weights, **options):
    net = get_model(MODEL, **options)
    maskrcnn_to_gluonpan(weights, net)
    net.hybridize(static_alloc=True)
    return net


def run(net, reference):
    """Stage-wise outputs of our net on the fixture's images, numpy, one dict per image."""
    meta = reference['meta']
    images = seeded_images(meta['seed'], meta['num_images'], meta['height'], meta['width'])
    outs = []
    for image in images:
        x = mx.nd.array(image[None])
        feats = net.fpn(*net.backbone(x))
        _, _, rois, roi_scores = net.rpn(x, *feats)
        ids, scores, boxes, masks, _ = net.predict(x)
        valid, found = roi_scores[0, :, 0].asnumpy() >= 0, ids[0, :, 0].asnumpy() >= 0
        outs.append(dict(feats=[f[0].asnumpy() for f in feats],
                         proposals=rois[0].asnumpy()[valid],
                         proposal_scores=roi_scores[0, :, 0].asnumpy()[valid],
                         labels=ids[0, :, 0].asnumpy()[found].astype(np.int64) + 1,
                         scores=scores[0, :, 0].asnumpy()[found], boxes=boxes[0].asnumpy()[found],
                         mask_probs=masks[0].asnumpy()[found]))
    return outs


@pytest.fixture(scope='module')
def torchvision_net(weights):
    return converted(weights, preset='torchvision')


@pytest.fixture(scope='module')
def ours(torchvision_net, reference):
    return run(torchvision_net, reference)


def test_converter_checks_names_and_shapes(torchvision_net, reference, weights, ours):
    meta = reference['meta']
    before = torchvision_net.roi_heads.class_predictor.weight.data().asnumpy()
    other = seeded_weights(maskrcnn_resnet_fpn_spec(meta['num_classes'] + 2), meta['seed'])
    with pytest.raises(ValueError, match='class_predictor.weight: torchvision gives shape'):
        maskrcnn_to_gluonpan(other, torchvision_net)
    extra = dict(other, **{'roi_heads.keypoint_head.0.weight': np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match='keypoint_head'):
        maskrcnn_to_gluonpan(extra, torchvision_net)
    partial = {k: v for k, v in weights.items() if not k.startswith('roi_heads.mask_head.')}
    with pytest.raises(KeyError, match='lacks 8 parameter'):
        maskrcnn_to_gluonpan(partial, torchvision_net)
    # nothing was loaded from the bad state dicts
    np.testing.assert_array_equal(torchvision_net.roi_heads.class_predictor.weight.data().asnumpy(),
                                  before)


def test_seeded_weights_and_images_are_regenerated_exactly(reference, weights):
    meta = reference['meta']
    assert_weights_regenerated(weights, meta)
    images = seeded_images(meta['seed'], meta['num_images'], meta['height'], meta['width'])
    assert fingerprint({'i': images})['i'] == meta['images_fingerprint']


def test_anchors(reference):
    np.testing.assert_array_equal(np.stack(FPNAnchors(style='torchvision')._base),
                                  reference['anchors_base'])


def test_fpn_features(reference, ours):
    assert_fpn_features(reference, ours)


def test_proposals(reference, ours):
    for i, out in enumerate(ours):
        ref = reference['proposals_{}'.format(i)]
        assert out['proposals'].shape == ref.shape, 'image {}'.format(i)
        np.testing.assert_allclose(out['proposals'], ref, rtol=0, atol=1e-3)
        np.testing.assert_allclose(out['proposal_scores'],
                                   reference['proposal_scores_{}'.format(i)], rtol=0, atol=1e-5)


def test_detections(reference, ours):
    assert_detections(reference, ours)


def test_masks(reference, ours):
    meta = reference['meta']
    for i, out in enumerate(ours):
        ref = reference['mask_probs_{}'.format(i)].astype(np.float32)
        np.testing.assert_allclose(out['mask_probs'], ref, rtol=0, atol=1e-4)
        assert_pasted(reference, i, paste_masks_torchvision(out['mask_probs'], out['boxes'],
                                                            (meta['width'], meta['height'])))


def test_default_conventions_do_not_reproduce_torchvision(reference, weights):
    """The conventions matter: today's defaults give other proposals and detections."""
    out = run(converted(weights), reference)[0]
    ref = reference['boxes_0']
    assert out['proposals'].shape != reference['proposals_0'].shape
    assert out['boxes'].shape != ref.shape or np.abs(out['boxes'] - ref).max() > 1


def test_pth_reader_without_torch(reference):
    seed = reference['meta']['seed']
    checkpoint = load_pth(os.path.join(FIXTURES, 'tiny_checkpoint.pth'))
    assert checkpoint['epoch'] == 3
    sd = state_dict_of(checkpoint)
    big = uniform(seed, 'big', (4, 6)).astype(np.float64)
    want = {'conv.weight': uniform(seed, 'conv.weight', (4, 3, 3, 3)),
            'bn.num_batches_tracked': np.array(7, np.int64),
            'half': uniform(seed, 'half', (5,)).astype(np.float16), 'big': big,
            'view': big.T[1:3], 'param': uniform(seed, 'param', (3, 2)),
            'flag': np.array([True, False, True])}
    assert list(sd) == list(want)
    for name, value in want.items():
        assert sd[name].dtype == value.dtype and sd[name].shape == value.shape, name
        np.testing.assert_array_equal(sd[name], value, err_msg=name)


def test_pth_reader_refuses_code_and_other_files(tmp_path):
    class Evil(object):
        def __reduce__(self):
            return (os.system, ('echo hacked',))

    path = str(tmp_path / 'evil.pth')
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('archive/data.pkl', pickle.dumps({'x': Evil()}, protocol=2))
    with pytest.raises(DataError, match='system'):
        load_pth(path)
    with open(path, 'wb') as f:
        f.write(b'not a zip')
    with pytest.raises(DataError, match='not a zip-format'):
        load_pth(path)


def test_converted_weights_are_saved_with_their_conventions(torchvision_net, tmp_path, ours):
    path = str(tmp_path / 'maskrcnn_converted.params')
    save_converted(torchvision_net, path, source='seeded')
    args = argparse.Namespace(pretrained=path, network='resnet18_v1b', dataset='citys',
                              model_kwargs=None)
    net = load_model(args, mx.cpu(), saved=run_args(path))  # args.json names resnet50_v1b
    assert net.conventions == torchvision_net.conventions
    assert net.anchors.style == 'torchvision' and net.rpn.topk_per_level
    np.testing.assert_array_equal(net.roi_heads.box_predictor.weight.data().asnumpy(),
                                  torchvision_net.roi_heads.box_predictor.weight.data().asnumpy())
