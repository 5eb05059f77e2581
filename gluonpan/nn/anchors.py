"""FPN anchors as plain numpy, in exactly the order of the RPN's flattened outputs.

Data workers compute RPN training targets with gluoncv's ``RPNTargetGenerator``; they need the same
anchors the network uses, without holding the network.  The boxes come from gluoncv's own
``generate_base_anchors`` (so they equal those of ``RPNAnchorGenerator``); the order is level-major
(P2..P6), then row, column, anchor, which is how the RPN concatenates its per-level predictions.
"""
import math

import numpy as np
from gluoncv.model_zoo.rcnn.rpn.anchor import generate_base_anchors

__all__ = ['FPNAnchors']


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
    """

    def __init__(self, strides=(4, 8, 16, 32, 64), sizes=(32, 64, 128, 256, 512),
                 ratios=(0.5, 1, 2)):
        if len(strides) != len(sizes):
            raise ValueError('one anchor size per stride expected, got strides {} sizes {}'
                             .format(strides, sizes))
        self.strides = tuple(int(s) for s in strides)
        self.sizes = tuple(sizes)
        self.ratios = tuple(ratios)
        # (len(ratios), 4) base boxes of each level, centred on stride / 2
        self._base = [generate_base_anchors(stride=s, sizes=(z,), aspect_ratios=self.ratios)
                      .astype(np.float32) for s, z in zip(self.strides, self.sizes)]

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
