"""What the training engine adds to MXNet's optimizers: AdamW with PyTorch's semantics (the
query-based models' recipes, e.g. Panoptic SegFormer's ``AdamW(lr=1.4e-4, weight_decay=1e-4)``)
and clipping by the global gradient norm (``torch.nn.utils.clip_grad_norm_``, mmcv's
``grad_clip=dict(max_norm=...)``).

MXNet 1.9.1 has no AdamW optimizer (its ``contrib.adamw_update`` operator leaves the bias
correction to the caller); :class:`AdamW` is registered as ``'adamw'`` for ``gluon.Trainer``.
Both honour ``Parameter.lr_mult`` / ``wd_mult``, which is how a model gives its backbone a lower
learning rate (the reference configs' ``paramwise_cfg``).
"""
import math

import mxnet as mx
from mxnet import nd

__all__ = ['AdamW', 'global_grad_norm', 'clip_global_norm']


@mx.optimizer.register
class AdamW(mx.optimizer.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    With ``g`` the gradient times ``rescale_grad`` (clipped to ``+-clip_gradient`` if set), ``t``
    the parameter's update count, ``lr`` and ``wd`` the rates times the parameter's ``lr_mult`` /
    ``wd_mult``::

        w <- w * (1 - lr * wd)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        w <- w - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)

    Parameters
    ----------
    learning_rate : float
    beta1, beta2 : float
        PyTorch's defaults 0.9 and 0.999.
    epsilon : float
        Added to the bias-corrected root of ``v`` (PyTorch's default 1e-8).
    **kwargs
        ``wd``, ``rescale_grad``, ``clip_gradient``, ``multi_precision`` ... of
        :class:`mxnet.optimizer.Optimizer`.
    """

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, **kwargs):
        super(AdamW, self).__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        """First and second moments, zeros like the weight."""
        return (nd.zeros(weight.shape, weight.context, dtype=weight.dtype),
                nd.zeros(weight.shape, weight.context, dtype=weight.dtype))

    def update(self, index, weight, grad, state):
        """One AdamW step of ``weight`` in place."""
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        step = self._index_update_count[index]
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        mean, var = state
        mean[:] = self.beta1 * mean + (1 - self.beta1) * grad
        var[:] = self.beta2 * var + (1 - self.beta2) * nd.square(grad)
        if wd:
            weight[:] = weight * (1 - lr * wd)
        bias1 = 1 - self.beta1 ** step
        root2 = math.sqrt(1 - self.beta2 ** step)
        weight[:] = weight - (lr / bias1) * mean / (nd.sqrt(var) / root2 + self.epsilon)


def _grads(trainer):
    """The gradient arrays of the trainer's trained parameters, per parameter (one per context)."""
    return [p.list_grad() for p in trainer._params if p.grad_req != 'null']


def global_grad_norm(trainer, batch_size):
    """L2 norm over every trained parameter of the gradient the update will use
    (``grad / batch_size``), from the first context's copy (after ``trainer.allreduce_grads()``
    every context holds the same sum).

    Returns
    -------
    float
    """
    squares = [nd.sum(nd.square(grads[0])).astype('float64') for grads in _grads(trainer)]
    if not squares:
        return 0.0
    total = nd.add_n(*squares).asscalar() if len(squares) > 1 else squares[0].asscalar()
    return math.sqrt(total) / batch_size


def clip_global_norm(trainer, max_norm, batch_size):
    """Scale every gradient so that their global norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``: by ``max_norm / (norm + 1e-6)`` when that is below 1.

    Call between ``trainer.allreduce_grads()`` and ``trainer.update(batch_size)``.

    Returns
    -------
    float
        The norm before clipping (of ``grad / batch_size``, the gradient of the mean loss); not
        finite when a gradient is not.
    """
    norm = global_grad_norm(trainer, batch_size)
    scale = max_norm / (norm + 1e-6)
    if math.isfinite(norm) and scale < 1:
        for grads in _grads(trainer):
            for grad in grads:
                grad *= scale
    return norm
