"""The one rule for bad input: one clear line naming the culprit, no traceback, a meaningful status.

Library code raises the exceptions below (each also an ordinary ``ValueError`` / ``OSError`` /
``FileNotFoundError``, so ``except ValueError`` keeps working) with a message that names the file,
flag, image id or segment id and says what is wrong with it.  Every command-line entry point runs
its ``main`` through :func:`run_cli`, which turns them into one line on stderr and an exit status:

* 2 -- a usage error (:class:`UsageError`: a flag, its value, a file a flag names);
* 1 -- a data error (:class:`DataError`, :class:`MissingFileError`, :class:`UnreadableFileError`:
  a dataset, image, label, JSON, checkpoint or weights file).

Anything else is a bug and keeps its traceback.  ``--debug`` on the command line, or the
environment variable ``GLUONPAN_DEBUG=1``, shows the traceback of input errors too.

This module imports nothing heavy (no MXNet), so light entry points stay light.
"""
import argparse
import json
import logging
import os
import sys

__all__ = ['InputError', 'UsageError', 'DataError', 'MissingFileError', 'UnreadableFileError',
           'ArgumentParser', 'run_cli', 'read_bytes', 'read_json', 'debug_requested',
           'flag_name', 'check_minimums', 'load_failure']

DEBUG_ENV = 'GLUONPAN_DEBUG'


class InputError(Exception):
    """Base of the errors caused by the user's input; ``exit_status`` is what a CLI exits with."""
    exit_status = 1


class UsageError(InputError, ValueError):
    """A command-line flag, its value, a file a flag names, or a library argument (such as an
    unknown model name or option) is wrong (exit status 2)."""
    exit_status = 2


class DataError(InputError, ValueError):
    """A data file or value is wrong: a broken image, an id not in the JSON, a bad shape ..."""


class MissingFileError(InputError, FileNotFoundError):
    """A file or folder the input needs does not exist."""


class UnreadableFileError(InputError, OSError):
    """A file exists but cannot be read (permissions, a folder where a file is expected ...)."""


def read_bytes(path, what='file', error=None):
    """The content of ``path``; one input error naming it when it cannot be had.

    Parameters
    ----------
    path : str
        The file.
    what : str
        What the file is, for the message (``'image'``, ``'panoptic PNG'``, ``'--config file'``).
    error : type, optional
        :class:`UsageError` for a file named by a flag: a missing or empty one is then a usage
        error; default :class:`MissingFileError` / :class:`DataError`.

    Raises
    ------
    MissingFileError or UsageError
        ``path`` does not exist.
    UnreadableFileError
        ``path`` is a folder or cannot be opened (the reason is given).
    DataError or UsageError
        The file is empty.
    """
    if not os.path.exists(path):
        raise (error or MissingFileError)('{} {} does not exist'.format(what, path))
    if os.path.isdir(path):
        raise UnreadableFileError('{} {} is a folder, not a file'.format(what, path))
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        raise UnreadableFileError('cannot read {} {}: {}'.format(
            what, path, err.strerror or err)) from None
    if not data:
        raise (error or DataError)('{} {} is empty (0 bytes)'.format(what, path))
    return data


def read_json(path, what='JSON file', error=DataError):
    """Load a JSON file; every failure is one :class:`InputError` naming ``path``.

    Parameters
    ----------
    path : str
        The file.
    what : str
        What the file is, for the message (``'panoptic JSON'``, ``'--config file'`` ...).
    error : type
        The class raised for a file that exists but is empty or not valid JSON
        (:class:`UsageError` for a file named by a flag, which then also names a missing file).
    """
    raw = read_bytes(path, what, error if error is UsageError else None)
    if not raw.strip():
        raise error('{} {} is empty'.format(what, path))
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise error('{} {} is not valid JSON: {}'.format(what, path, err)) from None


def flag_name(dest):
    """``'batch_size'`` -> ``'--batch-size'`` (the flag that sets an argparse destination)."""
    return '--' + dest.replace('_', '-')


def check_minimums(parser, args, minimums):
    """``parser.error`` naming the flag when ``args.<dest>`` is not a number ``>= minimum``.

    Checked after parsing, so that values from ``--config`` (which argparse does not convert) are
    checked too.  A minimum given as a float means "strictly greater than" it.
    """
    for dest, minimum in minimums.items():
        value = getattr(args, dest, None)
        strict = isinstance(minimum, float)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or value != value or (value <= minimum if strict else value < minimum):
            parser.error('{} must be a number {} {}, got {!r}'.format(
                flag_name(dest), '>' if strict else '>=', minimum, value))


def load_failure(err):
    """A short reason, for a message, from the exception of an MXNet ``load_parameters`` /
    ``load_states`` call (MXNet's own text does not name the file, and for a damaged file it is a
    C++ backtrace)."""
    lines = [line.strip() for line in str(err).split('\n') if line.strip()]
    if any('Invalid NDArray file format' in line for line in lines):
        return 'not an MXNet parameter file, or a damaged one'
    return ' '.join(lines)[:400] or type(err).__name__


def debug_requested(argv=None):
    """``--debug`` in ``argv`` (default ``sys.argv``) or ``GLUONPAN_DEBUG`` set to a true value."""
    argv = sys.argv[1:] if argv is None else argv
    return '--debug' in argv or os.environ.get(DEBUG_ENV, '') not in ('', '0')


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the rule applied: ``--debug`` is listed, and a usage error is one line.

    argparse prints the whole usage block before its error; here the error is one line, with a
    pointer to ``--help``, and the exit status stays 2.
    """

    def __init__(self, *args, **kwargs):
        super(ArgumentParser, self).__init__(*args, **kwargs)
        self.add_argument('--debug', action='store_true',
                          help='show the traceback of input errors (also: {}=1)'.format(DEBUG_ENV))

    def error(self, message):
        """Print ``prog: error: message (see --help)`` on stderr and exit with status 2."""
        self.exit(2, '{}: error: {} (see {} --help)\n'.format(self.prog, message, self.prog))


def _report(err):
    """One line for ``err``: through the gluonpan log handlers if installed (console + log file),
    else on stderr."""
    line = 'error: {}'.format(' '.join(str(err).split('\n')) if str(err) else type(err).__name__)
    if getattr(err, 'logged', False):  # already written with its details (e.g. a NaN loss)
        return
    if any(getattr(h, '_gluonpan', False) for h in logging.getLogger().handlers):
        logging.getLogger('gluonpan').error('%s', line)
    else:
        sys.stderr.write(line + '\n')
        sys.stderr.flush()


def run_cli(main, argv=None):
    """Run ``main(argv)`` as a command: input errors become one line and an exit status.

    Parameters
    ----------
    main : callable
        The entry point, ``main(argv)``.
    argv : list of str, optional
        Default ``sys.argv[1:]``.

    Exits with 0 on success, :attr:`InputError.exit_status` on an input error, and lets every other
    exception through (a bug: its traceback is what a report needs).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        main(argv)
    except InputError as err:
        if debug_requested(argv):
            raise
        _report(err)
        sys.exit(err.exit_status)
    sys.exit(0)
