"""What every converter shares: checked loading of converted arrays, and saving the result.

A converter maps another framework's names to ours (``{our structural name: float32 array}``, the
names of ``net._collect_params_with_prefix()``); :func:`load_checked` checks all of them against
the net before it changes anything, and :func:`save_converted` writes the weights with the
``args.json`` that rebuilds the net with the source's conventions.
"""
import json
import os

import numpy as np

from ..errors import DataError

__all__ = ['CheckpointMismatch', 'load_checked', 'save_converted']


class CheckpointMismatch(DataError, KeyError):
    """Names of a checkpoint and of the net do not match: a :class:`~gluonpan.errors.DataError`
    (one line from a command) that ``except KeyError`` also catches."""

    def __str__(self):
        return DataError.__str__(self)  # KeyError's would quote the message


def load_checked(net, arrays, source, own_prefixes=()):
    """Set ``net``'s parameters to ``arrays`` once every name and shape is checked.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Initialised network.
    arrays : dict
        ``{our structural name: np.ndarray}``.
    source : str
        What the arrays come from (``'torchvision'``, ``'detectron2'``), named in errors.
    own_prefixes : tuple of str
        Name prefixes of our parameters the source has no counterpart for (they keep their
        values); any other parameter of the net missing from ``arrays`` is an error.

    Returns
    -------
    list of str
        Our parameters that kept their own values.

    Raises
    ------
    CheckpointMismatch
        A converted name that is not a parameter of the net, or a parameter of the net the arrays
        lack (nothing is loaded).
    gluonpan.errors.DataError
        A shape that differs, naming the parameter and both shapes (nothing is loaded).
    """
    import mxnet as mx  # only here: the conversions themselves need numpy alone
    params = net._collect_params_with_prefix()  # pylint: disable=protected-access
    unknown = sorted(set(arrays) - set(params))
    if unknown:
        raise CheckpointMismatch('converted names {} are not parameters of the net'
                                 .format(unknown[:5]))
    for name, array in arrays.items():
        if tuple(params[name].shape) != array.shape:
            raise DataError('{}: {} gives shape {}, the net has {} (class count or backbone depth '
                            'differ?)'.format(name, source, array.shape, params[name].shape))
    kept = [n for n in params if n not in arrays]
    missing = [n for n in kept if not n.startswith(tuple(own_prefixes))]
    if missing:
        raise CheckpointMismatch('the {} state dict lacks {} parameter(s) of the net, e.g. {}'
                                 .format(source, len(missing), missing[:5]))
    for name, array in arrays.items():  # all checked first: a bad state dict changes nothing
        params[name].set_data(mx.nd.array(np.asarray(array, np.float32), dtype='float32'))
    return kept


def save_converted(net, params_path, network='resnet50_v1b', dataset='citys', source='',
                   categories=None):
    """Write converted weights and, beside them, the ``args.json`` that runs them correctly.

    ``args.json`` is what a training run leaves beside its weights (``network``, ``dataset``,
    ``model_kwargs``), so ``eval_panoptic_fpn.py`` / ``demo_panoptic_fpn.py --pretrained
    params_path`` rebuild the net with the source's conventions: ``model_kwargs`` holds every
    resolved convention of ``net.conventions`` explicitly (not only the preset's name, whose
    values could change) -- or, for a net without conventions (PanopticFCN), its builder options
    ``net.options`` -- plus ``source`` for the record.  Both files are written atomically.

    Parameters
    ----------
    net : PanopticFPN or PanopticFCN
        The converted network.
    params_path : str
        Destination ``.params``; ``args.json`` goes to its folder (which should hold nothing else).
    network, dataset : str
        Backbone and dataset names of the zoo model (``--network`` / ``--dataset``).
    source : str
        Where the weights came from (a file name, a URL), recorded as is.
    categories : list of dict, optional
        The categories of a COCO-format model (recorded as ``categories``, which ``load_model``
        passes to the zoo builder).
    """
    from ..utils.checkpoint import atomic_write, atomic_write_json
    folder = os.path.dirname(os.path.abspath(params_path))
    os.makedirs(folder, exist_ok=True)
    atomic_write(params_path, net.save_parameters)
    record = {'network': network, 'dataset': dataset, 'converted_from': source,
              'model_kwargs': json.dumps(getattr(net, 'conventions', None) or net.options,
                                          sort_keys=True)}
    if categories is not None:
        record['categories'] = categories
    atomic_write_json(os.path.join(folder, 'args.json'), record, indent=1, sort_keys=True)
