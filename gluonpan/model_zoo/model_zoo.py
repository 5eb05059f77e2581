"""The model zoo: builders registered by name, ``get_model`` and ``get_model_list``."""
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet.gluon.parameter import Constant

__all__ = ['register_model', 'get_model', 'get_model_list', 'count_parameters']

_MODELS = OrderedDict()


def register_model(builder):
    """Decorator: register ``builder`` under its function name (``{arch}_{backbone}_{dataset}``)."""
    name = builder.__name__
    if name in _MODELS:
        raise ValueError('model {!r} is registered twice'.format(name))
    _MODELS[name] = builder
    return builder


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
        ``True``: the released weights from the local store (``{root}/{name}-{sha1[:8]}.params``);
        a path: load that ``.params`` file; ``False``: no trained weights.
    pretrained_base : bool
        Load the ImageNet backbone from the local store (ignored when ``pretrained``).
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
    key = name.lower()
    if key not in _MODELS:
        raise ValueError('unknown model {!r}; valid names:\n  {}'
                         .format(name, '\n  '.join(get_model_list())))
    return _MODELS[key](pretrained=pretrained, pretrained_base=pretrained_base, ctx=ctx,
                        root=root, **kwargs)


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
