"""The semantic branch of Panoptic FPN (the "semantic FPN", Kirillov et al., CVPR 2019, Fig. 3)."""
import math

import mxnet as mx
from mxnet.gluon import nn

from .class_predictor import PerClassPredictorMixin, conv_class_predictor

__all__ = ['GroupNorm', 'SemanticFPNHead']


class GroupNorm(nn.HybridBlock):
    """Group normalisation with a per-channel affine transform (Wu and He, 2018).

    MXNet 1.x's ``nn.GroupNorm`` learns one scale and shift per *group*; the paper (and every
    reference implementation of the semantic FPN) learns them per *channel*.  We normalise with the
    ``GroupNorm`` operator and apply our own ``(C,)`` gamma and beta.

    Parameters
    ----------
    channels : int
        Number of input channels C.
    num_groups : int
        Number of groups; must divide ``channels``.
    epsilon : float
        Added to the variance.
    """

    def __init__(self, channels, num_groups=32, epsilon=1e-5, **kwargs):
        super(GroupNorm, self).__init__(**kwargs)
        if channels % num_groups:
            raise ValueError('GroupNorm: {} channels do not split into {} groups'
                             .format(channels, num_groups))
        self._num_groups = num_groups
        self._epsilon = epsilon
        with self.name_scope():
            self.gamma = self.params.get('gamma', shape=(channels,), init='ones')
            self.beta = self.params.get('beta', shape=(channels,), init='zeros')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x, gamma, beta):
        """``x`` (B, C, H, W) -> (B, C, H, W)."""
        g = self._num_groups
        # unit per-group affine, made from gamma so it lives on its context (GPU) imperatively too
        unit = F.ones_like(F.slice_axis(gamma, axis=0, begin=0, end=g))  # (g,)
        x = F.GroupNorm(x, unit, F.zeros_like(unit), num_groups=g, eps=self._epsilon)
        gamma = gamma.reshape((1, -1, 1, 1))  # (1, C, 1, 1)
        beta = beta.reshape((1, -1, 1, 1))  # (1, C, 1, 1)
        return F.broadcast_add(F.broadcast_mul(x, gamma), beta)


def _upsample_axis(F, x, axis, factor):
    """Bilinear upsampling of ``x`` along ``axis`` (2 or 3) by an integer ``factor``, half-pixel
    centres and clamped edges (PyTorch's ``align_corners=False``).

    Output ``factor * i + k`` sits at input coordinate ``i + d_k``, ``d_k = (k + 0.5) / factor -
    0.5`` in (-0.5, 0.5): a fixed blend of input ``i`` and its edge-replicated neighbour.
    """
    pad = [0] * 8
    pad[2 * axis] = pad[2 * axis + 1] = 1
    padded = F.pad(x, mode='edge', pad_width=tuple(pad))  # one replicated row/column each side
    before = F.slice_axis(padded, axis=axis, begin=0, end=-2)  # neighbour i - 1 (clamped)
    after = F.slice_axis(padded, axis=axis, begin=2, end=None)  # neighbour i + 1 (clamped)
    phases = []
    for k in range(factor):
        d = (k + 0.5) / factor - 0.5
        phases.append(-d * before + (1 + d) * x if d < 0 else (1 - d) * x + d * after)
    up = F.stack(*phases, axis=axis + 1)  # (B, C, h, factor, w) or (B, C, h, w, factor)
    # merge the phase axis into the upsampled one: (B, C, h*factor, w) or (B, C, h, w*factor)
    return up.reshape((0, 0, -3, 0) if axis == 2 else (0, 0, 0, -3))


def _upsample_like(F, x, like, factor):
    """Bilinear ``factor``x upsampling of ``x`` (align_corners=False) cropped to ``like``'s size.

    A level of stride ``s`` has ``ceil(H / s)`` rows, so ``factor`` times it covers the finer map;
    the crop keeps the stride-aligned grid.  Not ``contrib.BilinearResize2D``: its CPU backward
    accumulates in a thread-dependent order, so training with ``OMP_NUM_THREADS > 1`` would not
    be repeatable (and exact resume would not hold); these slices, blends and reshapes are
    deterministic, equal to it within float rounding on exact multiples, and as fast.
    """
    up = _upsample_axis(F, _upsample_axis(F, x, 2, factor), 3, factor)
    return F.slice_like(up, like, axes=(2, 3))


class SemanticFPNHead(PerClassPredictorMixin, nn.HybridBlock):
    """P2..P5 -> per-pixel class logits at the input resolution.

    For each level with stride s a tower of max(1, log2(s / 4)) blocks
    ``[3x3 conv -> norm -> ReLU -> 2x bilinear upsample]`` brings it to stride 4 (P2's block
    has no upsampling); the four maps are summed, an optional channel dropout is applied, a 1x1
    convolution predicts the classes and a bilinear 4x upsampling (to the size of the input image)
    gives the logits.  The last upsamplings of the P3, P4 and P5 towers (all from P3's size to
    P2's) are done once on their sum: the resize is linear, so the result is the same at a third
    of the cost.

    The defaults are Panoptic FPN's semantic branch (GroupNorm, no dropout); Semantic FPN
    (mmsegmentation's ``FPNHead``) takes ``norm_layer=nn.BatchNorm`` (or ``SyncBatchNorm``) and
    ``dropout=0.1``.  Parameter names do not depend on the options: ``towers.{level}.{2k}`` is a
    convolution, ``towers.{level}.{2k + 1}`` its norm (``gamma``/``beta``, plus the running
    statistics of a batch norm).

    With ``num_classes=None`` the head stops at the summed stride-4 map (no dropout, predictor or
    upsampling): PanopticFCN's "semantic FPN" in front of its feature encoder.

    Parameters
    ----------
    num_classes : int or None
        Semantic classes (stuff + one "things" class: Cityscapes 12, COCO 54; or every class);
        None: return the (B, channels, ceil(H / 4), ceil(W / 4)) features.
    in_channels : int
        Channels of the pyramid levels.
    channels : int
        Channels of the towers (128 in the paper).
    num_groups : int
        GroupNorm groups (used when ``norm_layer`` is None).
    strides : tuple of int
        Strides of the input levels (4, 8, 16, 32).
    norm_layer : type, optional
        Norm of the towers, called as ``norm_layer(in_channels=channels, **norm_kwargs)``, e.g.
        ``mxnet.gluon.nn.BatchNorm``.  Default: :class:`GroupNorm` with ``num_groups`` groups.
    norm_kwargs : dict, optional
        Keyword arguments of ``norm_layer`` (e.g. ``{'num_devices': 8}`` for ``SyncBatchNorm``).
    dropout : float
        Rate of the channel dropout (a mask per image and channel, shared over the pixels, as
        PyTorch's ``Dropout2d``) before the predictor, active in training only; 0 for none.
    """

    def __init__(self, num_classes, in_channels=256, channels=128, num_groups=32,
                 strides=(4, 8, 16, 32), norm_layer=None, norm_kwargs=None, dropout=0.,
                 **kwargs):
        super(SemanticFPNHead, self).__init__(**kwargs)
        if not 0 <= dropout < 1:
            raise ValueError('dropout must be in [0, 1), got {}'.format(dropout))
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self._num_upsamples = [int(round(math.log2(s / strides[0]))) for s in strides]
        if self._num_upsamples != list(range(len(strides))):
            raise ValueError('strides must double from level to level, got {}'.format(strides))
        # "MSRA fill": N(0, sqrt(2 / fan_out))
        init = mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2)
        with self.name_scope():
            self.towers = nn.HybridSequential(prefix='tower_')
            for num_up in self._num_upsamples:
                tower = nn.HybridSequential(prefix='')
                for k in range(max(1, num_up)):
                    tower.add(nn.Conv2D(channels, 3, padding=1, use_bias=False,
                                        in_channels=in_channels if k == 0 else channels,
                                        weight_initializer=init),
                              GroupNorm(channels, num_groups) if norm_layer is None else
                              norm_layer(in_channels=channels, **dict(norm_kwargs or {})))
                self.towers.add(tower)
            # channel dropout: one mask per (image, channel), shared over the pixels (axes 2, 3)
            self.dropout = nn.Dropout(dropout, axes=(2, 3)) if dropout else None
            if num_classes is not None:
                self.predictor = conv_class_predictor(num_classes, channels)

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, image, p2, p3, p4, p5):
        """Semantic logits.

        Parameters
        ----------
        image : NDArray or Symbol
            The network input (B, 3, H, W); only its size is used.
        p2, p3, p4, p5 : NDArray or Symbol
            Pyramid levels (B, C, ceil(H / s), ceil(W / s)).

        Returns
        -------
        NDArray or Symbol
            (B, num_classes, H, W) logits.
        """
        feats = (p2, p3, p4, p5)
        finest, coarser = None, None
        for level, (tower, num_up) in enumerate(zip(self.towers, self._num_upsamples)):
            x = feats[level]
            for k in range(len(tower) // 2):
                x = F.relu(tower[2 * k + 1](tower[2 * k](x)))
                if k < num_up - 1:
                    x = _upsample_like(F, x, feats[level - 1 - k], 2)
            if not num_up:
                finest = x if finest is None else finest + x
            else:  # every tower but P2's ends with an upsampling from the size of P3 to P2's:
                coarser = x if coarser is None else coarser + x  # it is linear, so do it once
        out = finest + _upsample_like(F, coarser, p2, 2)
        if self.num_classes is None:
            return out
        if self.dropout is not None:
            out = self.dropout(out)
        return _upsample_like(F, self.predictor(out), image, self.strides[0])
