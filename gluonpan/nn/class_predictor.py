"""The per-class 1x1 predictor shared by the mask and semantic heads, and its replacement."""
import mxnet as mx
from mxnet.gluon import nn

__all__ = ['conv_class_predictor', 'PerClassPredictorMixin']


def conv_class_predictor(num_classes, channels):
    """1x1 convolution with one output channel per class, N(0, 0.001) weights, zero bias."""
    return nn.Conv2D(num_classes, 1, in_channels=channels, prefix='predictor_',
                     weight_initializer=mx.init.Normal(0.001))


class PerClassPredictorMixin(object):
    """For a HybridBlock whose last layer is ``self.predictor`` (a :func:`conv_class_predictor`)."""

    def reset_class(self, num_classes, ctx):
        """Replace the predictor by a freshly initialised one with ``num_classes`` outputs.

        Returns the old predictor (to copy rows from).
        """
        self._clear_cached_op()
        old = self.predictor
        with self.name_scope():
            self.predictor = conv_class_predictor(num_classes, old.weight.shape[1])
        self.predictor.initialize(ctx=ctx)
        self.num_classes = num_classes
        return old
