"""Backbone wrapper: the stage outputs C2..C5 of a gluoncv ``ResNetV1b``.

gluoncv wires its FPN to a ResNet by auto-generated symbol names (``'layers1_relu8_fwd'``).  We
take the stages as attributes instead, so the wiring survives any change of prefixes and the
network stays an ordinary ``HybridBlock`` tree.

:func:`stride_in_1x1` turns a ``ResNetV1b`` into the MSRA ResNet of the original paper (Caffe2,
Detectron, detectron2's ``RESNETS.STRIDE_IN_1X1=True``): the same layers and parameters, with the
stride of each downsampling bottleneck in its first 1x1 convolution instead of its 3x3 one.
"""
from mxnet.gluon import nn

__all__ = ['ResNetV1bFeatures', 'stride_in_1x1']


def stride_in_1x1(resnet):
    """Move the stride of every strided bottleneck of ``resnet`` from ``conv2`` to ``conv1``.

    gluoncv's ``BottleneckV1b`` strides its 3x3 ``conv2``; the MSRA ResNet strides the 1x1
    ``conv1`` before it (the 3x3 conv then runs at the output resolution).  Parameters, names and
    shapes do not change, only the two convolutions' strides.

    Parameters
    ----------
    resnet : gluoncv.model_zoo.ResNetV1b
        Built with Bottleneck blocks and ``dilated=False``, before its first forward.

    Returns
    -------
    gluoncv.model_zoo.ResNetV1b
        ``resnet`` itself, changed in place.
    """
    for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
        for block in layer:
            if not hasattr(block, 'conv3'):
                raise ValueError('stride_in_1x1 needs bottleneck blocks, got {}'
                                 .format(type(block).__name__))
            # gluon's Conv2D keeps its operator arguments in _kwargs (read at every forward)
            stride = block.conv2._kwargs['stride']  # pylint: disable=protected-access
            if tuple(stride) != (1, 1):
                block.conv1._kwargs['stride'] = stride  # pylint: disable=protected-access
                block.conv2._kwargs['stride'] = (1, 1)  # pylint: disable=protected-access
    return resnet


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
