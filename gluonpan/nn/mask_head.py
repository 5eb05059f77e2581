"""Mask R-CNN FPN mask head: 4 x (3x3 conv 256 + ReLU), 2x deconv, 1x1 per-class predictor."""
import mxnet as mx
from mxnet.gluon import nn

from .class_predictor import PerClassPredictorMixin, conv_class_predictor

__all__ = ['MaskHead']


class MaskHead(PerClassPredictorMixin, nn.HybridBlock):
    """Per-class mask logits at twice the RoI feature size (14x14 RoIs -> 28x28 masks).

    Parameters
    ----------
    num_classes : int
        Thing classes C (one output channel each, no background).
    in_channels : int
        Channels of the pooled RoI features.
    channels : int
        Channels of the convolutions.
    num_convs : int
        Number of 3x3 convolutions before the deconvolution.
    """

    def __init__(self, num_classes, in_channels=256, channels=256, num_convs=4, **kwargs):
        super(MaskHead, self).__init__(**kwargs)
        self.num_classes = num_classes
        # "MSRA fill": N(0, sqrt(2 / fan_out))
        init = mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2)
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='convs_')
            for k in range(num_convs):
                self.convs.add(nn.Conv2D(channels, 3, padding=1, activation='relu',
                                         in_channels=in_channels if k == 0 else channels,
                                         weight_initializer=init))
            self.deconv = nn.Conv2DTranspose(channels, 2, strides=2, activation='relu',
                                             in_channels=channels, weight_initializer=init)
            self.predictor = conv_class_predictor(num_classes, channels)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        """``x`` (R, in_channels, S, S) -> (R, num_classes, 2S, 2S) mask logits."""
        return self.predictor(self.deconv(self.convs(x)))
