"""ONNX converter of MXNet's modulated deformable convolution (DCNv2), PanopticFCN's deformable
position head: mx2onnx has none, and ONNX's own ``DeformConv`` needs opset 19.

MXNet's im2col samples the input at ``(y, x) = (h - pad + i * dilation + dy, w - pad + j *
dilation + dx)`` for tap ``(i, j)`` of output ``(h, w)`` (offsets ``(dy, dx)`` in channels
``2k, 2k + 1`` of tap ``k = i * kw + j``), bilinearly with zero outside the map, multiplies by the
tap's modulation (channel ``k`` of the mask) and applies the kernel to the ``(channel, tap)``
columns.  Here all taps are sampled by one ``GridSample`` (bilinear, zero padding) on a grid of
``(B, taps * Ho, Wo)`` points in half-pixel normalised coordinates (``(2p + 1) / n - 1`` is pixel
``p`` of a side of ``n``: exact for any size, a 1x1 map included), multiplied by the mask, and the
kernel is a 1x1 ``Conv`` over the ``(C * taps)`` stack.
"""
import numpy as np

from ._nodes import const, inputs, int64, ints, node, tensor_type

__all__ = ['convert_modulated_deformable_conv']


def _normalised_coordinates(nodes, kwargs, n, axis, taps, dtype):
    """Sampling coordinates along ``axis`` (0: rows, 1: columns), (B, taps, Ho, Wo, 1), in
    GridSample's normalised space; reads ``{n}data_shape``, ``{n}out_shape``, ``{n}offset``."""
    c = '{}{}_'.format(n, 'yx'[axis])
    dim = axis + 2
    view = [1, 1, -1, 1] if axis == 0 else [1, 1, 1, -1]
    nodes += [
        node('Gather', [n + 'out_shape', int64(kwargs, c + 'axis', dim)], [c + 'out_n']),
        node('Range', [int64(kwargs, c + 'zero', 0), c + 'out_n', int64(kwargs, c + 'one', 1)],
             [c + 'range']),
        node('Cast', [c + 'range'], [c + 'pos'], to=tensor_type(dtype)),
        node('Reshape', [c + 'pos', int64(kwargs, c + 'view', view)], [c + 'grid']),
        node('Gather', [n + 'offset', int64(kwargs, c + 'which', axis)], [c + 'delta'],
             axis=2),  # (B, taps, Ho, Wo)
        node('Add', [c + 'grid', const(kwargs, c + 'tap', taps, dtype)], [c + 'base']),
        node('Add', [c + 'base', c + 'delta'], [c + 'abs']),
        node('Gather', [n + 'data_shape', int64(kwargs, c + 'in_axis', dim)], [c + 'in_n']),
        node('Cast', [c + 'in_n'], [c + 'in_size'], to=tensor_type(dtype)),
        node('Mul', [c + 'abs', const(kwargs, c + 'two', 2., dtype)], [c + 'twice']),
        node('Add', [c + 'twice', const(kwargs, c + 'plus', 1., dtype)], [c + 'odd']),
        node('Div', [c + 'odd', c + 'in_size'], [c + 'ratio']),
        node('Sub', [c + 'ratio', const(kwargs, c + 'minus', 1., dtype)], [c + 'norm']),
        node('Unsqueeze', [c + 'norm', int64(kwargs, c + 'last', [4])], [c + 'coord']),
    ]
    return c + 'coord'


def convert_modulated_deformable_conv(mx_node, **kwargs):
    """``_contrib_ModulatedDeformableConvolution`` with stride 1, one group and one deformable
    group (module docstring)."""
    name, sources, attrs, dtypes = inputs(mx_node, kwargs)
    data, offset, mask, weight = sources[:4]
    kh, kw = ints(attrs['kernel'])
    stride = ints(attrs.get('stride', '(1, 1)')) or [1, 1]
    pad = ints(attrs.get('pad', '(0, 0)')) or [0, 0]
    dilate = ints(attrs.get('dilate', '(1, 1)')) or [1, 1]
    if stride != [1, 1] or int(attrs.get('num_group', 1)) != 1 or \
            int(attrs.get('num_deformable_group', 1)) != 1:
        raise NotImplementedError('ModulatedDeformableConvolution {}: only stride 1 with one '
                                  'group and one deformable group is supported'.format(name))
    taps, dtype = kh * kw, dtypes[0]
    tap_y = np.repeat(np.arange(kh) * dilate[0] - pad[0], kw).reshape(1, taps, 1, 1)
    tap_x = np.tile(np.arange(kw) * dilate[1] - pad[1], kh).reshape(1, taps, 1, 1)
    n = name + '_'
    nodes = [
        node('Shape', [data], [n + 'data_shape']),
        node('Shape', [offset], [n + 'out_shape']),  # (B, 2 * taps, Ho, Wo)
        node('Slice', [n + 'out_shape', int64(kwargs, n + 'hw_b', [2]),
                       int64(kwargs, n + 'hw_e', [4])], [n + 'out_hw']),
        node('Slice', [n + 'out_shape', int64(kwargs, n + 'w_b', [3]),
                       int64(kwargs, n + 'w_e', [4])], [n + 'out_w']),
        node('Concat', [int64(kwargs, n + 'pairs', [0, taps, 2]), n + 'out_hw'],
             [n + 'pairs_view'], axis=0),
        node('Reshape', [offset, n + 'pairs_view'], [n + 'offset']),  # (B, taps, 2, Ho, Wo)
    ]
    y = _normalised_coordinates(nodes, kwargs, n, 0, tap_y, dtype)
    x = _normalised_coordinates(nodes, kwargs, n, 1, tap_x, dtype)
    nodes += [
        node('Concat', [x, y], [n + 'grid5'], axis=4),
        node('Reshape', [n + 'grid5', int64(kwargs, n + 'grid_view', [0, -1, 0, 2])],
             [n + 'grid']),  # (B, taps * Ho, Wo, 2)
        node('GridSample', [data, n + 'grid'], [n + 'sampled'], mode='bilinear',
             padding_mode='zeros', align_corners=0),  # (B, C, taps * Ho, Wo)
        node('Concat', [int64(kwargs, n + 'head', [0, 0, taps, -1]), n + 'out_w'],
             [n + 'taps_view'], axis=0),
        node('Reshape', [n + 'sampled', n + 'taps_view'], [n + 'taps']),
        node('Unsqueeze', [mask, int64(kwargs, n + 'chan', [1])], [n + 'mask']),
        node('Mul', [n + 'taps', n + 'mask'], [n + 'modulated']),  # (B, C, taps, Ho, Wo)
        node('Concat', [int64(kwargs, n + 'merge', [0, -1]), n + 'out_hw'], [n + 'cols_view'],
             axis=0),
        node('Reshape', [n + 'modulated', n + 'cols_view'], [n + 'columns']),
        node('Reshape', [weight, int64(kwargs, n + 'kernel', [0, -1, 1, 1])], [n + 'weight']),
        node('Conv', [n + 'columns', n + 'weight'] + sources[4:5], [name], name=name),
    ]
    return nodes
