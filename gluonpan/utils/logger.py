"""Console + file logging for the train / eval / demo scripts."""
import logging
import os

from tqdm import tqdm

__all__ = ['setup_logger', 'reset_logger']

_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


class _TqdmHandler(logging.StreamHandler):
    """Console handler that prints through ``tqdm.write`` so log lines do not break progress bars."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # logging's own contract: never raise from emit
            self.handleError(record)


def setup_logger(log_file=None, level=logging.INFO, rank=None):
    """Send log records of every module to the console and, optionally, to a file.

    Calling it again replaces the handlers it installed before (scripts and tests may call it twice).

    Parameters
    ----------
    log_file : str, optional
        File to append to (a resumed run continues the same log); its folder is created.
    level : int, default logging.INFO
        Level of the root logger.
    rank : int, optional
        Worker rank of a distributed job; when given, every line is prefixed with ``[rank N]``.

    Returns
    -------
    logging.Logger
        The root logger.
    """
    reset_logger()
    root = logging.getLogger()
    fmt = _FORMAT if rank is None else '[rank {}] {}'.format(rank, _FORMAT)
    handlers = [_TqdmHandler()]
    if log_file:
        folder = os.path.dirname(os.path.abspath(log_file))
        os.makedirs(folder, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode='a'))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(fmt))
        handler._gluonpan = True
        root.addHandler(handler)
    root.setLevel(level)
    return root


def reset_logger():
    """Remove (and close) the handlers :func:`setup_logger` installed."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, '_gluonpan', False)]:
        root.removeHandler(handler)
        handler.close()
