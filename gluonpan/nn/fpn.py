"""Feature Pyramid Network (Lin et al., CVPR 2017): P2..P5 plus Panoptic FPN's P6, or RetinaNet's
P6 and P7 (PanopticFCN)."""
import mxnet as mx
from mxnet.gluon import nn

__all__ = ['FPN']


class FPN(nn.HybridBlock):
    """Top-down pyramid with lateral 1x1 and output 3x3 convolutions, plus coarser levels.

    ``top='pool'``: P6 is a stride-2 max-pool (kernel 1) of P5, as in the Panoptic FPN and Detectron
    references (gluoncv's FPN uses a 3x3 stride-2 convolution instead).  ``top='p6p7'``: P6 is a
    3x3 stride-2 convolution of the output P5 and P7 one of ReLU(P6) (detectron2's
    ``LastLevelP6P7`` fed with P5, as PanopticFCN builds it); a level has ``ceil`` of half its
    finer level's rows.  Odd input sizes work: each upsampled
    map is cropped to the lateral it is added to, so level ``i`` has ``ceil(H / stride_i)`` rows.

    Parameters
    ----------
    in_channels : tuple of int
        Channels of C2..C5.  Given explicitly so every parameter has its shape at construction.
    channels : int
        Channels of every pyramid level (256 in the paper).
    top : str
        ``'pool'`` (P2..P6) or ``'p6p7'`` (P2..P7).
    """

    TOPS = ('pool', 'p6p7')

    def __init__(self, in_channels, channels=256, top='pool', **kwargs):
        super(FPN, self).__init__(**kwargs)
        if top not in self.TOPS:
            raise ValueError('unknown FPN top {!r}; valid: {}'.format(top, self.TOPS))
        self.channels = channels
        self.top = top
        self.strides = (4, 8, 16, 32, 64) if top == 'pool' else (4, 8, 16, 32, 64, 128)
        # "kaiming uniform, a=1": U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), biases zero
        init = mx.init.Xavier(rnd_type='uniform', factor_type='in', magnitude=3)
        with self.name_scope():
            self.lateral = nn.HybridSequential(prefix='lateral_')
            self.output = nn.HybridSequential(prefix='output_')
            for c in in_channels:
                self.lateral.add(nn.Conv2D(channels, 1, in_channels=c, weight_initializer=init))
                self.output.add(nn.Conv2D(channels, 3, padding=1, in_channels=channels,
                                          weight_initializer=init))
            if top == 'p6p7':
                self.p6 = nn.Conv2D(channels, 3, strides=2, padding=1, in_channels=channels,
                                    weight_initializer=init, prefix='p6_')
                self.p7 = nn.Conv2D(channels, 3, strides=2, padding=1, in_channels=channels,
                                    weight_initializer=init, prefix='p7_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, c2, c3, c4, c5):
        """(C2, C3, C4, C5) -> (P2, ..., P6) or (P2, ..., P7), each with ``channels`` channels."""
        feats = (c2, c3, c4, c5)
        top = self.lateral[3](c5)
        outs = [self.output[3](top)]
        for i in (2, 1, 0):
            lateral = self.lateral[i](feats[i])
            up = F.UpSampling(top, scale=2, sample_type='nearest')
            top = lateral + F.slice_like(up, lateral, axes=(2, 3))
            outs.insert(0, self.output[i](top))
        if self.top == 'pool':
            outs.append(F.Pooling(outs[-1], kernel=(1, 1), stride=(2, 2), pool_type='max'))
        else:
            outs.append(self.p6(outs[-1]))
            outs.append(self.p7(F.relu(outs[-1])))
        return tuple(outs)
