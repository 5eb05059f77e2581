"""PanopticFCN through the shared train / eval / demo programs on the synthetic datasets (tiny
model, CPU): data-parallel training with finite named losses, predictions that cityscapesscripts'
and COCO's evaluators score as we do, the demo, exact resume."""
import glob
import json
import os

import cv2
import numpy as np
import pytest
from _scripts import (assert_coco_pq, assert_killed_run_resumes_exactly, assert_same_pq,
                      load_script, logged_losses, official_pq, train_args)

from gluonpan.model_zoo.panoptic_fcn import LOSS_NAMES

TINY = dict(fpn_channels=32, head_channels=32, semantic_channels=32, encoder_channels=16)
MODEL = 'panoptic_fcn_resnet18_v1b_citys'
#: thresholds that let an untrained model's weak predictions through to the files
LOW = ['--score-thresh', '0', '--stuff-area', '1']


def _script(name):
    return load_script('panoptic', name)


def _train_args(root, save_dir, *extra):
    return train_args(root, save_dir, TINY, '--clip-gradient', '35', *extra)


@pytest.fixture(scope='module')
def trained(synthetic_citys, tmp_path_factory):
    """One training step data-parallel over 2 CPU contexts, then validation with outputs."""
    save_dir = str(tmp_path_factory.mktemp('fcn_run'))
    _script('train_panoptic_fcn').main(_train_args(
        synthetic_citys, save_dir, '--cpu-contexts', '2', '--batch-size', '2', '--epochs', '1',
        *LOW))
    return save_dir


@pytest.mark.slow
def test_training_on_two_cpu_contexts_logs_finite_losses_and_validates(trained, synthetic_citys,
                                                                       tmp_path):
    assert all(v > 0 for v in logged_losses(trained, LOSS_NAMES).values())
    record = json.load(open(os.path.join(trained, 'args.json')))
    assert json.loads(record['model_kwargs'])['deform'] is False  # the run records the options
    ours = json.load(open(os.path.join(trained, 'val', 'pq.json')))
    ours['per_class'] = {int(k): v for k, v in ours['per_class'].items()}
    assert_same_pq(official_pq(synthetic_citys, os.path.join(trained, 'val'), tmp_path), ours)


@pytest.mark.slow
def test_eval_and_demo_scripts(trained, synthetic_citys, tmp_path):
    params = os.path.join(trained, '{}-final.params'.format(MODEL))
    res = _script('eval_panoptic_fcn').main(
        ['--pretrained', params, '--dataset', 'synthetic', '--dataset-root', synthetic_citys,
         '--gpus', '', '--num-workers', '0', '--save-dir', str(tmp_path / 'eval')] + LOW)
    assert res['num_images'] == 2
    written = json.load(open(tmp_path / 'eval' / 'panoptic_pred.json'))['annotations']
    assert sum(len(a['segments_info']) for a in written) > 0  # something to score
    assert_same_pq(official_pq(synthetic_citys, str(tmp_path / 'eval'), tmp_path), res)
    image = sorted(glob.glob(os.path.join(synthetic_citys, 'leftImg8bit', 'val', '*', '*.png')))[0]
    stems = _script('demo_panoptic_fcn').main(
        ['--pretrained', params, '--images', image, '--out-dir', str(tmp_path / 'demo')] + LOW)
    assert cv2.imread(stems[0] + '_overlay.png').shape == cv2.imread(image).shape
    info = json.load(open(stems[0] + '_panoptic.json'))
    pan = cv2.imread(stems[0] + '_panoptic.png')[..., ::-1].astype(np.int64)
    ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    assert set(np.unique(ids)) - {0} == {s['id'] for s in info['segments_info']}


def test_a_panoptic_fpn_model_is_refused_by_the_fcn_eval(capsys):
    with pytest.raises(SystemExit):
        _script('eval_panoptic_fcn').main(['--pretrained', 'panoptic_fpn_resnet50_v1b_citys',
                                           '--gpus', ''])
    assert 'not a PanopticFCN model' in capsys.readouterr().err


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(synthetic_citys, tmp_path):
    assert_killed_run_resumes_exactly(
        'train_panoptic_fcn', lambda d, *x: _train_args(synthetic_citys, d, *x), tmp_path, MODEL)


@pytest.mark.slow
def test_coco_format_train_eval(synthetic_coco, tmp_path):
    """The COCO path: the run records the categories, eval needs nothing but the weights, and
    COCO's panopticapi scores the files as we do."""
    save_dir = str(tmp_path / 'run')
    args = _train_args(synthetic_coco, save_dir, '--batch-size', '1', '--epochs', '1')
    args[args.index('synthetic')] = 'synthetic_coco'
    _script('train_panoptic_fcn').main(args)
    params = os.path.join(save_dir, 'panoptic_fcn_resnet18_v1b_coco-final.params')
    res = _script('eval_panoptic_fcn').main(['--pretrained', params, '--gpus', '', '--num-workers',
                                             '0', '--save-dir', str(tmp_path / 'eval')] + LOW)
    assert_coco_pq(synthetic_coco, str(tmp_path / 'eval'), res)
