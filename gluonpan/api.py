"""One-call inference: an image in, a panoptic (or, for a semantic model, a semantic) segmentation
out."""
import logging
import math
import numbers
import os

import mxnet as mx
import numpy as np

from .data.transforms import normalize
from .errors import DataError, UsageError

__all__ = ['predict']

logger = logging.getLogger(__name__)

#: what runs the network: MXNet, or onnxruntime on an exported ONNX model
BACKENDS = ('mxnet', 'onnxruntime')
#: the keyword arguments of :func:`predict` for panoptic models (fusion thresholds)
THRESHOLDS = ('score_threshold', 'overlap_threshold', 'stuff_area_threshold')
#: ... and for semantic models (test-time options of ``predict_semantic``)
SEMANTIC_OPTIONS = ('mode', 'crop_size', 'stride', 'scales', 'flip')
_DIVISOR = 32  # inputs are padded to multiples of the coarsest stride


def predict(net, image, backend=None, dtype=None, **thresholds):
    """Panoptic segmentation of one RGB image (semantic segmentation for a semantic model).

    Parameters
    ----------
    net : PanopticFPN, PanopticFCN, SemanticFPN, OnnxPredictor or str
        A network from :func:`gluonpan.model_zoo.get_model` (with weights), or an exported
        model run by onnxruntime: a :class:`gluonpan.export.OnnxPredictor` or the path of its
        ``.onnx`` file (``python -m gluonpan.export``).
    image : np.ndarray
        ``(H, W, 3)`` uint8 RGB (e.g. ``gluonpan.data.io.read_image(path, allow_gray=True)``,
        which also converts grayscale, RGBA, palette and 16-bit files).  Any size from 1x1: an
        image too small for the network's proposals is padded with the mean colour and the result
        cropped back (areas counted in the crop).
    backend : str, optional
        ``'mxnet'`` or ``'onnxruntime'``; default: what ``net`` is.  ``'onnxruntime'`` with an
        MXNet network exports it first, on every call (make an ``OnnxPredictor`` once instead).
        The post-processing and the fusion are the same for both.
    dtype : str, optional
        ``'bfloat16'`` (CPU) or ``'float16'`` (GPU): run the network's graph in that precision
        (:func:`gluonpan.precision.low_precision`; converted on every call, so convert once with
        it instead for repeated calls).  Default: as ``net`` is (float32, or a converted net's).
    **thresholds
        ``score_threshold``, ``overlap_threshold``, ``stuff_area_threshold`` (see
        :func:`gluonpan.postprocess.combine_instances_and_semantics`); for a semantic
        model the options of :func:`~gluonpan.model_zoo.semantic_fpn.predict_semantic`
        (``mode``, ``crop_size``, ``stride``, ``scales``, ``flip``) instead.

    Returns
    -------
    classes : np.ndarray
        A semantic model's only output: ``(H, W)`` int32 classes (Cityscapes train ids 0..18,
        ADE20K classes 0..149).
    pan_ids : np.ndarray
        ``(H, W)`` int32 panoptic ids (``category_id * 1000 + k`` things, ``category_id`` stuff,
        0 void), in the dataset's category ids (``net.categories``).
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score``, ``area`` per segment.

    Raises
    ------
    gluonpan.errors.DataError
        ``image`` is not a non-empty ``(H, W, 3)`` uint8 numpy array (an NDArray, floats,
        grayscale, RGBA ...); the message says what it got and how to convert it.
    gluonpan.errors.UsageError
        An unknown or non-numeric threshold, an unknown backend, or a ``net`` without
        initialised parameters.
    """
    net = _precision_net(_backend_net(net, backend), dtype)
    semantic = getattr(net, 'task', 'panoptic') == 'semantic'
    _check_options(thresholds, SEMANTIC_OPTIONS if semantic else THRESHOLDS)
    image = _checked_image(image)
    ctx = _context(net)
    if semantic:
        from .model_zoo.semantic_fpn import predict_semantic_labels
        data = mx.nd.array(normalize(image)[None], ctx=ctx)  # (1, 3, H, W)
        return predict_semantic_labels(net, data, **thresholds)[0]
    height, width = image.shape[:2]
    canvas = _canvas_size(net, height, width)
    data = normalize(image)  # (3, H, W) float32
    if canvas != (height, width):  # zero is the mean colour after normalisation
        data = np.pad(data, ((0, 0), (0, canvas[0] - height), (0, canvas[1] - width)))
    pan_ids, segments = net.predict_panoptic(mx.nd.array(data[None], ctx=ctx), **thresholds)
    if canvas != (height, width):
        pan_ids, segments = _crop(pan_ids, segments, height, width)
    return pan_ids, segments


def _backend_net(net, backend):
    """The network or :class:`~gluonpan.export.OnnxPredictor` that runs ``backend``."""
    if backend is not None and backend not in BACKENDS:
        raise UsageError('predict: unknown backend {!r}; valid: {}'.format(
            backend, ', '.join(BACKENDS)))
    from .export.predictor import OnnxPredictor
    if isinstance(net, str):
        if backend == 'mxnet' or not os.path.isfile(net):
            raise UsageError('predict takes a network from gluonpan.model_zoo.get_model{}, got '
                             'a str {!r}'.format('' if backend == 'mxnet' else
                                                 ' or an exported .onnx file', net))
        return OnnxPredictor(net)
    onnx = isinstance(net, OnnxPredictor)
    if backend == 'mxnet' and onnx:
        raise UsageError("predict: {} is run by onnxruntime, not backend='mxnet'".format(net))
    if backend == 'onnxruntime' and not onnx:
        _context(net)  # an initialised network
        logger.warning('predict: exporting the network to ONNX for this call; export it once '
                       '(gluonpan.export.OnnxPredictor.from_net) for repeated calls')
        return OnnxPredictor.from_net(net)
    return net


def _precision_net(net, dtype):
    """``net`` running in ``dtype`` (:func:`gluonpan.precision.low_precision`)."""
    if dtype is None or dtype == 'float32':
        return net
    from .export.predictor import OnnxPredictor
    from .precision import low_precision
    if isinstance(net, OnnxPredictor):
        raise UsageError('predict: dtype {!r} is for MXNet networks; {} runs as exported '
                         '(float32)'.format(dtype, net))
    _context(net)  # an initialised network
    if getattr(net, 'dtype', None) == dtype:  # converted already
        return net
    logger.warning('predict: converting the network to %s for this call; convert it once '
                   '(gluonpan.precision.low_precision) for repeated calls', dtype)
    return low_precision(net, dtype)


def _checked_image(image):
    """``image`` as an ``(H, W, 3)`` uint8 array, or a :class:`DataError` saying what it is."""
    if hasattr(image, 'asnumpy'):
        raise DataError('predict takes a numpy (H, W, 3) uint8 RGB image, got an MXNet NDArray '
                        'of shape {} dtype {}; pass image.asnumpy()'.format(
                            tuple(image.shape), np.dtype(image.dtype).name))
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except ValueError as err:
            raise DataError('predict takes an (H, W, 3) uint8 RGB image, got a {} that is not an '
                            'array ({})'.format(type(image).__name__, err)) from None
    got = 'got shape {} dtype {}'.format(image.shape, image.dtype)
    if image.dtype != np.uint8:
        hint = ('; it normalises the image itself, so pass the 0..255 pixels as uint8'
                if image.dtype.kind == 'f' else '')
        raise DataError('predict takes an (H, W, 3) uint8 RGB image, {}{}'.format(got, hint))
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError('predict takes an (H, W, 3) uint8 RGB image, {}; read image files with '
                        'gluonpan.data.io.read_image(path, allow_gray=True), which converts '
                        'grayscale and RGBA to RGB'.format(got))
    if min(image.shape[:2]) < 1:
        raise DataError('predict got an empty image of shape {}'.format(image.shape))
    return image


def _check_options(options, valid):
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError('predict got unknown option(s) {}; valid: {}'.format(
            ', '.join(unknown), ', '.join(valid)))
    for key, value in options.items():
        if key not in THRESHOLDS:
            continue  # semantic options are checked by predict_semantic
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or \
                not math.isfinite(value):
            raise UsageError('predict option {} must be a finite number, got {!r}'
                             .format(key, value))


def _context(net):
    """The context of the first parameter of ``net`` (the CPU for an ONNX model run by
    onnxruntime); a :class:`UsageError` if it has none."""
    from .export.predictor import OnnxPredictor
    if isinstance(net, OnnxPredictor):
        return mx.cpu()
    if not hasattr(net, 'collect_params'):
        raise UsageError('predict takes a network from gluonpan.model_zoo.get_model, got a {}'
                         .format(type(net).__name__))
    params = list(net.collect_params().values())
    if not params:
        raise UsageError('predict: the network has no parameters')
    try:
        return params[0].list_ctx()[0]
    except RuntimeError as err:
        raise UsageError('predict: the network is not initialised (load weights with '
                         'get_model(..., pretrained=True) or net.load_parameters): {}'
                         .format(err)) from None


def _canvas_size(net, height, width):
    """``(height, width)``, or a larger padded size when the image has fewer anchors than the
    proposals the RPN keeps (the network would reject it): multiples of 32, shorter side grown."""
    anchors, proposals = getattr(net, 'anchors', None), _test_proposals(net)
    if anchors is None or proposals is None:
        return height, width
    base = [int(math.ceil(side / _DIVISOR)) * _DIVISOR for side in (height, width)]
    canvas = list(base)

    def num_anchors():
        return sum(h * w for h, w in anchors.feature_shapes(*canvas)) * anchors.num_per_location

    while num_anchors() < proposals:
        canvas[int(canvas[1] < canvas[0])] += _DIVISOR
    return (height, width) if canvas == base else tuple(canvas)


def _test_proposals(net):
    """Proposals per image a Panoptic FPN keeps at inference (None for other models)."""
    rpn = getattr(net, 'rpn', None)
    return rpn.post_nms(False) if rpn is not None else getattr(net, 'num_proposals', None)


def _crop(pan_ids, segments, height, width):
    """The prediction of a padded canvas cropped to the image: areas recounted, segments that
    lie in the padding only dropped."""
    pan_ids = np.ascontiguousarray(pan_ids[:height, :width])
    ids, counts = np.unique(pan_ids, return_counts=True)
    area = dict(zip(ids.tolist(), counts.tolist()))
    kept = [dict(s, area=area[s['id']]) for s in segments if area.get(s['id'], 0) > 0]
    return pan_ids, kept
