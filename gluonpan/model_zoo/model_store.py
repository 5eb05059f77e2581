"""Pretrained weights from gluoncv's model store: ``{root}/{name}-{sha1[:8]}.params``, sha1-checked.

The root is ``$MXNET_HOME/models`` (default ``~/.mxnet/models``) unless a ``root`` is passed.  A
file that is not there yet is downloaded on first use by gluoncv's own
:func:`gluoncv.model_zoo.model_store.get_model_file`, from
``{repo}gluon/models/{name}-{sha1[:8]}.zip`` where ``repo`` is ``$MXNET_GLUON_REPO`` or gluoncv's
default repository; gluoncv unzips it into the root and checks its sha1.  ImageNet backbones
(:func:`get_backbone_file`) use gluoncv's sha1 table, so they are exactly the files gluoncv itself
uses; our released weights (:func:`get_model_file`, table :data:`MODEL_SHA1`) follow the same rules.

Errors say what to do, as one line (:mod:`gluonpan.errors`):

* not cached and the download fails (no network, unknown host, refused connection, HTTP error, a
  download that is not a zip or has the wrong sha1): :class:`~gluonpan.errors.MissingFileError`
  naming the file, the URL tried and the exact path to put the file at by hand;
* a cached file with the wrong sha1: :class:`~gluonpan.errors.DataError` naming the file and both
  hashes (nothing is downloaded over it; deleting it makes the next call download it again).

gluoncv's downloader makes a single ``requests.get`` without a timeout (no retries): a host that
drops packets blocks it until the system gives up on the connection (about 2 minutes on Linux),
a server that never answers blocks it for ever.  So a first request, with a timeout of
``$GLUONPAN_DOWNLOAD_TIMEOUT`` seconds (default 30), checks that the URL answers with HTTP 200
before gluoncv downloads; a transfer that stalls once it has started is not bounded.
"""
import contextlib
import logging
import os
import threading
import time
import zipfile

import requests
from gluoncv.model_zoo import model_store as gluoncv_store
from gluoncv.model_zoo.model_store import _model_sha1 as GLUONCV_SHA1

from ..errors import DataError, MissingFileError, UnreadableFileError, UsageError
from ..utils.checkpoint import file_sha1

__all__ = ['MODEL_SHA1', 'GLUONCV_SHA1', 'TIMEOUT_ENV', 'default_root', 'repo_url',
           'get_model_file', 'get_backbone_file']

logger = logging.getLogger(__name__)

#: sha1 of the released weights of each zoo model; empty until a model is trained and its card in
#: model_zoo/README.md carries results
MODEL_SHA1 = {}

#: environment variable: seconds the first request of a download may wait for the server
TIMEOUT_ENV = 'GLUONPAN_DOWNLOAD_TIMEOUT'
_DEFAULT_TIMEOUT = 30.0

# a download temporarily edits process-wide state (gluoncv's sha1 table for our own weights,
# MXNET_HOME when an explicit root differs from it); one download at a time per process, while
# gluoncv's lock file serialises processes
_LOCK = threading.Lock()


def default_root():
    """``$MXNET_HOME/models``, or ``~/.mxnet/models`` when MXNET_HOME is unset."""
    return os.path.join(os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet')), 'models')


def repo_url():
    """The repository gluoncv downloads from: ``$MXNET_GLUON_REPO`` or gluoncv's default.

    Returns
    -------
    str
        The URL, ending with ``/`` (as gluoncv completes it).
    """
    url = os.environ.get('MXNET_GLUON_REPO', gluoncv_store.apache_repo_url)
    if not url:
        raise UsageError("MXNET_GLUON_REPO is set but empty; unset it for gluoncv's default "
                         'repository ({}) or set it to a mirror'
                         .format(gluoncv_store.apache_repo_url))
    return url if url.endswith('/') else url + '/'


def _timeout():
    raw = os.environ.get(TIMEOUT_ENV, '')
    if not raw:
        return _DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UsageError('{}={!r}: expected a positive number of seconds'.format(TIMEOUT_ENV, raw))
    return value


def _reason(err):
    """A short reason for a failed download: the OS's words when there are some."""
    if isinstance(err, requests.Timeout):
        return 'no answer within {:g} s (set {} to wait longer)'.format(_timeout(), TIMEOUT_ENV)
    if isinstance(err, zipfile.BadZipFile):
        return 'the download is not a zip archive'
    seen, todo = set(), [err]
    while todo:  # requests -> urllib3 MaxRetryError.reason -> NewConnectionError -> socket error
        cause = todo.pop(0)
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        reason = getattr(cause, 'reason', None)
        todo += [reason if isinstance(reason, BaseException) else None,
                 cause.__cause__, cause.__context__]
    return str(err).split('\n')[0] or type(err).__name__


@contextlib.contextmanager
def _in_gluoncv_table(name, sha1):
    """Make gluoncv's table know ``name`` (our released weights) for the duration of a download."""
    known = GLUONCV_SHA1.get(name)
    if known is not None and known != sha1:
        raise ValueError('{!r} has sha1 {} in gluoncv\'s table but {} in ours'.format(
            name, known, sha1))
    GLUONCV_SHA1[name] = sha1
    try:
        yield
    finally:
        if known is None:
            GLUONCV_SHA1.pop(name, None)


@contextlib.contextmanager
def _without_mxnet_home(root):
    """gluoncv ignores its ``root`` when MXNET_HOME is set; unset it while an explicit ``root`` that
    differs from ``$MXNET_HOME/models`` is in use, so that the file lands in ``root``."""
    home = os.environ.get('MXNET_HOME')
    if home is None or os.path.expanduser(os.path.join(home, 'models')) == root:
        yield
        return
    del os.environ['MXNET_HOME']
    try:
        yield
    finally:
        os.environ['MXNET_HOME'] = home


def _fetch(name, sha1, root, what):
    """Path of ``{root}/{name}-{sha1[:8]}.params``, downloaded by gluoncv when not cached."""
    explicit_root = root is not None
    root = os.path.expanduser(root if explicit_root else default_root())
    file_name = '{}-{}.params'.format(name, sha1[:8])
    path = os.path.join(root, file_name)
    if os.path.exists(path):
        try:
            actual = file_sha1(path)
        except OSError as err:
            raise UnreadableFileError('cannot read {} weights {}: {}'.format(
                what, path, err.strerror or err)) from None
        if actual != sha1:
            raise DataError('{} weights {} have sha1 {}, expected {}: the file is corrupt or '
                            'another version; delete it to download it again'.format(
                                what, path, actual, sha1))
        return path

    repo = repo_url()
    timeout = _timeout()
    url = gluoncv_store._url_format.format(repo_url=repo, file_name=file_name[:-len('.params')])
    where = ('or pass a root that has it' if explicit_root else
             'or set MXNET_HOME to a folder whose models/ has it')

    def failed(reason):
        return MissingFileError(
            'cannot download {} weights {} from {} ({}). Put the file by hand at {} (that .zip '
            'unzipped, sha1 {}), {}, or point MXNET_GLUON_REPO (now {}) at a reachable copy of '
            'the repository'.format(what, file_name, url, reason, path, sha1, where, repo))

    logger.info('%s weights %s are not in %s: downloading %s', what, file_name, root, url)
    start = time.time()
    with _LOCK, _in_gluoncv_table(name, sha1), _without_mxnet_home(root):
        try:  # a first request with a timeout (gluoncv's has none), for the HTTP status
            with requests.get(url, stream=True, timeout=timeout) as answer:
                status = '{} {}'.format(answer.status_code, answer.reason or '').strip()
        except requests.RequestException as err:
            raise failed(_reason(err)) from err
        if answer.status_code != 200:
            raise failed('HTTP {}'.format(status))
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as err:
            raise UnreadableFileError('cannot create the model store {} for {} weights {}: {}; '
                                      'set MXNET_HOME or pass root'.format(
                                          root, what, file_name, err.strerror or err)) from None
        try:
            got = gluoncv_store.get_model_file(name, root=root)
        except (requests.RequestException, RuntimeError, zipfile.BadZipFile, ValueError,
                OSError) as err:
            reason = _reason(err)
            if isinstance(err, ValueError) and os.path.isfile(path):  # gluoncv's sha1 check
                reason = 'the downloaded file has sha1 {}, expected {}; removed it'.format(
                    file_sha1(path), sha1)
                os.remove(path)
            raise failed(reason) from err
        finally:
            leftover = os.path.join(root, file_name[:-len('.params')] + '.zip')
            if os.path.isfile(leftover):  # gluoncv leaves it when unzipping fails
                os.remove(leftover)
    logger.info('downloaded %s (%.1f s)', got, time.time() - start)
    return got


def get_model_file(name, root=None):
    """Path of the released weights of zoo model ``name``, downloaded on first use.

    Parameters
    ----------
    name : str
        A zoo model name with released weights (a key of :data:`MODEL_SHA1`).
    root : str, optional
        Folder of the store; default ``$MXNET_HOME/models`` or ``~/.mxnet/models``.

    Returns
    -------
    str
        ``{root}/{name}-{sha1[:8]}.params``, sha1-checked.

    Raises
    ------
    gluonpan.errors.UsageError
        No weights were released for ``name``.
    gluonpan.errors.MissingFileError
        The file is not cached and the download failed; the message names the URL tried and where
        to put the file by hand.
    gluonpan.errors.DataError
        The cached file has the wrong sha1.
    """
    if name not in MODEL_SHA1:
        raise UsageError('no pretrained weights are released for {!r} (see model_zoo/README.md); '
                       'released: {}. Pass pretrained=<path to .params> to load your own.'
                       .format(name, sorted(MODEL_SHA1) or 'none yet'))
    return _fetch(name, MODEL_SHA1[name], root, 'pretrained')


def get_backbone_file(name, root=None):
    """Path of gluoncv's ImageNet weights of backbone ``name`` (e.g. ``'resnet50_v1b'``),
    downloaded on first use; as :func:`get_model_file`, with gluoncv's sha1 and URL, so the file is
    the one gluoncv itself uses (and one gluoncv already cached is reused)."""
    if name not in GLUONCV_SHA1:
        raise UsageError('gluoncv has no ImageNet weights named {!r}'.format(name))
    return _fetch(name, GLUONCV_SHA1[name], root, 'ImageNet backbone')
