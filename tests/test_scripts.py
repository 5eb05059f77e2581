"""The train / eval / demo scripts end to end on the synthetic dataset (tiny model, CPU)."""
import glob
import json
import os

import cv2
import mxnet as mx
import numpy as np
import pytest
from _scripts import (assert_coco_pq, assert_killed_run_resumes_exactly, assert_same_pq,
                      load_script, logged_losses, official_pq, train_args)

from gluonpan.data import CityscapesPanoptic, PanopticValTransform
from gluonpan.utils.cli import evaluate_panoptic

TINY_MODEL = dict(fpn_channels=32, sem_seg_channels=32, sem_seg_num_groups=8, rpn_channels=32,
                  rpn_train_pre_nms=300, rpn_train_post_nms=64, rpn_test_pre_nms=300,
                  rpn_test_post_nms=64, rcnn_num_sample=32, test_max_dets=20)


def _script(name):
    return load_script('panoptic', name)


def _train_args(root, save_dir, *extra):
    return train_args(root, save_dir, TINY_MODEL, '--synthetic-size', '128x256',
                      '--synthetic-train', '3', '--synthetic-val', '2', *extra)


@pytest.fixture(scope='module')
def trained(synthetic_citys, tmp_path_factory):
    """One training step data-parallel over 2 CPU contexts, then validation with outputs."""
    save_dir = str(tmp_path_factory.mktemp('run'))
    _script('train_panoptic_fpn').main(_train_args(
        synthetic_citys, save_dir, '--cpu-contexts', '2', '--batch-size', '2', '--epochs', '1'))
    return save_dir


@pytest.mark.slow
def test_training_on_two_cpu_contexts_logs_finite_losses_and_validates(trained, synthetic_citys,
                                                                       tmp_path):
    logged_losses(trained, ('loss_rpn_cls', 'loss_rpn_box', 'loss_rcnn_cls', 'loss_rcnn_box',
                            'loss_mask', 'loss_sem_seg'))
    assert os.path.isfile(os.path.join(trained, 'panoptic_fpn_resnet18_v1b_citys-final.params'))
    history = [json.loads(l) for l in open(os.path.join(trained, 'val_history.jsonl'))]
    assert history[-1]['epoch'] == 1
    # the validation files are what cityscapesscripts' evaluator takes, with the same numbers
    ours = json.load(open(os.path.join(trained, 'val', 'pq.json')))
    ours['per_class'] = {int(k): v for k, v in ours['per_class'].items()}
    assert_same_pq(official_pq(synthetic_citys, os.path.join(trained, 'val'), tmp_path), ours)
    assert len(glob.glob(os.path.join(trained, 'val', 'overlays', '*.png'))) == 1


def _degraded(sample, rng):
    """Ground truth with errors: one segment dropped, one thing relabelled as another class."""
    pan, segs = sample['pan_ids'].copy(), [dict(s) for s in sample['segments_info']]
    things = [s for s in segs if s['category_id'] in (24, 26) and not s['iscrowd']]
    if things:
        drop = things[rng.integers(len(things))]
        pan[pan == drop['id']] = 0
        segs.remove(drop)
    if len(things) > 1:
        other = next(s for s in things if s is not drop)
        other['category_id'] = 24 if other['category_id'] == 26 else 26
    for s in segs:
        if s['iscrowd']:
            pan[pan == s['id']] = 0  # predictions have no crowd segments
    return pan, [dict(id=s['id'], category_id=s['category_id']) for s in segs if not s['iscrowd']]


def test_eval_output_matches_cityscapesscripts_on_non_trivial_predictions(synthetic_citys, tmp_path):
    dataset = CityscapesPanoptic(synthetic_citys, 'val', PanopticValTransform())
    rng = np.random.default_rng(0)
    preds = iter([_degraded(dataset[i], rng) for i in range(len(dataset))])
    ours = evaluate_panoptic(None, dataset, [mx.cpu()], out_dir=str(tmp_path / 'pred'),
                             predict_fn=lambda net, data: next(preds))
    assert 0.3 < ours['All']['pq'] < 1.0
    assert_same_pq(official_pq(synthetic_citys, str(tmp_path / 'pred'), tmp_path), ours)


@pytest.mark.slow
def test_eval_and_demo_scripts(trained, synthetic_citys, tmp_path):
    params = os.path.join(trained, 'panoptic_fpn_resnet18_v1b_citys-final.params')
    stamp = os.path.join(synthetic_citys, 'synthetic.json')
    before = os.stat(stamp).st_mtime_ns
    # no --synthetic-* flags: the existing data is evaluated as it is, never regenerated
    res = _script('eval_panoptic_fpn').main(
        ['--pretrained', params, '--dataset', 'synthetic', '--dataset-root', synthetic_citys,
         '--gpus', '', '--num-workers', '0', '--save-dir', str(tmp_path / 'eval')])
    assert res['num_images'] == 2 and os.stat(stamp).st_mtime_ns == before
    assert_same_pq(official_pq(synthetic_citys, str(tmp_path / 'eval'), tmp_path), res)
    image = sorted(glob.glob(os.path.join(synthetic_citys, 'leftImg8bit', 'val', '*', '*.png')))[0]
    stems = _script('demo_panoptic_fpn').main(
        ['--pretrained', params, '--images', image, '--out-dir', str(tmp_path / 'demo')])
    overlay = cv2.imread(stems[0] + '_overlay.png')
    assert overlay.shape == cv2.imread(image).shape
    info = json.load(open(stems[0] + '_panoptic.json'))
    pan = cv2.imread(stems[0] + '_panoptic.png')[..., ::-1].astype(np.int64)
    ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    assert set(np.unique(ids)) - {0} == {s['id'] for s in info['segments_info']}


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(synthetic_citys, tmp_path):
    assert_killed_run_resumes_exactly(
        'train_panoptic_fpn', lambda d, *x: _train_args(synthetic_citys, d, *x), tmp_path, 'panoptic_fpn_resnet18_v1b_citys')


@pytest.mark.slow
def test_run_recorded_before_conventions_keeps_gluoncvs(synthetic_citys, tmp_path):
    """A run whose args.json predates recorded conventions (no preset) ran with gluoncv's: eval
    and --resume rebuild it so, and asking a resumed run for other conventions is refused."""
    from gluonpan.errors import UsageError
    save_dir = str(tmp_path / 'legacy')
    legacy = dict(TINY_MODEL, preset='gluoncv')
    train = _script('train_panoptic_fpn')
    train.main(_train_args(synthetic_citys, save_dir, '--batch-size', '1', '--epochs', '1',
                           '--val-interval', '100') + [
        '--model-kwargs', json.dumps(legacy)])
    path = os.path.join(save_dir, 'args.json')
    record = json.load(open(path))
    assert json.loads(record['model_kwargs'])['anchor_style'] == 'detectron1'
    record['model_kwargs'] = json.dumps(TINY_MODEL)  # as written before conventions were
    with open(path, 'w') as f:
        json.dump(record, f)
    params = os.path.join(save_dir, 'panoptic_fpn_resnet18_v1b_citys-final.params')
    res = _script('eval_panoptic_fpn').main(
        ['--pretrained', params, '--dataset', 'synthetic', '--dataset-root', synthetic_citys,
         '--gpus', '', '--num-workers', '0', '--save-dir', str(tmp_path / 'eval')])
    assert res['num_images'] == 2
    os.remove(params)  # resume the last checkpoint for one more epoch, default model options
    with pytest.raises(UsageError, match="preset='gluoncv'.*preset='detectron2'"):
        train.main(_train_args(synthetic_citys, save_dir, '--batch-size', '1', '--epochs', '2',
                               '--val-interval', '100', '--resume') + [
            '--model-kwargs', json.dumps(dict(TINY_MODEL, preset='detectron2'))])
    net = train.main(_train_args(synthetic_citys, save_dir, '--batch-size', '1', '--epochs', '2',
                                 '--val-interval', '100', '--resume'))
    assert net.conventions['preset'] == 'gluoncv' and net.anchors.style == 'detectron1'
    assert json.loads(json.load(open(path))['model_kwargs'])['preset'] == 'gluoncv'
    assert 'resumed from' in open(os.path.join(save_dir, 'train.log')).read()


@pytest.mark.parametrize('flag,value', [('--crop-size', '512xabc'), ('--scale-range', '0.5'),
                                        ('--anchor-sizes', '32,64'), ('--model-kwargs', '{bad')])
def test_bad_train_flags_are_named(flag, value, capsys):
    with pytest.raises(SystemExit):
        _script('train_panoptic_fpn').parse_args([flag, value])
    err = capsys.readouterr().err
    assert flag in err and value in err


def test_config_file_sets_defaults_and_rejects_unknown_keys(tmp_path, capsys):
    train = _script('train_panoptic_fpn')
    cfg = tmp_path / 'c.json'
    cfg.write_text(json.dumps({'lr': 0.5, 'model_kwargs': {'fpn_channels': 64}}))
    args = train.parse_args(['--config', str(cfg), '--epochs', '3'])
    assert args.lr == 0.5 and args.epochs == 3 and json.loads(args.model_kwargs) == {'fpn_channels': 64}
    assert train.parse_args(['--config', str(cfg), '--lr', '0.1']).lr == 0.1
    cfg.write_text(json.dumps({'learning_rate': 0.5}))
    with pytest.raises(SystemExit):
        train.parse_args(['--config', str(cfg)])
    assert 'learning_rate' in capsys.readouterr().err


@pytest.mark.slow
def test_coco_format_train_eval_demo(synthetic_coco, tmp_path):
    """The COCO path end to end on the synthetic COCO split: train, eval (files scored by COCO's
    panopticapi with the same numbers), demo; the run's args.json carries the categories and the
    conventions, so eval and demo need nothing but the weights."""
    save_dir = str(tmp_path / 'run')
    args = _train_args(synthetic_coco, save_dir, '--batch-size', '1', '--epochs', '1')
    args[args.index('synthetic')] = 'synthetic_coco'
    for flag in ('--synthetic-size', '--synthetic-train', '--synthetic-val'):  # the data exists
        del args[args.index(flag):args.index(flag) + 2]
    _script('train_panoptic_fpn').main(args)
    record = json.load(open(os.path.join(save_dir, 'args.json')))
    assert record['model'] == 'panoptic_fpn_resnet18_v1b_coco'
    assert {c['id'] for c in record['categories']} == {c['id'] for c in json.load(open(
        os.path.join(synthetic_coco, 'annotations', 'panoptic_val2017.json')))['categories']}
    assert json.loads(record['model_kwargs'])['anchor_style'] == 'detectron2'  # conventions kept
    params = os.path.join(save_dir, 'panoptic_fpn_resnet18_v1b_coco-final.params')
    res = _script('eval_panoptic_fpn').main(['--pretrained', params, '--gpus', '', '--num-workers',
                                             '0', '--save-dir', str(tmp_path / 'eval')])
    assert res['num_images'] == 2
    assert_coco_pq(synthetic_coco, str(tmp_path / 'eval'), res)
    image = sorted(glob.glob(os.path.join(synthetic_coco, 'val2017', '*.jpg')))[0]
    stems = _script('demo_panoptic_fpn').main(
        ['--pretrained', params, '--images', image, '--out-dir', str(tmp_path / 'demo')])
    info = json.load(open(stems[0] + '_panoptic.json'))
    coco_ids = {c['id'] for c in record['categories']}
    assert all(s['category_id'] in coco_ids for s in info['segments_info'])
