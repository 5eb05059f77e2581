"""Coloured overlays of panoptic results: category colours, instance outlines, labels."""
import cv2
import numpy as np

__all__ = ['panoptic_overlay']


def panoptic_overlay(image, pan_ids, segments_info, categories, alpha=0.55, label_things=True):
    """Blend a panoptic segmentation over its image.

    Stuff regions take their category colour (Cityscapes colours for Cityscapes); each thing
    instance a shade of its category colour so touching instances differ; every segment border is
    outlined, and thing instances are labelled with their category name (and score if given).

    Parameters
    ----------
    image : np.ndarray
        ``(H, W, 3)`` uint8 RGB.
    pan_ids : np.ndarray
        ``(H, W)`` panoptic ids, 0 = void (left as the image).
    segments_info : list of dict
        ``id``, ``category_id`` and optionally ``score``.
    categories : PanopticCategories
        Names, colours and thing flags.
    alpha : float
        Opacity of the colours.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    if image.shape[:2] != pan_ids.shape:
        raise ValueError('image {} and panoptic ids {} differ in size'.format(image.shape,
                                                                               pan_ids.shape))
    colour = np.zeros(image.shape, np.float32)
    covered = np.zeros(pan_ids.shape, bool)
    labels = []
    rng = np.random.default_rng(0)
    for seg in segments_info:
        cat = categories.check_category(seg['category_id'], 'segment {}'.format(seg['id']))
        mask = pan_ids == seg['id']
        if not mask.any():
            continue
        base = np.array(categories.color(cat['id']), np.float32)
        if cat['isthing']:
            base = np.clip(base + rng.integers(-40, 41, 3), 0, 255)
            ys, xs = np.nonzero(mask)
            score = seg.get('score')
            text = cat['name'] + (' {:.2f}'.format(score) if score is not None else '')
            labels.append((text, int(xs.min()), int(ys.min())))
        colour[mask] = base
        covered |= mask
    out = image.astype(np.float32)
    out[covered] = (1 - alpha) * out[covered] + alpha * colour[covered]
    # outlines where the segment id changes
    ids = pan_ids.astype(np.int64)
    edge = np.zeros(ids.shape, bool)
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[1:] |= ids[1:] != ids[:-1]
    out[edge] = 255
    out = out.astype(np.uint8)
    if label_things:
        for text, x, y in labels:
            y = max(y - 3, 10)
            cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 2, cv2.LINE_AA)
            cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)
    return out
