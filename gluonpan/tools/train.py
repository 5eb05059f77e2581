"""The train program of every architecture: data-parallel over GPUs (or CPU), exact resume,
periodic validation with the task's metric (PQ, mIoU).

``--resume`` continues the newest intact checkpoint in ``--save-dir`` exactly where it stopped
(mid-epoch too, and an interrupted validation is run again); it is an error when there is none.
``--resume auto`` resumes if there is a checkpoint and starts fresh otherwise; ``--resume FILE``
takes one checkpoint.  Without ``--resume`` a ``--save-dir`` that holds a run is refused.

Besides its checkpoints and ``val_history.jsonl``, the run folder holds ``losses.jsonl`` (the
named losses per logged interval) and ``curves.png`` (losses and validation scores, redrawn after
every validation and at the end; :mod:`gluonpan.utils.plots`).
"""
import mxnet as mx  # noqa: I001  (first: it turns a parameter-server process into a server)

import json
import logging
import os

import cv2
from mxnet import gluon

from ..data import EpochSampler, train_batchify
from ..errors import ArgumentParser, UsageError, read_json
from ..model_zoo import get_model, get_model_list
from ..tasks import get_task
from ..utils.checkpoint import (CheckpointManager, ValidationHistory, atomic_write,
                                atomic_write_json, checkpoint_records, remove_temp_files)
from ..utils.cli import (add_dataset_args, apply_config, check_minimums, parse_ctx,
                         parse_model_kwargs, parse_numbers)
from ..utils.dist import (HOROVOD, HOROVOD_INSTALL, KVSTORES, OPTIMIZERS, broadcast_parameters,
                          create_kvstore, create_trainer, finish_job, process_contexts)
from ..utils.engine import fit
from ..utils.logger import setup_logger
from ..utils.lr_scheduler import WarmupStepLR, parse_epochs
from ..utils.plots import LOSSES_FILE, LossHistory, update_plot

__all__ = ['main', 'parse_args', 'make_parser']

NORM_LAYERS = {'frozen': None, 'bn': gluon.nn.BatchNorm}
#: smallest value of each numeric flag (a float: strictly greater)
MINIMUMS = {'batch_size': 1, 'epochs': 1, 'num_workers': 0, 'cpu_contexts': 1, 'lr': 0.0,
            'lr_decay': 0.0, 'lr_warmup': 0, 'lr_warmup_factor': 0.0, 'wd': 0, 'momentum': 0,
            'clip_gradient': 0, 'clip_grad_norm': 0,
            'log_interval': 0, 'save_interval': 0, 'ckpt_interval': 0, 'val_interval': 0,
            'val_overlays': 0, 'seed': 0}
#: arguments that describe how a run was started, not the run (left out of args.json)
VOLATILE_ARGS = ('resume', 'debug', 'task')


def make_parser(task):
    """The flags of the train program of ``task`` (a :mod:`~gluonpan.tasks` object), with its
    recipe defaults."""
    p = ArgumentParser(description='Train {}.'.format(task.title))
    p.add_argument('--network', default='resnet50_v1b', help='backbone: resnet{18,50,101}_v1b')
    add_dataset_args(p, task.datasets)
    p.add_argument('--gpus', default='0', help="GPU ids, e.g. 0,1,2,3; '' for the CPU")
    p.add_argument('--cpu-contexts', type=int, default=1,
                   help="data-parallel CPU contexts with --gpus '' (tests data parallelism)")
    p.add_argument('--num-workers', '-j', type=int, default=4, help='data-loading processes')
    p.add_argument('--batch-size', type=int, default=8, help='images per step (per machine)')
    p.add_argument('--epochs', type=int, default=700)
    p.add_argument('--lr', type=float, default=0.01)
    p.add_argument('--lr-decay', type=float, default=0.1)
    p.add_argument('--lr_decay_epoch', '--lr-decay-epoch', dest='lr_decay_epoch', default='430,590')
    p.add_argument('--lr-warmup', type=int, default=4000, help='linear warmup iterations')
    p.add_argument('--lr-warmup-factor', type=float, default=1.0 / 3)
    p.add_argument('--lr-mode', choices=WarmupStepLR.POLICIES, default='step',
                   help='step decay at --lr_decay_epoch, or poly decay over the epochs')
    p.add_argument('--lr-power', type=float, default=0.9, help='exponent of the poly decay')
    p.add_argument('--lr-min', type=float, default=1e-4, help='final rate of the poly decay')
    p.add_argument('--wd', type=float, default=1e-4)
    p.add_argument('--momentum', type=float, default=0.9)
    p.add_argument('--optimizer', choices=OPTIMIZERS, default='sgd',
                   help='sgd (with --momentum) or adamw (PyTorch\'s AdamW, betas 0.9/0.999, '
                        'decoupled --wd; the query-based models\' recipes)')
    p.add_argument('--clip-grad-norm', type=float, default=0.,
                   help='scale the gradients to a global L2 norm of at most this (torch\'s '
                        'clip_grad_norm_, Panoptic SegFormer\'s 0.1); 0: no clipping')
    p.add_argument('--clip-gradient', type=float, default=0.,
                   help='clip every gradient value to +-this (detectron2\'s CLIP_TYPE "value", '
                        'PanopticFCN\'s 35); 0: no clipping')
    p.add_argument('--crop-size', default='512x1024', help='HxW training crop (multiples of 32)')
    p.add_argument('--scale-range', default='0.5,2.0', help='random rescale range')
    p.add_argument('--norm-layer', choices=sorted(NORM_LAYERS), default='frozen',
                   help='backbone norm: frozen BN (with --pretrained-base) or trainable BN (scratch)')
    p.add_argument('--pretrained-base', action='store_true',
                   help="gluoncv's ImageNet backbone ($MXNET_HOME/models, downloaded on first use)")
    task.add_train_args(p)
    p.add_argument('--model-kwargs', default='{}',
                   help='JSON overrides of the recipe, e.g. \'{"fpn_channels": 128}\'')
    p.add_argument('--log-interval', type=int, default=10, help='iterations')
    p.add_argument('--save-interval', type=int, default=20, help='keep a checkpoint every N epochs')
    p.add_argument('--ckpt-interval', type=int, default=500, help='mid-epoch checkpoint every N '
                   'iterations (0: only at epoch ends)')
    p.add_argument('--val-interval', type=int, default=10, help='evaluate PQ every N epochs')
    p.add_argument('--val-overlays', type=int, default=4, help='overlay PNGs after the last epoch')
    p.add_argument('--save-dir', default=None, help='default: runs/<model name>')
    p.add_argument('--resume', nargs='?', const=True, default=None, metavar='auto|CHECKPOINT',
                   help='continue the run in --save-dir from its newest intact checkpoint (an '
                        'error if there is none); "auto": resume if possible, else start fresh; '
                        'a checkpoint .json/.params: resume from that one')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--kv-store', default='device', choices=KVSTORES)
    p.add_argument('--horovod', action='store_true',
                   help='multi-machine training with Horovod instead of the parameter server '
                        '(--kv-store dist_sync): ring allreduce without server processes, for '
                        'many GPUs / machines; the parameter server needs no compiled extra.  '
                        'Launch with horovodrun, one process per GPU (process i of a host takes '
                        'the i-th GPU of --gpus; --batch-size is per process).  Install: '
                        + HOROVOD_INSTALL)
    p.add_argument('--no-hybridize', action='store_true')
    p.add_argument('--config', default=None,
                   help='JSON file of flag defaults (a recipe, e.g. scripts/panoptic/configs/'
                        'synthetic_quick.json); flags given on the command line win')
    p.set_defaults(**task.train_defaults)
    return p


def parse_args(arch, argv=None):
    """Command line (with ``--config`` defaults) of architecture ``arch`` -> checked arguments
    (``args.task`` is its :mod:`~gluonpan.tasks` object)."""
    task = get_task(arch)
    p = make_parser(task)
    apply_config(p, argv)
    args = p.parse_args(argv)
    check_minimums(p, args, MINIMUMS)
    args.crop = parse_numbers(p, '--crop-size', args.crop_size, 'x', int, 2)
    if min(args.crop) < 32 or any(v % 32 for v in args.crop):
        p.error('--crop-size {!r}: height and width must be positive multiples of 32 (the FPN '
                'stride)'.format(args.crop_size))
    args.scales = parse_numbers(p, '--scale-range', args.scale_range, ',', float, 2)
    if not 0 < args.scales[0] <= args.scales[1]:
        p.error('--scale-range {!r} must be LOW,HIGH with 0 < LOW <= HIGH'.format(args.scale_range))
    task.check_train_args(p, args)
    if args.horovod and args.kv_store.startswith('dist'):
        p.error('--horovod with --kv-store {}: choose one multi-machine engine (Horovod, or the '
                'parameter server)'.format(args.kv_store))
    try:
        parse_epochs(str(args.lr_decay_epoch))
    except ValueError as err:
        p.error('--lr_decay_epoch {!r}: {}'.format(args.lr_decay_epoch, err))
    args.dataset = args.dataset or task.default_dataset
    args.model = task.model_name(args.network, args.dataset)
    if args.model not in get_model_list():
        p.error('--network {} with --dataset {}: no model {} (models: {})'.format(
            args.network, args.dataset, args.model, ', '.join(get_model_list())))
    parse_model_kwargs(p, args.model_kwargs, args.model)
    if isinstance(args.resume, str) and args.resume != 'auto' and not os.path.exists(args.resume):
        p.error('--resume {}: no such checkpoint file or folder'.format(args.resume))
    args.save_dir = args.save_dir or os.path.join('runs', args.model)
    args.task = task
    return args


def check_run_dir(args):
    """Refuse to start a fresh run over one in ``--save-dir``, or to ``--resume`` nothing.

    Returns
    -------
    str or None
        What :meth:`CheckpointManager.load` takes: ``''`` for the newest checkpoint in the
        folder, a checkpoint path, or ``None`` for a fresh start.
    """
    records = checkpoint_records(args.save_dir, args.model)
    final = os.path.join(args.save_dir, '{}-final.params'.format(args.model))
    if args.resume is None:
        if records or os.path.exists(final):
            raise UsageError('--save-dir {} already holds a training run ({}); add --resume to '
                             'continue it, or choose another --save-dir'.format(
                                 args.save_dir, os.path.basename((records or [final])[0])))
        return None
    if args.resume is True and not records:
        raise UsageError('--resume: no checkpoint {}-*.json in {} to resume from (use --resume '
                         'auto to start fresh when there is none)'.format(
                             args.model, os.path.abspath(args.save_dir)))
    if args.resume in (True, 'auto'):
        return '' if records else None
    return args.resume


def keep_run_options(args, resume_from):
    """A resumed run keeps the options its ``args.json`` recorded that the task names
    (:meth:`~gluonpan.tasks.base.Task.kept_options`: conventions whose defaults may have changed
    since): they complete ``--model-kwargs``, and one that ``--model-kwargs`` / ``--config`` set
    otherwise is an error."""
    folder = args.save_dir if not resume_from else (
        resume_from if os.path.isdir(resume_from) else os.path.dirname(resume_from))
    path = os.path.join(folder, 'args.json')
    if resume_from is None or not os.path.isfile(path):
        return
    recorded = args.task.kept_options(read_json(path, "training run's arguments"))
    wanted = json.loads(args.model_kwargs)
    clash = sorted(k for k in recorded if k in wanted and wanted[k] != recorded[k])
    if clash:
        raise UsageError('--resume: the run in {} was made with {}; the model options ask for {} '
                         '(a resumed run keeps its conventions: start a new run to change them)'
                         .format(folder, ', '.join('{}={!r}'.format(k, recorded[k]) for k in clash),
                                 ', '.join('{}={!r}'.format(k, wanted[k]) for k in clash)))
    args.model_kwargs = json.dumps(dict(recorded, **wanted), sort_keys=True)


def build_net(args, ctx, per_device, categories):
    """The zoo model of ``--network``/``--dataset`` with the recipe overrides, hybridized."""
    kwargs = json.loads(args.model_kwargs)  # a JSON string, --config's too (apply_config)
    kwargs.update(args.task.model_kwargs(args, categories, per_device))
    norm = NORM_LAYERS[args.norm_layer]
    if norm is not None:
        kwargs['norm_layer'] = norm
    net = get_model(args.model, pretrained_base=args.pretrained_base, ctx=ctx, **kwargs)
    frozen = args.task.frozen_with_pretrained_base
    if args.pretrained_base and norm is None and frozen:
        # detection recipe: with an ImageNet backbone and frozen BN, the stem and res2 stay fixed
        net.collect_params(frozen).setattr('grad_req', 'null')
    if not args.no_hybridize:
        net.hybridize(static_alloc=True)
    return net


def record_run(args, net):
    """What ``args.json`` and the checkpoints record: the arguments (less how the run was
    started and the task object) updated by the task's record (the model's conventions, a
    COCO-format dataset's categories ...), so that eval / demo rebuild exactly this model."""
    record = {k: v for k, v in vars(args).items() if k not in VOLATILE_ARGS}
    record.update(args.task.record(args, net))
    return record


def main(arch, argv=None):
    """Train (or resume) a model of architecture ``arch``, validate every ``--val-interval``
    epochs; returns the network."""
    args = parse_args(arch, argv)
    task = args.task
    resume_from = check_run_dir(args)
    keep_run_options(args, resume_from)
    kvstore, rank, num_workers = create_kvstore(HOROVOD if args.horovod else args.kv_store)
    setup_logger(os.path.join(args.save_dir, 'train.log'), rank=rank if num_workers > 1 else None)
    logging.info('arguments: %s', json.dumps({k: v for k, v in vars(args).items() if k != 'task'},
                                             sort_keys=True))
    if rank == 0:
        os.makedirs(args.save_dir, exist_ok=True)
        remove_temp_files(args.save_dir)
    cv2.setNumThreads(1)
    ctx = process_contexts(kvstore, parse_ctx(args.gpus, args.cpu_contexts))
    if args.batch_size % len(ctx):
        raise UsageError('--batch-size {} must be a multiple of the {} contexts {}'
                         .format(args.batch_size, len(ctx), ctx))
    mx.random.seed(args.seed)
    if rank > 0:
        kvstore._barrier()  # rank 0 prepares the data first (the synthetic set is generated once)
    train_set = task.get_dataset(args, 'train')
    if rank == 0 and num_workers > 1:
        kvstore._barrier()
    net = build_net(args, ctx, args.batch_size // len(ctx), getattr(train_set, 'categories', None))
    run_record = record_run(args, net)
    if rank == 0:
        atomic_write_json(os.path.join(args.save_dir, 'args.json'), run_record, indent=1,
                          sort_keys=True)

    train_set.transform = task.train_transform(args, net, train_set)
    val_set = task.get_dataset(args, 'val', task.val_transform()) if rank == 0 else None
    sampler = EpochSampler(len(train_set), shuffle=True, seed=args.seed, num_parts=num_workers,
                           part_index=rank)
    iters_per_epoch = len(sampler) // args.batch_size
    if iters_per_epoch < 1:
        raise UsageError('--batch-size {}: the {} training images per worker give no full batch'
                         .format(args.batch_size, len(sampler)))

    def make_loader(epoch, start_batch):
        """The batches of ``epoch`` from ``start_batch`` on (the engine's resume contract)."""
        sampler.set_epoch(epoch, start_batch, args.batch_size)
        return gluon.data.DataLoader(
            train_set, batch_sampler=gluon.data.BatchSampler(sampler, args.batch_size, 'discard'),
            batchify_fn=train_batchify, num_workers=args.num_workers)

    poly = {} if args.lr_mode == 'step' else dict(
        policy='poly', max_epochs=args.epochs, power=args.lr_power, min_lr=args.lr_min)
    schedule = WarmupStepLR(args.lr, iters_per_epoch, args.lr_warmup, args.lr_warmup_factor,
                            parse_epochs(args.lr_decay_epoch), args.lr_decay, **poly)
    trainer = create_trainer(net.collect_params(), kvstore, args.lr, args.wd, args.momentum,
                             clip_gradient=args.clip_gradient, optimizer=args.optimizer,
                             clip_global_norm=args.clip_grad_norm)
    ckpt = CheckpointManager(args.save_dir, args.model, net, trainer, schedule, args.seed,
                             run_record, ctx=ctx, enabled=rank == 0)
    record = ckpt.load(resume_from or None) if resume_from is not None else None
    if record:
        broadcast_parameters(kvstore, net.collect_params())  # Horovod: all resume rank 0's
    sampler.seed = ckpt.seed  # a resumed run keeps its saved seed for the data order too
    start = (record['epoch'], record['iteration']) if record else (0, 0)
    history = ValidationHistory(os.path.join(args.save_dir, 'val_history.jsonl'))
    losses = LossHistory(os.path.join(args.save_dir, LOSSES_FILE), args.log_interval,
                         start) if rank == 0 else None

    def validate(epoch):
        """The task's metric on the val split (files and overlays after the last epoch); its
        line in val_history.jsonl is written last, as the validation's commit."""
        last = epoch + 1 == args.epochs
        res = task.evaluate(net, val_set, ctx, args, out_dir=os.path.join(args.save_dir, 'val')
                            if last else None, overlays=args.val_overlays if last else 0)
        history.record(epoch, task.history(res))
        logging.info('[Epoch %d] validation %s', epoch + 1, task.summary(res))
        update_plot(args.save_dir)

    fit(net, trainer, make_loader, ctx, schedule, args.epochs, *start, checkpoint=ckpt,
        save_interval=args.save_interval, val_fn=validate if rank == 0 else None,
        val_interval=args.val_interval, val_done=history.done, seed=ckpt.seed, rank=rank,
        num_workers=num_workers, log_interval=args.log_interval, ckpt_interval=args.ckpt_interval,
        loss_history=losses)
    if rank == 0:
        final = os.path.join(args.save_dir, '{}-final.params'.format(args.model))
        atomic_write(final, net.save_parameters)
        logging.info('final weights: %s', final)
        update_plot(args.save_dir)
    finish_job(kvstore)
    return net


