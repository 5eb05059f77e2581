"""Inference in lower precision: a zoo network's inference graph (``net.predict``, up to the numpy
post-processing) converted by MXNet's automatic mixed precision (AMP), run in place of the
network by every post-processing, eval, demo and :func:`gluonpan.predict`.

* ``bfloat16`` runs on the CPU (oneDNN's kernels; fast on CPUs with ``avx512_bf16`` or
  ``amx_bf16``, emulated and usually slower than float32 elsewhere);
* ``float16`` runs on GPUs (MXNet 1.9.1 has no float16 convolution on the CPU).

AMP's operator lists decide what runs in low precision: convolutions and fully connected layers
(and, in float16, MXNet's list of safe operators); normalisations, softmax, box decoding, NMS,
RoIAlign, sampling and every output stay float32.  One change to MXNet's bfloat16 lists:
``Concat`` runs in float32, since it takes one dtype and MXNet's pass does not cast its inputs
when a bfloat16 feature map meets a float32 one (PanopticFCN's CoordConv coordinates); its
float16 lists already run it in the widest of its inputs' types.  The modulated deformable
convolution (PanopticFCN's position head), in none of MXNet's lists, also stays float32.
"""
import json
import logging
import os
import tempfile
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd

from .errors import UsageError

__all__ = ['DTYPES', 'LowPrecisionNet', 'low_precision', 'cpu_has_bfloat16']

logger = logging.getLogger(__name__)

#: the inference precisions of ``--dtype`` / ``predict(dtype=...)``
DTYPES = ('float32', 'bfloat16', 'float16')
#: operators forced to float32 where MXNet's lists run them in either type (module docstring)
EXTRA_FP32_OPS = ('Concat', 'concat')
#: operators in none of MXNet AMP's lists that take one dtype for all their inputs: kept float32
#: (PanopticFCN's deformable position head; its offsets come from a float32 branch)
FP32_UNLISTED_OPS = ('_contrib_ModulatedDeformableConvolution',)
#: CPU flags of native bfloat16 arithmetic (Linux /proc/cpuinfo names)
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_has_bfloat16(cpuinfo='/proc/cpuinfo'):
    """Whether the CPU has native bfloat16 instructions (:data:`BF16_CPU_FLAGS`); None when
    ``cpuinfo`` cannot be read (not Linux)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(':', 1)[1].split() for line in f
                          if line.startswith('flags')), [])
    except OSError:
        return None
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def low_precision(net, dtype):
    """``net`` running its inference graph in ``dtype``.

    Parameters
    ----------
    net : SemanticFPN, PanopticFPN, PanopticFCN or PanopticSegFormer
        A zoo network with its weights, on the CPU for ``bfloat16``, on GPUs for ``float16``.
    dtype : {'float32', 'bfloat16', 'float16'}
        ``'float32'`` returns ``net`` itself.

    Returns
    -------
    PanopticFPN, ... or LowPrecisionNet
        A :class:`LowPrecisionNet` for the low precisions.

    Raises
    ------
    gluonpan.errors.UsageError
        An unknown dtype, or one the network's device does not run.
    """
    if dtype not in DTYPES:
        raise UsageError('unknown inference dtype {!r}; valid: {}'.format(dtype, ', '.join(DTYPES)))
    if dtype == 'float32':
        return net
    return LowPrecisionNet(net, dtype)


def _contexts(net):
    params = list(net.collect_params().values())
    if not params:
        raise UsageError('low_precision: the network has no parameters')
    try:
        return params[0].list_ctx()
    except RuntimeError as err:
        raise UsageError('low_precision: the network is not initialised: {}'.format(err)) from None


def _check_device(dtype, contexts):
    gpu = any(c.device_type == 'gpu' for c in contexts)
    if dtype == 'bfloat16' and gpu:
        raise UsageError('--dtype bfloat16 runs on the CPU (MXNet 1.9.1 has bfloat16 kernels in '
                         'oneDNN only); on a GPU use --dtype float16')
    if dtype == 'float16' and not gpu:
        raise UsageError('--dtype float16 runs on GPUs (MXNet 1.9.1 has no float16 convolution '
                         'on the CPU); on the CPU use --dtype bfloat16')
    if dtype == 'bfloat16' and cpu_has_bfloat16() is False:
        logger.warning('this CPU has none of %s: oneDNN emulates bfloat16, which is usually '
                       'slower than float32', ', '.join(BF16_CPU_FLAGS))


def convert_symbol(sym, dtype):
    """MXNet AMP's conversion of an inference graph ``sym`` to ``dtype``, with every input (data
    and weights) declared float32 (AMP otherwise cannot type a weight that meets no convolution,
    such as Panoptic SegFormer's query embeddings) and :data:`EXTRA_FP32_OPS` in float32 where
    MXNet's lists would run them in either type."""
    from mxnet.contrib import amp
    list_dtype = amp.amp.bfloat16 if dtype == 'bfloat16' else dtype  # the lists' own spelling
    fp32_ops = list(amp.list_fp32_ops(list_dtype))
    fp32_ops += [op for op in EXTRA_FP32_OPS if op in amp.list_lp16_fp32_ops(list_dtype)]
    # operators in none of MXNet's lists (which refuses them in fp32_ops) stay float32 by name
    nodes = json.loads(sym.tojson())['nodes']
    excluded = [n['name'] for n in nodes if n['op'] in FP32_UNLISTED_OPS]
    return amp.convert_symbol(sym, target_dtype=dtype, fp32_ops=fp32_ops,
                              excluded_sym_names=excluded, data_names=sym.list_inputs())


class LowPrecisionNet(object):
    """A zoo network whose ``predict`` runs its inference graph converted to ``dtype`` by MXNet
    AMP (:func:`convert_symbol`); everything else (categories, thresholds, ``predict_panoptic``
    and the post-processing) is the network's own, so every caller of ``net.predict`` takes it.

    The graph is traced and converted on the first ``predict`` (one trace serves every input
    size), on the contexts of the network's parameters.

    Parameters
    ----------
    net : SemanticFPN, PanopticFPN, PanopticFCN or PanopticSegFormer
        The network, with its weights.
    dtype : {'bfloat16', 'float16'}
        See :func:`low_precision`.
    """

    def __init__(self, net, dtype):
        if dtype not in DTYPES[1:]:
            raise UsageError('LowPrecisionNet dtype must be one of {}, got {!r}'.format(
                ', '.join(DTYPES[1:]), dtype))
        self._check_network(net)
        self.net, self.dtype = net, dtype
        self._contexts = _contexts(net)
        _check_device(dtype, self._contexts)
        from .model_zoo import PanopticFPN
        self._window = isinstance(net, PanopticFPN)  # its second input: the image's window
        self._block = None

    @staticmethod
    def _check_network(net):
        if isinstance(net, LowPrecisionNet) or not callable(getattr(net, 'predict', None)) or \
                not hasattr(net, 'export'):
            raise UsageError('low_precision takes a network from gluonpan.model_zoo.get_model, '
                             'got a {}'.format(type(net).__name__))

    def __getattr__(self, name):
        if name.startswith('__') or name in ('net', '_block'):
            raise AttributeError(name)
        return getattr(self.net, name)

    def __repr__(self):
        return 'LowPrecisionNet({}, {})'.format(type(self.net).__name__, self.dtype)

    def hybridize(self, *args, **kwargs):
        """Nothing to do: the converted graph runs hybridized (``static_alloc``)."""

    def predict(self, data, image_size=None):
        """The network's ``predict`` outputs, computed in :attr:`dtype`, returned as float32
        NDArrays on ``data``'s context.

        Parameters
        ----------
        data : mx.nd.NDArray
            ``(B, 3, H, W)`` normalised images, as the network's ``predict`` takes them.
        image_size : (int, int), optional
            Panoptic FPN only: the image inside the padded ``data``.
        """
        inputs = [data]
        if self._window:  # only its shape is read: proposals are clipped to it
            size = tuple(data.shape[2:]) if image_size is None else tuple(image_size)
            inputs.append(mx.nd.zeros((1, 1) + size, ctx=data.context))
        elif image_size is not None:
            raise UsageError('{}: image_size is for Panoptic FPN models'.format(self))
        if self._block is None:
            self._block = self._convert(inputs)
        with autograd.predict_mode():
            outputs = self._block(*inputs)
        single = not isinstance(outputs, (list, tuple))
        outputs = [_float32(o) for o in ([outputs] if single else outputs)]
        return outputs[0] if single else tuple(outputs)

    def predict_panoptic(self, data, **thresholds):
        """The architecture's ``predict_panoptic`` run with this net (so with its ``predict``)."""
        return type(self.net).predict_panoptic(self, data, **thresholds)

    def _convert(self, inputs):
        """Trace the network's inference graph on ``inputs``, convert it, load it with the
        network's weights on its contexts."""
        net = self.net
        net.hybridize()  # a fresh graph for this call signature
        with autograd.predict_mode():
            net(*inputs)
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, 'model')
            net.export(prefix)
            sym = mx.sym.load(prefix + '-symbol.json')
            weights = {k.split(':', 1)[1] for k in mx.nd.load(prefix + '-0000.params')}
            names = [n for n in sym.list_inputs() if n not in weights]  # data (and window)
            # remove_amp_cast=False: MXNet drops the inserted casts from saved symbols by default
            convert_symbol(sym, self.dtype).save(prefix + '-amp-symbol.json',
                                                 remove_amp_cast=False)
            with warnings.catch_warnings():  # the weights' float32 is read from the file
                warnings.filterwarnings('ignore', message='Cannot decide type')
                block = mx.gluon.SymbolBlock.imports(prefix + '-amp-symbol.json', names,
                                                     prefix + '-0000.params',
                                                     ctx=self._contexts)
        block.hybridize(static_alloc=True)
        logger.info('%s: inference graph converted to %s', type(net).__name__, self.dtype)
        return block


def _float32(array):
    """``array`` as float32 when it is a low-precision float (AMP's outputs are float32 already
    where the graph ends in a float32 operator)."""
    if array.dtype in (np.float32, np.float64) or np.dtype(array.dtype).kind in 'iub':
        return array
    return mx.nd.amp_cast(array, dtype='float32')
