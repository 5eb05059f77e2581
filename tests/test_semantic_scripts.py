"""Semantic FPN through the shared train / eval programs, end to end on a tiny synthetic set (CPU).

One tiny run (64x128 images, 3 train / 2 val, resnet18 with 16-channel FPN and head) trains
in-process; its final weights are evaluated by the eval script on the Cityscapes layout and on the
synthetic ADE20K layout (the same scenes, our 19 classes under ADE20K ids), its files are scored by
cityscapesscripts, and the bad inputs of the semantic scripts are run as a user runs them.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import mxnet as mx
import numpy as np
import pytest

from _scripts import load_script
from _bad_input import assert_input_error
from gluonpan.data.categories import (ade20k_class_names, ade20k_to_cityscapes_train_id,
                                      cityscapes_train_id_lut, cityscapes_train_id_names,
                                      cityscapes_train_id_to_ade20k)
import gluonpan
from gluonpan.data.io import read_image
from gluonpan.data.png import read_label_png
from gluonpan.errors import UsageError
from gluonpan.utils.cli import load_model, run_args
from gluonpan.utils.semantic_writer import train_to_label_ids
from gluonpan.utils.metrics import SemanticMetric, evaluate_ade20k_files
from test_semantic_metrics import _assert_same, _reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, 'scripts', 'segmentation')
TINY_MODEL = dict(fpn_channels=16, head_channels=16)
PREFIX = 'semantic_fpn_resnet18_v1b_citys'
SYNTHETIC = ('--synthetic-size', '64x128', '--synthetic-train', '3', '--synthetic-val', '2')


def _script(name):
    return load_script('segmentation', name)


def _train_args(root, save_dir, *extra):
    return ['--dataset', 'synthetic', '--dataset-root', root, '--network', 'resnet18_v1b',
            '--gpus', '', '--num-workers', '0', '--crop-size', '64x128', '--scale-range',
            '0.75,1.25', '--norm-layer', 'bn', '--model-kwargs', json.dumps(TINY_MODEL),
            '--lr', '0.05', '--batch-size', '1', '--log-interval', '1', '--val-overlays', '1',
            '--save-dir', save_dir] + list(extra)


def _eval(params, save_dir, *extra):
    return _script('eval_semantic_fpn').main(
        ['--pretrained', params, '--gpus', '', '--num-workers', '0', '--save-dir', save_dir] +
        list(extra))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(data root, run folder) of 3 epochs with a validation after each; the synthetic
    Cityscapes is made by the task from the --synthetic-* flags."""
    root = str(tmp_path_factory.mktemp('citys64'))
    save_dir = str(tmp_path_factory.mktemp('semantic_run'))
    _script('train_semantic_fpn').main(_train_args(root, save_dir, '--epochs', '3',
                                                   '--val-interval', '1', *SYNTHETIC))
    return root, save_dir


@pytest.fixture(scope='module')
def evaluated(trained, tmp_path_factory):
    """The eval script's results on the Cityscapes layout, and its output folder."""
    out = str(tmp_path_factory.mktemp('eval'))
    return _eval(os.path.join(trained[1], PREFIX + '-final.params'), out), out


def test_training_logs_finite_losses_and_validates(trained):
    root, save_dir = trained
    image = glob.glob(os.path.join(root, 'leftImg8bit', 'train', '*', '*.png'))[0]
    assert cv2.imread(image).shape == (64, 128, 3)
    lines = [l for l in open(os.path.join(save_dir, 'train.log')) if '[Batch ' in l]
    assert len(lines) == 9  # 3 epochs of 3 images
    for line in lines:
        assert np.isfinite(float(line.split('loss_sem_seg=')[1].split(',')[0]))
    history = [json.loads(l) for l in open(os.path.join(save_dir, 'val_history.jsonl'))]
    assert [h['epoch'] for h in history] == [1, 2, 3]
    assert all(0 <= h['mIoU'] <= 1 and 0 <= h['aAcc'] <= 1 and 'mAcc' in h for h in history)
    record = json.load(open(os.path.join(save_dir, 'args.json')))
    assert record['model'] == PREFIX and record['lr_mode'] == 'poly'  # the task's defaults
    assert len(glob.glob(os.path.join(save_dir, 'val', 'semantic_pred', '*.png'))) == 2
    assert len(glob.glob(os.path.join(save_dir, 'val', 'overlays', '*'))) == 1


def test_eval_files_match_cityscapesscripts_memory_and_validation(trained, evaluated, tmp_path,
                                                                   monkeypatch):
    (root, save_dir), (res, out) = trained, evaluated
    pred_dir = os.path.join(out, 'semantic_pred')
    preds = sorted(glob.glob(os.path.join(pred_dir, '*_pred_labelIds.png')))
    assert len(preds) == 2 and res['num_images'] == 2
    evaluated_ids = set(np.nonzero(cityscapes_train_id_lut() != 255)[0])
    assert all(set(np.unique(read_label_png(p))) <= evaluated_ids for p in preds)  # label ids
    ref, _ = _reference(root, pred_dir, tmp_path, monkeypatch)
    _assert_same(res['cityscapes'], ref)
    # the files' class IoU are the in-memory IoU of the 19 train ids
    for name in cityscapes_train_id_names():
        np.testing.assert_allclose(res['cityscapes']['classScores'][name], res['IoU'][name],
                                   rtol=0, atol=1e-12, err_msg=name)
    assert res['cityscapes']['averageScoreClasses'] == pytest.approx(res['mIoU'], abs=1e-12)
    assert res['mIoU'] > 0 and sum(v > 0 for v in res['IoU'].values()) >= 2
    # the same weights scored the same during training (the validation after the last epoch)
    last = [json.loads(l) for l in open(os.path.join(save_dir, 'val_history.jsonl'))][-1]
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert last[key] == pytest.approx(res[key], abs=1e-12), key
    saved = json.load(open(os.path.join(out, 'miou.json')))
    assert saved['mIoU'] == pytest.approx(res['mIoU'], abs=1e-12)


def test_demo_and_predict_write_what_eval_writes(trained, evaluated, tmp_path):
    """The demo (gluonpan.predict) segments a val image as the eval program did: the same
    label-id PNG; an overlay of the image's size; gluonpan.predict's classes are train ids."""
    (root, save_dir), (_, out) = trained, evaluated
    image = sorted(glob.glob(os.path.join(root, 'leftImg8bit', 'val', '*', '*.png')))[0]
    stems = _script('demo_semantic_fpn').main(
        ['--pretrained', os.path.join(save_dir, PREFIX + '-final.params'), '--images', image,
         '--out-dir', str(tmp_path / 'demo')])
    demo = read_label_png(stems[0] + '_labelIds.png')
    stem = os.path.basename(image)[:-len('_leftImg8bit.png')]
    evaluated_png = glob.glob(os.path.join(out, 'semantic_pred', stem + '*.png'))
    assert len(evaluated_png) == 1
    np.testing.assert_array_equal(demo, read_label_png(evaluated_png[0]))
    assert cv2.imread(stems[0] + '_overlay.png').shape == cv2.imread(image).shape
    params = os.path.join(save_dir, PREFIX + '-final.params')
    args = _script('demo_semantic_fpn').parse_args(['--pretrained', params, '--images', image])
    args.dataset = 'synthetic'
    model = load_model(args, [mx.cpu()], run_args(params), None, args.task)
    classes = gluonpan.predict(model, read_image(image))
    assert classes.shape == (64, 128) and classes.dtype == np.int32 and classes.max() < 19
    np.testing.assert_array_equal(train_to_label_ids(classes), demo)
    with pytest.raises(UsageError, match='score_threshold'):
        gluonpan.predict(model, read_image(image), score_threshold=0.5)


def _same_pixels_root(citys_root, ade_root, dst):
    """A copy of the Cityscapes root whose val images are the decoded JPEGs of the ADE20K layout
    (decoded as the ADE20K dataset decodes them), saved lossless."""
    shutil.copytree(citys_root, dst)
    for path in glob.glob(os.path.join(dst, 'leftImg8bit', 'val', '*', '*.png')):
        index = int(os.path.basename(path).split('_')[1])
        jpeg = os.path.join(ade_root, 'ADEChallengeData2016', 'images', 'validation',
                            'ADE_val_{:08d}.jpg'.format(index + 1))
        assert cv2.imwrite(path, read_image(jpeg, allow_gray=True)[..., ::-1])
    return dst


def test_ade20k_layout_gives_the_same_scores(trained, evaluated, tmp_path):
    """The synthetic ADE20K holds the same scenes; its labels are the Cityscapes labels under
    ADE20K ids (lossless PNGs), but its images are JPEGs (quality 95), so the network sees other
    pixels there and the two layouts need not score the same.  What must hold exactly: the ADE20K
    scores are those of the mapped predictions against the Cityscapes labels, only the 19 mapped
    classes have pixels, and on the same pixels both layouts give the same per-class IoU."""
    (root, save_dir), (res, _) = trained, evaluated
    params = os.path.join(save_dir, PREFIX + '-final.params')
    ade_root, out = str(tmp_path / 'ade'), str(tmp_path / 'eval_ade')
    ade = _eval(params, out, '--dataset', 'synthetic_ade', '--dataset-root', ade_root, *SYNTHETIC)
    assert ade['num_images'] == 2 and 'mapped' in open(os.path.join(out, 'eval.log')).read()
    assert ade['mIoU_mapped'] == pytest.approx(ade['mIoU'], abs=1e-12)
    names = ade20k_class_names()
    to_ade = cityscapes_train_id_to_ade20k()[:19].astype(int) - 1
    present = {n for n, v in ade['IoU'].items() if not np.isnan(v)}
    assert present <= {names[k] for k in to_ade} and len(present) == len(
        [v for v in res['IoU'].values() if not np.isnan(v)])
    # the written ADE20K PNGs score the same, and mapped back to train ids they score the same
    # against the Cityscapes ground truth of the same scenes
    files = evaluate_ade20k_files(os.path.join(out, 'semantic_pred'), ade_root, class_names=names)
    np.testing.assert_equal(files['IoU'], ade['IoU'])
    back = SemanticMetric(19)
    for pred in sorted(glob.glob(os.path.join(out, 'semantic_pred', '*.png'))):
        index = int(os.path.basename(pred)[len('ADE_val_'):-4]) - 1
        gt = glob.glob(os.path.join(root, 'gtFine', 'val', '*',
                                    '*_{:06d}_*_gtFine_labelIds.png'.format(index)))[0]
        back.update(ade20k_to_cityscapes_train_id()[read_label_png(pred)],
                    cityscapes_train_id_lut()[read_label_png(gt)])
    assert back.results()['mIoU'] == pytest.approx(ade['mIoU'], abs=1e-12)
    assert back.results()['aAcc'] == ade['aAcc']
    # the same pixels on both layouts: the same scores, class by class
    same = _eval(params, str(tmp_path / 'eval_same'), '--dataset', 'synthetic', '--dataset-root',
                 _same_pixels_root(root, ade_root, str(tmp_path / 'citys_jpeg')))
    for train_id, name in enumerate(cityscapes_train_id_names()):
        np.testing.assert_equal(same['IoU'][name], ade['IoU'][names[to_ade[train_id]]], name)
    assert same['aAcc'] == ade['aAcc'] and same['mIoU'] == pytest.approx(ade['mIoU'], abs=1e-12)


class _Killed(Exception):
    """Stands for the process being killed right after a checkpoint was written."""


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_weights(trained, tmp_path, monkeypatch):
    from gluonpan.utils.checkpoint import CheckpointManager
    root = trained[0]
    train = _script('train_semantic_fpn')

    def run(save_dir, *extra):
        return train.main(_train_args(root, save_dir, '--epochs', '2', '--ckpt-interval', '1',
                                      '--val-interval', '1', *extra))

    straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
    run(straight)
    save = CheckpointManager.save

    def save_then_die(self, epoch, iteration, *args, **kwargs):
        save(self, epoch, iteration, *args, **kwargs)
        if (epoch, iteration) == (1, 1):  # mid-epoch, after the first validation
            raise _Killed()
    monkeypatch.setattr(CheckpointManager, 'save', save_then_die)
    with pytest.raises(_Killed):
        run(killed)
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(killed, PREFIX + '-final.params'))
    run(killed, '--resume')
    assert 'resumed from' in open(os.path.join(killed, 'train.log')).read()
    a, b = (mx.nd.load(os.path.join(d, PREFIX + '-final.params')) for d in (straight, killed))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].asnumpy(), b[key].asnumpy(), err_msg=key)
    histories = [open(os.path.join(d, 'val_history.jsonl')).read() for d in (straight, killed)]
    assert histories[0] == histories[1]


# --- bad input: one line naming the culprit, no traceback -------------------------------------
def _run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('GLUONPAN_DEBUG', None)
    return subprocess.run([sys.executable, script] + list(args), env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)


def _missing_label(root, tmp):
    copy = os.path.join(tmp, 'citys')
    shutil.copytree(root, copy)
    label = sorted(glob.glob(os.path.join(copy, 'gtFine', 'val', '*', '*_labelIds.png')))[0]
    os.remove(label)
    return ('--dataset-root', copy), os.path.basename(label)


BAD_INPUTS = [
    # (case, script, extra flags from (data root, tmp), status, culprits)
    ('panoptic-zoo-name', 'eval_semantic_fpn',
     lambda r, t: (('--pretrained', 'panoptic_fpn_resnet50_v1b_citys'), ''), 2,
     ['--pretrained', 'panoptic_fpn_resnet50_v1b_citys', 'Semantic FPN']),
    ('slide-without-crop', 'eval_semantic_fpn', lambda r, t: (('--test-mode', 'slide'), ''), 2,
     ['--test-mode slide', '--test-crop']),
    ('stride-larger-than-crop', 'eval_semantic_fpn', lambda r, t: (
        ('--test-mode', 'slide', '--test-crop', '32x32', '--test-stride', '48x16'), ''), 2,
     ['--test-stride 48x16']),
    ('missing-label-png', 'eval_semantic_fpn', _missing_label, 1, []),
    ('semantic-weights-to-panoptic-eval', os.path.join('..', 'panoptic', 'eval_panoptic_fpn'),
     lambda r, t: ((), ''), 2, [PREFIX, 'Panoptic FPN']),
]


@pytest.mark.parametrize('case,script,extra,status,culprits', BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_one_line(case, script, extra, status, culprits, trained, tmp_path):
    flags, culprit = extra(trained[0], str(tmp_path))
    args = ['--pretrained', os.path.join(trained[1], PREFIX + '-final.params'), '--gpus', '',
            '--num-workers', '0', '--save-dir', str(tmp_path / 'eval')] + list(flags)
    proc = _run(os.path.join(SCRIPTS, script + '.py'), *args)
    assert_input_error(proc, status, *(culprits + ([culprit] if culprit else [])))
