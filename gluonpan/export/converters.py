"""ONNX converters for the MXNet operators of our inference graphs that mxnet 1.9.1's exporter
(``mxnet.onnx.mx2onnx``) lacks or converts wrongly.

They are registered in mx2onnx's own registry (``MXNetGraph.register``) at :data:`OPSET`, the
opset we export with: the exporter looks an operator up from the export opset downwards, so ours
take precedence over mx2onnx's opset-12/13 converters without replacing them (an export at
opset 12 or 13 still gets mx2onnx's own).

==========================  =================================================================
operator                    why
==========================  =================================================================
``Reshape``                 mx2onnx knows a few hard-coded patterns of the special codes ``-2``,
                            ``-3`` and ``-4``; ours computes any target shape from the input's
                            ``Shape`` (MXNet's rules), so input sizes stay dynamic.
``GroupNorm``               missing; MXNet's per-group affine GroupNorm as
                            ``InstanceNormalization`` of the ``(B, groups, -1)`` view.
``_contrib_arange_like``    mx2onnx slices the wrong dimension for a negative ``axis`` (``-1``
                            gives a length of 1); ours gathers ``shape[axis]``.
``_contrib_Modulated``      missing (ONNX's own DeformConv needs opset 19):
``DeformableConvolution``   :mod:`~gluonpan.export.deformable_converter`.
``_contrib_box_nms``,       mx2onnx's ignore the classes, the ``topk`` and MXNet's output
``_contrib_ROIAlign``       order, or cannot express ``aligned=False`` at opset 16:
                            :mod:`~gluonpan.export.detection_converters`.
``_equal``, ``_greater``,   missing elementwise and scalar comparisons (float 0/1 results, as
``_lesser``,                MXNet's).
``_greater_equal_scalar``,
``_lesser_equal_scalar``
``LayerNorm``               mx2onnx's ``ReduceMean`` with an ``axes`` attribute fails its own
                            graph check (made against the installed onnx's newest opset, where
                            the axes are an input); ours sums with ``ReduceSum`` and divides.
``_np_cumsum``              missing (``F.cumsum``): ``CumSum``, in the ``dtype`` attribute's type.
``_rpower_scalar``          missing (``scalar ** x``): ``Pow`` of a constant base.
``BilinearSampler``         missing: ``GridSample`` (bilinear, zeros, ``align_corners=1``, as
                            MXNet's, a 1-pixel side included) of the transposed grid.
``dot``                     mx2onnx's is a bare ``MatMul`` (right for a 2-D ``b`` only, and
                            a warning on every call); ours views ``a``, ``b`` as matrices as
                            MXNet does (any ranks, ``transpose_a`` / ``transpose_b``).
``_rminus_scalar``,         mx2onnx's print every node's name and, in a block's name scope,
``_rdiv_scalar``            fold a constant input the wrong way round (``x - s`` for ``s - x``).
==========================  =================================================================

``_lesser`` and the converters from ``LayerNorm`` down are those of Panoptic SegFormer's graph
(``BilinearSampler`` with ``msda_method='bilinear'`` only); the graphs of the other
architectures have none of these operators.
"""
import numpy as np

from ._deps import require
from ._nodes import const, flag, inputs, int64, ints, node, tensor_type
from .deformable_converter import convert_modulated_deformable_conv
from .detection_converters import convert_box_nms, convert_roi_align

__all__ = ['OPSET', 'CONVERTERS', 'register_converters']

#: the ONNX opset of our exports (RoiAlign-16 has the half-pixel mode of ROIAlign(aligned=True))
OPSET = 16

_REGISTERED = []


def _dim(nodes, kwargs, shape, index, out):
    """``out`` = ``shape[index:index + 1]`` (a 1-element int64 tensor)."""
    nodes.append(node('Slice', [shape, int64(kwargs, out + '_b', [index]),
                                int64(kwargs, out + '_e', [index + 1])], [out]))
    return out


def convert_reshape(mx_node, **kwargs):
    """``Reshape`` with MXNet's special codes (``0`` copy, ``-1`` infer, ``-2`` copy the rest,
    ``-3`` merge two, ``-4 a b`` split one), each a piece of the target shape computed from the
    input's runtime ``Shape``."""
    name, (data,), attrs, _ = inputs(mx_node, kwargs)
    if flag(attrs, 'reverse'):
        raise NotImplementedError('Reshape {}: reverse=True is not supported'.format(name))
    codes = ints(attrs['shape'])
    shape = name + '_in_shape'
    nodes = [node('Shape', [data], [shape])]
    pieces, src, i = [], 0, 0
    while i < len(codes):
        code, piece = codes[i], '{}_piece{}'.format(name, i)
        if code == 0:
            pieces.append(_dim(nodes, kwargs, shape, src, piece))
            src += 1
        elif code == -2:
            nodes.append(node('Slice', [shape, int64(kwargs, piece + '_b', [src]),
                                        int64(kwargs, piece + '_e', [2 ** 62])], [piece]))
            pieces.append(piece)
        elif code == -3:
            first = _dim(nodes, kwargs, shape, src, piece + '_a')
            second = _dim(nodes, kwargs, shape, src + 1, piece + '_b')
            nodes.append(node('Mul', [first, second], [piece]))
            pieces.append(piece)
            src += 2
        elif code == -4:
            a, b = codes[i + 1], codes[i + 2]
            whole = _dim(nodes, kwargs, shape, src, piece + '_whole')
            if a == -1:
                nodes.append(node('Div', [whole, int64(kwargs, piece + '_b', [b])],
                                  [piece + '_a']))
                pieces += [piece + '_a', int64(kwargs, piece + '_bb', [b])]
            elif b == -1:
                nodes.append(node('Div', [whole, int64(kwargs, piece + '_a', [a])],
                                  [piece + '_b']))
                pieces += [int64(kwargs, piece + '_aa', [a]), piece + '_b']
            else:
                pieces.append(int64(kwargs, piece, [a, b]))
            src += 1
            i += 2
        else:  # a size, or -1 (ONNX infers it the same way)
            pieces.append(int64(kwargs, piece, [code]))
            src += 1
        i += 1
    nodes += [node('Concat', pieces, [name + '_target'], axis=0),
              node('Reshape', [data, name + '_target'], [name], name=name)]
    return nodes


def convert_group_norm(mx_node, **kwargs):
    """MXNet's ``GroupNorm`` (per-group gamma and beta of shape ``(groups,)``): the
    ``(B, groups, -1)`` view normalised by ``InstanceNormalization``, scaled and shifted per
    group, reshaped back."""
    name, (data, gamma, beta), attrs, dtypes = inputs(mx_node, kwargs)
    groups = int(attrs.get('num_groups', 1))
    eps = float(attrs.get('eps', 1e-5))
    if flag(attrs, 'output_mean_var'):
        raise NotImplementedError('GroupNorm {}: output_mean_var is not supported'.format(name))
    dtype = dtypes[0]
    return [
        node('Shape', [data], [name + '_shape']),
        node('Reshape', [data, int64(kwargs, name + '_grouped', [0, groups, -1])],
             [name + '_x']),
        node('InstanceNormalization',
             [name + '_x', const(kwargs, name + '_ones', np.ones(groups), dtype),
              const(kwargs, name + '_zeros', np.zeros(groups), dtype)],
             [name + '_norm'], epsilon=eps),
        node('Reshape', [gamma, int64(kwargs, name + '_affine', [1, groups, 1])],
             [name + '_gamma']),
        node('Reshape', [beta, name + '_affine'], [name + '_beta']),
        node('Mul', [name + '_norm', name + '_gamma'], [name + '_scaled']),
        node('Add', [name + '_scaled', name + '_beta'], [name + '_y']),
        node('Reshape', [name + '_y', name + '_shape'], [name], name=name),
    ]


def convert_layer_norm(mx_node, **kwargs):
    """``LayerNorm`` over the last axis: mean and variance as sums over it divided by its size
    (``ReduceSum``, whose axes are an input from opset 13 on: mx2onnx's ``ReduceMean`` with an
    ``axes`` attribute fails its own graph check against the installed onnx's newest opset)."""
    name, (data, gamma, beta), attrs, dtypes = inputs(mx_node, kwargs)
    if int(attrs.get('axis', -1)) != -1 or flag(attrs, 'output_mean_var'):
        raise NotImplementedError('LayerNorm {}: only axis=-1 without output_mean_var is '
                                  'supported'.format(name))
    dtype = dtypes[0]
    last = int64(kwargs, name + '_last', [-1])
    return [
        node('Shape', [data], [name + '_shape']),
        node('Slice', [name + '_shape', last, int64(kwargs, name + '_end', [2 ** 62])],
             [name + '_n_int']),
        node('Cast', [name + '_n_int'], [name + '_n'], to=tensor_type(dtype)),
        node('ReduceSum', [data, last], [name + '_sum'], keepdims=1),
        node('Div', [name + '_sum', name + '_n'], [name + '_mean']),
        node('Sub', [data, name + '_mean'], [name + '_centred']),
        node('Mul', [name + '_centred', name + '_centred'], [name + '_square']),
        node('ReduceSum', [name + '_square', last], [name + '_square_sum'], keepdims=1),
        node('Div', [name + '_square_sum', name + '_n'], [name + '_var']),
        node('Add', [name + '_var', const(kwargs, name + '_eps', float(attrs.get('eps', 1e-5)),
                                          dtype)], [name + '_var_eps']),
        node('Sqrt', [name + '_var_eps'], [name + '_std']),
        node('Div', [name + '_centred', name + '_std'], [name + '_norm']),
        node('Mul', [name + '_norm', gamma], [name + '_scaled']),
        node('Add', [name + '_scaled', beta], [name], name=name),
    ]


def convert_arange_like(mx_node, **kwargs):
    """``_contrib_arange_like``: ``start + step * range(n)`` with ``n`` the input's size along
    ``axis`` (any sign) or its number of elements; the input's dtype."""
    name, (data,), attrs, dtypes = inputs(mx_node, kwargs)
    if int(attrs.get('repeat', 1)) != 1:
        raise NotImplementedError('arange_like {}: repeat != 1 is not supported'.format(name))
    dtype = dtypes[0]
    axis = attrs.get('axis', 'None')
    nodes = [node('Shape', [data], [name + '_shape'])]
    if axis == 'None':
        nodes.append(node('ReduceProd', [name + '_shape'], [name + '_n'], keepdims=0))
    else:
        nodes.append(node('Gather', [name + '_shape', int64(kwargs, name + '_axis', int(axis))],
                          [name + '_n']))
    start = const(kwargs, name + '_start', float(attrs.get('start', 0.)), dtype)
    step = const(kwargs, name + '_step', float(attrs.get('step', 1.)), dtype)
    nodes += [
        node('Range', [int64(kwargs, name + '_zero', 0), name + '_n',
                       int64(kwargs, name + '_one', 1)], [name + '_index']),
        node('Cast', [name + '_index'], [name + '_float'], to=tensor_type(dtype)),
        node('Mul', [name + '_float', step], [name + '_scaled']),
        node('Add', [name + '_scaled', start], [name], name=name),
    ]
    if axis == 'None':  # the input's shape
        nodes[-1] = node('Add', [name + '_scaled', start], [name + '_flat'])
        nodes.append(node('Reshape', [name + '_flat', name + '_shape'], [name], name=name))
    return nodes


def convert_cumsum(mx_node, **kwargs):
    """``_np_cumsum`` (``F.cumsum``): ONNX ``CumSum`` along ``axis`` (of the flattened input when
    there is none), in the ``dtype`` attribute's type when given (as MXNet, which sums in it)."""
    name, (data,), attrs, dtypes = inputs(mx_node, kwargs)
    axis, dtype = attrs.get('axis', 'None'), attrs.get('dtype', 'None')
    nodes = []
    if dtype not in ('None', None) and np.dtype(dtype) != np.dtype(dtypes[0]):
        nodes.append(node('Cast', [data], [name + '_cast'], to=tensor_type(dtype)))
        data = name + '_cast'
    if axis in ('None', None):
        nodes.append(node('Reshape', [data, int64(kwargs, name + '_flat', [-1])],
                          [name + '_flat_data']))
        data, axis = name + '_flat_data', 0
    nodes.append(node('CumSum', [data, int64(kwargs, name + '_axis', int(axis))], [name],
                      name=name))
    return nodes


def convert_rpower_scalar(mx_node, **kwargs):
    """``_rpower_scalar``: ``scalar ** x`` (ONNX ``Pow`` of a constant base)."""
    name, (data,), attrs, dtypes = inputs(mx_node, kwargs)
    base = const(kwargs, name + '_base', float(attrs['scalar']), dtypes[0])
    return [node('Pow', [base, data], [name], name=name)]


def convert_bilinear_sampler(mx_node, **kwargs):
    """``BilinearSampler``: ONNX ``GridSample`` (bilinear, zero padding, ``align_corners``: MXNet
    maps -1 .. 1 to the first .. last pixel centre and zeroes the corners outside the map) of the
    grid (N, 2, Ho, Wo) transposed to (N, Ho, Wo, 2)."""
    name, (data, grid), _, _ = inputs(mx_node, kwargs)
    return [node('Transpose', [grid], [name + '_grid'], perm=[0, 2, 3, 1]),
            node('GridSample', [data, name + '_grid'], [name], name=name, mode='bilinear',
                 padding_mode='zeros', align_corners=1)]


def convert_dot(mx_node, **kwargs):
    """``dot`` of any ranks: MXNet contracts the last axis of ``a`` (the first with
    ``transpose_a``) with the first axis of ``b`` (the last with ``transpose_b``), the other axes
    kept in order: ``a`` as (rest, k), ``b`` as (k, rest), one ``MatMul``, reshaped to the two
    rests.  mx2onnx's is a bare ``MatMul`` (right only when ``b`` is 2-D, with a warning on
    every call)."""
    name, (a, b), attrs, _ = inputs(mx_node, kwargs)
    n = name + '_'
    zero, one = int64(kwargs, n + 'zero', [0]), int64(kwargs, n + 'one', [1])
    last, end = int64(kwargs, n + 'last', [-1]), int64(kwargs, n + 'end', [2 ** 62])
    nodes = [node('Shape', [a], [n + 'a_shape']), node('Shape', [b], [n + 'b_shape'])]
    if flag(attrs, 'transpose_a'):  # (k, rest...) -> (rest, k)
        nodes += [node('Slice', [n + 'a_shape', one, end], [n + 'a_rest']),
                  node('Reshape', [a, int64(kwargs, n + 'k_first', [0, -1])], [n + 'a_k']),
                  node('Transpose', [n + 'a_k'], [n + 'a2'], perm=[1, 0])]
    else:  # (rest..., k): MatMul broadcasts over the rest
        nodes.append(node('Slice', [n + 'a_shape', zero, last], [n + 'a_rest']))
        nodes.append(node('Identity', [a], [n + 'a2']))
    if flag(attrs, 'transpose_b'):  # (rest..., k) -> (k, rest)
        nodes += [node('Slice', [n + 'b_shape', zero, last], [n + 'b_rest']),
                  node('Slice', [n + 'b_shape', last, end], [n + 'b_k']),
                  node('Concat', [int64(kwargs, n + 'minus_one', [-1]), n + 'b_k'],
                       [n + 'k_last'], axis=0),
                  node('Reshape', [b, n + 'k_last'], [n + 'b_k_last']),
                  node('Transpose', [n + 'b_k_last'], [n + 'b2'], perm=[1, 0])]
    else:  # (k, rest...) -> (k, rest)
        nodes += [node('Slice', [n + 'b_shape', one, end], [n + 'b_rest']),
                  node('Reshape', [b, int64(kwargs, n + 'k_first_b', [0, -1])], [n + 'b2'])]
    nodes += [
        node('MatMul', [n + 'a2', n + 'b2'], [n + 'product']),
        node('Concat', [n + 'a_rest', n + 'b_rest'], [n + 'shape'], axis=0),
        node('Reshape', [n + 'product', n + 'shape'], [name], name=name),
    ]
    return nodes


def _reverse_scalar(onnx_op):
    """A converter of MXNet's ``_rminus_scalar`` / ``_rdiv_scalar`` (``scalar - x``,
    ``scalar / x``): mx2onnx's prints every node's name and folds a constant input of a node
    whose name does not start with ``_rminusscalar`` / ``_rdivscalar`` (any in a block's name
    scope) the other way round (``x - scalar``)."""
    def convert(mx_node, **kwargs):
        name, (data,), attrs, dtypes = inputs(mx_node, kwargs)
        scalar = const(kwargs, name + '_scalar', float(attrs['scalar']), dtypes[0])
        return [node(onnx_op, [scalar, data], [name], name=name)]
    convert.__doc__ = 'MXNet scalar-first scalar op -> ONNX {}(scalar, x).'.format(onnx_op)
    return convert


def _comparison(onnx_op, scalar=False):
    """A converter of an MXNet comparison (elementwise, or with a ``scalar`` attribute): the
    ONNX ``onnx_op``, cast back to the input's dtype (MXNet's 0 / 1 results)."""
    def convert(mx_node, **kwargs):
        name, sources, attrs, dtypes = inputs(mx_node, kwargs)
        if scalar:
            sources = [sources[0], const(kwargs, name + '_scalar', float(attrs['scalar']),
                                         dtypes[0])]
        return [node(onnx_op, sources, [name + '_bool']),
                node('Cast', [name + '_bool'], [name], name=name, to=tensor_type(dtypes[0]))]
    convert.__doc__ = 'MXNet comparison -> ONNX {} cast to the input dtype.'.format(onnx_op)
    return convert


#: MXNet operator -> our converter
CONVERTERS = {
    'Reshape': convert_reshape,
    'GroupNorm': convert_group_norm,
    'LayerNorm': convert_layer_norm,
    '_contrib_arange_like': convert_arange_like,
    '_contrib_ModulatedDeformableConvolution': convert_modulated_deformable_conv,
    '_equal': _comparison('Equal'),
    '_greater': _comparison('Greater'),
    '_lesser': _comparison('Less'),
    '_greater_equal_scalar': _comparison('GreaterOrEqual', scalar=True),
    '_lesser_equal_scalar': _comparison('LessOrEqual', scalar=True),
    '_np_cumsum': convert_cumsum,
    'BilinearSampler': convert_bilinear_sampler,
    'dot': convert_dot,
    '_rminus_scalar': _reverse_scalar('Sub'),
    '_rdiv_scalar': _reverse_scalar('Div'),
    '_rpower_scalar': convert_rpower_scalar,
    '_contrib_box_nms': convert_box_nms,
    '_contrib_ROIAlign': convert_roi_align,
}


def register_converters():
    """Register :data:`CONVERTERS` in mx2onnx's registry at :data:`OPSET` (once)."""
    require('onnx')
    if _REGISTERED:
        return
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    for op, convert in CONVERTERS.items():
        MXNetGraph.register(op, opset_version=OPSET)(convert)
    _REGISTERED.append(True)
