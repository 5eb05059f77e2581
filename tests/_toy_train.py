"""A tiny deterministic training job through the real engine, for the resume and distributed tests.

    python tests/_toy_train.py --save-dir DIR [--resume] [--kv-store dist_sync] [--num-ctx 2] ...

Data order comes from the real ``gluonpan.data.sampler.EpochSampler``: it yields ``(index,
sample_seed)`` keys of one epoch from a given batch on, and the toy dataset draws its augmentation
from ``sample_seed`` only.
"""
import mxnet as mx  # first: it turns a parameter-server process into a server (gluonpan.utils.dist)

import argparse
import os
import time
from collections import OrderedDict

import numpy as np
from mxnet import gluon
from mxnet.gluon import nn

from gluonpan.data.sampler import EpochSampler
from gluonpan.utils.checkpoint import CheckpointManager
from gluonpan.utils.dist import KVSTORES, create_kvstore, create_trainer
from gluonpan.utils.engine import fit
from gluonpan.utils.logger import setup_logger
from gluonpan.utils.lr_scheduler import WarmupStepLR, parse_epochs


class ToyDataset(gluon.data.Dataset):
    """Fixed random 2x4x4 images with 3 classes, plus per-key noise; ``nan_index`` yields NaN."""

    def __init__(self, num_samples, nan_index=-1):
        self.num_samples, self.nan_index = num_samples, nan_index

    def __len__(self):
        return self.num_samples

    def __getitem__(self, key):
        index, sample_seed = key
        data = np.random.RandomState(index).randn(2, 4, 4)
        data += 0.1 * np.random.RandomState(sample_seed).randn(2, 4, 4)  # "augmentation"
        if index == self.nan_index:
            data[:] = np.nan
        return {'data': data.astype(np.float32), 'label': np.float32(index % 3)}


def toy_batchify(samples):
    return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


class ToyNet(gluon.HybridBlock):
    """Conv -> ReLU -> Dropout -> Dense(3), with the ``train_losses`` contract of the engine."""

    def __init__(self, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(4, 3, padding=1, in_channels=2)
            self.drop = nn.Dropout(dropout)
            self.fc = nn.Dense(3, in_units=4 * 4 * 4)
        self.ce = gluon.loss.SoftmaxCrossEntropyLoss()

    def hybrid_forward(self, F, x):
        return self.fc(self.drop(F.relu(self.conv(x))))

    def train_losses(self, batch):
        logits = self(batch['data'])  # (B, 3)
        return OrderedDict([('loss_cls', self.ce(logits, batch['label']).mean()),
                            ('loss_reg', 0.01 * (logits ** 2).mean())])


class _Slow:
    """A loader that waits before each batch (to give a test time to kill the job mid-epoch)."""

    def __init__(self, loader, delay):
        self.loader, self.delay = loader, delay

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            time.sleep(self.delay)
            yield batch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='toy training job for the engine tests')
    p.add_argument('--save-dir', required=True)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--batch-size', type=int, default=4, help='per worker')
    p.add_argument('--num-ctx', type=int, default=1, help='CPU contexts')
    p.add_argument('--num-samples', type=int, default=48)
    p.add_argument('--num-workers', type=int, default=0, help='DataLoader processes')
    p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--wd', type=float, default=1e-4)
    p.add_argument('--optimizer', default='sgd')
    p.add_argument('--clip-grad-norm', type=float, default=0.)
    p.add_argument('--lr-warmup', type=int, default=5)
    p.add_argument('--lr_decay_epoch', default='2')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--kv-store', default='device', choices=KVSTORES)
    p.add_argument('--dropout', type=float, default=0.0)
    p.add_argument('--log-interval', type=int, default=2)
    p.add_argument('--ckpt-interval', type=int, default=0)
    p.add_argument('--save-interval', type=int, default=0)
    p.add_argument('--resume', action='store_true', help='from the newest checkpoint in --save-dir')
    p.add_argument('--step-delay', type=float, default=0.0, help='seconds before each batch')
    p.add_argument('--nan-index', type=int, default=-1, help='this sample is all NaN')
    return p.parse_args(argv)


def main(argv=None):
    """Train; returns the net (also saved as ``final-rank{r}.params`` in ``--save-dir``)."""
    args = parse_args(argv)
    kvstore, rank, num_workers = create_kvstore(args.kv_store)
    setup_logger(os.path.join(args.save_dir, 'train-rank{}.log'.format(rank)),
                 rank=rank if num_workers > 1 else None)
    ctx = [mx.cpu(i) for i in range(args.num_ctx)]
    mx.random.seed(args.seed)
    net = ToyNet(args.dropout)
    net.initialize(mx.init.Xavier(), ctx=ctx)
    net.hybridize()

    dataset = ToyDataset(args.num_samples, args.nan_index)
    sampler = EpochSampler(len(dataset), seed=args.seed, num_parts=num_workers, part_index=rank)

    def make_loader(epoch, start_batch):
        sampler.set_epoch(epoch, start_batch, args.batch_size)
        loader = gluon.data.DataLoader(
            dataset, batch_sampler=gluon.data.BatchSampler(sampler, args.batch_size, 'discard'),
            batchify_fn=toy_batchify, num_workers=args.num_workers)
        return _Slow(loader, args.step_delay) if args.step_delay else loader

    schedule = WarmupStepLR(args.lr, len(sampler) // args.batch_size, args.lr_warmup,
                            decay_epochs=parse_epochs(args.lr_decay_epoch))
    trainer = create_trainer(net.collect_params(), kvstore, args.lr, args.wd,
                             optimizer=args.optimizer, clip_global_norm=args.clip_grad_norm)
    ckpt = CheckpointManager(args.save_dir, 'toy', net, trainer, schedule, args.seed, vars(args),
                             ctx=ctx, enabled=rank == 0)
    record = ckpt.load() if args.resume else None
    start = (record['epoch'], record['iteration']) if record else (0, 0)
    fit(net, trainer, make_loader, ctx, schedule, args.epochs, *start, checkpoint=ckpt,
        save_interval=args.save_interval, seed=ckpt.seed, rank=rank, num_workers=num_workers,
        log_interval=args.log_interval, ckpt_interval=args.ckpt_interval, progress=False)
    net.save_parameters(os.path.join(args.save_dir, 'final-rank{}.params'.format(rank)))
    return net


if __name__ == '__main__':
    main()
