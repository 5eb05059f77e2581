"""One-call inference: an image in, a panoptic segmentation out."""
import mxnet as mx
import numpy as np

from .data.transforms import normalize
from .model_zoo.panoptic_fpn import predict_panoptic

__all__ = ['predict']


def predict(net, image, **thresholds):
    """Panoptic segmentation of one RGB image.

    Parameters
    ----------
    net : PanopticFPN
        A network from :func:`gluonpan.model_zoo.get_model` (with weights).
    image : np.ndarray
        ``(H, W, 3)`` uint8 RGB (e.g. ``gluonpan.data.io.read_image(path)``).
    **thresholds
        ``score_threshold``, ``overlap_threshold``, ``stuff_area_threshold`` (see
        :func:`gluonpan.model_zoo.panoptic_fpn.combine_instances_and_semantics`).

    Returns
    -------
    pan_ids : np.ndarray
        ``(H, W)`` int32 panoptic ids (``category_id * 1000 + k`` things, ``category_id`` stuff,
        0 void), in the dataset's category ids (``net.categories``).
    segments_info : list of dict
        ``id``, ``category_id``, ``isthing``, ``score``, ``area`` per segment.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError('predict takes an (H, W, 3) uint8 RGB image, got shape {} dtype {}'
                         .format(image.shape, image.dtype))
    if min(image.shape[:2]) < 1:
        raise ValueError('predict got an empty image of shape {}'.format(image.shape))
    ctx = next(iter(net.collect_params().values())).list_ctx()[0]
    data = mx.nd.array(normalize(image)[None], ctx=ctx)  # (1, 3, H, W)
    return predict_panoptic(net, data, **thresholds)
