"""Semantic inference: whole image or sliding window, multi-scale and flip test-time augmentation.

The rules are mmsegmentation's (``EncoderDecoder.slide_inference`` / ``whole_inference`` /
``inference`` and its test-time augmentation):

* **sliding window**: ``ceil``-style grid of ``max(H - crop + stride - 1, 0) // stride + 1``
  windows per axis, each window clamped to the image (the last one ends at the border, and a
  crop larger than the image shrinks to it); the *logits* of the windows are summed per pixel
  and divided by the number of windows covering it; the softmax comes after.
* **test-time augmentation**: for every scale the image is resized (size ``int(s * H + 0.5)``,
  bilinear), optionally flipped left-right, predicted (whole or sliding window), its logits
  resized back to the original size (bilinear, ``align_corners=False``), turned into
  probabilities and flipped back; the *probabilities* of all the augmented views are averaged.
"""
import logging

import mxnet as mx
import numpy as np

from .semantic_fpn import check_images

__all__ = ['predict_semantic', 'predict_semantic_labels', 'slide_windows', 'resize_to']

logger = logging.getLogger(__name__)

MODES = ('whole', 'slide')


def _pair(value, what):
    """``(h, w)`` of an int or a pair of positive ints."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError('{} must be a positive int or a (height, width) pair, got {!r}'
                         .format(what, value))
    return int(pair[0]), int(pair[1])


def slide_windows(height, width, crop_size, stride):
    """The windows ``(y1, y2, x1, x2)`` of mmsegmentation's sliding-window inference.

    Parameters
    ----------
    height, width : int
        Image size.
    crop_size, stride : int or (int, int)
        Window size and step ``(h, w)``.

    Returns
    -------
    list of tuple
        Row-major windows, each inside the image and ``min(crop, size)`` long per axis.
    """
    (h_crop, w_crop), (h_stride, w_stride) = _pair(crop_size, 'crop_size'), _pair(stride, 'stride')

    def axis(size, crop, step):
        spans = []
        for k in range(max(size - crop + step - 1, 0) // step + 1):
            end = min(k * step + crop, size)
            spans.append((max(end - crop, 0), end))
        return spans

    return [(y1, y2, x1, x2) for y1, y2 in axis(height, h_crop, h_stride)
            for x1, x2 in axis(width, w_crop, w_stride)]


def resize_to(x, height, width):
    """Bilinear resize of (B, C, h, w) to (B, C, height, width) with half-pixel centres
    (PyTorch's ``align_corners=False``, no antialiasing); ``x`` itself when the size matches."""
    if tuple(x.shape[2:]) == (height, width):
        return x
    return mx.nd.contrib.BilinearResize2D(x, height=height, width=width, align_corners=False)


def _net_context(net, data):
    """The context to run on: ``data``'s when the net has parameters there, else the net's first."""
    params = list(net.collect_params().values())
    contexts = params[0].list_ctx() if params else [data.context]
    return data.context if data.context in contexts else contexts[0]


def _slide_logits(net, data, crop_size, stride):
    """Window logits summed per pixel over the windows and divided by their count (B, K, H, W)."""
    B, _, H, W = data.shape
    windows = slide_windows(H, W, crop_size, stride)
    count = np.zeros((H, W), np.float32)
    for y1, y2, x1, x2 in windows:
        count[y1:y2, x1:x2] += 1
    if not count.all():
        rows, cols = np.nonzero(count == 0)
        raise ValueError('stride {} leaves pixels of a {}x{} image outside every {} window '
                         '(first: row {}, column {}); use a stride <= crop_size'.format(
                             stride, H, W, crop_size, rows[0], cols[0]))
    logger.debug('%d windows of %s over a %dx%d image', len(windows), crop_size, H, W)
    total = None
    for y1, y2, x1, x2 in windows:
        logits = net.predict(data[:, :, y1:y2, x1:x2])  # (B, K, y2 - y1, x2 - x1)
        if total is None:
            total = mx.nd.zeros((B, logits.shape[1], H, W), ctx=logits.context)
        total[:, :, y1:y2, x1:x2] += logits
    count = mx.nd.array(count, ctx=total.context).reshape((1, 1, H, W))  # (1, 1, H, W)
    return mx.nd.broadcast_div(total, count)


def predict_semantic(net, data, mode='whole', crop_size=None, stride=None, scales=(1.0,),
                     flip=False):
    """Class probabilities of a batch of images, with mmsegmentation's inference rules.

    Parameters
    ----------
    net : SemanticFPN
        Anything with ``predict(data) -> (B, K, h, w)`` logits at its input size (hybridized or
        not).
    data : mx.nd.NDArray
        (B, 3, H, W) normalised images, any size and context (a DataLoader's ``cpu_shared(0)``
        batch included): they are moved to the net's context.
    mode : str
        ``'whole'`` (one forward per view) or ``'slide'`` (windows of ``crop_size`` every
        ``stride`` pixels, logits averaged).
    crop_size, stride : int or (int, int), optional
        Window size and step ``(h, w)``, needed by ``'slide'`` (mmsegmentation's 769x769
        Cityscapes configs: crop 769, stride 513); a window larger than the view shrinks to it.
    scales : sequence of float
        Resize factors of the views (mmsegmentation's ms test: 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
        relative to the test scale the image already has).
    flip : bool
        Also predict every view flipped left-right (and flip its probabilities back).

    Returns
    -------
    mx.nd.NDArray
        (B, K, H, W) probabilities (softmax over K, averaged over the views) on the net's
        context.
    """
    check_images(data, 'predict_semantic')
    if mode not in MODES:
        raise ValueError('mode={!r}: use one of {}'.format(mode, MODES))
    if mode == 'slide' and (crop_size is None or stride is None):
        raise ValueError("mode='slide' needs crop_size and stride")
    scales = tuple(scales)
    if not scales or any(not s > 0 for s in scales):
        raise ValueError('scales must be positive factors, got {!r}'.format(scales))
    data = data.as_in_context(_net_context(net, data))
    H, W = data.shape[2:]
    probs, views = None, 0
    for scale in scales:
        view = resize_to(data, max(int(H * scale + 0.5), 1), max(int(W * scale + 0.5), 1))
        for flipped in ((False, True) if flip else (False,)):
            image = view.flip(axis=3) if flipped else view
            if mode == 'slide':
                logits = _slide_logits(net, image, crop_size, stride)
            else:
                logits = net.predict(image)
            prob = mx.nd.softmax(resize_to(logits, H, W), axis=1)  # (B, K, H, W)
            prob = prob.flip(axis=3) if flipped else prob
            probs = prob if probs is None else probs + prob
            views += 1
    return probs / views


def predict_semantic_labels(net, data, **kwargs):
    """Per-pixel classes (B, H, W) int32 (numpy) of :func:`predict_semantic`'s probabilities;
    ``kwargs`` are its options."""
    return predict_semantic(net, data, **kwargs).argmax(axis=1).asnumpy().astype(np.int32)
