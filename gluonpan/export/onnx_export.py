"""Export of a zoo network's inference graph (``net.predict``, up to the numpy post-processing):
as ONNX, one graph that onnxruntime runs, or as MXNet's own symbol + params files (for MXNet's
C++ / Scala predictors).

The ONNX graph is made by mxnet 1.9.1's exporter (``mxnet.onnx.mx2onnx``) from the hybridized
network's exported symbol, with our converters (:mod:`gluonpan.export.converters`) for the
operators it lacks or gets wrong, at opset :data:`~gluonpan.export.converters.OPSET` (not the
installed onnx's newest, which ``mx.onnx.export_model`` would pick and whose reductions take
their axes as inputs, unlike mx2onnx's converters).  The inputs and outputs are renamed after
the architecture's (:mod:`gluonpan.export.architectures`) and the model's record (categories,
thresholds, conventions) is stored in the file's metadata under :data:`METADATA_KEY`.
"""
import json
import logging
import os
import re
import tempfile

import mxnet as mx
import numpy as np
from mxnet import autograd

from ..errors import UsageError
from ..utils.checkpoint import atomic_write
from ._deps import require
from .architectures import architecture_of, describe
from .converters import OPSET, register_converters

__all__ = ['METADATA_KEY', 'export_mxnet', 'export_onnx', 'symbol_to_onnx']

logger = logging.getLogger(__name__)

#: metadata key of the model record (:func:`gluonpan.export.architectures.describe`, JSON)
METADATA_KEY = 'gluonpan'


def _trace(net, input_size):
    """Hybridize ``net`` and build its inference graph on zero inputs of ``input_size``;
    returns the architecture and the input shapes."""
    spec = architecture_of(net)
    height, width = input_size or spec.sample_size
    if height % spec.divisor or width % spec.divisor:
        raise UsageError('input size {}x{}: a {} model is exported from an input whose sides '
                         'are multiples of {}'.format(height, width, spec.arch, spec.divisor))
    ctx = list(net.collect_params().values())[0].list_ctx()[0]
    shapes = [(spec.batch or 1, 3, height, width), (1, 1, height, width)][:len(spec.inputs)]
    net.hybridize()
    # net(data, window), not net.predict: predict leaves out a window of the whole input
    with autograd.predict_mode():
        net(*[mx.nd.zeros(s, ctx=ctx) for s in shapes])
    return spec, shapes


def export_mxnet(net, prefix, input_size=None):
    """``net.export``: the hybridized inference graph and its parameters.

    Parameters
    ----------
    net : SemanticFPN, PanopticFCN, PanopticFPN or PanopticSegFormer
        A zoo network with its weights.
    prefix : str
        Output path prefix: writes ``{prefix}-symbol.json`` and ``{prefix}-0000.params``.
    input_size : (int, int), optional
        ``(H, W)`` of the image the graph is built on (default the architecture's sample size);
        the symbol itself takes any size the network takes.

    Returns
    -------
    tuple of str
        The symbol and params files.  The inputs are those of the ONNX export
        (:mod:`~gluonpan.export.architectures`: ``data``, and Panoptic FPN's ``window``),
        named ``data`` (one input) or ``data0``, ``data1`` as gluon names them; the outputs are
        those of ``net.predict``.
    """
    return _export(net, prefix, input_size)[2:]


def _export(net, prefix, input_size):
    """:func:`export_mxnet`; returns the architecture, the input shapes and the two files."""
    spec, shapes = _trace(net, input_size)
    net.export(prefix)
    return spec, shapes, prefix + '-symbol.json', prefix + '-0000.params'


def _onnx_output_name(mx_name):
    """The name mx2onnx gives the tensor of MXNet output ``mx_name`` (``..._output`` stripped,
    ``..._outputK`` -> ``...K``)."""
    match = re.match(r'^(.*)_output(\d*)$', mx_name)
    return match.group(1) + match.group(2) if match else mx_name


def _rename_inputs(graph, names):
    """Rename the graph's (non-weight) inputs, in order, to ``names``; mx2onnx also lists every
    weight as an input (overridable, so never folded by onnxruntime): those are dropped."""
    weights = {t.name for t in graph.initializer}
    images = [i for i in graph.input if i.name not in weights]
    renamed = dict(zip([i.name for i in images], names))
    for info in images:
        info.name = renamed[info.name]
    for onnx_node in graph.node:
        onnx_node.input[:] = [renamed.get(i, i) for i in onnx_node.input]
    del graph.input[:]
    graph.input.extend(images)


def _rename_outputs(graph, sym, names):
    """Expose the graph's outputs as ``names`` (in MXNet's output order) through Identity nodes."""
    onnx = require('onnx')
    produced = {o.name: o for o in graph.output}
    inner = [_onnx_output_name(n) for n in sym.list_outputs()]
    missing = [n for n in inner if n not in produced]
    if len(inner) != len(names) or missing:
        raise RuntimeError('the exported graph has outputs {} for the expected {} (missing {})'
                           .format(sorted(produced), list(names), missing))
    outputs = []
    for source, name in zip(inner, names):
        graph.node.append(onnx.helper.make_node('Identity', [source], [name], name=name))
        info = onnx.ValueInfoProto()
        info.CopyFrom(produced[source])
        info.name = name
        outputs.append(info)
    del graph.output[:]
    graph.output.extend(outputs)


def _name_nodes(graph):
    """Give every node a unique name: mx2onnx leaves most unnamed, and onnxruntime (1.20) names
    the nodes its GatherSliceToSplitFusion makes after the fused ones, so that two fusions of
    unnamed nodes clash and the session refuses the model."""
    seen = set()
    for index, onnx_node in enumerate(graph.node):
        if not onnx_node.name or onnx_node.name in seen:
            onnx_node.name = '{}_{}'.format(onnx_node.name or onnx_node.op_type, index)
        seen.add(onnx_node.name)


def symbol_to_onnx(sym, params, inputs, outputs, dynamic_shapes=None):
    """An MXNet symbol as an ONNX model (mx2onnx with our converters, opset :data:`OPSET`).

    Parameters
    ----------
    sym : mx.sym.Symbol
        The graph.
    params : dict
        ``{name: NDArray}`` of its weights (without ``arg:`` / ``aux:`` prefixes).
    inputs : list of (str, tuple)
        ``(name, shape)`` of each float32 data input, in the order of ``sym.list_inputs()``.
    outputs : list of str
        Names of the outputs, in the order of ``sym.list_outputs()``.
    dynamic_shapes : list of tuple, optional
        Each input's ONNX shape with named dimensions (strings) where sizes vary; None: static.

    Returns
    -------
    onnx.ModelProto
        The checked model.
    """
    onnx = require('onnx')
    register_converters()
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    float32 = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.float32))
    graph = MXNetGraph().create_onnx_graph_proto(
        sym, params, [shape for _, shape in inputs], [float32] * len(inputs),
        opset_version=OPSET, dynamic=dynamic_shapes is not None,
        dynamic_input_shapes=dynamic_shapes)
    _rename_inputs(graph, [name for name, _ in inputs])
    _rename_outputs(graph, sym, outputs)
    _name_nodes(graph)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid('', OPSET)],
                                   producer_name='gluonpan')
    onnx.checker.check_model(model)
    return model


def _symbolic_shapes(spec, static_shape=None):
    """The ONNX input shapes with named dynamic dimensions; ``static_shape``: the images' fixed
    shape (Panoptic FPN's window stays dynamic: it is the image inside the padding)."""
    data = static_shape or ('batch' if spec.batch is None else spec.batch, 3, 'height', 'width')
    return [tuple(data), (1, 1, 'image_height', 'image_width')][:len(spec.inputs)]


def export_onnx(net, path, name=None, input_size=None, dynamic=True):
    """Export the inference graph of ``net`` as one ONNX file.

    Parameters
    ----------
    net : SemanticFPN, PanopticFCN, PanopticFPN or PanopticSegFormer
        A zoo network with its weights (on any context; it is hybridized).
    path : str
        The ``.onnx`` file to write (atomically).
    name : str, optional
        The zoo name, recorded in the metadata.
    input_size : (int, int), optional
        ``(H, W)`` the graph is built on; with ``dynamic=False`` the only size the file takes.
    dynamic : bool
        Height and width (and the batch of Semantic FPN and Panoptic SegFormer) are symbolic:
        the file takes every size the MXNet network takes.  Otherwise the images have the fixed
        shape of ``input_size`` (Panoptic FPN's ``window`` stays dynamic).

    Returns
    -------
    str
        ``path``.
    """
    onnx = require('onnx')
    with tempfile.TemporaryDirectory() as tmp:
        spec, shapes, sym_file, params_file = _export(net, os.path.join(tmp, 'model'),
                                                      input_size)
        sym = mx.sym.load(sym_file)
        params = {k.split(':', 1)[1]: v for k, v in mx.nd.load(params_file).items()}
    symbolic = _symbolic_shapes(spec, None if dynamic else shapes[0])
    model = symbol_to_onnx(sym, params, list(zip(spec.inputs, shapes)), spec.outputs, symbolic)
    record = dict(describe(net, name), dynamic=bool(dynamic),
                  input_size=None if dynamic else list(shapes[0][2:]))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(record)})
    atomic_write(path, lambda tmp: onnx.save(model, tmp))
    logger.info('exported %s (%s -> %s, opset %d, input %s) to %s', name or spec.arch,
                ', '.join(spec.inputs), ', '.join(spec.outputs), OPSET, symbolic[0], path)
    return path
