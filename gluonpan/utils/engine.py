"""The training and evaluation loops shared by the train / eval / demo scripts.

The engine knows nothing about the model beyond two calls:

* ``net.train_losses(batch)`` -> ``OrderedDict`` of named scalar losses, each the mean over the images
  of the per-context ``batch``; called inside ``autograd.record()``.
* ``predict_fn(net, data)`` -> ``(pan_ids, segments_info)`` for one ``(1, 3, H, W)`` image.

Determinism: every random draw during a step comes from generators re-seeded with
``step_seed(seed, epoch, iteration, rank)`` right before it, and the data order / augmentation come
from the sampler keyed by ``(seed, epoch)``, so a run resumed at any iteration continues exactly as an
uninterrupted one.  Data-loading code must take its randomness from the sampler's per-sample seed,
never from global generators.
"""
import logging
import math
import random
import time
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet import autograd
from tqdm import tqdm

from ..data.batchify import split_and_load
from ..errors import InputError
from .optim import clip_global_norm

__all__ = ['NonFiniteLossError', 'step_seed', 'train_one_epoch', 'fit', 'evaluate']

logger = logging.getLogger(__name__)


class NonFiniteLossError(InputError, FloatingPointError):
    """A loss (or, with ``trainer.clip_global_norm``, the gradient norm, logged as ``grad_norm``)
    became NaN or infinite; training stopped before the step was applied.

    An :class:`~gluonpan.errors.InputError` (exit status 1 from a script): the usual causes are the
    data or the recipe (learning rate), and the step is logged with every loss before it is raised.

    Attributes
    ----------
    epoch, iteration : int
        Where it happened (0-based).
    losses : OrderedDict
        Every named loss of that step (averaged over contexts).
    """

    logged = True  # train_one_epoch logs it with the losses; a CLI need not repeat it

    def __init__(self, epoch, iteration, losses):
        self.epoch, self.iteration, self.losses = epoch, iteration, losses
        super().__init__('non-finite loss at epoch {}, iteration {}: {}'.format(
            epoch, iteration, ', '.join('{}={}'.format(k, v) for k, v in losses.items())))


def step_seed(seed, epoch, iteration, rank=0):
    """A 32-bit seed derived from the run's seed and the position of one training step."""
    return int(np.random.SeedSequence([seed, epoch, iteration, rank]).generate_state(1)[0])


def _seed_all(seed):
    mx.random.seed(seed, ctx='all')
    np.random.seed(seed)
    random.seed(seed)


def _init_trainer(trainer):
    """Set up the trainer's kvstore and wait until every worker holds the initial weights.

    MXNet 1.9 does this lazily inside the first ``trainer.step``, which queues the pull of the
    initial weights and the push of the first gradients at once.  On a distributed kvstore with
    ``update_on_kvstore=False`` the push may overtake the pull; the server then answers the pull
    with the first summed gradient, which overwrites that worker's weights (seen with 2 workers:
    runs of the same job ended with different weights).  Waiting here orders the two.  A no-op once
    the trainer is set up.
    """
    if trainer._kv_initialized and not trainer._params_to_init:
        return
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    mx.nd.waitall()


def _batch_size(batch):
    """Length of the batch axis of a (per-context) batch dict, checked to agree over its arrays."""
    sizes = {k: v.shape[0] for k, v in batch.items() if isinstance(v, (mx.nd.NDArray, np.ndarray))}
    if not sizes:
        raise ValueError('a batch must hold at least one array, got keys {}'.format(list(batch)))
    if len(set(sizes.values())) != 1:
        raise ValueError('batch arrays disagree on the batch size: {}'.format(sizes))
    return next(iter(sizes.values()))


def _mean_losses(loss_dicts, sizes):
    """Per-name loss averaged over contexts weighted by their sample counts (waits for the step)."""
    names = list(loss_dicts[0])
    for d in loss_dicts[1:]:
        if list(d) != names:
            raise ValueError('train_losses returned different names on different contexts: '
                             '{} vs {}'.format(names, list(d)))
    means = OrderedDict()
    for name in names:
        total = 0.0
        for d, n in zip(loss_dicts, sizes):
            if d[name].size != 1:
                raise ValueError('loss {} must be a scalar, got shape {}'.format(
                    name, d[name].shape))
            total += d[name].asnumpy().item() * n
        means[name] = total / sum(sizes)
    return means


def _format_losses(losses):
    return ', '.join('{}={:.4f}'.format(k, v) for k, v in losses.items())


def _train_step(net, trainer, batch, ctx_list, num_workers, epoch, iteration):
    """Forward / backward over the contexts, finiteness check, update -> (losses, local batch size)."""
    # a loss normalised by a count over the whole batch (Panoptic SegFormer's matched things) needs
    # the count before the split; per machine (workers of a distributed job each use their own)
    totals = net.batch_totals(batch) if hasattr(net, 'batch_totals') else None
    parts = split_and_load(batch, ctx_list)
    sizes = [_batch_size(p) for p in parts]
    with autograd.record():
        loss_dicts = [net.train_losses(p) if totals is None else net.train_losses(p, totals)
                      for p in parts]
        totals = [sum(d.values()) * n for d, n in zip(loss_dicts, sizes)]
    autograd.backward(totals)
    losses = _mean_losses(loss_dicts, sizes)
    if not all(math.isfinite(v) for v in losses.values()):
        err = NonFiniteLossError(epoch, iteration, losses)
        logger.error('%s; stopping, the last checkpoint is left as it was', err)
        raise err
    _init_trainer(trainer)
    total = sum(sizes) * num_workers
    max_norm = getattr(trainer, 'clip_global_norm', 0)
    if max_norm:
        trainer.allreduce_grads()
        norm = clip_global_norm(trainer, max_norm, total)
        if not math.isfinite(norm):
            err = NonFiniteLossError(epoch, iteration, OrderedDict(losses, grad_norm=norm))
            logger.error('%s; stopping, the last checkpoint is left as it was', err)
            raise err
        trainer.update(total)
    else:
        trainer.step(total)
    return losses, sum(sizes)


def train_one_epoch(net, trainer, loader, ctx_list, epoch, lr_scheduler, start_batch=0,
                    num_batches=None, seed=0, rank=0, num_workers=1, log_interval=10,
                    checkpoint=None, ckpt_interval=0, progress=None, loss_history=None):
    """Train over the (remaining) batches of one epoch, data-parallel over ``ctx_list``.

    Each step: set the learning rate, re-seed every generator, split the batch over the contexts,
    ``net.train_losses`` per context inside ``autograd.record()``, backward of the summed losses
    (each context's weighted by its sample count, so any split gives the same gradient), a check that
    every loss is finite, then ``trainer.step(B * num_workers)`` with ``B`` the local batch size
    (workers of a distributed job must have equal batch sizes); with ``trainer.clip_global_norm``
    (:func:`~gluonpan.utils.dist.create_trainer`) the step is ``allreduce_grads``, clipping by the
    global norm (a non-finite norm stops the run like a non-finite loss), ``update``.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Implements ``train_losses(batch_dict)``.
    trainer : mxnet.gluon.Trainer
        Its learning rate is set from ``lr_scheduler`` at every step.
    loader : iterable of dict
        The epoch's batches from ``start_batch`` on (already-done batches are not loaded again).
    ctx_list : list of mxnet.Context
        Data-parallel contexts.
    epoch : int
        0-based epoch.
    lr_scheduler : callable
        ``lr_scheduler(epoch, iteration) -> lr``.
    start_batch : int, default 0
        Index of the first batch ``loader`` yields (resuming mid-epoch).
    num_batches : int, optional
        Batches in the full epoch; default ``start_batch + len(loader)``.
    seed, rank : int
        Seed of the run and worker rank, mixed into :func:`step_seed`.
    num_workers : int, default 1
        Workers of a distributed job (the gradient is summed over them).
    log_interval : int, default 10
        Log the averaged losses, lr and samples/s every this many iterations.
    checkpoint : CheckpointManager, optional
        Saves a mid-epoch checkpoint every ``ckpt_interval`` iterations (0: never).
    ckpt_interval : int, default 0
    progress : bool, optional
        tqdm progress bar; default: only on a terminal.
    loss_history : LossHistory, optional
        The run's record of the losses (:class:`~gluonpan.utils.plots.LossHistory`):
        ``loss_history.add(epoch, iteration, num_batches, losses)`` after every step and
        ``loss_history.commit()`` right before every checkpoint, so that what a checkpoint holds
        is on record.

    Returns
    -------
    OrderedDict
        Each named loss averaged over the iterations run.

    Raises
    ------
    NonFiniteLossError
        On a NaN / infinite loss; the step is not applied and nothing is saved.
    """
    num_batches = start_batch + len(loader) if num_batches is None else num_batches
    sums, window, window_steps, window_samples, steps = OrderedDict(), OrderedDict(), 0, 0, 0
    tic = time.time()
    with tqdm(total=num_batches, initial=start_batch, desc='epoch {}'.format(epoch),
              disable=None if progress is None else not progress, leave=False) as bar:
        for i, batch in enumerate(loader, start_batch):
            lr = lr_scheduler(epoch, i)
            trainer.set_learning_rate(lr)
            _seed_all(step_seed(seed, epoch, i, rank))
            losses, batch_size = _train_step(net, trainer, batch, ctx_list, num_workers, epoch, i)
            if loss_history is not None:
                loss_history.add(epoch, i, num_batches, losses)
            steps += 1
            window_steps += 1
            window_samples += batch_size
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value
                window[name] = window.get(name, 0.0) + value
            bar.update(1)
            if log_interval and (i + 1) % log_interval == 0:
                means = OrderedDict((k, v / window_steps) for k, v in window.items())
                speed = window_samples / max(time.time() - tic, 1e-9)
                logger.info('[Epoch %d][Batch %d/%d] %s, lr=%.6g, %.1f samples/s', epoch, i + 1,
                            num_batches, _format_losses(means), lr, speed)
                bar.set_postfix(loss=sum(means.values()), lr=lr)
                window, window_steps, window_samples, tic = OrderedDict(), 0, 0, time.time()
            if checkpoint is not None and ckpt_interval and (i + 1) % ckpt_interval == 0 \
                    and i + 1 < num_batches:
                _save(checkpoint, loss_history, epoch, i + 1, epoch * num_batches + i + 1)
    means = OrderedDict((k, v / max(steps, 1)) for k, v in sums.items())
    logger.info('[Epoch %d] done %d iterations: %s', epoch, steps, _format_losses(means))
    return means


def _save(checkpoint, loss_history, epoch, iteration, global_step, keep=False):
    """Commit the loss record (when there is one), then save the checkpoint: the record then
    covers every step the checkpoint holds, and a resumed run drops the steps after it."""
    if loss_history is not None:
        loss_history.commit()
    checkpoint.save(epoch, iteration, global_step, keep=keep)


def fit(net, trainer, make_loader, ctx_list, lr_scheduler, epochs, start_epoch=0, start_batch=0,
        checkpoint=None, save_interval=0, val_fn=None, val_interval=1, val_done=None,
        loss_history=None, **kwargs):
    """Train from ``(start_epoch, start_batch)`` to the end of epoch ``epochs - 1``.

    After every epoch a checkpoint is saved (a numbered one that is never pruned every
    ``save_interval`` epochs), then ``val_fn(epoch)`` runs every ``val_interval`` epochs and after the
    last one.  The checkpoint comes first, so a run killed during a validation resumes at the epoch's
    end: when ``val_done(epoch)`` says that validation was not recorded, it is run again first.

    Parameters
    ----------
    make_loader : callable
        ``make_loader(epoch, start_batch)`` -> the batches of ``epoch`` from ``start_batch`` on
        (typically ``sampler.set_epoch(...)`` then the DataLoader).
    epochs : int
        Total epochs of the run.
    start_epoch, start_batch : int
        Where to begin, e.g. ``record['epoch'], record['iteration']`` of a loaded checkpoint.
    checkpoint : CheckpointManager, optional
    save_interval : int, default 0
        Keep the end-of-epoch checkpoint of every this many epochs (0: only rolling ones).
    val_fn : callable, optional
    val_interval : int, default 1
    val_done : callable, optional
        ``val_done(epoch) -> bool``: the validation after 0-based ``epoch`` was recorded (e.g. its
        line is in the validation history).  Default: assume it was.
    loss_history : LossHistory, optional
        The run's record of the losses, kept as :func:`train_one_epoch` says (committed before the
        checkpoint at the end of every epoch too).
    **kwargs
        Passed to :func:`train_one_epoch` (``seed``, ``rank``, ``num_workers``, ``log_interval``,
        ``ckpt_interval``, ``progress``); ``net``, ``trainer``, ``ctx_list`` and ``lr_scheduler``
        are as there.
    """
    def due(epoch):
        return val_fn is not None and bool(val_interval) and \
            ((epoch + 1) % val_interval == 0 or epoch + 1 == epochs)

    last = start_epoch - 1  # the epoch a checkpoint at an epoch boundary closed
    if start_batch == 0 and last >= 0 and due(last) and val_done is not None and not val_done(last):
        logger.info('the validation after epoch %d was not recorded (interrupted); running it now',
                    last + 1)
        val_fn(last)
    for epoch in range(start_epoch, epochs):
        loader = make_loader(epoch, start_batch)
        num_batches = start_batch + len(loader)
        train_one_epoch(net, trainer, loader, ctx_list, epoch, lr_scheduler,
                        start_batch=start_batch, num_batches=num_batches, checkpoint=checkpoint,
                        loss_history=loss_history, **kwargs)
        start_batch = 0
        if checkpoint is not None:
            keep = bool(save_interval) and (epoch + 1) % save_interval == 0
            _save(checkpoint, loss_history, epoch + 1, 0, (epoch + 1) * num_batches, keep=keep)
        if due(epoch):
            val_fn(epoch)


def _to_numpy(value):
    return value.asnumpy() if isinstance(value, mx.nd.NDArray) else np.asarray(value)


def evaluate(net, loader, ctx, metric, predict_fn, output_fn=None, progress=None,
             gt_keys=('pan_ids', 'segments_info')):
    """Run inference over a validation loader and accumulate a metric (PQ, mIoU).

    Parameters
    ----------
    net : mxnet.gluon.Block
        The network (hybridize it for inference before calling, if wanted).
    loader : iterable
        Yields one sample dict or a list of sample dicts (one per context).  A sample holds
        ``data`` ((3, H, W) or (1, 3, H, W)), its ground truth (``gt_keys``) and ``image_id``;
        other keys are passed through to ``output_fn``.
    ctx : mxnet.Context or list of mxnet.Context
        Samples go to the contexts in turn.
    metric : object
        ``reset()`` (called first) and ``update(gt_pan_ids, gt_segments_info, pred_pan_ids,
        pred_segments_info, image_id=...)``, e.g. ``PanopticQuality``.
    predict_fn : callable
        ``predict_fn(net, data)`` with ``data`` a (1, 3, H, W) NDArray on its context ->
        ``(pan_ids (H, W) int32, segments_info)``, e.g. ``predict_panoptic``.
    output_fn : callable, optional
        ``output_fn(sample, pan_ids, segments_info)``, e.g. to write a panoptic PNG + JSON.
    progress : bool, optional
        tqdm progress bar; default: only on a terminal.
    gt_keys : tuple of str
        The sample keys of the ground-truth map ((H, W)) and of its segment list (``None``: the
        metric gets ``None``): panoptic ``('pan_ids', 'segments_info')``, semantic
        ``('sem_seg', None)``.

    Returns
    -------
    object
        ``metric``, updated with every sample.
    """
    ctx_list = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    metric.reset()
    count, tic = 0, time.time()
    total = len(loader) if hasattr(loader, '__len__') else None
    for batch in tqdm(loader, total=total, desc='eval', leave=False,
                      disable=None if progress is None else not progress):
        for sample in batch if isinstance(batch, (list, tuple)) else [batch]:
            image_id = sample['image_id']
            data = sample['data']
            target = ctx_list[count % len(ctx_list)]
            if not isinstance(data, mx.nd.NDArray):
                data = mx.nd.array(data, ctx=target, dtype='float32')  # one copy, to its context
            if data.ndim == 3:
                data = data.expand_dims(0)  # (1, 3, H, W)
            gt = _to_numpy(sample[gt_keys[0]])
            if data.ndim != 4 or data.shape[:2] != (1, 3) or gt.shape != data.shape[2:]:
                raise ValueError('image {}: expected data (3, H, W) and {} (H, W), got {} '
                                 'and {}'.format(image_id, gt_keys[0], sample['data'].shape,
                                                 gt.shape))
            data = data.as_in_context(target)
            pan_ids, segments_info = predict_fn(net, data)
            gt_info = sample[gt_keys[1]] if gt_keys[1] else None
            metric.update(gt, gt_info, pan_ids, segments_info, image_id=image_id)
            if output_fn is not None:
                output_fn(sample, pan_ids, segments_info)
            count += 1
    logger.info('evaluated %d images in %.1f s', count, time.time() - tic)
    return metric
