"""Horovod (``--horovod``): 2-process jobs on localhost with horovodrun's gloo backend (the toy
job against one process, a train script end to end), and the errors of a missing Horovod or a
clash with the parameter server."""
import json
import os
import sys

import mxnet as mx
import pytest

from gluonpan.errors import UsageError
from gluonpan.tools import train
from gluonpan.utils import dist

from _scripts import ROOT, train_args
from test_dist import HERE, assert_ranks_match_single_process, run_job
from test_scripts import TINY_MODEL

HOROVODRUN = os.path.join(os.path.dirname(sys.executable), 'horovodrun')


def _require_horovod():
    """Fail, not skip, when Horovod is missing (CI installs it): say how to install it."""
    try:
        import horovod.mxnet  # noqa: F401
    except ImportError as err:
        pytest.fail('Horovod is not installed ({}); install it with: {}'.format(
            err, dist.HOROVOD_INSTALL))
    if not os.path.exists(HOROVODRUN):
        pytest.fail('no {} beside this Python; install Horovod with: {}'.format(
            HOROVODRUN, dist.HOROVOD_INSTALL))


def _horovodrun(script, *argv):
    """Run ``python script argv`` in 2 processes; returns the log.  With only local hosts,
    horovodrun's rendezvous and gloo use the interface of 127.0.0.1."""
    cmd = [HOROVODRUN, '--gloo', '-np', '2', '-H', 'localhost:2', sys.executable, script]
    return run_job(cmd + list(argv), 'horovod job', timeout=180)


@pytest.mark.parametrize('flags', [[], ['--optimizer', 'adamw', '--clip-grad-norm', '0.05']],
                         ids=['sgd', 'adamw-clip-norm'])
def test_two_processes_match_single_process(tmp_path, flags):
    """2 processes x 2 images end with identical weights, those of one process on the same 4.

    Rank 1 starts from other weights (``_toy_horovod.py``): only rank 0's broadcast makes the
    runs agree.  ``adamw-clip-norm`` takes the engine's allreduce / clip / update path."""
    _require_horovod()
    hvd_dir = tmp_path / 'horovod'
    _horovodrun(os.path.join(HERE, '_toy_horovod.py'), '--save-dir', str(hvd_dir), '--epochs', '2',
                '--batch-size', '2', '--ckpt-interval', '5', *flags)
    assert_ranks_match_single_process(hvd_dir, tmp_path / 'single', *flags)


@pytest.mark.slow
def test_train_script_runs_on_two_processes(tmp_path):
    """``train_panoptic_fpn.py --horovod``: rank 0 makes the synthetic data (the others wait),
    writes the checkpoints, validates and writes the final weights while rank 1, done, waits for
    it (a rank that exits first shuts Horovod down under rank 0's last step); then a resume.

    ``--network`` goes in ``--config``: horovodrun's own parser rejects it on the command line
    (a prefix of its ``--network-interface(s)``)."""
    _require_horovod()
    config = tmp_path / 'network.json'
    config.write_text(json.dumps({'network': 'resnet18_v1b'}))
    save_dir = tmp_path / 'run'
    argv = train_args(str(tmp_path / 'data'), str(save_dir), TINY_MODEL, '--synthetic-size',
                      '128x256', '--synthetic-train', '4', '--synthetic-val', '2', '--batch-size',
                      '1', '--horovod')
    at = argv.index('--network')
    argv[at:at + 2] = ['--config', str(config)]
    script = os.path.join(ROOT, 'scripts', 'panoptic', 'train_panoptic_fpn.py')
    log = _horovodrun(script, *argv, '--epochs', '1')
    assert '[rank 1]' in log
    model = 'panoptic_fpn_resnet18_v1b_citys'
    assert json.loads((save_dir / 'args.json').read_text())['horovod'] is True
    assert [json.loads(l)['epoch'] for l in open(str(save_dir / 'val_history.jsonl'))] == [1]
    log = _horovodrun(script, *argv, '--epochs', '2', '--resume')
    assert log.count('resumed from') == 2  # every process loads the checkpoint
    assert (save_dir / '{}-0002.json'.format(model)).exists()
    assert (save_dir / '{}-final.params'.format(model)).exists()


def test_missing_horovod_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, 'horovod', None)  # "import horovod" fails as if not installed
    monkeypatch.setitem(sys.modules, 'horovod.mxnet', None)
    with pytest.raises(UsageError) as err:
        dist.create_kvstore(dist.HOROVOD)
    assert dist.HOROVOD_INSTALL in str(err.value) and '--horovod' in str(err.value)


def test_horovod_with_the_parameter_server_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args('panoptic_fpn', ['--horovod', '--kv-store', 'dist_sync'])
    assert exit_.value.code == 2
    assert '--horovod with --kv-store dist_sync' in capsys.readouterr().err


class _Job(dist.HorovodJob):
    """A Horovod job's place on a host, without Horovod."""

    def __init__(self, local_rank, local_size):  # pylint: disable=super-init-not-called
        self.local_rank, self.local_size = local_rank, local_size


def test_one_context_per_process():
    gpus = [mx.gpu(0), mx.gpu(1)]
    assert dist.process_contexts(_Job(1, 2), gpus) == [mx.gpu(1)]
    assert dist.process_contexts('device', gpus) == gpus  # MXNet's kvstores: every context
    assert dist.process_contexts(_Job(0, 2), [mx.cpu(0)]) == [mx.cpu(0)]
    with pytest.raises(UsageError, match='2 processes on this host, but --gpus lists 1'):
        dist.process_contexts(_Job(0, 2), gpus[:1])
    with pytest.raises(UsageError, match='--cpu-contexts must be 1'):
        dist.process_contexts(_Job(0, 1), [mx.cpu(0), mx.cpu(1)])
