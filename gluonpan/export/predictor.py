"""An exported ONNX model run by onnxruntime in place of the MXNet network: the same
post-processing (``predict_semantic``, ``predict_panoptic``, the fusion) takes either."""
import json
import logging
import os
import tempfile

import mxnet as mx
import numpy as np

from ..errors import DataError, MissingFileError, UsageError
from ._deps import require
from .onnx_export import METADATA_KEY, export_onnx

__all__ = ['OnnxPredictor']

logger = logging.getLogger(__name__)


def _session(path, threads):
    """An onnxruntime CPU session of ``path``; one :class:`DataError` naming a file it cannot
    load."""
    ort = require('onnxruntime')
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    except Exception as err:  # onnxruntime raises its own exception types for bad files
        raise DataError('cannot load ONNX model {}: {}'.format(path, err)) from None


class OnnxPredictor(object):
    """A model exported by :func:`~gluonpan.export.export_onnx`, run by onnxruntime (CPU).

    It has what the post-processing reads of a network (``predict``, ``task``, ``categories``,
    ``predict_panoptic`` ...), taken from the file's metadata, so :func:`gluonpan.predict`, the
    demo (``--onnx``), ``predict_semantic`` and the architectures' ``predict_panoptic`` take it
    in place of the MXNet network and give the same results.

    Parameters
    ----------
    path : str
        The ``.onnx`` file.
    threads : int, optional
        onnxruntime's intra-op threads; default ``$OMP_NUM_THREADS`` (as MXNet), else
        onnxruntime's own default.

    Attributes
    ----------
    record : dict
        The file's model record (:func:`gluonpan.export.architectures.describe`: inputs,
        outputs ...).
    arch, name, task : str
        ``'semantic_fpn'`` / ``'panoptic_fcn'`` / ``'panoptic_fpn'`` /
        ``'panoptic_segformer'``, the zoo name, and
        ``'semantic'`` or ``'panoptic'``.
    num_classes : int
        Semantic models: classes K.
    categories : gluonpan.data.PanopticCategories
        Panoptic models: the dataset's categories.
    inference_options, fusion_defaults : dict
        PanopticFCN and Panoptic SegFormer: thresholds of its post-processing (SegFormer's
        with its ``test_size``) and of the eval / demo fusion.
    conventions, semantic_mode, anchors, num_proposals
        Panoptic FPN: its conventions, semantic classes, :class:`~gluonpan.nn.FPNAnchors` and
        proposals per image at inference.

    Raises
    ------
    gluonpan.errors.MissingFileError
        No such file.
    gluonpan.errors.DataError
        Not an ONNX file onnxruntime loads, or not one :func:`export_onnx` wrote.
    """

    def __init__(self, path, threads=None):
        if not os.path.isfile(path):
            raise MissingFileError('ONNX model {}: no such file'.format(path))
        if threads is None:
            threads = int(os.environ.get('OMP_NUM_THREADS', '0') or 0)
        self.path = path
        self._session = _session(path, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise DataError('ONNX model {} has no {!r} metadata: export it with python -m '
                            'gluonpan.export'.format(path, METADATA_KEY))
        self.record = json.loads(meta[METADATA_KEY])
        self.arch, self.name, self.task = (self.record[k] for k in ('arch', 'name', 'task'))
        self._set_model_attributes(self.record)

    def _set_model_attributes(self, record):
        """The attributes of the architecture's network that its post-processing reads."""
        if self.arch == 'semantic_fpn':
            self.num_classes = record['num_classes']
            return
        from ..data.categories import PanopticCategories
        self.categories = PanopticCategories(record['categories'])
        if self.arch in ('panoptic_fcn', 'panoptic_segformer'):
            self.inference_options = dict(record['inference_options'])
            self.fusion_defaults = dict(record['fusion_defaults'])
            if self.arch == 'panoptic_fcn':
                from ..data.fcn_targets import level_shapes
                self.level_shapes = level_shapes
        else:
            from ..nn.anchors import FPNAnchors
            self.conventions = dict(record['conventions'])
            self.semantic_mode = record['semantic_mode']
            self.anchors = FPNAnchors(**record['anchors'])
            self.num_proposals = record['num_proposals']

    @classmethod
    def from_net(cls, net, name=None, folder=None, **kwargs):
        """Export ``net`` (:func:`~gluonpan.export.export_onnx`, dynamic sizes) into ``folder``
        (default a temporary one, removed at once: the session keeps the model) and load it."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(folder or tmp, '{}.onnx'.format(name or 'model'))
            export_onnx(net, path, name=name)
            return cls(path, **kwargs)

    def __repr__(self):
        return 'OnnxPredictor({!r}, {})'.format(self.path, self.name or self.arch)

    def collect_params(self):
        """No MXNet parameters (an empty dict): the post-processing runs on the input's
        context."""
        return {}

    def _check(self, data):
        batch, divisor = self.record['batch'], self.record['divisor']
        shape = tuple(data.shape)
        if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
            raise ValueError('{} takes images (B, 3, H, W), got shape {}'.format(self, shape))
        if batch is not None and shape[0] != batch:
            raise ValueError('{} takes a batch of {} image, got shape {}'.format(
                self, batch, shape))
        if shape[2] % divisor or shape[3] % divisor:
            raise ValueError('{}: height and width must be multiples of {}, got {}x{} (use '
                             'predict_panoptic for any size)'.format(self, divisor, *shape[2:]))
        size = self.record.get('input_size')  # a static export: one image of that size
        if size is not None and (list(shape[2:]) != size or shape[0] != 1):
            raise ValueError('{} was exported for one {}x{} image only, got shape {}'.format(
                self, size[0], size[1], shape))

    def predict(self, data, image_size=None):
        """The outputs of the network's ``predict`` (NDArrays on ``data``'s context, or on the
        CPU for a numpy ``data``): one array for a semantic model, a tuple otherwise.

        Parameters
        ----------
        data : mx.nd.NDArray or np.ndarray
            ``(B, 3, H, W)`` normalised images (B = 1 and H, W multiples of 32 for Panoptic
            FCN and Panoptic FPN; any B, H and W for Semantic FPN and Panoptic SegFormer).
        image_size : (int, int), optional
            Panoptic FPN: the image inside the padded ``data`` (see ``PanopticFPN.predict``).
        """
        self._check(data)
        ctx = data.context if hasattr(data, 'context') else mx.cpu()
        array = data.asnumpy() if hasattr(data, 'asnumpy') else np.asarray(data)
        feeds = {'data': array.astype(np.float32, copy=False)}
        if 'window' in self.record['inputs']:  # only its shape is read
            size = tuple(array.shape[2:]) if image_size is None else tuple(image_size)
            if len(size) != 2 or not 1 <= size[0] <= array.shape[2] or \
                    not 1 <= size[1] <= array.shape[3]:
                raise ValueError('{}: image_size {} does not fit in the input {}'.format(
                    self, image_size, array.shape))
            feeds['window'] = np.zeros((1, 1) + size, np.float32)
        elif image_size is not None:
            raise UsageError('{}: image_size is for Panoptic FPN models'.format(self))
        outputs = [mx.nd.array(o, ctx=ctx, dtype=o.dtype)
                   for o in self._session.run(self.record['outputs'], feeds)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def predict_panoptic(self, data, **thresholds):
        """The architecture's ``predict_panoptic`` with this model: the panoptic map and segments
        of one ``(1, 3, H, W)`` normalised image of any size."""
        if self.arch == 'panoptic_fcn':
            from ..model_zoo.panoptic_fcn.inference import predict_panoptic
        elif self.arch == 'panoptic_fpn':
            from ..model_zoo.panoptic_fpn.inference import predict_panoptic
        elif self.arch == 'panoptic_segformer':
            from ..model_zoo.panoptic_segformer.inference import predict_panoptic
        else:
            raise UsageError('{} is a semantic model: use predict_semantic'.format(self))
        return predict_panoptic(self, data, **thresholds)
