"""PanopticFCN and Panoptic SegFormer through the shared train / eval / demo programs on the
synthetic datasets (tiny models, CPU): data-parallel training with finite named losses,
predictions that cityscapesscripts' and COCO's evaluators score as we do, the demo, exact
resume.  (Panoptic FPN's are in ``test_scripts.py``, Semantic FPN's in
``test_semantic_scripts.py``.)"""
import glob
import json
import os

import cv2
import numpy as np
import pytest
from _scripts import (assert_coco_pq, assert_killed_run_resumes_exactly, assert_same_pq,
                      load_script, logged_losses, official_pq, train_args)

from gluonpan.model_zoo.panoptic_fcn import LOSS_NAMES as FCN_LOSSES
from gluonpan.model_zoo.panoptic_segformer import loss_names as segformer_losses

#: per architecture: its scripts' suffix, tiny options, extra training flags, its losses
ARCHS = {
    'panoptic_fcn': dict(
        kwargs=dict(fpn_channels=32, head_channels=32, semantic_channels=32,
                    encoder_channels=16),
        flags=['--clip-gradient', '35'], losses=FCN_LOSSES, title='PanopticFCN'),
    'panoptic_segformer': dict(
        kwargs=dict(embed_dims=32, feedforward_channels=64, encoder_layers=1, decoder_layers=2,
                    num_queries=20, thing_blocks=1, stuff_blocks=2, num_candidates=10),
        flags=['--lr', '1e-4'], losses=segformer_losses(2, 1, 2), title='Panoptic SegFormer'),
}
#: thresholds that let an untrained model's weak predictions through to the files
LOW = ['--score-thresh', '0', '--stuff-area', '1']


def _script(arch, program):
    return load_script('panoptic', '{}_{}'.format(program, arch))


def _model(arch, dataset='citys'):
    return '{}_resnet18_v1b_{}'.format(arch, dataset)


def _train_args(arch, root, save_dir, *extra):
    return train_args(root, save_dir, ARCHS[arch]['kwargs'], *(ARCHS[arch]['flags'] + list(extra)))


@pytest.fixture(scope='module', params=sorted(ARCHS))
def trained(request, synthetic_citys, tmp_path_factory):
    """One training step data-parallel over 2 CPU contexts, then validation with outputs."""
    arch = request.param
    save_dir = str(tmp_path_factory.mktemp(arch))
    _script(arch, 'train').main(_train_args(
        arch, synthetic_citys, save_dir, '--cpu-contexts', '2', '--batch-size', '2', '--epochs',
        '1', *LOW))
    return arch, save_dir


@pytest.mark.slow
def test_training_on_two_cpu_contexts_logs_finite_losses_and_validates(trained, synthetic_citys,
                                                                       tmp_path):
    arch, save_dir = trained
    losses = logged_losses(save_dir, ARCHS[arch]['losses'])
    assert sum(v > 0 for v in losses.values()) >= len(losses) - 2, losses
    record = json.loads(json.load(open(os.path.join(save_dir, 'args.json')))['model_kwargs'])
    assert ARCHS[arch]['kwargs'].items() <= record.items()  # the run records the options
    if arch == 'panoptic_fcn':
        assert record['deform'] is False
    ours = json.load(open(os.path.join(save_dir, 'val', 'pq.json')))
    ours['per_class'] = {int(k): v for k, v in ours['per_class'].items()}
    assert_same_pq(official_pq(synthetic_citys, os.path.join(save_dir, 'val'), tmp_path), ours)


@pytest.mark.slow
def test_eval_and_demo_scripts(trained, synthetic_citys, tmp_path):
    arch, save_dir = trained
    params = os.path.join(save_dir, '{}-final.params'.format(_model(arch)))
    res = _script(arch, 'eval').main(
        ['--pretrained', params, '--dataset', 'synthetic', '--dataset-root', synthetic_citys,
         '--gpus', '', '--num-workers', '0', '--save-dir', str(tmp_path / 'eval')] + LOW)
    assert res['num_images'] == 2
    written = json.load(open(tmp_path / 'eval' / 'panoptic_pred.json'))['annotations']
    assert sum(len(a['segments_info']) for a in written) > 0  # something to score
    assert_same_pq(official_pq(synthetic_citys, str(tmp_path / 'eval'), tmp_path), res)
    image = sorted(glob.glob(os.path.join(synthetic_citys, 'leftImg8bit', 'val', '*', '*.png')))[0]
    stems = _script(arch, 'demo').main(
        ['--pretrained', params, '--images', image, '--out-dir', str(tmp_path / 'demo')] + LOW)
    assert cv2.imread(stems[0] + '_overlay.png').shape == cv2.imread(image).shape
    info = json.load(open(stems[0] + '_panoptic.json'))
    pan = cv2.imread(stems[0] + '_panoptic.png')[..., ::-1].astype(np.int64)
    ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    assert set(np.unique(ids)) - {0} == {s['id'] for s in info['segments_info']}


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_a_panoptic_fpn_model_is_refused_by_another_architectures_eval(arch, capsys):
    with pytest.raises(SystemExit):
        _script(arch, 'eval').main(['--pretrained', 'panoptic_fpn_resnet50_v1b_citys',
                                    '--gpus', ''])
    assert 'not a {} model'.format(ARCHS[arch]['title']) in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_killed_training_resumes_to_the_same_weights(arch, synthetic_citys, tmp_path):
    assert_killed_run_resumes_exactly(
        'train_' + arch, lambda d, *x: _train_args(arch, synthetic_citys, d, *x), tmp_path,
        _model(arch))


@pytest.mark.slow
@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_coco_format_train_eval(arch, synthetic_coco, tmp_path):
    """The COCO path: the run records the categories, eval needs nothing but the weights, and
    COCO's panopticapi scores the files as we do."""
    save_dir = str(tmp_path / 'run')
    args = _train_args(arch, synthetic_coco, save_dir, '--batch-size', '1', '--epochs', '1')
    args[args.index('synthetic')] = 'synthetic_coco'
    _script(arch, 'train').main(args)
    params = os.path.join(save_dir, '{}-final.params'.format(_model(arch, 'coco')))
    res = _script(arch, 'eval').main(['--pretrained', params, '--gpus', '', '--num-workers',
                                      '0', '--save-dir', str(tmp_path / 'eval')] + LOW)
    assert_coco_pq(synthetic_coco, str(tmp_path / 'eval'), res)
