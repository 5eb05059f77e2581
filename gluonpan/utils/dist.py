"""Data-parallel training over machines with MXNet's parameter server (``--kv-store dist_sync``).

Launch a job with MXNet's bundled launcher through this module, which makes it run on Python >= 3.9
(``dmlc_tracker`` still calls ``Thread.isAlive``, removed in 3.9) and keeps a local job on loopback::

    python -m gluonpan.utils.dist -n 2 -s 1 --launcher local \\
        python scripts/panoptic/train_panoptic_fpn.py --kv-store dist_sync --gpus '' ...
    python -m gluonpan.utils.dist -n 4 -s 4 --launcher ssh -H hosts \\
        python scripts/panoptic/train_panoptic_fpn.py --kv-store dist_sync ...

Every process runs the same command; ``import mxnet`` turns the scheduler and server processes into
parameter-server nodes (they never run the script further).  Without a launcher, start the same
command once per process with ``DMLC_ROLE`` (scheduler / server / worker), ``DMLC_PS_ROOT_URI`` and
``DMLC_PS_ROOT_PORT`` (the scheduler's address), ``DMLC_NUM_WORKER``, ``DMLC_NUM_SERVER`` and, to pin
the address a node listens on, ``DMLC_NODE_HOST``.

If a worker fails, the others wait for it for ever (MXNet's behaviour): stop the job with Ctrl-C.
The ssh launcher wraps the command in single quotes: there, avoid arguments that need quoting.

The other engine is Horovod (``--horovod``, :func:`create_kvstore` with :data:`HOROVOD`): one
process per GPU, started by ``horovodrun``, gradients summed by ring allreduce (no servers)::

    horovodrun -np 8 -H host1:4,host2:4 \\
        python scripts/panoptic/train_panoptic_fpn.py --horovod --gpus 0,1,2,3 ...

Horovod is optional (:data:`HOROVOD_INSTALL` builds it against the installed MXNet); this module
imports it only when a Horovod job is created.
"""
import argparse
import logging
import os
import runpy
import shlex
import sys
import threading

import mxnet as mx
from dmlc_tracker import tracker
from mxnet import gluon

from ..errors import UsageError
from . import optim  # noqa: F401  (registers the 'adamw' optimizer)

__all__ = ['KVSTORES', 'OPTIMIZERS', 'HOROVOD', 'HOROVOD_INSTALL', 'HorovodJob', 'import_horovod',
           'create_kvstore', 'create_trainer', 'process_contexts', 'broadcast_parameters',
           'finish_job', 'patch_dmlc_tracker', 'main']

logger = logging.getLogger(__name__)

#: ``--kv-store`` values the engine supports (async would need the optimizer on the servers, where
#: the engine's per-step ``set_learning_rate`` and ``save_states`` cannot reach it)
KVSTORES = ('device', 'local', 'dist_sync', 'dist_device_sync')
#: ``--optimizer`` values: MXNet's SGD with momentum, our AdamW (:mod:`gluonpan.utils.optim`)
OPTIMIZERS = ('sgd', 'adamw')
#: :func:`create_kvstore` name of the Horovod engine (the train program's ``--horovod``)
HOROVOD = 'horovod'
#: how to install Horovod built against the installed MXNet (setup.py's ``horovod`` extra): MXNet
#: first, then Horovod compiled without build isolation, where it finds that MXNet
HOROVOD_INSTALL = ('pip install -e ".[cpu]" wheel (".[cu112]" on GPU hosts), then '
                   'HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 '
                   'HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 '
                   'pip install --no-build-isolation --no-cache-dir -e ".[horovod]"')


def import_horovod():
    """``horovod.mxnet``, imported on demand (Horovod is optional).

    Raises
    ------
    UsageError
        It cannot be imported (not installed, or built without MXNet); the message names the
        install command, :data:`HOROVOD_INSTALL`.
    """
    try:
        import horovod.mxnet as hvd
    except ImportError as err:
        raise UsageError('--horovod: horovod.mxnet cannot be imported ({}); install Horovod built '
                         'against MXNet with: {}'.format(err, HOROVOD_INSTALL)) from None
    return hvd


class HorovodJob:
    """What the train program uses of a distributed kvstore, for a Horovod job.

    Parameters
    ----------
    hvd : module
        ``horovod.mxnet``, initialised (``hvd.init()``).

    Attributes
    ----------
    type : str
        :data:`HOROVOD`.
    rank, num_workers : int
        This process's rank and the number of processes.
    local_rank, local_size : int
        This process's rank among those of its host, and their number.
    """

    type = HOROVOD

    def __init__(self, hvd):
        self.hvd = hvd
        self.rank, self.num_workers = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        self._barriers = 0

    def _barrier(self):
        """Wait until every process gets here (as ``KVStore._barrier``): a one-number allreduce,
        Horovod's MXNet API having no barrier."""
        self._barriers += 1
        self.hvd.allreduce(mx.nd.zeros(1), name='gluonpan.barrier.{}'.format(self._barriers)) \
            .wait_to_read()


def create_kvstore(kv_store):
    """Create the kvstore named by ``--kv-store``.

    Parameters
    ----------
    kv_store : str
        One of :data:`KVSTORES`, or :data:`HOROVOD` (initialises Horovod).

    Returns
    -------
    kvstore : str or mxnet.kvstore.KVStore or HorovodJob
        The name for a single-machine store (``gluon.Trainer`` creates it when there are several
        contexts), a connected ``KVStore`` for a distributed one, a :class:`HorovodJob`.
    rank, num_workers : int
        This worker's rank and the number of workers (0 and 1 on one machine); a worker reads shard
        ``rank`` of ``num_workers`` of the data.
    """
    if kv_store == HOROVOD:
        return _create_horovod_job()
    if kv_store not in KVSTORES:
        raise ValueError('--kv-store must be one of {}, got {!r}'.format(KVSTORES, kv_store))
    if not kv_store.startswith('dist'):
        return kv_store, 0, 1
    kv = mx.kv.create(kv_store)
    logger.info('kvstore %s: worker %d of %d', kv_store, kv.rank, kv.num_workers)
    return kv, kv.rank, kv.num_workers


def _create_horovod_job():
    hvd = import_horovod()
    hvd.init()
    job = HorovodJob(hvd)
    logger.info('horovod: process %d of %d (local rank %d of %d)', job.rank, job.num_workers,
                job.local_rank, job.local_size)
    return job, job.rank, job.num_workers


def process_contexts(kvstore, ctx):
    """The contexts this process trains on.

    MXNet's kvstores spread each process's batch over all of ``ctx``; a Horovod job runs one
    context per process: the process of local rank ``i`` takes ``ctx[i]`` (``--gpus`` lists this
    host's GPUs), or the CPU.

    Parameters
    ----------
    kvstore : str or mxnet.kvstore.KVStore or HorovodJob
        From :func:`create_kvstore`.
    ctx : list of mxnet.Context
        From ``--gpus`` / ``--cpu-contexts``.

    Returns
    -------
    list of mxnet.Context

    Raises
    ------
    UsageError
        Horovod with several CPU contexts, or with fewer GPUs than processes on this host.
    """
    if not isinstance(kvstore, HorovodJob):
        return ctx
    if ctx[0].device_type == 'cpu':
        if len(ctx) > 1:
            raise UsageError('--horovod runs one context per process: --cpu-contexts must be 1, '
                             'got {}'.format(len(ctx)))
        return ctx
    if kvstore.local_size > len(ctx):
        raise UsageError('--horovod: {} processes on this host, but --gpus lists {} GPU(s) {}; '
                         'list one GPU per process'.format(kvstore.local_size, len(ctx), ctx))
    return [ctx[kvstore.local_rank]]


def broadcast_parameters(kvstore, params):
    """Give every process of a Horovod job rank 0's parameters (a no-op for MXNet's kvstores,
    whose trainer pulls the weights from the servers).

    Parameters
    ----------
    kvstore : str or mxnet.kvstore.KVStore or HorovodJob
        From :func:`create_kvstore`.
    params : ParameterDict
        ``net.collect_params()``; parameters whose shape is not known yet are sent when they are
        initialised (at the first forward).
    """
    if isinstance(kvstore, HorovodJob):
        kvstore.hvd.broadcast_parameters(params, root_rank=0)
        mx.nd.waitall()


def create_trainer(params, kvstore, lr, wd, momentum=0.9, clip_gradient=0., optimizer='sgd',
                   clip_global_norm=0.):
    """SGD with momentum (or AdamW), set up for the engine.

    On a distributed kvstore the update runs on the workers (``update_on_kvstore=False``): the
    servers only sum gradients, so every worker applies the same update, and the learning rate the
    engine sets each step and the states a checkpoint saves are the workers' own.

    Parameters
    ----------
    params : ParameterDict
        ``net.collect_params()``.
    kvstore : str or mxnet.kvstore.KVStore or HorovodJob
        From :func:`create_kvstore`.  With a :class:`HorovodJob` the trainer is Horovod's
        ``DistributedTrainer`` (the same optimizer and options, gradients summed over the processes
        like the servers do), created after rank 0's parameters are broadcast: create it after
        the net is initialised (and call :func:`broadcast_parameters` again after a resume
        loads a checkpoint).
    lr, wd, momentum : float
        Initial learning rate (the engine overrides it each step), weight decay, momentum (SGD
        only).
    clip_gradient : float
        If > 0, every gradient value is clipped to ``[-clip_gradient, clip_gradient]`` (after
        the batch-size rescaling, before weight decay: detectron2's ``CLIP_TYPE: value``).
    optimizer : {'sgd', 'adamw'}
        ``'adamw'``: :class:`gluonpan.utils.optim.AdamW` (PyTorch's AdamW, betas 0.9 / 0.999,
        epsilon 1e-8, decoupled ``wd``).
    clip_global_norm : float
        If > 0, the engine scales the gradients so that their global L2 norm is at most this
        (``torch.nn.utils.clip_grad_norm_``, :func:`gluonpan.utils.optim.clip_global_norm`),
        stored as ``trainer.clip_global_norm``.  The update then runs on the workers
        (``update_on_kvstore=False``), since the norm is taken over the summed gradients.

    Returns
    -------
    mxnet.gluon.Trainer
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError('optimizer must be one of {}, got {!r}'.format(OPTIMIZERS, optimizer))
    distributed = not isinstance(kvstore, str)
    options = {'learning_rate': lr, 'wd': wd}
    if optimizer == 'sgd':
        options['momentum'] = momentum
    if clip_gradient > 0:
        options['clip_gradient'] = clip_gradient
    if isinstance(kvstore, HorovodJob):
        trainer = _horovod_trainer(kvstore, params, optimizer, options)
    else:
        trainer = gluon.Trainer(params, optimizer, options, kvstore=kvstore,
                                update_on_kvstore=False if distributed or clip_global_norm > 0
                                else None)
    trainer.clip_global_norm = clip_global_norm
    return trainer


def _horovod_trainer(job, params, optimizer, options):
    """``horovod.mxnet.DistributedTrainer`` that sums the gradients over the processes, as the
    parameter server does (the engine divides by the global batch: ``trainer.step(B * workers)``),
    after broadcasting rank 0's parameters."""
    contexts = {str(c) for p in params.values() for c in p.list_ctx()}
    if len(contexts) > 1:
        raise ValueError('a Horovod trainer takes parameters on one context per process, got {}'
                         .format(sorted(contexts)))
    broadcast_parameters(job, params)
    trainer = job.hvd.DistributedTrainer(params, optimizer, options)
    # Horovod 0.28.1 averages: a summing allreduce and rescale_grad / size ("in framework", builds
    # without NCCL >= 2.10, as the CPU one), else an averaging allreduce.  Make it a plain sum
    # with the plain rescale, whatever the build.
    trainer._average_in_framework = True  # allreduce_(average=False): the sum
    trainer._postscale_factor = 1.0
    trainer._scale = trainer._optimizer.rescale_grad  # undoes the constructor's 1 / size
    return trainer


def finish_job(kvstore):
    """Wait until every process of a Horovod job has finished its steps (a no-op for MXNet's
    kvstores, whose servers wait for the workers).

    Call it in every process at the end of training.  The first Horovod process to exit shuts
    Horovod down for all: without this, a worker that ends while its last allreduce is still
    queued makes that step, and so rank 0's final checkpoint, fail.

    Parameters
    ----------
    kvstore : str or mxnet.kvstore.KVStore or HorovodJob
        From :func:`create_kvstore`.
    """
    if isinstance(kvstore, HorovodJob):
        mx.nd.waitall()  # this process's last allreduces, before the barrier can overtake them
        kvstore._barrier()


class _Thread(threading.Thread):
    """``threading.Thread`` with the ``isAlive`` alias that dmlc_tracker calls."""

    isAlive = threading.Thread.is_alive


def patch_dmlc_tracker(host_ip=None):
    """Make MXNet's bundled ``dmlc_tracker`` usable on this Python.

    Parameters
    ----------
    host_ip : str, optional
        Address the tracker gives the scheduler.  Its own guess asks the network for a non-loopback
        address, which fails or is unwanted for a job on one machine; give ``127.0.0.1`` there.
    """
    if not hasattr(tracker.Thread, 'isAlive'):
        tracker.Thread = _Thread
    if host_ip:
        tracker.get_host_ip = lambda hostIP=None: host_ip


def _launch_script():
    path = os.path.join(os.path.dirname(mx.__file__), 'tools', 'launch.py')
    if not os.path.exists(path):
        raise FileNotFoundError('MXNet launcher not found at {} (mxnet {}); reinstall the mxnet '
                                'wheel'.format(path, mx.__version__))
    return path


def main(argv=None):
    """``python -m gluonpan.utils.dist``: MXNet's ``tools/launch.py`` with the fixes above.

    The options are launch.py's; everything from the first positional argument on is the command,
    passed through verbatim (launch.py itself would take the command's ``--num-workers`` for its
    own).
    """
    parser = argparse.ArgumentParser(prog='python -m gluonpan.utils.dist',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('-n', '--num-workers', required=True, type=int, help='worker processes')
    parser.add_argument('-s', '--num-servers', type=int,
                        help='server processes (default: the number of workers)')
    parser.add_argument('-H', '--hostfile', type=str, help='hosts, for the ssh / mpi launchers')
    parser.add_argument('--launcher', default='ssh',
                        choices=['local', 'ssh', 'mpi', 'sge', 'yarn'])
    parser.add_argument('--sync-dst-dir', type=str,
                        help='ssh launcher: copy the working folder there on every host')
    parser.add_argument('--env-server', action='append', default=[], help='NAME:VALUE for servers')
    parser.add_argument('--env-worker', action='append', default=[], help='NAME:VALUE for workers')
    parser.add_argument('--env', action='append', default=[], help='NAME passed to every node')
    parser.add_argument('--host-ip', type=str,
                        help='scheduler address (default: 127.0.0.1 with --launcher local, '
                             "else the tracker's guess)")
    parser.add_argument('command', nargs=argparse.REMAINDER, help='the command every node runs')
    args = parser.parse_args(argv)
    if not args.command:
        parser.error('no command given')
    logging.basicConfig(format='%(asctime)s %(levelname)s %(message)s', level=logging.INFO)
    host_ip = args.host_ip or ('127.0.0.1' if args.launcher == 'local' else None)
    patch_dmlc_tracker(host_ip)
    if args.launcher == 'local':
        os.environ['DMLC_NODE_HOST'] = host_ip  # servers and workers listen there too

    launch_argv = ['-n', str(args.num_workers), '--launcher', args.launcher]
    for flag, value in (('-s', args.num_servers), ('-H', args.hostfile),
                        ('--sync-dst-dir', args.sync_dst_dir)):
        if value is not None:
            launch_argv += [flag, str(value)]
    for flag, values in (('--env-server', args.env_server), ('--env-worker', args.env_worker),
                         ('--env', args.env)):
        for value in values:
            launch_argv += [flag, value]
    # one shell-quoted word: dmlc_tracker re-parses the command with its own options and joins it
    # with spaces for bash
    launch_argv += ['--', shlex.join(args.command)]
    script = _launch_script()
    sys.argv = [script] + launch_argv
    logger.info('running %s %s', script, ' '.join(launch_argv))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
