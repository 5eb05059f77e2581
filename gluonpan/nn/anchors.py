"""FPN anchors as plain numpy, in exactly the order of the RPN's flattened outputs.

Data workers compute RPN training targets with gluoncv's ``RPNTargetGenerator``; they need the same
anchors the network uses, without holding the network.  The order is level-major (P2..P6), then
row, column, anchor, which is how the RPN concatenates its per-level predictions.  Three styles of
boxes (see :class:`FPNAnchors`): Detectron1's, from gluoncv's own ``generate_base_anchors`` (so
they equal those of ``RPNAnchorGenerator``), torchvision's and detectron2's.
"""
import math

import numpy as np
from gluoncv.model_zoo.rcnn.rpn.anchor import generate_base_anchors

__all__ = ['ANCHOR_STYLES', 'FPNAnchors', 'base_anchors']

#: anchor conventions (see :class:`FPNAnchors`)
ANCHOR_STYLES = ('detectron1', 'torchvision', 'detectron2')


def base_anchors(style, stride, size, ratios):
    """The anchors of the first location of a level: float32 (len(ratios), 4) corner boxes.

    Parameters
    ----------
    style : str
        One of :data:`ANCHOR_STYLES`.
    stride : int
        Stride of the level.
    size : float
        sqrt of the anchor area.
    ratios : tuple of float
        Aspect ratios h / w.
    """
    if style == 'detectron1':
        # centred on (stride - 1) / 2, integer sides with x2 inclusive
        return generate_base_anchors(stride=stride, sizes=(size,),
                                     aspect_ratios=ratios).astype(np.float32)
    if style == 'torchvision':
        # centred on 0; half-sides computed in float32 and rounded (half to even)
        h_ratios = np.sqrt(np.asarray(ratios, np.float32))
        ws = (np.float32(1) / h_ratios) * np.float32(size)  # (A,)
        hs = h_ratios * np.float32(size)  # (A,)
        return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)
    if style == 'detectron2':
        # centred on 0, unrounded: w = sqrt(size**2 / r), h = r * w (in float64)
        ws = np.sqrt(float(size) ** 2 / np.asarray(ratios, np.float64))  # (A,)
        hs = np.asarray(ratios, np.float64) * ws  # (A,)
        return (np.stack([-ws, -hs, ws, hs], axis=1) / 2.).astype(np.float32)
    raise ValueError('unknown anchor style {!r}; valid styles: {}'.format(style, ANCHOR_STYLES))


class FPNAnchors(object):
    """Anchors of an FPN RPN for a given (padded) input size.

    Parameters
    ----------
    strides : tuple of int
        Stride of each pyramid level (P2..P6: 4, 8, 16, 32, 64).
    sizes : tuple of int
        Anchor size (sqrt of area) per level, one per stride (32, 64, 128, 256, 512).
    ratios : tuple of float
        Aspect ratios h/w at every location.
    style : str
        ``'detectron1'`` (gluoncv's): centred on ``(stride - 1) / 2`` with integer sides, x2
        inclusive (size 32 -> a 32x32 box from 0 to 31 at stride 4, centre 1.5);
        ``'torchvision'``: centred on the location's top-left corner ``(x * stride, y * stride)``,
        half-sides rounded to integers; ``'detectron2'`` (the default, that of the default
        conventions preset): centred there too, unrounded.  Location
        ``(x, y)`` shifts the first location's boxes by ``(x * stride, y * stride)`` in every
        style.
    """

    def __init__(self, strides=(4, 8, 16, 32, 64), sizes=(32, 64, 128, 256, 512),
                 ratios=(0.5, 1, 2), style='detectron2'):
        if len(strides) != len(sizes):
            raise ValueError('one anchor size per stride expected, got strides {} sizes {}'
                             .format(strides, sizes))
        self.strides = tuple(int(s) for s in strides)
        self.sizes = tuple(sizes)
        self.ratios = tuple(ratios)
        self.style = style
        # (len(ratios), 4) base boxes of each level, at the first location
        self._base = [base_anchors(style, s, z, self.ratios)
                      for s, z in zip(self.strides, self.sizes)]

    def with_style(self, style):
        """The same strides, sizes and ratios in anchor style ``style``."""
        return FPNAnchors(self.strides, self.sizes, self.ratios, style)

    def __repr__(self):
        return 'FPNAnchors(strides={}, sizes={}, ratios={}, style={!r})'.format(
            self.strides, self.sizes, self.ratios, self.style)

    @property
    def num_per_location(self):
        """Anchors at every feature-map location."""
        return len(self.ratios)

    def feature_shapes(self, height, width):
        """Feature-map ``(h, w)`` of each level for an input of ``height x width``."""
        return [(int(math.ceil(height / s)), int(math.ceil(width / s))) for s in self.strides]

    def __call__(self, height, width):
        """Anchors for an input of ``height x width``.

        Returns
        -------
        np.ndarray
            ``(N, 4)`` float32 corner boxes, N = sum over levels of h * w * len(ratios).
        """
        out = []
        for stride, base, (fh, fw) in zip(self.strides, self._base, self.feature_shapes(height, width)):
            sx, sy = np.meshgrid(np.arange(fw, dtype=np.float32) * stride,
                                 np.arange(fh, dtype=np.float32) * stride)
            shifts = np.stack([sx, sy, sx, sy], axis=-1).reshape(-1, 1, 4)  # (fh*fw, 1, 4)
            out.append((shifts + base[None]).reshape(-1, 4))  # (fh*fw*A, 4)
        return np.concatenate(out, axis=0)
