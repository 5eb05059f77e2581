"""The detectron2 converter on COCO-sized state dicts made from its spec, and on bad files.

No detectron2 needed: :func:`gluonpan.convert.detectron2.panoptic_fpn_spec` (checked against
detectron2's own state dict by ``tools/reference/make_detectron2_fixtures.py``) gives every name
and shape of the real ``model_final_*.pkl`` files (80 thing / 54 semantic classes, R50 and R101).
"""
import os
import pickle

import numpy as np
import pytest

from gluonpan.convert.__main__ import main
from gluonpan.convert.detectron2 import (DEPTHS, architecture_of, convert_panoptic_fpn_state_dict,
                                         detectron2_to_gluonpan, load_checkpoint,
                                         panoptic_fpn_spec)
from gluonpan.data.transforms import IMAGENET_STD
from gluonpan.errors import DataError, run_cli
from gluonpan.model_zoo import get_model

CONSTANTS = ('rpn.anchor_generator.', 'roi_heads.box_targets.')


def state_dict(num_things=80, num_semantic=54, depth=50):
    """A detectron2 Panoptic FPN state dict of the right names and shapes; each array is filled
    with a value that identifies it (its index), the predictors with their row index."""
    out = {}
    for k, (name, shape) in enumerate(panoptic_fpn_spec(num_things, num_semantic, depth).items()):
        out[name] = np.full(shape, k, np.float32)
    for name in ('roi_heads.box_predictor.cls_score.weight', 'sem_seg_head.predictor.weight'):
        shape = out[name].shape
        rows = np.arange(shape[0], dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 1))
        out[name] = rows * np.ones(shape, np.float32)  # row r holds r
    out['backbone.bottom_up.stem.conv1.weight'] = np.arange(3, dtype=np.float32).reshape(
        (1, 3, 1, 1)) * np.ones((64, 3, 7, 7), np.float32)  # input channel c holds c
    return out


@pytest.fixture(scope='module')
def coco_r50():
    return get_model('panoptic_fpn_resnet50_msra_coco')


def write_pkl(path, obj, protocol=2):
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


@pytest.mark.parametrize('depth', [50, 101])
def test_coco_names_and_shapes_map_onto_our_net(depth, coco_r50):
    net = coco_r50 if depth == 50 else get_model('panoptic_fpn_resnet101_msra_coco')
    sd = state_dict(depth=depth)
    sd['backbone.bottom_up.res2.0.conv1.norm.num_batches_tracked'] = np.array(5)  # ignored
    assert architecture_of(sd) == (depth, 80, 54)
    kept = detectron2_to_gluonpan(sd, net)
    assert kept and all(k.startswith(CONSTANTS) for k in kept)
    assert len(net.backbone.layer3) == DEPTHS[depth][2]
    params = net._collect_params_with_prefix()
    # background: detectron2's last classifier row is our first; "things": first -> last
    cls = params['roi_heads.class_predictor.weight'].data().asnumpy()[:, 0]
    np.testing.assert_array_equal(cls, np.roll(np.arange(81), 1))
    sem = params['sem_seg_head.predictor.weight'].data().asnumpy()[:, 0, 0, 0]
    np.testing.assert_array_equal(sem, np.roll(np.arange(54), -1))
    # BGR 0..255 input folded into the first conv: our RGB channel c is its channel 2 - c
    conv1 = params['backbone.conv1.weight'].data().asnumpy()[0, :, 0, 0]
    np.testing.assert_allclose(conv1, (2 - np.arange(3)) * 255 * np.asarray(IMAGENET_STD),
                               rtol=1e-6)
    # a stage-4 conv, a frozen-BN statistic and a semantic GroupNorm land where they should
    index = {name: k for k, name in enumerate(panoptic_fpn_spec(80, 54, depth))}
    for ours, theirs in (('backbone.layer3.5.conv2.weight', 'res4.5.conv2.weight'),
                         ('backbone.layer2.0.downsample.1.running_var',
                          'res3.0.shortcut.norm.running_var'),
                         ('backbone.layer4.0.bn3.gamma', 'res5.0.conv3.norm.weight')):
        assert params[ours].data().asnumpy().flat[0] == index['backbone.bottom_up.' + theirs]
    assert params['sem_seg_head.towers.3.5.beta'].data().asnumpy()[0] == \
        index['sem_seg_head.p5.4.norm.bias']
    assert params['roi_heads.mask_head.convs.3.bias'].data().asnumpy()[0] == \
        index['roi_heads.mask_head.mask_fcn4.bias']


def test_stride_is_in_the_1x1_conv(coco_r50):
    block = coco_r50.backbone.layer2[0]
    assert block.conv1._kwargs['stride'] == (2, 2) and block.conv2._kwargs['stride'] == (1, 1)
    v1b = get_model('panoptic_fpn_resnet50_v1b_coco',
                    categories=coco_r50.categories).backbone.layer2[0]
    assert v1b.conv1._kwargs['stride'] == (1, 1) and v1b.conv2._kwargs['stride'] == (2, 2)


def _mask_rcnn():
    return {k: v for k, v in state_dict(8, 12).items() if not k.startswith('sem_seg_head.')}


def _expect(path_or_dict, match, net=None):
    """The conversion fails with one DataError line matching ``match``; the net is unchanged."""
    before = None if net is None else net.roi_heads.class_predictor.weight.data().asnumpy()
    with pytest.raises(DataError, match=match) as err:
        sd = load_checkpoint(path_or_dict) if isinstance(path_or_dict, str) else path_or_dict
        detectron2_to_gluonpan(sd, net) if net is not None else architecture_of(sd)
    assert '\n' not in str(err.value)
    if net is not None:
        np.testing.assert_array_equal(net.roi_heads.class_predictor.weight.data().asnumpy(),
                                      before)


def test_bad_checkpoints(tmp_path, coco_r50):
    small = write_pkl(tmp_path / 'small.pkl', {'model': {'a': np.zeros(3, np.float32)}})
    with open(small, 'rb') as f:
        raw = f.read()
    truncated = str(tmp_path / 'truncated.pkl')
    with open(truncated, 'wb') as f:
        f.write(raw[:len(raw) // 2])
    text = str(tmp_path / 'notes.pkl')
    with open(text, 'w') as f:
        f.write('not a pickle\n')

    class Evil(object):
        def __reduce__(self):
            return (os.system, ('echo hacked',))

    evil = write_pkl(tmp_path / 'evil.pkl', {'model': {'x': Evil()}})
    _expect(truncated, 'truncated.pkl: not a readable detectron2 checkpoint .*truncated')
    _expect(text, 'notes.pkl: not a readable detectron2 checkpoint')
    _expect(evil, 'evil.pkl: a detectron2 checkpoint holds numpy arrays, .* refers to .*system')
    _expect(small, 'no sem_seg_head.* arrays: another model')
    _expect(_mask_rcnn(), r'no sem_seg_head\.\* arrays: a Mask R-CNN / GeneralizedRCNN checkpoint')
    wrong = state_dict(8, 12)
    wrong['backbone.fpn_lateral3.weight'] = np.zeros((256, 256, 1, 1), np.float32)
    _expect(wrong, r'backbone.fpn_lateral3.weight has shape \(256, 256, 1, 1\), a Panoptic FPN '
                   r'R50 with 8 thing / 12 semantic classes has \(256, 512, 1, 1\)')
    extra = dict(state_dict(8, 12), **{'roi_heads.keypoint_head.fcn1.weight': np.zeros(3)})
    _expect(extra, r'1 unexpected \[.roi_heads.keypoint_head.fcn1.weight.\]')
    # class counts and depth of another model than the net's
    _expect(state_dict(8, 12), r'8 thing / 12 semantic classes \("things" \+ 11 stuff\); the net '
                               r'has 80 / 54', coco_r50)
    _expect(state_dict(depth=101), "a ResNet-101 checkpoint; the net's backbone has 6 res4 blocks",
            coco_r50)
    other_mean = dict(state_dict(), pixel_mean=np.array([0., 0., 0.]))
    _expect(other_mean, 'pixel_mean .* cannot be folded', coco_r50)
    anchors = dict(state_dict(), **{
        'proposal_generator.anchor_generator.cell_anchors.0': np.zeros((3, 4), np.float32)})
    _expect(anchors, "cell anchors of P2 are .* the net's FPNAnchors", coco_r50)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    mask_rcnn = write_pkl(tmp_path / 'model_final_maskrcnn.pkl', {'model': _mask_rcnn()})
    for argv, status, message in (
            (['detectron2', mask_rcnn, '--out', str(tmp_path / 'o')], 1,
             'model_final_maskrcnn.pkl: no sem_seg_head'),
            (['detectron2', str(tmp_path / 'missing.pkl'), '--out', str(tmp_path / 'o')], 2,
             'missing.pkl does not exist'),
            (['caffe2', mask_rcnn, '--out', str(tmp_path / 'o')], 2, "invalid choice: 'caffe2'")):
        with pytest.raises(SystemExit) as exit_:
            run_cli(main, argv)
        err = capsys.readouterr().err
        assert exit_.value.code == status and message in err and err.count('\n') == 1, err


def test_convert_state_dict_is_numpy_only():
    arrays = convert_panoptic_fpn_state_dict(state_dict(8, 12))
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in arrays.values())
    assert len(arrays) == len(panoptic_fpn_spec(8, 12))
