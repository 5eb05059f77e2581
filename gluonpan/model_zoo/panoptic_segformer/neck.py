"""Panoptic SegFormer's neck: mmdet's ``ChannelMapper`` as configured by the reference
(``configs/panformer/base.py``: kernel 1, GroupNorm(32), no activation, ``num_outs=4``)."""
from mxnet.gluon import nn

from ...nn.semantic_head import GroupNorm
from ...nn.transformer import XAVIER

__all__ = ['ChannelMapper']


def _conv_gn(in_channels, channels, kernel, stride, num_groups, prefix):
    """Convolution without bias (GroupNorm follows, mmcv's ``bias='auto'``) and GroupNorm."""
    block = nn.HybridSequential(prefix=prefix)
    with block.name_scope():
        block.add(nn.Conv2D(channels, kernel, strides=stride, padding=kernel // 2,
                            use_bias=False, in_channels=in_channels, weight_initializer=XAVIER,
                            prefix='conv_'))
        block.add(GroupNorm(channels, num_groups, prefix='gn_'))
    return block


class ChannelMapper(nn.HybridBlock):
    """C3..C5 -> four maps of ``channels``: a 1x1 conv + GroupNorm per input, and an extra level
    from a 3x3 stride-2 conv + GroupNorm of the **raw last input** (C5, not its mapped level).

    Parameters
    ----------
    in_channels : tuple of int
        Channels of the inputs (ResNet-50: 512, 1024, 2048).
    channels : int
        Output channels (256).
    num_groups : int
        GroupNorm groups (32).

    Notes
    -----
    Sizes: the inputs' own, and ``ceil(h / 2), ceil(w / 2)`` of the last one for the extra level
    (strides 8, 16, 32, 64 from a ResNet).
    """

    def __init__(self, in_channels=(512, 1024, 2048), channels=256, num_groups=32, **kwargs):
        super(ChannelMapper, self).__init__(**kwargs)
        self.num_outs = len(in_channels) + 1
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='convs_')
            with self.convs.name_scope():
                for i, c in enumerate(in_channels):
                    self.convs.add(_conv_gn(c, channels, 1, 1, num_groups, '{}_'.format(i)))
            self.extra_conv = _conv_gn(in_channels[-1], channels, 3, 2, num_groups,
                                       'extra_conv_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, *inputs):
        """``inputs`` (B, c_i, h_i, w_i) -> list of ``len(inputs) + 1`` maps (B, channels, ., .)."""
        if len(inputs) != len(self.convs):
            raise ValueError('ChannelMapper takes {} inputs, got {}'.format(len(self.convs),
                                                                          len(inputs)))
        return [conv(x) for conv, x in zip(self.convs, inputs)] + [self.extra_conv(inputs[-1])]
