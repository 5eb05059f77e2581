"""Backbone wrapper: the stage outputs C2..C5 of a gluoncv ``ResNetV1b``.

gluoncv wires its FPN to a ResNet by auto-generated symbol names (``'layers1_relu8_fwd'``).  We
take the stages as attributes instead, so the wiring survives any change of prefixes and the
network stays an ordinary ``HybridBlock`` tree.
"""
from mxnet.gluon import nn

__all__ = ['ResNetV1bFeatures']


class ResNetV1bFeatures(nn.HybridBlock):
    """Stage outputs of a ResNetV1b; its pooling and classifier are dropped.

    Parameters
    ----------
    resnet : gluoncv.model_zoo.ResNetV1b
        A (possibly ImageNet-initialised) ResNetV1b built with ``dilated=False``.  Its stem and four
        stages become children of this block, so their structural parameter names are
        ``conv1.*``, ``bn1.*``, ``layer1.*`` ... ``layer4.*`` (what ``save_parameters`` writes).

    Attributes
    ----------
    out_channels : tuple of int
        Channels of C2..C5 (64..512 for BasicBlock nets, 256..2048 for Bottleneck nets).
    strides : tuple of int
        Strides of C2..C5: (4, 8, 16, 32).
    """

    def __init__(self, resnet, **kwargs):
        super(ResNetV1bFeatures, self).__init__(**kwargs)
        expansion = type(resnet.layer1[0]).expansion
        self.out_channels = tuple(c * expansion for c in (64, 128, 256, 512))
        self.strides = (4, 8, 16, 32)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        """``x`` (B, 3, H, W) -> (C2, C3, C4, C5) at strides 4, 8, 16, 32 (sizes rounded up)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5
