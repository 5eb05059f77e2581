"""Heads of PanopticFCN (Li et al., CVPR 2021): convolution towers with CoordConv and optional
modulated deformable convolutions, the position head (thing centres, stuff regions) and the kernel
head, all shared over the pyramid levels.

Initialisation follows the reference: tower convolutions keep PyTorch's default (uniform in
``+-1 / sqrt(fan_in)``, weights and biases), the output convolutions are N(0, 0.01) with bias
-2.19 (position head) or 0 (kernel head).
"""
import math

import mxnet as mx
from mxnet.gluon import nn

from .semantic_head import GroupNorm

__all__ = ['coord_features', 'ConvTower', 'PositionHead', 'KernelHead', 'torch_default_init']


def torch_default_init(fan_in):
    """PyTorch's default initializer of a conv / linear with ``fan_in`` inputs: U(+-1/sqrt(fan_in))
    (``kaiming_uniform(a=sqrt(5))`` for weights, the same bound for biases)."""
    return mx.init.Uniform(1. / math.sqrt(fan_in))


def coord_features(F, x):
    """``x`` (B, C, H, W) with two coordinate channels appended -> (B, C + 2, H, W).

    Channel C is the row coordinate and C + 1 the column coordinate, each ``linspace(-1, 1)``
    over the map (-1 for a single row or column), the order of PanopticFCN's ``coord_conv``.
    """
    rows = F.contrib.arange_like(x, axis=2)  # (H,)
    cols = F.contrib.arange_like(x, axis=3)  # (W,)
    rows = F.broadcast_div(rows * 2, F.maximum(F.max(rows), 1)) - 1
    cols = F.broadcast_div(cols * 2, F.maximum(F.max(cols), 1)) - 1
    plane = F.zeros_like(F.slice_axis(x, axis=1, begin=0, end=1))  # (B, 1, H, W)
    rows = F.broadcast_add(plane, rows.reshape((1, 1, -1, 1)))  # (B, 1, H, W)
    cols = F.broadcast_add(plane, cols.reshape((1, 1, 1, -1)))  # (B, 1, H, W)
    return F.concat(x, rows, cols, dim=1)


class _ModulatedDeformConv(nn.HybridBlock):
    """3x3 modulated deformable convolution (DCNv2) with its own offset/mask convolution, as
    PanopticFCN's ``ModulatedDeformConvWithOff``: a 3x3 conv gives 27 channels, the first 18 are
    the offsets and sigmoid of the last 9 the modulation."""

    def __init__(self, channels, in_channels, use_bias, **kwargs):
        super(_ModulatedDeformConv, self).__init__(**kwargs)
        self._channels = channels
        self._use_bias = use_bias
        init = torch_default_init(in_channels * 9)
        with self.name_scope():
            self.offset_mask = nn.Conv2D(27, 3, padding=1, in_channels=in_channels,
                                         weight_initializer=init, bias_initializer=init,
                                         prefix='offset_mask_')
            self.weight = self.params.get('weight', shape=(channels, in_channels, 3, 3), init=init)
            if use_bias:
                self.bias = self.params.get('bias', shape=(channels,), init=init)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, weight, bias=None):
        om = self.offset_mask(x)  # (B, 27, H, W)
        offset = F.slice_axis(om, axis=1, begin=0, end=18)
        mask = F.sigmoid(F.slice_axis(om, axis=1, begin=18, end=27))
        args = (x, offset, mask, weight) + ((bias,) if self._use_bias else ())
        return F.contrib.ModulatedDeformableConvolution(
            *args, kernel=(3, 3), pad=(1, 1), num_filter=self._channels,
            no_bias=not self._use_bias)


class ConvTower(nn.HybridBlock):
    """``num_convs`` x [3x3 conv -> norm -> ReLU], optionally CoordConv at the input.

    Parameters
    ----------
    in_channels : int
        Input channels (before the coordinate channels).
    channels : int
        Channels of every convolution.
    num_convs : int
        Number of convolutions.
    norm : str or None
        ``'gn'`` (GroupNorm with ``num_groups`` groups, convolutions without bias) or None (bias).
    coord : bool
        Append the two coordinate channels of :func:`coord_features` to the input.
    deform : bool
        Modulated deformable convolutions instead of plain ones.
    """

    def __init__(self, in_channels, channels=256, num_convs=3, norm='gn', num_groups=32,
                 coord=False, deform=False, **kwargs):
        super(ConvTower, self).__init__(**kwargs)
        if norm not in ('gn', None):
            raise ValueError("norm must be 'gn' or None, got {!r}".format(norm))
        self.coord = coord
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='conv_')
            self.norms = nn.HybridSequential(prefix='norm_')
            for k in range(num_convs):
                cin = (in_channels + 2 * coord) if k == 0 else channels
                if deform:
                    conv = _ModulatedDeformConv(channels, cin, use_bias=norm is None)
                else:
                    init = torch_default_init(cin * 9)
                    conv = nn.Conv2D(channels, 3, padding=1, in_channels=cin,
                                     use_bias=norm is None, weight_initializer=init,
                                     bias_initializer=init)
                self.convs.add(conv)
                if norm == 'gn':
                    self.norms.add(GroupNorm(channels, num_groups))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        if self.coord:
            x = coord_features(F, x)
        for k, conv in enumerate(self.convs):
            x = conv(x)
            if len(self.norms):
                x = self.norms[k](x)
            x = F.relu(x)
        return x


class PositionHead(nn.HybridBlock):
    """One pyramid level -> (thing centre logits (B, T, h, w), stuff region logits (B, S, h, w)).

    A :class:`ConvTower` (GroupNorm, deformable convolutions when ``deform``) and two 3x3 output
    convolutions, N(0, 0.01) with bias ``bias_value`` (-2.19: prior probability 0.1).
    """

    def __init__(self, num_things, num_stuff, in_channels=256, channels=256, num_convs=3,
                 deform=True, coord=False, bias_value=-2.19, **kwargs):
        super(PositionHead, self).__init__(**kwargs)
        self.num_things, self.num_stuff = num_things, num_stuff
        out_init = dict(weight_initializer=mx.init.Normal(0.01),
                        bias_initializer=mx.init.Constant(bias_value))
        with self.name_scope():
            self.tower = ConvTower(in_channels, channels, num_convs, 'gn', coord=coord,
                                   deform=deform, prefix='tower_')
            self.out_inst = nn.Conv2D(num_things, 3, padding=1, in_channels=channels,
                                      prefix='inst_', **out_init)
            self.out_sem = nn.Conv2D(num_stuff, 3, padding=1, in_channels=channels,
                                     prefix='sem_', **out_init)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        x = self.tower(x)
        return self.out_inst(x), self.out_sem(x)


class KernelHead(nn.HybridBlock):
    """One pyramid level -> a kernel (B, channels, h, w) at every position: a CoordConv
    :class:`ConvTower` and a 3x3 output convolution, N(0, 0.01) with zero bias."""

    def __init__(self, in_channels=256, channels=256, num_convs=3, deform=False, coord=True,
                 **kwargs):
        super(KernelHead, self).__init__(**kwargs)
        self.channels = channels
        with self.name_scope():
            self.tower = ConvTower(in_channels, channels, num_convs, 'gn', coord=coord,
                                   deform=deform, prefix='tower_')
            self.out_conv = nn.Conv2D(channels, 3, padding=1, in_channels=channels,
                                      weight_initializer=mx.init.Normal(0.01), prefix='out_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        return self.out_conv(self.tower(x))
