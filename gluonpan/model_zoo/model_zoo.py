"""The model zoo: builders registered by name, ``get_model`` and ``get_model_list``."""
import inspect
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet.gluon.parameter import Constant

from ..errors import DataError, UsageError, load_failure

__all__ = ['register_model', 'get_model', 'get_model_list', 'model_options', 'count_parameters',
           'keyword_names', 'load_parameters']

_MODELS = OrderedDict()
_OPTIONS = {}
#: what get_model itself takes besides the builder's options
_GET_MODEL_ARGS = frozenset(('pretrained', 'pretrained_base', 'ctx', 'root'))


def keyword_names(*functions):
    """Names of the keyword parameters of ``functions`` (their ``**kwargs`` excluded)."""
    return frozenset(name for fn in functions for name, p in inspect.signature(fn).parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def register_model(builder=None, options=None):
    """Decorator: register ``builder`` under its function name (``{arch}_{backbone}_{dataset}``).

    Use as ``@register_model`` or ``@register_model(options=names)``, where ``names`` are the
    keyword arguments the builder accepts through its ``**kwargs`` (the recipe options that
    :func:`get_model` checks, so that a misspelt one is an error naming it).
    """
    def register(fn):
        name = fn.__name__
        if name in _MODELS:
            raise ValueError('model {!r} is registered twice'.format(name))
        _MODELS[name] = fn
        _OPTIONS[name] = frozenset(options or ()) | keyword_names(fn)
        return fn
    return register(builder) if builder is not None else register


def model_options(name):
    """The recipe options (keyword arguments besides pretrained / ctx / root) a model takes."""
    key = name.lower()
    if key not in _MODELS:
        raise UsageError('unknown model {!r}; valid names: {}'.format(name, ', '.join(_MODELS)))
    return sorted(_OPTIONS[key] - _GET_MODEL_ARGS)


def get_model_list():
    """Names of every registered model, in registration order."""
    return list(_MODELS)


def get_model(name, pretrained=False, pretrained_base=False, ctx=mx.cpu(), root=None, **kwargs):
    """Build a zoo model by name.

    Parameters
    ----------
    name : str
        One of :func:`get_model_list`.
    pretrained : bool or str
        ``True``: the released weights from the store (``{root}/{name}-{sha1[:8]}.params``,
        downloaded on first use);
        a path: load that ``.params`` file; ``False``: no trained weights.
    pretrained_base : bool or str
        ``True``: gluoncv's ImageNet backbone from the store, downloaded on first use; a path: a
        converted backbone ``.params`` (e.g. torchvision's ImageNet ResNet through
        ``python -m gluonpan.convert``); ignored when ``pretrained``.
    ctx : mx.Context or list of mx.Context
        Context(s) of the parameters.
    root : str, optional
        Directory of the store; default ``$MXNET_HOME/models`` or ``~/.mxnet/models``.
    **kwargs
        Overrides of the builder's recipe defaults (see ``build_panoptic_fpn``).

    Returns
    -------
    mxnet.gluon.HybridBlock
        The network with every parameter initialised on ``ctx``.
    """
    unknown = sorted(set(kwargs) - set(model_options(name)))
    if unknown:
        raise UsageError('unknown option(s) {} for model {}; valid options: {}'.format(
            ', '.join(unknown), name, ', '.join(model_options(name))))
    key = name.lower()
    return _MODELS[key](pretrained=pretrained, pretrained_base=pretrained_base, ctx=ctx,
                        root=root, **kwargs)


def load_parameters(block, path, ctx, what, **kwargs):
    """``block.load_parameters(path, ctx=ctx, **kwargs)``; a file that does not fit is one
    :class:`~gluonpan.errors.DataError` naming it and ``what`` it was loaded into.

    MXNet says "Invalid NDArray file format" for a damaged file and lists parameter names for a
    file of another architecture or class count, without naming the file.
    """
    try:
        block.load_parameters(path, ctx=ctx, **kwargs)
    except (mx.base.MXNetError, AssertionError, ValueError, KeyError, OSError) as err:
        raise DataError('cannot load weights {} into {}: {}'.format(
            path, what, load_failure(err))) from None


def count_parameters(net):
    """Number of learnable values: weights, biases, norm scales and shifts.

    Running statistics of batch norm and constants (anchors, box-coder statistics) are excluded;
    frozen parameters still count.  Shapes must be known (run one forward after deferred init).
    """
    total = 0
    for name, param in net.collect_params().items():
        if isinstance(param, Constant) or name.endswith(('running_mean', 'running_var')):
            continue
        if param.shape is None or any(dim <= 0 for dim in param.shape):
            raise ValueError('parameter {} has no shape yet {}; run a forward pass first'
                             .format(name, param.shape))
        total += int(np.prod(param.shape))
    return total
