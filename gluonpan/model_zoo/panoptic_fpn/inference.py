"""Inference of one image: pad, run the network, paste masks, fuse into a panoptic map."""
import mxnet as mx
import numpy as np
from gluoncv.data.transforms.mask import fill

from ...data.batchify import pad_to_multiple
from ...utils.resize import resize_bilinear
from ...postprocess import combine_instances_and_semantics

__all__ = ['pad_input', 'predict_panoptic', 'resize_bilinear', 'paste_masks_torchvision',
           'paste_masks_detectron2']


def pad_input(data, divisor=32):
    """Zero-pad (B, C, H, W) at the bottom and right to multiples of ``divisor``.

    On ImageNet-normalised input, zero is the mean colour.
    """
    B, C, H, W = data.shape
    Hp, Wp = pad_to_multiple(H, divisor), pad_to_multiple(W, divisor)
    if (Hp, Wp) == (H, W):
        return data
    padded = mx.nd.zeros((B, C, Hp, Wp), ctx=data.context, dtype=data.dtype)
    padded[:, :, :H, :W] = data
    return padded


def paste_masks_torchvision(probs, boxes, size, threshold=0.5):
    """Paste box masks into the image as torchvision's ``paste_masks_in_image`` does.

    Parameters
    ----------
    probs : np.ndarray
        (D, M, M) mask probabilities in their boxes.
    boxes : np.ndarray
        (D, 4) boxes in image pixels (clipped to ``[0, W] x [0, H]``).
    size : tuple of int
        ``(width, height)`` of the image.
    threshold : float
        Pixels with a probability above it are the mask.

    Returns
    -------
    np.ndarray
        (D, H, W) uint8 masks.
    """
    width, height = size
    out = np.zeros((len(probs), height, width), np.uint8)
    if not len(probs):
        return out
    m = probs.shape[-1]
    padded = np.pad(probs.astype(np.float32), [(0, 0), (1, 1), (1, 1)])  # (D, M + 2, M + 2)
    scale = np.float32((m + 2) / m)
    boxes = boxes.astype(np.float32)
    half = (boxes[:, 2:] - boxes[:, :2]) * np.float32(0.5) * scale  # (D, 2) half w, h
    centre = (boxes[:, 2:] + boxes[:, :2]) * np.float32(0.5)  # (D, 2)
    boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.int64)  # truncated
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        w, h = max(int(x2 - x1 + 1), 1), max(int(y2 - y1 + 1), 1)
        mask = resize_bilinear(padded[k], h, w) > threshold  # (h, w)
        xa, xb, ya, yb = max(x1, 0), min(x2 + 1, width), max(y1, 0), min(y2 + 1, height)
        if xa < xb and ya < yb:
            out[k, ya:yb, xa:xb] = mask[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


def _sampling_matrix(start, stop, lo, hi, m):
    """(stop - start, m) bilinear weights of pixel centres ``start..stop-1`` in the box side
    ``[lo, hi]`` over ``m`` mask cells (zero outside the mask), float32 as grid_sample computes.
    """
    grid = (np.arange(start, stop, dtype=np.float32) + np.float32(0.5) - lo) / (hi - lo) * \
        np.float32(2) - np.float32(1)  # (n,) in [-1, 1] inside the box
    src = ((grid + np.float32(1)) * np.float32(m) - np.float32(1)) / np.float32(2)  # (n,)
    low = np.floor(src).astype(np.int64)  # (n,)
    frac = src - low  # (n,)
    weights = np.zeros((len(src), m), np.float32)
    rows = np.arange(len(src))
    for cell, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (cell >= 0) & (cell < m)
        weights[rows[inside], cell[inside]] = weight[inside]
    return weights


def paste_masks_detectron2(probs, boxes, size, threshold=0.5):
    """Paste box masks into the image as detectron2's ``paste_masks_in_image`` does on the CPU.

    Each image pixel centre within the box's integer bounds +- 1 pixel is mapped into the
    (unrounded, unpadded) box, where the mask probabilities are sampled bilinearly
    (``grid_sample``, ``align_corners=False``, zero outside the mask); pixels ``>= threshold``
    are the mask.  Arguments and result as :func:`paste_masks_torchvision`.
    """
    width, height = size
    out = np.zeros((len(probs), height, width), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float32)):
        if not (x1 > x0 and y1 > y0):
            continue  # an empty box: detectron2's postprocess drops it
        xa, xb = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, width)
        ya, yb = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, height)
        mask = probs[k].astype(np.float32)
        wy = _sampling_matrix(ya, yb, y0, y1, mask.shape[0])  # (yb - ya, M)
        wx = _sampling_matrix(xa, xb, x0, x1, mask.shape[1])  # (xb - xa, M)
        out[k, ya:yb, xa:xb] = wy.dot(mask).dot(wx.T) >= threshold
    return out


def predict_panoptic(net, data, score_threshold=0.5, overlap_threshold=0.5,
                     stuff_area_threshold=4096):
    """Panoptic prediction of one image in the dataset's category ids.

    Parameters
    ----------
    net : PanopticFPN
        The network (hybridized or not), on the context of ``data``.
    data : mx.nd.NDArray
        (1, 3, H, W) normalised image, any H and W.
    score_threshold, overlap_threshold, stuff_area_threshold : float, float, int
        Fusion thresholds, see :func:`combine_instances_and_semantics`.  Proposals and
        detections are clipped to the image (``net.conventions['clip_to_image']``) or to the
        input padded to multiples of 32.  Masks are binarised at
        probability 0.5 when pasted into the image, by gluoncv's ``fill``,
        :func:`paste_masks_torchvision` or :func:`paste_masks_detectron2` as
        ``net.conventions['mask_paste']`` says.

    Returns
    -------
    pan_ids : np.ndarray
        (H, W) int32 segment ids (``category_id * 1000 + k`` things, ``category_id`` stuff, 0 void).
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score``, ``area`` per segment.
    """
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError('predict_panoptic takes one image (1, 3, H, W), got {}'.format(data.shape))
    H, W = data.shape[2:]
    clip = getattr(net, 'conventions', {}).get('clip_to_image', False)
    ids, scores, boxes, masks, sem_logits = net.predict(pad_input(data),
                                                        (H, W) if clip else None)
    semantic = sem_logits[0, :, :H, :W].argmax(axis=0).asnumpy().astype(np.int32)
    ids, scores = ids[0, :, 0].asnumpy(), scores[0, :, 0].asnumpy()
    keep = np.flatnonzero((ids >= 0) & (scores >= score_threshold))
    boxes = boxes[0].asnumpy()[keep]
    probs = masks[0].asnumpy()[keep]
    full = _paste(net, probs, boxes, W, H)
    return combine_instances_and_semantics(
        full, scores[keep], ids[keep].astype(np.int64), semantic, net.categories,
        score_threshold=score_threshold, overlap_threshold=overlap_threshold,
        stuff_area_threshold=stuff_area_threshold, semantic_mode=net.semantic_mode)


def _paste(net, probs, boxes, width, height):
    """(D, H, W) binary masks of the (D, M, M) probabilities in their boxes (of the padded
    input, clipped here to the image), pasted as ``net.conventions['mask_paste']`` says."""
    style = getattr(net, 'conventions', {}).get('mask_paste', 'gluoncv')
    if style in ('torchvision', 'detectron2'):
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        paste = paste_masks_torchvision if style == 'torchvision' else paste_masks_detectron2
        return paste(probs, boxes, (width, height))
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width - 1)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height - 1)
    if not len(probs):
        return np.zeros((0, height, width), dtype=np.uint8)
    return fill(probs, boxes, (width, height))
