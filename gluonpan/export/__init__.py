"""Export of the zoo networks' inference graphs, and the exported ONNX models run by onnxruntime.

::

    python -m gluonpan.export --network semantic_fpn_resnet18_v1b_citys \\
        --pretrained runs/semantic_quick/semantic_fpn_resnet18_v1b_citys-final.params \\
        --format onnx --out exported/

* :func:`export_onnx`: ``net.predict``'s graph (up to the numpy post-processing) as one ONNX
  file with dynamic input sizes (mxnet's exporter plus :mod:`~gluonpan.export.converters`);
* :func:`export_mxnet`: ``net.export``'s symbol + params, for MXNet's C++ / Scala predictors;
* :class:`OnnxPredictor`: an exported file run by onnxruntime, which ``gluonpan.predict``, the
  demo's ``--onnx`` and the architectures' post-processing take in place of the network.

ONNX export and inference need the ``export`` extra (``pip install -e ".[export]"``: onnx and
onnxruntime), imported on first use.
"""
from .architectures import ARCHITECTURES
from .converters import OPSET, register_converters
from .onnx_export import export_mxnet, export_onnx
from .predictor import OnnxPredictor

__all__ = ['ARCHITECTURES', 'OPSET', 'register_converters', 'export_mxnet', 'export_onnx',
           'OnnxPredictor']
