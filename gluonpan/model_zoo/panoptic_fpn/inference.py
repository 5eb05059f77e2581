"""Inference of one image: pad, run the network, paste masks, fuse into a panoptic map."""
import mxnet as mx
import numpy as np
from gluoncv.data.transforms.mask import fill

from ...data.batchify import pad_to_multiple
from .fusion import combine_instances_and_semantics

__all__ = ['pad_input', 'predict_panoptic']


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
        probability 0.5 when pasted into the image (gluoncv's ``fill``).

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
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, W - 1)  # boxes of the padded input, clipped to H x W
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, H - 1)
    probs = masks[0].asnumpy()[keep]
    full = fill(probs, boxes, (W, H)) if len(keep) else np.zeros((0, H, W), dtype=np.uint8)
    return combine_instances_and_semantics(
        full, scores[keep], ids[keep].astype(np.int64), semantic, net.categories,
        score_threshold=score_threshold, overlap_threshold=overlap_threshold,
        stuff_area_threshold=stuff_area_threshold, semantic_mode=net.semantic_mode)
