"""The picture of a training run: ``curves.png`` in its folder, the training losses and the
validation scores, redrawn after every validation and at the end of training.

Its data is what the run records: ``losses.jsonl`` (:class:`LossHistory`: the named losses, one
line per logged interval) and ``val_history.jsonl``
(:class:`~gluonpan.utils.checkpoint.ValidationHistory`).  Both are rewritten atomically and kept
by a resumed run up to its checkpoint, so the picture of a killed and resumed run is that of an
uninterrupted one.  Drawing uses matplotlib's Agg canvas (no display, no pyplot state); a failure
to record or draw is a warning, never the end of a training run.
"""
import json
import logging
import os
from collections import OrderedDict

from .checkpoint import ValidationHistory, atomic_write

__all__ = ['LOSSES_FILE', 'PLOT_FILE', 'VAL_KEYS', 'LossHistory', 'run_curves', 'plot_run',
           'update_plot']

logger = logging.getLogger(__name__)

#: the loss record and the picture, in the run folder
LOSSES_FILE = 'losses.jsonl'
PLOT_FILE = 'curves.png'
#: the validation numbers drawn, those of them a run's val_history.jsonl holds (panoptic: PQ,
#: things, stuff and mIoU; semantic: mIoU)
VAL_KEYS = ('PQ', 'PQ_th', 'PQ_st', 'mIoU')


def _read_lines(path):
    """The JSON lines of ``path`` as dicts (``[]`` when there is no file)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class LossHistory:
    """The named training losses of a run, one JSON line per interval (``losses.jsonl``).

    A line ``{"epoch": e, "batch": b, "batches": n, "steps": s, "losses": {name: mean}}`` holds
    the means over the ``s`` steps of 0-based epoch ``e`` that end with batch ``b`` of ``n`` (as
    train.log's ``[Epoch e][Batch b/n]``).  Intervals end every ``interval`` batches, at the end
    of an epoch and at every :meth:`commit`, which the engine calls right before each checkpoint
    and which rewrites the file atomically.  A resumed run keeps the lines up to its checkpoint
    and drops later ones (as ``val_history.jsonl`` does), so its record is an uninterrupted run's.
    The losses are those train.log shows (in a distributed job, rank 0's, which keeps the record).

    Parameters
    ----------
    path : str
        The ``.jsonl`` file.
    interval : int
        Batches per line (``--log-interval``; 0: one line per epoch and checkpoint).
    start : tuple of int
        ``(epoch, iteration)`` of the checkpoint the run starts from (epochs completed, batches
        completed in the next epoch); ``(0, 0)`` for a fresh run, whose record starts empty.
    """

    def __init__(self, path, interval=0, start=(0, 0)):
        self.path, self.interval = path, interval
        self._window = None  # [epoch, batch, batches, steps, sums] of the open interval
        try:
            lines = _read_lines(path)
            self.lines = [line for line in lines if (line['epoch'], line['batch']) <= tuple(start)]
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning('the loss record %s cannot be read (%s); it starts again here', path,
                           err)
            lines, self.lines = None, []
        if lines != self.lines:
            self.commit()  # the steps after the checkpoint are done again

    def add(self, epoch, iteration, num_batches, losses):
        """Count the ``losses`` (name -> value) of batch ``iteration`` (0-based) of ``epoch``."""
        if self._window is None:
            self._window = [epoch, iteration, num_batches, 0, OrderedDict()]
        window = self._window
        window[1], window[3] = iteration + 1, window[3] + 1
        for name, value in losses.items():
            window[4][name] = window[4].get(name, 0.0) + float(value)
        if (self.interval and (iteration + 1) % self.interval == 0) or \
                iteration + 1 == num_batches:
            self._close()

    def _close(self):
        """End the open interval with a line."""
        if self._window is None:
            return
        epoch, batch, batches, steps, sums = self._window
        self.lines.append({'epoch': epoch, 'batch': batch, 'batches': batches, 'steps': steps,
                           'losses': OrderedDict((k, v / steps) for k, v in sums.items())})
        self._window = None

    def commit(self):
        """End the open interval and rewrite the file (atomically); a failure is a warning."""
        self._close()
        text = ''.join(json.dumps(line) + '\n' for line in self.lines)

        def write(tmp):
            with open(tmp, 'w') as f:
                f.write(text)
        try:
            atomic_write(self.path, write)
        except OSError as err:
            logger.warning('could not write the loss record %s: %s', self.path, err)


def run_curves(save_dir):
    """The series of a run's picture, from its ``losses.jsonl`` and ``val_history.jsonl``.

    Parameters
    ----------
    save_dir : str
        The run folder.

    Returns
    -------
    dict
        ``'losses'``: name -> ``(epochs, values)``, every named loss and their sum ``'total'``
        per recorded interval, at ``epochs`` trained (epoch + batch / batches);
        ``'val'``: key -> ``(epochs, values)``, the :data:`VAL_KEYS` the validation history holds,
        in percent, at the epochs after which they were measured.  Both are ``OrderedDict`` of
        lists.
    """
    losses = OrderedDict()
    for line in _read_lines(os.path.join(save_dir, LOSSES_FILE)):
        x = line['epoch'] + float(line['batch']) / line['batches']
        values = dict(line['losses'], total=sum(line['losses'].values()))
        for name, value in values.items():
            losses.setdefault(name, ([], []))
            losses[name][0].append(x)
            losses[name][1].append(value)
    if 'total' in losses:
        losses.move_to_end('total')
    val = OrderedDict()
    for entry in ValidationHistory(os.path.join(save_dir, 'val_history.jsonl')).entries():
        for key in VAL_KEYS:
            if entry.get(key) is not None:
                val.setdefault(key, ([], []))
                val[key][0].append(entry['epoch'])
                val[key][1].append(100.0 * entry[key])
    return {'losses': losses, 'val': val}


def plot_run(save_dir, path=None):
    """Draw :func:`run_curves` of ``save_dir`` into ``path`` (default
    ``{save_dir}/curves.png``), written atomically; returns ``path``.

    Left, the training losses (log scale when all are positive), right, the validation scores
    with the best of each in the legend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    path = path or os.path.join(save_dir, PLOT_FILE)
    curves = run_curves(save_dir)
    fig = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    for name, (xs, ys) in curves['losses'].items():
        ax_loss.plot(xs, ys, label=name, linewidth=2 if name == 'total' else 1,
                     color='black' if name == 'total' else None)
    if curves['losses'] and all(y > 0 for _, ys in curves['losses'].values() for y in ys):
        ax_loss.set_yscale('log')
    ax_loss.set(title='training losses', xlabel='epoch')
    for key, (xs, ys) in curves['val'].items():
        best = max(range(len(ys)), key=ys.__getitem__)
        ax_val.plot(xs, ys, marker='o', label='{} (best {:.1f}, epoch {})'.format(
            key, ys[best], xs[best]))
    ax_val.set(title='validation', xlabel='epoch', ylabel='%')
    for ax, what in ((ax_loss, 'losses'), (ax_val, 'val')):
        if curves[what]:
            ax.legend(fontsize='small')
        else:
            ax.text(0.5, 0.5, 'nothing recorded yet', ha='center', transform=ax.transAxes)
        ax.grid(alpha=0.3)
    fig.suptitle(os.path.basename(os.path.abspath(save_dir)))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
    return path


def update_plot(save_dir):
    """:func:`plot_run`, for the train program: a failure is logged as a warning, never raised
    (the picture must not stop training); returns the path written, or ``None``."""
    try:
        path = plot_run(save_dir)
    except Exception as err:  # noqa: BLE001  (whatever matplotlib or the disk raise)
        logger.warning('could not draw the curves of %s: %s: %s', save_dir, type(err).__name__,
                       err)
        return None
    logger.info('curves: %s', path)
    return path
