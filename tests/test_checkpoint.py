"""Checkpoints: atomic writes, newest-complete loading, pruning, and resume after a real SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from gluonpan.utils import checkpoint as ckpt_mod
from gluonpan.utils.checkpoint import (CheckpointManager, atomic_write, find_checkpoint,
                                       list_checkpoints)
from gluonpan.utils.dist import create_trainer
from gluonpan.utils.lr_scheduler import WarmupStepLR

from _toy_train import ToyNet

HERE = os.path.dirname(os.path.abspath(__file__))


def _setup(folder, seed=0, lr=0.1):
    mx.random.seed(seed)
    net = ToyNet()
    net.initialize(mx.init.Xavier())
    trainer = create_trainer(net.collect_params(), 'device', lr, 1e-4)
    schedule = WarmupStepLR(lr, 10, warmup_iters=3, decay_epochs=(2,))
    return net, trainer, schedule, CheckpointManager(str(folder), 'toy', net, trainer, schedule,
                                                     seed=seed, args={'lr': lr})


def _step(net, trainer, seed):
    rng = np.random.RandomState(seed)
    batch = {'data': mx.nd.array(rng.randn(4, 2, 4, 4)), 'label': mx.nd.array(rng.randint(0, 3, 4))}
    with mx.autograd.record():
        loss = sum(net.train_losses(batch).values())
    loss.backward()
    trainer.step(4)


def _params(net):
    return {k: v.data().asnumpy().copy() for k, v in net._collect_params_with_prefix().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_atomic_write_failure_keeps_old_file(tmp_path):
    path = str(tmp_path / 'f.txt')
    atomic_write(path, lambda tmp: open(tmp, 'w').write('old'))

    def crash(tmp):
        open(tmp, 'w').write('half')
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert open(path).read() == 'old'
    assert os.listdir(str(tmp_path)) == ['f.txt']


def test_save_load_round_trip_continues_identically(tmp_path):
    net, trainer, schedule, ckpt = _setup(tmp_path)
    _step(net, trainer, 1)
    path = ckpt.save(0, 1, 1)
    _step(net, trainer, 2)  # the reference continuation
    expected = _params(net)

    net2, trainer2, schedule2, ckpt2 = _setup(tmp_path, seed=5, lr=0.5)  # other init, lr, seed
    record = ckpt2.load()
    assert (record['epoch'], record['iteration'], record['global_step']) == (0, 1, 1)
    assert record['params'] == str(tmp_path / 'toy-0000-000001.params')
    assert ckpt2.seed == 0 and schedule2.state_dict() == schedule.state_dict()
    assert find_checkpoint(str(tmp_path)) == path
    _step(net2, trainer2, 2)  # momentum restored -> bitwise the same step
    _assert_same(_params(net2), expected)


def test_crash_between_params_and_record_keeps_previous(tmp_path, monkeypatch):
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.save(1, 0, 10)
    saved = _params(net)
    _step(net, trainer, 1)
    real_write = ckpt_mod.atomic_write

    def crash_on_record(path, write_fn):
        if path.endswith('.json'):
            raise KeyboardInterrupt('killed before the commit record')
        real_write(path, write_fn)

    monkeypatch.setattr(ckpt_mod, 'atomic_write', crash_on_record)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(1, 5, 15)
    monkeypatch.undo()
    assert os.path.exists(str(tmp_path / 'toy-0001-000005.params'))  # written, never committed
    assert [r['iteration'] for _, r in list_checkpoints(str(tmp_path))] == [0]

    net2, _, _, ckpt2 = _setup(tmp_path, seed=3)
    assert ckpt2.load()['epoch'] == 1
    _assert_same(_params(net2), saved)
    ckpt2.save(1, 6, 16)  # the next good save removes the uncommitted files
    assert not os.path.exists(str(tmp_path / 'toy-0001-000005.params'))


def test_truncated_or_foreign_files_are_skipped(tmp_path):
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.save(1, 0, 10)
    ckpt.save(2, 0, 20)
    with open(str(tmp_path / 'toy-0002.params'), 'r+b') as f:
        f.truncate(100)
    (tmp_path / 'toy-0003.json').write_text('{"not": "a checkpoint"}')
    (tmp_path / 'args.json').write_text('{}')
    assert find_checkpoint(str(tmp_path)) == str(tmp_path / 'toy-0001.json')
    with pytest.raises(ValueError, match='toy-0002.params has 100 bytes'):
        ckpt_mod.read_checkpoint(str(tmp_path / 'toy-0002.json'))
    with pytest.raises(ValueError, match='toy-0003.json is not a gluonpan checkpoint'):
        ckpt_mod.read_checkpoint(str(tmp_path / 'toy-0003.json'))


def test_pruning_keeps_last_and_numbered(tmp_path):
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.keep_last = 2
    ckpt.save(1, 0, 10, keep=True)
    for it in (3, 6, 9):
        ckpt.save(1, it, 10 + it)
    ckpt.save(2, 0, 20)
    names = sorted(os.listdir(str(tmp_path)))
    assert [n for n in names if n.endswith('.json')] == [
        'toy-0001-000009.json', 'toy-0001.json', 'toy-0002.json']
    assert len(names) == 9  # json + params + states each


def test_resume_argument_errors(tmp_path):
    _, _, _, ckpt = _setup(tmp_path / 'run')
    assert ckpt.load() is None  # nothing yet: a fresh start
    with pytest.raises(FileNotFoundError, match='no checkpoint toy-'):
        ckpt.load(str(tmp_path / 'run'))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        ckpt.load(str(tmp_path / 'missing.params'))


def _toy_cmd(save_dir, *extra):
    return [sys.executable, os.path.join(HERE, '_toy_train.py'), '--save-dir', str(save_dir),
            '--epochs', '3', '--dropout', '0.3', '--ckpt-interval', '3', '--seed', '7'] + list(extra)


def _toy_env():
    env = dict(os.environ, OMP_NUM_THREADS='2', MXNET_MKLDNN_ENABLED='1', PYTHONHASHSEED='0')
    env.pop('DMLC_ROLE', None)
    return env


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    ref_dir, run_dir = tmp_path / 'ref', tmp_path / 'run'
    subprocess.run(_toy_cmd(ref_dir), env=_toy_env(), check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = subprocess.Popen(_toy_cmd(run_dir, '--step-delay', '0.1'), env=_toy_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not os.path.exists(str(run_dir / 'toy-0001-000006.json')) and time.time() < deadline:
        assert proc.poll() is None, 'the toy job ended before it could be killed'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    record = json.load(open(find_checkpoint(str(run_dir))))
    assert record['epoch'] == 1 and 0 < record['iteration'] < 12, record  # killed mid-epoch 1
    assert not os.path.exists(str(run_dir / 'final-rank0.params'))

    subprocess.run(_toy_cmd(run_dir, '--resume'), env=_toy_env(), check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert 'resumed from' in (run_dir / 'train-rank0.log').read_text()
    ref = mx.nd.load(str(ref_dir / 'final-rank0.params'))
    got = mx.nd.load(str(run_dir / 'final-rank0.params'))
    assert sorted(ref) == sorted(got)
    for k in ref:
        np.testing.assert_array_equal(got[k].asnumpy(), ref[k].asnumpy(), err_msg=k)


def _corrupt_same_size(path):
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other content
    open(path, 'wb').write(bytes(data))


@pytest.mark.parametrize('damage', ['flipped-byte', 'garbage'])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog, damage):
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.save(1, 0, 10)
    saved = _params(net)
    _step(net, trainer, 1)
    ckpt.save(1, 5, 15)
    newest = str(tmp_path / 'toy-0001-000005.params')
    if damage == 'flipped-byte':
        _corrupt_same_size(newest)
    else:
        open(newest, 'wb').write(b'\0' * os.path.getsize(newest))
    net2, _, _, ckpt2 = _setup(tmp_path, seed=3)
    record = ckpt2.load(required=True)
    assert (record['epoch'], record['iteration']) == (1, 0)
    _assert_same(_params(net2), saved)
    warning = [r.getMessage() for r in caplog.records if 'previous intact' in r.getMessage()]
    assert warning and 'toy-0001-000005.json' in warning[0] and 'toy-0001.json' in warning[0]


def test_no_intact_checkpoint_is_an_error_naming_each(tmp_path):
    from gluonpan.errors import DataError
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.save(1, 0, 10)
    ckpt.save(2, 0, 20)
    _corrupt_same_size(str(tmp_path / 'toy-0002.states'))
    with open(str(tmp_path / 'toy-0001.params'), 'r+b') as f:
        f.truncate(10)
    _, _, _, ckpt2 = _setup(tmp_path)
    with pytest.raises(DataError) as err:
        ckpt2.load()
    assert 'toy-0002.json' in str(err.value) and 'toy-0001.json' in str(err.value)
    assert 'sha1' in str(err.value) and '10 bytes' in str(err.value)


def test_required_resume_without_checkpoint_says_where_it_looked(tmp_path):
    _, _, _, ckpt = _setup(tmp_path / 'run')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'run')):
        ckpt.load(required=True)


def test_temp_files_of_dead_writers_are_removed(tmp_path):
    (tmp_path / 'val' / 'overlays').mkdir(parents=True)
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()
    leftovers = [tmp_path / '.model-final.params.tmp.{}'.format(dead),
                 tmp_path / 'val' / 'overlays' / '.a.png.tmp.{}'.format(dead),
                 tmp_path / '.mine.json.tmp.{}'.format(os.getpid())]
    alive = tmp_path / '.other.json.tmp.1'  # pid 1 is running: another writer's file stays
    keep = tmp_path / 'notes.tmp.txt'
    for path in leftovers + [alive, keep]:
        path.write_text('x')
    removed = ckpt_mod.remove_temp_files(str(tmp_path))
    assert sorted(removed) == sorted(str(p) for p in leftovers)
    assert alive.exists() and keep.exists()


def test_validation_history_is_rewritten_whole_and_replaces_later_epochs(tmp_path):
    history = ckpt_mod.ValidationHistory(str(tmp_path / 'val_history.jsonl'))
    assert history.entries() == [] and not history.done(0)
    for epoch, pq in ((1, 0.1), (3, 0.3), (5, 0.5)):
        history.record(epoch, {'PQ': pq})
    assert history.done(3) and not history.done(2)
    history.record(3, {'PQ': 0.33})  # a run resumed from before epoch 4 validates it again
    assert history.entries() == [{'epoch': 2, 'PQ': 0.1}, {'epoch': 4, 'PQ': 0.33}]
    assert os.listdir(str(tmp_path)) == ['val_history.jsonl']


def test_a_kill_while_pruning_leaves_nothing_once_the_run_is_reopened(tmp_path):
    """Pruning deletes the record first; a kill right after leaves .params/.states without one,
    which no later save may come to remove (the run's last epoch): opening the folder does."""
    net, trainer, _, ckpt = _setup(tmp_path)
    ckpt.save(1, 0, 10)
    os.remove(str(tmp_path / 'toy-0001.json'))  # what the kill left: data files, no record
    assert os.path.exists(str(tmp_path / 'toy-0001.params'))
    _setup(tmp_path)
    assert os.listdir(str(tmp_path)) == []
