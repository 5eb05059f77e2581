"""Checkpoints that survive a crash at any instant.

A checkpoint is three files sharing one tag, ``{prefix}-{epoch:04d}`` at the end of an epoch or
``{prefix}-{epoch:04d}-{iteration:06d}`` in the middle of one:

* ``TAG.params``  -- ``net.save_parameters``
* ``TAG.states``  -- ``trainer.save_states`` (momentum, optimizer counters)
* ``TAG.json``    -- the commit record, written last: epoch (epochs completed), iteration (batches
  completed in the next epoch), global step, file names and sizes, lr-scheduler state, seed, args.

Every file is written to a temporary name in the same folder, fsync'ed and moved into place with
``os.replace``; the JSON goes last.  A checkpoint counts only when its JSON exists and the files it
names have the recorded sizes, so a crash between any two writes leaves the previous checkpoint the
newest complete one.  Loading takes the newest complete checkpoint.
"""
import json
import logging
import os
import re
import time

import mxnet as mx

__all__ = ['atomic_write', 'CheckpointManager', 'list_checkpoints', 'find_checkpoint',
           'read_checkpoint']

logger = logging.getLogger(__name__)

FORMAT = 'gluonpan-checkpoint/1'


def _file_pattern(prefix, exts):
    """Regex of checkpoint file names ``{prefix}-EEEE[-IIIIII].{ext}`` (any prefix when None)."""
    return re.compile(r'^{}-\d{{4,}}(?:-\d{{6,}})?\.({})$'.format(
        re.escape(prefix) if prefix else '.+', '|'.join(exts)))


def _fsync_dir(folder):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write_fn):
    """Create or replace ``path`` so that readers see either the old or the complete new file.

    Parameters
    ----------
    path : str
        Destination file.
    write_fn : callable
        ``write_fn(tmp_path)`` writes the content to ``tmp_path`` (e.g. ``net.save_parameters``).
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, '.{}.tmp.{}'.format(os.path.basename(path), os.getpid()))
    try:
        write_fn(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def _tag(prefix, epoch, iteration):
    if iteration:
        return '{}-{:04d}-{:06d}'.format(prefix, epoch, iteration)
    return '{}-{:04d}'.format(prefix, epoch)


def read_checkpoint(json_path):
    """Read and verify one checkpoint record.

    Parameters
    ----------
    json_path : str
        The checkpoint's ``.json`` commit record.

    Returns
    -------
    dict
        The record, with ``params`` and ``states`` turned into absolute paths.

    Raises
    ------
    ValueError
        If the record is unreadable, of another format, or its files are missing or truncated.
    """
    try:
        with open(json_path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('cannot read checkpoint record {}: {}'.format(json_path, err))
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise ValueError('{} is not a gluonpan checkpoint record (expected "format": "{}")'.format(
            json_path, FORMAT))
    folder = os.path.dirname(os.path.abspath(json_path))
    for key in ('params', 'states'):
        path = os.path.join(folder, record[key])
        size = os.path.getsize(path) if os.path.exists(path) else None
        if size != record[key + '_bytes']:
            raise ValueError('checkpoint {} is incomplete: {} has {} bytes, the record says {}'.format(
                json_path, path, size, record[key + '_bytes']))
        record[key] = path
    return record


def list_checkpoints(folder, prefix=None):
    """Complete checkpoints in ``folder``, oldest first.

    Parameters
    ----------
    folder : str
        Checkpoint folder.
    prefix : str, optional
        Only checkpoints named ``{prefix}-...``; all when omitted.

    Returns
    -------
    list of (str, dict)
        ``(json_path, record)`` sorted by (epoch, iteration).  Incomplete ones are skipped with a
        warning.
    """
    pattern = _file_pattern(prefix, ['json'])
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not pattern.match(name):
            continue
        path = os.path.join(folder, name)
        try:
            record = read_checkpoint(path)
        except ValueError as err:
            logger.warning('skipping checkpoint: %s', err)
            continue
        found.append((path, record))
    found.sort(key=lambda item: (item[1]['epoch'], item[1]['iteration']))
    return found


def find_checkpoint(path, prefix=None):
    """Resolve a ``--resume`` argument to a checkpoint record path.

    Parameters
    ----------
    path : str
        A folder (its newest complete checkpoint), a checkpoint ``.json``, or the ``.params`` /
        ``.states`` file of a checkpoint.
    prefix : str, optional
        With a folder: only checkpoints of this prefix (all when omitted).

    Returns
    -------
    str or None
        The ``.json`` path; ``None`` if ``path`` is a folder without a complete checkpoint.
    """
    if os.path.isdir(path):
        found = list_checkpoints(path, prefix)
        return found[-1][0] if found else None
    root, ext = os.path.splitext(path)
    if ext in ('.params', '.states'):
        path = root + '.json'
    if not os.path.exists(path):
        raise FileNotFoundError('no checkpoint at {} (give a checkpoint folder, or the .json / '
                                '.params of one checkpoint)'.format(path))
    return path


class CheckpointManager:
    """Save and restore the complete training state: weights, trainer, lr schedule, position.

    Parameters
    ----------
    folder : str
        Where checkpoints go (created).
    prefix : str
        File-name prefix, e.g. the model name.
    net : mxnet.gluon.Block
        The network.
    trainer : mxnet.gluon.Trainer
        Its trainer.
    lr_scheduler : WarmupStepLR, optional
        Anything with ``state_dict()`` / ``load_state_dict(state)``.
    seed : int, default 0
        The run's seed (all randomness is derived from it and the position).
    args : dict, optional
        The command line (``vars(args)``), stored for the record.
    keep_last : int, default 2
        How many of the newest checkpoints to keep besides those saved with ``keep=True``.
    ctx : list of mxnet.Context, optional
        Where loaded parameters go (``net.load_parameters(ctx=...)``).
    enabled : bool, default True
        ``False`` makes :meth:`save` a no-op (workers other than rank 0 of a distributed job;
        every worker loads, so resuming such a job needs ``folder`` visible to all of them).
    """

    def __init__(self, folder, prefix, net, trainer, lr_scheduler=None, seed=0, args=None,
                 keep_last=2, ctx=None, enabled=True):
        if keep_last < 1:
            raise ValueError('keep_last must be >= 1, got {}'.format(keep_last))
        self.folder = folder
        self.prefix = prefix
        self.net = net
        self.trainer = trainer
        self.lr_scheduler = lr_scheduler
        self.seed = seed
        self.args = dict(args or {})
        self.keep_last = keep_last
        self.ctx = ctx
        self.enabled = enabled
        if enabled:
            os.makedirs(folder, exist_ok=True)

    def save(self, epoch, iteration, global_step, keep=False):
        """Write a checkpoint of the current state.

        Parameters
        ----------
        epoch : int
            Epochs completed.
        iteration : int
            Batches completed in epoch ``epoch`` (0-based); 0 at an epoch boundary.
        global_step : int
            Optimizer steps taken so far.
        keep : bool, default False
            Never prune this one (``--save-interval`` copies).

        Returns
        -------
        str or None
            The record path (``None`` when disabled).
        """
        if not self.enabled:
            return None
        tag = _tag(self.prefix, epoch, iteration)
        base = os.path.join(self.folder, tag)
        atomic_write(base + '.params', self.net.save_parameters)
        atomic_write(base + '.states', self.trainer.save_states)
        record = {
            'format': FORMAT, 'epoch': int(epoch), 'iteration': int(iteration),
            'global_step': int(global_step), 'keep': bool(keep), 'time': time.time(),
            'params': tag + '.params', 'params_bytes': os.path.getsize(base + '.params'),
            'states': tag + '.states', 'states_bytes': os.path.getsize(base + '.states'),
            'lr_scheduler': self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            'seed': self.seed, 'args': self.args,
        }

        def write_json(tmp):
            with open(tmp, 'w') as f:
                json.dump(record, f, indent=1, sort_keys=True, default=str)

        atomic_write(base + '.json', write_json)
        logger.info('saved checkpoint %s (epoch %d, iteration %d, step %d)', base + '.json',
                    epoch, iteration, global_step)
        self._prune()
        return base + '.json'

    def load(self, path=None):
        """Restore the state saved in a checkpoint.

        Parameters
        ----------
        path : str, optional
            See :func:`find_checkpoint`; default: the newest complete checkpoint in ``folder``.

        Returns
        -------
        dict or None
            The record (``epoch``, ``iteration``, ``global_step``, ``seed``, ``args`` ...), or
            ``None`` when ``path`` is omitted and ``folder`` holds no complete checkpoint (a
            fresh start).  Continue at ``(record['epoch'], record['iteration'])`` with seed
            ``self.seed`` (the saved one).
        """
        json_path = find_checkpoint(path or self.folder, self.prefix)
        if json_path is None and path:
            raise FileNotFoundError('no complete checkpoint named {}-* in {}'.format(
                self.prefix, path))
        if json_path is None:
            return None
        record = read_checkpoint(json_path)
        self.net.load_parameters(record['params'], ctx=self.ctx)
        self.trainer.load_states(record['states'])
        mx.nd.waitall()  # a distributed kvstore pulls the weights here: finish before any push
        if self.lr_scheduler is not None and record['lr_scheduler'] is not None:
            self.lr_scheduler.load_state_dict(record['lr_scheduler'])
        if record['seed'] != self.seed:
            logger.warning('resuming with the saved seed %s instead of %s', record['seed'],
                           self.seed)
            self.seed = record['seed']
        logger.info('resumed from %s (epoch %d, iteration %d, step %d)', json_path,
                    record['epoch'], record['iteration'], record['global_step'])
        return record

    def _prune(self):
        """Drop old rolling checkpoints, then files of writes that never committed."""
        found = list_checkpoints(self.folder, self.prefix)
        rolling = [path for path, record in found if not record['keep']]
        for path in rolling[:-self.keep_last]:
            root = os.path.splitext(path)[0]
            for ext in ('.json', '.params', '.states'):  # the record first: never a dangling one
                if os.path.exists(root + ext):
                    os.remove(root + ext)
        pattern = _file_pattern(self.prefix, ['params', 'states'])
        for name in os.listdir(self.folder):
            leftover_tmp = name.startswith('.' + self.prefix + '-') and '.tmp.' in name
            root = os.path.join(self.folder, os.path.splitext(name)[0])
            if leftover_tmp or (pattern.match(name) and not os.path.exists(root + '.json')):
                logger.info('removing %s (from an interrupted checkpoint write)', name)
                os.remove(os.path.join(self.folder, name))
