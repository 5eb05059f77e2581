"""Inference of one image: pad, run the network, paste masks, fuse into a panoptic map."""
import mxnet as mx
import numpy as np
from gluoncv.data.transforms.mask import fill

from ...data.batchify import pad_to_multiple
from .fusion import combine_instances_and_semantics

__all__ = ['pad_input', 'predict_panoptic', 'resize_bilinear', 'paste_masks_torchvision']


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


def resize_bilinear(image, height, width):
    """Bilinear resize of a 2-D float32 array with half-pixel centres (no antialiasing).

    The sampling of ``torch.nn.functional.interpolate(mode='bilinear', align_corners=False)``:
    output pixel ``i`` reads input ``max((i + 0.5) * n_in / n_out - 0.5, 0)``, edges clamped.
    """
    def axis(n_out, n_in):
        src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) *
                         np.float32(n_in / n_out) - np.float32(0.5), np.float32(0))
        lo = np.minimum(src.astype(np.int64), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)

    y0, y1, fy = axis(height, image.shape[0])
    x0, x1, fx = axis(width, image.shape[1])
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx  # (height, width)
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx  # (height, width)
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


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
        Fusion thresholds, see :func:`combine_instances_and_semantics`.  Masks are binarised at
        probability 0.5 when pasted into the image, by gluoncv's ``fill`` or by
        :func:`paste_masks_torchvision` as ``net.conventions['mask_paste']`` says.

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
    ids, scores, boxes, masks, sem_logits = net.predict(pad_input(data))
    semantic = sem_logits[0, :, :H, :W].argmax(axis=0).asnumpy().astype(np.int32)
    ids, scores = ids[0, :, 0].asnumpy(), scores[0, :, 0].asnumpy()
    keep = np.flatnonzero((ids >= 0) & (scores >= score_threshold))
    boxes = boxes[0].asnumpy()[keep]
    probs = masks[0].asnumpy()[keep]
    if getattr(net, 'conventions', {}).get('mask_paste', 'gluoncv') == 'torchvision':
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, W)  # boxes of the padded input, clipped to H x W
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, H)
        full = paste_masks_torchvision(probs, boxes, (W, H))
    else:
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, W - 1)  # boxes of the padded input, clipped
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, H - 1)
        full = fill(probs, boxes, (W, H)) if len(keep) else np.zeros((0, H, W), dtype=np.uint8)
    return combine_instances_and_semantics(
        full, scores[keep], ids[keep].astype(np.int64), semantic, net.categories,
        score_threshold=score_threshold, overlap_threshold=overlap_threshold,
        stuff_area_threshold=stuff_area_threshold, semantic_mode=net.semantic_mode)
