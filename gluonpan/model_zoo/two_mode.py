"""What the panoptic networks share: one HybridBlock with a training call (a batch in, named
losses out) and an inference call, whose hybridized graph is rebuilt when the call changes."""
from collections import OrderedDict

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

__all__ = ['TwoModeNet']


class TwoModeNet(nn.HybridBlock):
    """Base of the panoptic networks: mode switching, input checks and weighted losses.

    Subclasses set :attr:`TRAIN_INPUTS` (the batch keys the training graph takes, ``data``
    first), :attr:`LOSS_NAMES` (the losses it returns, in order), and implement
    ``_check_inputs(x, args, training)`` (raise on NDArray inputs that do not fit) and
    ``hybrid_forward``.

    Parameters
    ----------
    default_weights : dict
        ``{loss name: weight}`` of the recipe.
    loss_weights : dict, optional
        Overrides by loss name (applied outside the graph: changing one needs no rebuild).
    """

    TRAIN_INPUTS = ()
    LOSS_NAMES = ()
    #: batch keys cast to float32 before the training call (e.g. uint8 masks)
    FLOAT_INPUTS = ()

    def __init__(self, default_weights, loss_weights=None, **kwargs):
        super(TwoModeNet, self).__init__(**kwargs)
        unknown = set(loss_weights or {}) - set(self.LOSS_NAMES)
        if unknown:
            raise ValueError('unknown loss names {} in loss_weights; valid: {}'
                             .format(sorted(unknown), self.LOSS_NAMES))
        self.loss_weights = OrderedDict(default_weights, **(loss_weights or {}))
        self._graph_mode = None

    def forward(self, x, *args):
        """Check NDArray inputs, and rebuild a hybridized graph when the mode changes (training
        or inference, and the number of inputs)."""
        training = autograd.is_training()
        if isinstance(x, mx.nd.NDArray):
            self._check_inputs(x, args, training)
        mode = (training, len(args))
        if mode != self._graph_mode:
            self._clear_cached_op()
            self._graph_mode = mode
        return super(TwoModeNet, self).forward(x, *args)

    def _check_inputs(self, x, args, training):
        raise NotImplementedError

    def train_losses(self, batch):
        """Weighted losses of one per-context training batch.

        Parameters
        ----------
        batch : dict
            NDArrays on one context with (at least) the keys :attr:`TRAIN_INPUTS`.

        Returns
        -------
        collections.OrderedDict
            ``{name: (1,) NDArray}`` for :attr:`LOSS_NAMES`, each the mean over the batch times
            ``net.loss_weights[name]``.  Call inside ``autograd.record()`` to back-propagate;
            the training branch is taken either way.
        """
        missing = [k for k in self.TRAIN_INPUTS if k not in batch]
        if missing:
            raise KeyError('training batch lacks {}; it has {}'.format(missing, sorted(batch)))
        inputs = [batch[k].astype(np.float32) if k in self.FLOAT_INPUTS and
                  batch[k].dtype != np.float32 else batch[k] for k in self.TRAIN_INPUTS]
        with autograd.train_mode():
            losses = self(*inputs)
        return OrderedDict((name, loss * self.loss_weights[name])
                           for name, loss in zip(self.LOSS_NAMES, losses))

    def _clear_graph(self):
        """Forget the hybridized graph (after the network changed, e.g. ``reset_class``)."""
        self._clear_cached_op()
        self._graph_mode = None
