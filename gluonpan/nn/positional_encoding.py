"""The sine positional encoding of DETR, with the semantics of mmdet 2.x
``SinePositionalEncoding`` (``mmdet/models/utils/positional_encoding.py``), as Panoptic SegFormer
configures it (``num_feats=128, normalize=True, offset=-0.5``).

For a padding mask (N, H, W) (1 = padded), with ``not_mask = 1 - mask``::

    y = cumsum(not_mask, rows),  x = cumsum(not_mask, columns)          # 1-based positions
    normalize:  y = (y + offset) / (y[last row] + eps) * scale           # per column
                x = (x + offset) / (x[last column] + eps) * scale        # per row
    d_k = temperature ** (2 k / num_feats),  k = 0 .. num_feats / 2 - 1
    pos_y = [sin(y / d_0), cos(y / d_0), sin(y / d_1), cos(y / d_1), ...]   (num_feats)
    output = concat(pos_y, pos_x) along the channels -> (N, 2 * num_feats, H, W)

A padded row or column (no valid pixel in it) has a last cumsum of 0: its normalised position is
``offset / eps * scale`` (about -3e6 with Panoptic SegFormer's settings) and its sines arbitrary
in float32, as in mmdet; those pixels are masked out of the attention anyway.
"""
import math

from mxnet.gluon import nn

__all__ = ['SinePositionalEncoding', 'all_valid_mask']


def all_valid_mask(F, feature):
    """A mask of zeros (N, H, W) for a feature map (N, C, H, W): nothing padded."""
    plane = F.slice_axis(feature, axis=1, begin=0, end=1)  # (N, 1, H, W)
    return F.zeros_like(plane).reshape((0, -3, 0))  # (N, H, W)


class SinePositionalEncoding(nn.HybridBlock):
    """Sine / cosine positional encoding of a padding mask (module docstring for the formula).

    Parameters
    ----------
    num_feats : int
        Features per axis (even); the output has ``2 * num_feats`` channels, y first.
    temperature : float
        Base of the frequencies.
    normalize : bool
        Normalise the positions to ``(0, scale]`` of each row / column's valid extent.
    scale : float
        Range of the normalised positions.
    eps : float
        Added to the normaliser.
    offset : float
        Added to the 1-based positions before normalising (Panoptic SegFormer: -0.5, pixel
        centres; mmdet's default is 0, as is its ``normalize=False``).

    Notes
    -----
    The input is a padding mask (N, H, W), 1 = padded, of any dtype; for a map without padding
    use ``pos_enc(all_valid_mask(mx.nd, feature))``.  Computed in float32 (``dtype``), as mmdet;
    for float16 networks cast the output (``eps`` = 1e-6 is below float16's resolution).
    """

    def __init__(self, num_feats=128, temperature=10000, normalize=True, scale=2 * math.pi,
                 eps=1e-6, offset=-0.5, dtype='float32', **kwargs):
        super(SinePositionalEncoding, self).__init__(**kwargs)
        if num_feats % 2:
            raise ValueError('num_feats must be even, got {}'.format(num_feats))
        self.num_feats, self.temperature = num_feats, temperature
        self.normalize, self.scale, self.eps, self.offset = normalize, scale, eps, offset
        self.dtype = dtype

    def _normalized(self, F, embed, axis):
        """``(embed + offset) / (embed's last entry along axis + eps) * scale``."""
        last = F.slice_axis(embed, axis=axis, begin=-1, end=None)  # (N, 1, W) or (N, H, 1)
        return F.broadcast_div(embed + self.offset, last + self.eps) * self.scale

    def _encode(self, F, embed, dim_t):
        """(N, H, W) positions -> (N, num_feats, H, W), sine and cosine interleaved."""
        phase = F.broadcast_div(embed.expand_dims(1), dim_t)  # (N, F/2, H, W)
        pair = F.stack(F.sin(phase), F.cos(phase), axis=2)  # (N, F/2, 2, H, W)
        return pair.reshape((0, -3, 0, 0))  # (N, F, H, W)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, mask):
        """Padding mask (N, H, W) -> positional encoding (N, 2 * num_feats, H, W)."""
        not_mask = 1 - F.cast(mask, dtype=self.dtype)  # (N, H, W)
        y_embed = F.cumsum(not_mask, axis=1)  # (N, H, W)
        x_embed = F.cumsum(not_mask, axis=2)  # (N, H, W)
        if self.normalize:
            y_embed = self._normalized(F, y_embed, 1)
            x_embed = self._normalized(F, x_embed, 2)
        k = F.arange(0, self.num_feats // 2, dtype=self.dtype)  # (F/2,)
        dim_t = self.temperature ** ((k * 2) / self.num_feats)  # (F/2,)
        dim_t = dim_t.reshape((1, -1, 1, 1))  # (1, F/2, 1, 1)
        return F.concat(self._encode(F, y_embed, dim_t), self._encode(F, x_embed, dim_t),
                        dim=1)  # (N, 2F, H, W)
