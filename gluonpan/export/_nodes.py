"""Helpers of our ONNX converters (:mod:`gluonpan.export.converters`): nodes, constant
initializers and the attributes of mx2onnx's graph nodes."""
import numpy as np

from ._deps import require

__all__ = ['node', 'int64', 'const', 'inputs', 'tensor_type', 'ints', 'flag']


def node(*args, **kwargs):
    """``onnx.helper.make_node``."""
    return require('onnx').helper.make_node(*args, **kwargs)


def int64(kwargs, name, values):
    """An int64 initializer ``name`` holding ``values`` (a list, or a scalar for a 0-d tensor);
    returns ``name``."""
    onnx = require('onnx')
    array = np.asarray(values, dtype=np.int64)
    kwargs['initializer'].append(onnx.helper.make_tensor(
        name, onnx.TensorProto.INT64, array.shape, array.ravel().tolist()))
    return name


def const(kwargs, name, values, dtype):
    """An initializer ``name`` of numpy dtype ``dtype`` holding ``values``; returns ``name``."""
    onnx = require('onnx')
    kwargs['initializer'].append(onnx.numpy_helper.from_array(np.asarray(values, dtype=dtype),
                                                              name))
    return name


def inputs(mx_node, kwargs):
    """``(name, input names, attributes, input numpy dtypes)`` of an mx2onnx graph node."""
    lookup = kwargs['outputs_lookup']
    sources = [lookup[i][j] for i, j, *_ in mx_node['inputs']]
    return (mx_node['name'], [x.name for x in sources], mx_node.get('attrs', {}),
            [x.dtype for x in sources])


def tensor_type(dtype):
    """The ONNX element type of a numpy dtype."""
    return require('onnx').helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def ints(text):
    """MXNet's tuple attribute ``'(0, -3, 0)'`` -> ``[0, -3, 0]``."""
    text = str(text).strip().strip('()[]')
    return [int(v) for v in text.split(',') if v.strip() not in ('', 'None')]


def flag(attrs, key, default=False):
    """A boolean attribute of an MXNet node (``'True'`` / ``'1'``)."""
    return str(attrs.get(key, default)) in ('True', '1', 'true')
