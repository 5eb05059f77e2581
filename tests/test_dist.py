"""Distributed training on MXNet's parameter server, on loopback only."""
import os
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from dmlc_tracker import tracker

from gluonpan.utils.dist import create_kvstore, create_trainer, patch_dmlc_tracker
from gluonpan.utils.logger import reset_logger

import _toy_train

HERE = os.path.dirname(os.path.abspath(__file__))


def test_create_kvstore_single_machine_and_bad_name():
    assert create_kvstore('device') == ('device', 0, 1)
    with pytest.raises(ValueError, match="got 'dist_async'"):
        create_kvstore('dist_async')


def test_create_trainer_sgd_momentum():
    net = _toy_train.ToyNet()
    net.initialize()
    trainer = create_trainer(net.collect_params(), 'device', 0.02, 1e-4)
    assert trainer.learning_rate == 0.02
    assert trainer.optimizer.momentum == 0.9 and trainer.optimizer.wd == 1e-4


def test_patched_tracker_runs_on_this_python(monkeypatch):
    monkeypatch.setattr(tracker, 'Thread', tracker.Thread)  # restored after the test
    monkeypatch.setattr(tracker, 'get_host_ip', tracker.get_host_ip)
    patch_dmlc_tracker('127.0.0.1')
    assert tracker.get_host_ip('auto') == '127.0.0.1'
    ps = tracker.PSTracker(hostIP='127.0.0.1', cmd='true')  # a "scheduler" that exits at once
    ps.join()  # calls Thread.isAlive
    assert not ps.alive()


def run_job(cmd, what, timeout=120):
    """Run a multi-process job's launcher in its own session; returns its log (killed, with a
    failure, when it hangs)."""
    proc = subprocess.Popen(cmd, env=_clean_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher's own session: it and its nodes
        out, _ = proc.communicate()
        pytest.fail('{} hung:\n'.format(what) + out.decode(errors='replace')[-3000:])
    log = out.decode(errors='replace')
    assert proc.returncode == 0, log[-3000:]
    return log


def assert_ranks_match_single_process(job_dir, ref_dir, *flags):
    """Ranks 0 and 1 of the 2-worker toy job in ``job_dir`` (2 samples each) logged, rank 0
    checkpointed, and they end with the same weights, those of one process on the same global
    batches of 4 (run in ``ref_dir`` with ``flags``)."""
    ranks = [mx.nd.load(str(job_dir / 'final-rank{}.params'.format(r))) for r in (0, 1)]
    assert '[rank 1]' in (job_dir / 'train-rank1.log').read_text()
    assert os.path.exists(str(job_dir / 'toy-0002.json'))  # rank 0 checkpoints
    try:
        _toy_train.main(['--save-dir', str(ref_dir), '--epochs', '2', '--batch-size', '4'] +
                        list(flags))
    finally:
        reset_logger()
    ref = mx.nd.load(str(ref_dir / 'final-rank0.params'))
    assert sorted(ranks[0]) == sorted(ranks[1]) == sorted(ref)
    for k in ref:
        got = ranks[0][k].asnumpy()
        np.testing.assert_array_equal(ranks[1][k].asnumpy(), got, err_msg=k)
        # float32 rounding only (measured: a few ulps): each worker sums its 2 samples' gradients
        # in its backward and the reduction adds the two sums, where the single process sums all
        # 4 in one backward (other order)
        np.testing.assert_allclose(got, ref[k].asnumpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def _clean_env():
    env = dict(os.environ, OMP_NUM_THREADS='1', MXNET_MKLDNN_ENABLED='1')
    for key in [k for k in env if k.startswith('DMLC_')]:
        del env[key]
    return env


@pytest.mark.slow
def test_two_workers_one_server_match_single_process(tmp_path):
    dist_dir = tmp_path / 'dist'
    toy = [os.path.join(HERE, '_toy_train.py'), '--epochs', '2', '--ckpt-interval', '5']
    # '--num-workers 0' (DataLoader workers) would set launch.py's own worker count if the command
    # were not passed through verbatim
    cmd = [sys.executable, '-m', 'gluonpan.utils.dist', '-n', '2', '-s', '1', '--launcher', 'local',
           sys.executable] + toy + ['--save-dir', str(dist_dir), '--kv-store', 'dist_sync',
                                    '--batch-size', '2', '--num-workers', '0']
    run_job(cmd, 'distributed toy job')
    assert_ranks_match_single_process(dist_dir, tmp_path / 'single')
