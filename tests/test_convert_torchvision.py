"""The torchvision converters on full-size state dicts made from their spec (no PyTorch needed):
the COCO Mask R-CNN (91 class slots indexed by category id) and the ImageNet ResNets."""
import os

import numpy as np
import pytest

from gluonpan.convert.__main__ import main
from gluonpan.convert.torchvision import (COCO_NUM_CLASSES, maskrcnn_resnet_fpn_spec,
                                          maskrcnn_to_gluonpan, resnet_to_backbone,
                                          select_classes)
from gluonpan.errors import DataError, run_cli
from gluonpan.model_zoo import get_model
from gluonpan.model_zoo.panoptic_fpn.predefined import COCO_CATEGORIES_JSON

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def rows_hold_their_index(shape):
    """An array whose row r holds r everywhere."""
    rows = np.arange(shape[0], dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    return rows * np.ones(shape, np.float32)


def test_coco_maskrcnn_class_slots_map_to_our_thing_classes():
    state = {k: rows_hold_their_index(s) for k, s in maskrcnn_resnet_fpn_spec(
        COCO_NUM_CLASSES).items()}
    net = get_model('panoptic_fpn_resnet50_v1b_coco', categories=COCO_CATEGORIES_JSON,
                    preset='torchvision')
    with pytest.raises(DataError, match='class_predictor.weight: torchvision gives shape '
                                        r'\(91, 1024\), the net has \(81, 1024\)'):
        maskrcnn_to_gluonpan(state, net)
    things = net.categories.thing_ids  # COCO ids 1..90, 80 of them
    assert len(things) == 80 and things[:3] == [1, 2, 3] and things[-1] == 90
    maskrcnn_to_gluonpan(select_classes(state, [0] + things), net)
    params = net._collect_params_with_prefix()
    cls = params['roi_heads.class_predictor.weight'].data().asnumpy()[:, 0]
    np.testing.assert_array_equal(cls, [0] + things)
    box = params['roi_heads.box_predictor.weight'].data().asnumpy()[:, 0]
    np.testing.assert_array_equal(box, np.concatenate([4 * c + np.arange(4) for c in things]))
    mask = params['roi_heads.mask_head.predictor.weight'].data().asnumpy()[:, 0, 0, 0]
    np.testing.assert_array_equal(mask, things)


def test_imagenet_resnet_becomes_a_pretrained_base(tmp_path):
    body = 'backbone.body.'
    state = {k[len(body):]: rows_hold_their_index(s) for k, s in maskrcnn_resnet_fpn_spec(
        9).items() if k.startswith(body)}
    state.update({'fc.weight': np.zeros((1000, 2048), np.float32),
                  'fc.bias': np.zeros(1000, np.float32)})
    name, backbone = resnet_to_backbone(state)
    assert name == 'resnet50_v1b'
    path = str(tmp_path / 'resnet50_v1b_torchvision.params')
    backbone.save_parameters(path)
    net = get_model('panoptic_fpn_resnet50_v1b_citys', pretrained_base=path)
    gamma = net.backbone.layer4[2].bn3.gamma.data().asnumpy()
    np.testing.assert_array_equal(gamma, state['layer4.2.bn3.weight'])
    with pytest.raises(DataError, match='not a torchvision ImageNet ResNet-50 / 101'):
        resnet_to_backbone({k: v for k, v in state.items() if not k.startswith('layer3.5.')})


def test_cli_refuses_other_checkpoints(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ['torchvision', os.path.join(FIXTURES, 'tiny_checkpoint.pth'), '--out',
                       str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count('\n') == 1, err
    assert 'tiny_checkpoint.pth: no roi_heads.box_predictor.cls_score.weight' in err
