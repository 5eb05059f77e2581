"""Checkpoints that survive a crash at any instant.

A checkpoint is three files sharing one tag, ``{prefix}-{epoch:04d}`` at the end of an epoch or
``{prefix}-{epoch:04d}-{iteration:06d}`` in the middle of one:

* ``TAG.params``  -- ``net.save_parameters``
* ``TAG.states``  -- ``trainer.save_states`` (momentum, optimizer counters)
* ``TAG.json``    -- the commit record, written last: epoch (epochs completed), iteration (batches
  completed in the next epoch), global step, file names, sizes and sha1, lr-scheduler state, seed,
  args.

Every file is written to a temporary name in the same folder, fsync'ed and moved into place with
``os.replace``; the JSON goes last.  A checkpoint counts only when its JSON exists and the files it
names have the recorded sizes, so a crash between any two writes leaves the previous checkpoint the
newest complete one.  Loading takes the newest checkpoint whose files are complete, match their
sha1 and load; a damaged newest one falls back to the previous one with a warning naming both (two
rolling checkpoints are kept for this).  A process killed inside :func:`atomic_write` leaves a
hidden ``.NAME.tmp.PID`` file, which :func:`remove_temp_files` sweeps away.
"""
import hashlib
import json
import logging
import os
import re
import time

import mxnet as mx

from ..errors import DataError, MissingFileError, load_failure

__all__ = ['atomic_write', 'atomic_write_json', 'CheckpointManager', 'list_checkpoints', 'find_checkpoint',
           'read_checkpoint', 'checkpoint_records', 'remove_temp_files', 'file_sha1',
           'ValidationHistory']

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


def atomic_write_json(path, obj, **dump_kwargs):
    """:func:`atomic_write` of ``json.dump(obj, f, **dump_kwargs)``."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, **dump_kwargs)
    atomic_write(path, write)


_TEMP_NAME = re.compile(r'^\..+\.tmp\.(\d+)$')


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_temp_files(folder):
    """Delete the ``.NAME.tmp.PID`` files that killed writers left under ``folder`` (recursively).

    Files of processes still running (other than this one) are left alone.

    Returns
    -------
    list of str
        The removed paths.
    """
    removed = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            match = _TEMP_NAME.match(name)
            if match and (int(match.group(1)) == os.getpid()
                          or not _process_alive(int(match.group(1)))):
                path = os.path.join(dirpath, name)
                os.remove(path)
                removed.append(path)
    if removed:
        logger.info('removed %d temporary file(s) of interrupted writes, e.g. %s', len(removed),
                    removed[0])
    return removed


def file_sha1(path, chunk=1 << 22):
    """Hex sha1 of a file's content."""
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _tag(prefix, epoch, iteration):
    if iteration:
        return '{}-{:04d}-{:06d}'.format(prefix, epoch, iteration)
    return '{}-{:04d}'.format(prefix, epoch)


def read_checkpoint(json_path, verify_sha1=False):
    """Read and verify one checkpoint record.

    Parameters
    ----------
    json_path : str
        The checkpoint's ``.json`` commit record.
    verify_sha1 : bool, default False
        Also compare the files' sha1 with the record's (records written before sha1 were recorded
        are checked by size only).

    Returns
    -------
    dict
        The record, with ``params`` and ``states`` turned into absolute paths.

    Raises
    ------
    DataError
        If the record is unreadable, of another format, or its files are missing, truncated or
        (with ``verify_sha1``) altered.
    """
    try:
        with open(json_path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise DataError('cannot read checkpoint record {}: {}'.format(json_path, err)) from None
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise DataError('{} is not a gluonpan checkpoint record (expected "format": "{}")'.format(
            json_path, FORMAT))
    folder = os.path.dirname(os.path.abspath(json_path))
    for key in ('params', 'states'):
        path = os.path.join(folder, str(record.get(key)))
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size is None or size != record.get(key + '_bytes'):
            raise DataError('checkpoint {} is incomplete: {} has {} bytes, the record says {}'
                            .format(json_path, path, size, record.get(key + '_bytes')))
        if verify_sha1 and record.get(key + '_sha1') and file_sha1(path) != record[key + '_sha1']:
            raise DataError('checkpoint {} is damaged: the sha1 of {} is not the recorded {}'
                            .format(json_path, path, record[key + '_sha1']))
        record[key] = path
    return record


def _tag_key(json_path):
    """``(epoch, iteration)`` from a checkpoint file name ``...-EEEE[-IIIIII].json``."""
    match = re.search(r'-(\d{4,})(?:-(\d{6,}))?\.json$', os.path.basename(json_path))
    return (int(match.group(1)), int(match.group(2) or 0)) if match else (-1, -1)


def checkpoint_records(folder, prefix=None):
    """Every checkpoint record file in ``folder`` (complete or not), newest first by name.

    Returns
    -------
    list of str
        ``.json`` paths sorted by the (epoch, iteration) in their names, newest first.
    """
    pattern = _file_pattern(prefix, ['json'])
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    paths = [os.path.join(folder, n) for n in names if pattern.match(n)]
    return sorted(paths, key=_tag_key, reverse=True)


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
        except DataError as err:
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
        raise MissingFileError('no checkpoint at {} (give a checkpoint folder, or the .json / '
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
            self.remove_uncommitted()  # a run killed while pruning left some behind

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
            'params_sha1': file_sha1(base + '.params'),
            'states': tag + '.states', 'states_bytes': os.path.getsize(base + '.states'),
            'states_sha1': file_sha1(base + '.states'),
            'lr_scheduler': self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            'seed': self.seed, 'args': self.args,
        }
        atomic_write_json(base + '.json', record, indent=1, sort_keys=True, default=str)
        logger.info('saved checkpoint %s (epoch %d, iteration %d, step %d)', base + '.json',
                    epoch, iteration, global_step)
        self._prune()
        return base + '.json'

    def load(self, path=None, required=False):
        """Restore the state saved in a checkpoint.

        Parameters
        ----------
        path : str, optional
            See :func:`find_checkpoint`: one checkpoint (loaded or an error) or a folder; default
            ``folder``.  In a folder the newest checkpoint that is complete, matches its sha1 and
            loads is taken; each damaged newer one is named in a warning.
        required : bool, default False
            With ``path`` omitted: raise when ``folder`` holds no checkpoint at all (``--resume``)
            instead of returning ``None`` (resume if possible).

        Returns
        -------
        dict or None
            The record (``epoch``, ``iteration``, ``global_step``, ``seed``, ``args`` ...), or
            ``None`` when ``path`` is omitted, ``required`` is false and ``folder`` holds no
            checkpoint (a fresh start).  Continue at ``(record['epoch'], record['iteration'])``
            with seed ``self.seed`` (the saved one).

        Raises
        ------
        MissingFileError
            No checkpoint where one was required, saying where it looked.
        DataError
            Checkpoints exist but none of them is intact (each named with its reason).
        """
        folder = path if path is None or os.path.isdir(path) else None
        if path is not None and folder is None:
            candidates = [find_checkpoint(path, self.prefix)]
        else:
            candidates = checkpoint_records(folder or self.folder, self.prefix)
        if not candidates:
            if path is None and not required:
                return None
            raise MissingFileError('no checkpoint {}-*.json in {} to resume from'.format(
                self.prefix, os.path.abspath(path or self.folder)))
        failures = []
        for json_path in candidates:
            try:
                record = self._restore(json_path)
            except DataError as err:
                failures.append((json_path, str(err)))
                logger.warning('cannot resume from %s: %s', json_path, err)
                continue
            if failures:
                logger.warning('the newest checkpoint %s is damaged; resuming from the previous '
                               'intact one, %s', failures[0][0], json_path)
            return record
        raise DataError('no intact checkpoint to resume from in {}: {}'.format(
            os.path.dirname(os.path.abspath(candidates[0])),
            '; '.join('{}: {}'.format(os.path.basename(p), why) for p, why in failures)))

    def _restore(self, json_path):
        """Load one checkpoint into the net, trainer and schedule; DataError if it is damaged."""
        record = read_checkpoint(json_path, verify_sha1=True)
        try:
            self.net.load_parameters(record['params'], ctx=self.ctx)
            self.trainer.load_states(record['states'])
        except (mx.base.MXNetError, AssertionError, ValueError, KeyError, OSError) as err:
            raise DataError('cannot load checkpoint {} ({}); a checkpoint of another model or '
                            'damaged'.format(json_path, load_failure(err))) from None
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
        self.remove_uncommitted()

    def remove_uncommitted(self):
        """Delete this prefix's ``.params`` / ``.states`` without a ``.json`` record (a write that
        never committed, or a pruning that a kill interrupted: the record goes first) and its
        temporary files."""
        pattern = _file_pattern(self.prefix, ['params', 'states'])
        for name in os.listdir(self.folder):
            leftover_tmp = name.startswith('.' + self.prefix + '-') and '.tmp.' in name
            root = os.path.join(self.folder, os.path.splitext(name)[0])
            if leftover_tmp or (pattern.match(name) and not os.path.exists(root + '.json')):
                logger.info('removing %s (from an interrupted checkpoint write)', name)
                os.remove(os.path.join(self.folder, name))


class ValidationHistory:
    """The validation results of a run, one JSON line per evaluated epoch (``val_history.jsonl``).

    The file is rewritten atomically at every :meth:`record`, so a kill leaves it as it was before
    or after one validation, never half a line; its lines are what tells a resumed run whether the
    validation after an epoch finished (:meth:`done`).

    Parameters
    ----------
    path : str
        The ``.jsonl`` file.
    """

    def __init__(self, path):
        self.path = path

    def entries(self):
        """The recorded lines as dicts, in order (``[]`` when there is no file yet)."""
        if not os.path.isfile(self.path):
            return []
        entries = []
        with open(self.path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    raise DataError('validation history {} line {} is not JSON: {!r}'.format(
                        self.path, number, line[:80])) from None
        return entries

    def done(self, epoch):
        """Whether the validation after 0-based ``epoch`` was recorded."""
        return any(e.get('epoch') == epoch + 1 for e in self.entries())

    def record(self, epoch, results):
        """Record the validation after 0-based ``epoch``: ``{"epoch": epoch + 1, **results}``.

        Lines of this or later epochs (left by a run resumed from an older checkpoint) are
        replaced, so the file reads as one uninterrupted run's.
        """
        kept = [e for e in self.entries() if e.get('epoch', 0) <= epoch]
        lines = [json.dumps(e) for e in kept] + [json.dumps(dict({'epoch': epoch + 1}, **results))]

        def write(tmp):
            with open(tmp, 'w') as f:
                f.write(''.join(line + '\n' for line in lines))
        atomic_write(self.path, write)
