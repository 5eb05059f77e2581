"""What the script tests share: load a script of ``scripts/`` as a module (the tests call them
in-process), score written predictions with cityscapesscripts' own evaluator, and kill a training
run mid-way to resume it."""
import importlib.util
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(folder, name):
    """The module of ``scripts/{folder}/{name}.py`` (its ``main(argv)``, ``parse_args(argv)``)."""
    path = os.path.join(ROOT, 'scripts', folder, name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_args(root, save_dir, model_kwargs, *extra):
    """The command line of a tiny CPU training run on the synthetic Cityscapes at ``root``: a
    64x128 crop, trainable batch norm, ``model_kwargs`` (a dict), ``extra`` flags last."""
    import json
    return ['--dataset', 'synthetic', '--dataset-root', root, '--network', 'resnet18_v1b',
            '--gpus', '', '--num-workers', '0', '--crop-size', '64x128', '--scale-range',
            '0.5,0.5', '--norm-layer', 'bn', '--model-kwargs', json.dumps(model_kwargs), '--lr',
            '0.01', '--lr-warmup', '2', '--log-interval', '1', '--save-dir', save_dir,
            '--val-overlays', '1'] + list(extra)


def logged_losses(save_dir, names):
    """The losses ``names`` of the log line of the run's first step (``[Batch 1/1]``), each
    checked finite and non-negative."""
    log = open(os.path.join(save_dir, 'train.log')).read()
    line = [l for l in log.splitlines() if '[Batch 1/1]' in l][0]
    values = {name: float(line.split(name + '=')[1].split(',')[0]) for name in names}
    assert all(np.isfinite(v) and v >= 0 for v in values.values()), values
    return values


def official_pq(gt_root, pred_dir, tmp):
    """cityscapesscripts' own evaluator on the prediction files a script wrote to ``pred_dir``."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    gt_json = os.path.join(gt_root, 'gtFine', 'cityscapes_panoptic_val.json')
    out = os.path.join(str(tmp), 'official.json')
    return evaluatePanoptic(gt_json, gt_json[:-5], os.path.join(pred_dir, 'panoptic_pred.json'),
                            os.path.join(pred_dir, 'panoptic_pred'), out)


def assert_coco_pq(coco_root, pred_dir, ours):
    """COCO's panopticapi scores the files in ``pred_dir`` (val of the synthetic COCO split at
    ``coco_root``) as ``ours`` does (PQ / SQ / RQ / counts of All, Things, Stuff to 1e-9)."""
    import contextlib
    import io
    from unittest import mock
    from panopticapi.evaluation import pq_compute
    gt_json = os.path.join(coco_root, 'annotations', 'panoptic_val2017.json')
    pred_json = os.path.join(pred_dir, 'panoptic_pred.json')
    with mock.patch('multiprocessing.cpu_count', return_value=1), \
            contextlib.redirect_stdout(io.StringIO()):
        ref = pq_compute(gt_json, pred_json, gt_json[:-5], pred_json[:-5])
    for group in ('All', 'Things', 'Stuff'):
        for key in ('pq', 'sq', 'rq', 'n'):
            assert ref[group][key] == pytest.approx(ours[group][key], abs=1e-9), (group, key)


def assert_same_pq(official, ours):
    """Every PQ / SQ / RQ / count of cityscapesscripts' results equals ours (1e-9)."""
    for group in ('All', 'Things', 'Stuff'):
        for key in ('pq', 'sq', 'rq', 'n'):
            assert official[group][key] == pytest.approx(ours[group][key], abs=1e-9), (group, key)
    for cid, r in official['per_class'].items():
        mine = ours['per_class'][int(cid)]
        for key in ('pq', 'sq', 'rq'):
            assert r[key] == pytest.approx(mine[key], abs=1e-9), (cid, key)


def assert_killed_run_resumes_exactly(script, args, tmp, model):
    """Train straight, and train killed right after the checkpoint of epoch 1 iteration 1 then
    resumed: both end with bitwise the same weights.

    ``script`` is a training script of ``scripts/panoptic``, ``args(save_dir, *extra)`` its
    command line, run for 2 epochs of single images with a checkpoint every iteration, in
    folders under ``tmp``; ``model`` the zoo name.
    """
    def command(save_dir, *extra):
        return train_script('panoptic', script) + args(
            save_dir, '--batch-size', '1', '--epochs', '2', '--ckpt-interval', '1',
            '--val-interval', '100', *extra)

    # two OpenMP threads, as the README runs training: every kernel must be order-deterministic
    env = dict(os.environ, OMP_NUM_THREADS='2', MXNET_MKLDNN_ENABLED='1',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    straight, killed = str(tmp / 'straight'), str(tmp / 'killed')
    subprocess.run(command(straight), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    marker = os.path.join(killed, '{}-0001-000001.json'.format(model))
    deadline = time.time() + 300
    while not os.path.exists(marker) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = '{}-final.params'.format(model)
    assert os.path.exists(marker) and not os.path.exists(os.path.join(killed, final))
    subprocess.run(command(killed, '--resume'), env=env, check=True, capture_output=True)
    assert 'resumed from' in open(os.path.join(killed, 'train.log')).read()
    a, b = (mx.nd.load(os.path.join(d, final)) for d in (straight, killed))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].asnumpy(), b[key].asnumpy(), err_msg=key)


def train_script(folder, name):
    """The path of ``scripts/{folder}/{name}.py`` and the interpreter to run it with."""
    return [sys.executable, os.path.join(ROOT, 'scripts', folder, name + '.py')]
