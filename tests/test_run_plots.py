"""The picture of a training run (gluonpan/utils/plots.py): the loss record and how a resumed run
keeps it, the series the picture is drawn from, ``curves.png`` of a tiny training run with
validation, a resumed run ending with the same files, and a broken picture path that does not stop
training."""
import json
import os
import shutil

import cv2
import pytest
from _scripts import load_script, train_args

from gluonpan.utils.plots import LOSSES_FILE, PLOT_FILE, LossHistory, run_curves

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
TINY_MODEL = dict(fpn_channels=16, head_channels=16)
PREFIX = 'semantic_fpn_resnet18_v1b_citys'


def _losses(epoch, iteration):
    """Made-up losses of one step."""
    return {'loss_a': 1.0 / (1 + 5 * epoch + iteration), 'loss_b': 0.1 * (iteration + 1)}


def _steps(history, steps, commit_every=3, num_batches=5):
    """Feed ``steps`` ((epoch, iteration) pairs) to ``history`` as the engine does: a commit
    before the checkpoint every ``commit_every`` batches and at every epoch end."""
    for epoch, i in steps:
        history.add(epoch, i, num_batches, _losses(epoch, i))
        if (i + 1) % commit_every == 0 or i + 1 == num_batches:
            history.commit()


def test_loss_history_lines_and_a_resumed_record_equal_an_uninterrupted_one(tmp_path):
    every = [(e, i) for e in range(2) for i in range(5)]
    straight = str(tmp_path / 'straight.jsonl')
    _steps(LossHistory(straight, interval=2), every)
    lines = [json.loads(line) for line in open(straight)]
    # intervals end every 2 batches, at the commit before the checkpoint after batch 3, at the end
    assert [(l['epoch'], l['batch'], l['steps']) for l in lines] == [
        (e, b, s) for e in range(2) for b, s in ((2, 2), (3, 1), (4, 1), (5, 1))]
    assert lines[0]['losses'] == {k: (_losses(0, 0)[k] + _losses(0, 1)[k]) / 2
                                  for k in ('loss_a', 'loss_b')}
    assert lines[0]['batches'] == 5

    # a run whose record got ahead of the checkpoint it resumes from (epoch 1, 3 batches done)
    killed = str(tmp_path / 'killed.jsonl')
    _steps(LossHistory(killed, interval=2), every)
    resumed = LossHistory(killed, interval=2, start=(1, 3))
    assert [(l['epoch'], l['batch']) for l in resumed.lines][-1] == (1, 3)
    assert len(open(killed).readlines()) == 6  # the later lines are gone from the file at once
    _steps(resumed, every[8:])
    assert open(killed).read() == open(straight).read()

    # a fresh start over a leftover record starts it again
    assert LossHistory(killed, interval=2).lines == [] and open(killed).read() == ''


def test_run_curves_are_the_recorded_losses_and_validation_scores(tmp_path):
    lines = [{'epoch': 0, 'batch': 2, 'batches': 4, 'steps': 2, 'losses': {'l1': 1.0, 'l2': 0.5}},
             {'epoch': 0, 'batch': 4, 'batches': 4, 'steps': 2, 'losses': {'l1': 0.8, 'l2': 0.25}},
             {'epoch': 1, 'batch': 4, 'batches': 4, 'steps': 4, 'losses': {'l1': 0.5, 'l2': 0.5}}]
    (tmp_path / LOSSES_FILE).write_text(''.join(json.dumps(l) + '\n' for l in lines))
    val = [{'epoch': 1, 'PQ': 0.25, 'SQ': 0.5, 'RQ': 0.5, 'PQ_th': 0.1, 'PQ_st': 0.3, 'mIoU': 0.4},
           {'epoch': 2, 'PQ': 0.5, 'SQ': 0.7, 'RQ': 0.7, 'PQ_th': 0.2, 'PQ_st': 0.6, 'mIoU': 0.6}]
    (tmp_path / 'val_history.jsonl').write_text(''.join(json.dumps(v) + '\n' for v in val))
    curves = run_curves(str(tmp_path))
    assert list(curves['losses']) == ['l1', 'l2', 'total']
    assert curves['losses']['l1'] == ([0.5, 1.0, 2.0], [1.0, 0.8, 0.5])
    assert curves['losses']['total'][1] == pytest.approx([1.5, 1.05, 1.0])
    assert list(curves['val']) == ['PQ', 'PQ_th', 'PQ_st', 'mIoU']
    assert curves['val']['PQ'] == ([1, 2], [25.0, 50.0])
    # a semantic run's history: mIoU only (mAcc, aAcc are not drawn)
    (tmp_path / 'val_history.jsonl').write_text(json.dumps(
        {'epoch': 3, 'mIoU': 0.5, 'mAcc': 0.6, 'aAcc': 0.9}) + '\n')
    assert run_curves(str(tmp_path))['val'] == {'mIoU': ([3], [50.0])}


def _train(root, save_dir, *extra):
    """A tiny Semantic FPN run: 2 epochs of the 3 train images one by one, a checkpoint after
    batch 2 and at every epoch end, a validation after every epoch."""
    load_script('segmentation', 'train_semantic_fpn').main(train_args(
        root, save_dir, TINY_MODEL, '--batch-size', '1', '--epochs', '2', '--val-interval', '1',
        '--ckpt-interval', '2', '--log-interval', '0', *extra))


@pytest.fixture(scope='module')
def trained(synthetic_citys, tmp_path_factory):
    save_dir = str(tmp_path_factory.mktemp('straight') / 'run')
    _train(synthetic_citys, save_dir)
    return save_dir


def _valid_png(path):
    with open(path, 'rb') as f:
        assert f.read(8) == PNG_SIGNATURE
    image = cv2.imread(path)
    assert image is not None and image.shape[2] == 3 and min(image.shape[:2]) > 100


@pytest.mark.slow
def test_training_draws_the_losses_and_validation_of_the_run(trained):
    _valid_png(os.path.join(trained, PLOT_FILE))
    curves = run_curves(trained)
    assert list(curves['losses']) == ['loss_sem_seg', 'total']
    xs, ys = curves['losses']['loss_sem_seg']
    assert xs == pytest.approx([2 / 3., 1., 5 / 3., 2.])  # the checkpoint after batch 2, the end
    # the recorded steps are the logged ones: each epoch's mean is train.log's
    lines = [json.loads(l) for l in open(os.path.join(trained, LOSSES_FILE))]
    log = open(os.path.join(trained, 'train.log')).read()
    for epoch in range(2):
        mine = [l for l in lines if l['epoch'] == epoch]
        assert sum(l['steps'] for l in mine) == 3
        mean = sum(l['steps'] * l['losses']['loss_sem_seg'] for l in mine) / 3
        assert '[Epoch {}] done 3 iterations: loss_sem_seg={:.4f}'.format(epoch, mean) in log
    history = [json.loads(l) for l in open(os.path.join(trained, 'val_history.jsonl'))]
    assert curves['val'] == {'mIoU': ([1, 2], [100 * h['mIoU'] for h in history])}


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_same_record_and_picture(trained, synthetic_citys,
                                                             tmp_path):
    """Resumed mid-epoch from its rolling checkpoint with a record that went further (the run
    finished): the later lines are done again, and the files equal the uninterrupted run's."""
    resumed = str(tmp_path / 'run')  # the same folder name: it is the picture's title
    shutil.copytree(trained, resumed)
    os.remove(os.path.join(resumed, PLOT_FILE))
    checkpoint = os.path.join(resumed, PREFIX + '-0001-000002.json')
    _train(synthetic_citys, resumed, '--resume', checkpoint)
    assert 'resumed from {}'.format(checkpoint) in open(os.path.join(resumed, 'train.log')).read()
    for name in (LOSSES_FILE, 'val_history.jsonl', PLOT_FILE):
        with open(os.path.join(trained, name), 'rb') as a, \
                open(os.path.join(resumed, name), 'rb') as b:
            assert a.read() == b.read(), name


@pytest.mark.slow
def test_a_broken_picture_or_loss_record_path_does_not_stop_training(synthetic_citys, tmp_path):
    save_dir = str(tmp_path / 'run')
    for name in (PLOT_FILE, LOSSES_FILE):  # folders where the files should go
        os.makedirs(os.path.join(save_dir, name))
    _train(synthetic_citys, save_dir, '--epochs', '1')
    assert os.path.isfile(os.path.join(save_dir, PREFIX + '-final.params'))
    assert os.path.isdir(os.path.join(save_dir, PLOT_FILE))
    log = open(os.path.join(save_dir, 'train.log')).read()
    assert 'WARNING gluonpan.utils.plots: could not draw the curves of' in log
    assert 'WARNING gluonpan.utils.plots: could not write the loss record' in log
    assert not [n for n in os.listdir(save_dir) if '.tmp.' in n]  # no temp file left behind
