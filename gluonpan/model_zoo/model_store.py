"""Local store of pretrained weights: ``{root}/{name}-{sha1[:8]}.params``, sha1-checked.

Nothing is downloaded: a missing file is an error naming the path it was expected at.  The root is
``$MXNET_HOME/models`` (default ``~/.mxnet/models``) unless a ``root`` is passed.
"""
import os

from gluoncv.model_zoo.model_store import _model_sha1 as GLUONCV_SHA1
from gluoncv.utils import check_sha1

__all__ = ['MODEL_SHA1', 'default_root', 'get_model_file', 'get_backbone_file']

#: sha1 of the released weights of each zoo model; empty until a model is trained and its card in
#: model_zoo/README.md carries results
MODEL_SHA1 = {}


def default_root():
    """``$MXNET_HOME/models``, or ``~/.mxnet/models`` when MXNET_HOME is unset."""
    return os.path.join(os.environ.get('MXNET_HOME', os.path.join('~', '.mxnet')), 'models')


def _checked_file(name, sha1, root, what):
    root = os.path.expanduser(root if root is not None else default_root())
    path = os.path.join(root, '{}-{}.params'.format(name, sha1[:8]))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            '{} weights {!r} not found: expected {} (sha1 {}). Nothing is downloaded here; copy '
            'the file there, set MXNET_HOME or root, or pass pretrained=<path>.'
            .format(what, name, path, sha1))
    if not check_sha1(path, sha1):
        raise ValueError('{} has the wrong sha1 (expected {}); the file is corrupt or another '
                         'version'.format(path, sha1))
    return path


def get_model_file(name, root=None):
    """Path of the released weights of zoo model ``name``.

    Raises
    ------
    KeyError
        No weights were released for ``name``.
    FileNotFoundError
        The file is not at ``{root}/{name}-{sha1[:8]}.params``.
    ValueError
        The file's sha1 does not match.
    """
    if name not in MODEL_SHA1:
        raise KeyError('no pretrained weights are released for {!r} (see model_zoo/README.md); '
                       'released: {}. Pass pretrained=<path to .params> to load your own.'
                       .format(name, sorted(MODEL_SHA1) or 'none yet'))
    return _checked_file(name, MODEL_SHA1[name], root, 'pretrained')


def get_backbone_file(name, root=None):
    """Path of gluoncv's ImageNet weights of backbone ``name`` (e.g. ``'resnet50_v1b'``).

    The sha1 comes from gluoncv's own table, so the file is the one gluoncv would download.
    """
    if name not in GLUONCV_SHA1:
        raise KeyError('gluoncv has no ImageNet weights named {!r}'.format(name))
    return _checked_file(name, GLUONCV_SHA1[name], root, 'ImageNet backbone')
