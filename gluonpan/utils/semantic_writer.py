"""Write semantic predictions in the official formats, and coloured overlays.

* Cityscapes: a ``(H, W)`` map of train ids becomes a label-id PNG (train id -> label id through
  ``cityscapesscripts.helpers.labels``, 255 -> 0 "unlabeled"), named
  ``{city}_{seq}_{frame}_pred_labelIds.png`` so that ``csEvalPixelLevelSemanticLabeling`` and
  :func:`~gluonpan.utils.metrics.semantic_files.evaluate_cityscapes_semantic_files` find it.
* ADE20K: class ``k`` is stored as ``k + 1`` (0 is "other"), in ``NAME.png`` for the annotation
  ``NAME.png``, as mmsegmentation writes it.
* Overlays: Cityscapes label colours by train id, otherwise a deterministic palette; pixels of
  the ignore label keep the image.

PNGs are written with OpenCV through :func:`~gluonpan.utils.checkpoint.atomic_write`.
"""
import os

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels

from ..errors import DataError, UnreadableFileError, UsageError
from .checkpoint import atomic_write
from .panoptic_writer import imwrite_rgb

__all__ = ['TRAIN_TO_LABEL_ID', 'train_to_label_ids', 'cityscapes_prediction_name',
           'write_label_png', 'write_cityscapes_labels',
           'ade20k_values', 'write_ade20k_png', 'cityscapes_palette', 'default_palette',
           'semantic_overlay', 'SemanticWriter']


#: train id -> Cityscapes label id (the first non-ignored label of that train id); 255 -> 0
#: ("unlabeled"); -1 for the others.  Entry 256 (-1) is where out-of-range values are sent.
_TRAIN_LUT = np.full(257, -1, np.int16)
_TRAIN_LUT[255] = 0
for _label in reversed(labels):
    if 0 <= _label.trainId < 255 and _label.id >= 0 and not _label.ignoreInEval:
        _TRAIN_LUT[_label.trainId] = _label.id
TRAIN_TO_LABEL_ID = _TRAIN_LUT[:256]


def train_to_label_ids(train_ids, where='prediction'):
    """``(H, W)`` Cityscapes train ids (0..18, 255 = ignore) -> uint8 label ids (255 -> 0); any
    other value is a :class:`~gluonpan.errors.DataError` naming it and ``where``."""
    train_ids = train_ids.asnumpy() if hasattr(train_ids, 'asnumpy') else np.asarray(train_ids)
    if train_ids.dtype.kind not in 'iu':
        raise DataError('{}: train ids must be integers, got dtype {}'.format(
            where, train_ids.dtype))
    index = train_ids if train_ids.dtype == np.uint8 else np.clip(train_ids, -1, 256)  # -1: 256
    ids = _TRAIN_LUT[index]
    if (ids < 0).any():
        raise DataError('{}: value {} is not a Cityscapes train id (0..18 or 255)'.format(
            where, int(train_ids[ids < 0][0])))
    return ids.astype(np.uint8)


def cityscapes_prediction_name(image_file):
    """``.../frankfurt_000000_000294_leftImg8bit.png`` -> ``frankfurt_000000_000294_pred_labelIds
    .png`` (any Cityscapes file name, or its ``{city}_{seq}_{frame}`` stem, will do)."""
    parts = os.path.basename(image_file).split('.')[0].split('_')
    if len(parts) < 3:
        raise UsageError('{} is not a Cityscapes name ({{city}}_{{seq}}_{{frame}}...)'.format(
            image_file))
    return '{}_pred_labelIds.png'.format('_'.join(parts[:3]))


def write_label_png(path, values):
    """Write an ``(H, W)`` uint8 (or uint16) map as a single-channel PNG, atomically."""
    values = np.ascontiguousarray(values)
    if values.ndim != 2 or values.dtype not in (np.uint8, np.uint16):
        raise UsageError('a label PNG needs an (H, W) uint8/uint16 map, got shape {} dtype {}'
                         .format(values.shape, values.dtype))
    ok, data = cv2.imencode('.png', values)
    if not ok:
        raise UnreadableFileError('could not encode label PNG {}'.format(path))

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data.tobytes())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, write)


def write_cityscapes_labels(path, train_ids):
    """Write ``(H, W)`` Cityscapes train ids (0..18, 255) as a label-id PNG."""
    write_label_png(path, train_to_label_ids(train_ids, 'prediction for {}'.format(path)))


def ade20k_values(classes, num_classes=150):
    """``(H, W)`` classes 0..num_classes-1 -> uint8 ADE20K values ``k + 1``; 255 (ignore) -> 0."""
    classes = np.asarray(classes)
    if classes.dtype.kind not in 'iu':
        raise DataError('ADE20K classes must be integers, got dtype {}'.format(classes.dtype))
    ignored = classes == 255
    bad = ((classes < 0) | (classes >= num_classes)) & ~ignored
    if bad.any():
        raise DataError('value {} is not an ADE20K class (0..{}) nor 255'.format(
            int(classes[bad][0]), num_classes - 1))
    values = classes.astype(np.uint8 if num_classes < 255 else np.uint16) + 1  # (H, W)
    values[ignored] = 0
    return values


def write_ade20k_png(path, classes, num_classes=150):
    """Write ``(H, W)`` classes as an ADE20K prediction PNG (class ``k`` -> ``k + 1``)."""
    write_label_png(path, ade20k_values(classes, num_classes))


def cityscapes_palette():
    """``(256, 3)`` uint8 RGB colours by train id (cityscapesscripts' label colours; others 0)."""
    palette = np.zeros((256, 3), np.uint8)
    for label in reversed(labels):  # the first label of a train id wins
        if 0 <= label.trainId < 255 and not label.ignoreInEval:
            palette[label.trainId] = label.color
    return palette


def default_palette(num=256):
    """``(num, 3)`` uint8 RGB: the bits of the class index spread over R, G, B from the top bit
    down (deterministic, neighbouring classes far apart)."""
    idx = np.arange(num)
    palette = np.zeros((num, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((idx >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


def semantic_overlay(image, classes, palette=None, alpha=0.5, ignore_label=255):
    """Blend class colours over an image.

    Parameters
    ----------
    image : np.ndarray
        ``(H, W, 3)`` uint8 RGB.
    classes : np.ndarray
        ``(H, W)`` class ids (train ids for Cityscapes); ``ignore_label`` keeps the image.
    palette : np.ndarray or str, optional
        ``(N, 3)`` RGB colours by class, ``'cityscapes'``, or None for :func:`default_palette`.
    alpha : float
        Opacity of the colours.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    image, classes = np.asarray(image), np.asarray(classes)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != classes.shape:
        raise DataError('image {} and class map {} differ in size (need (H, W, 3) and (H, W))'
                        .format(image.shape, classes.shape))
    if isinstance(palette, str) and palette == 'cityscapes':
        palette = cityscapes_palette()
    palette = default_palette() if palette is None else np.asarray(palette, np.uint8)
    shown = classes != ignore_label
    if shown.any() and (classes[shown].min() < 0 or classes[shown].max() >= len(palette)):
        raise DataError('class ids must be in 0..{} for this palette'.format(len(palette) - 1))
    colour = palette[np.where(shown, classes, 0)].astype(np.float32)  # (H, W, 3)
    out = image.astype(np.float32)
    out[shown] = (1 - alpha) * out[shown] + alpha * colour[shown]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class SemanticWriter(object):
    """Writes one official-format PNG (and optionally an overlay) per image.

    Parameters
    ----------
    folder : str
        Folder for the prediction PNGs (created).
    dataset : str
        ``'cityscapes'`` (train ids in, label-id PNGs out) or ``'ade20k'`` (classes 0..149 in).
    overlay_folder : str, optional
        Also write ``{name}_overlay.jpg`` there when :meth:`write` gets the image.
    num_classes : int
        ADE20K classes.
    """

    def __init__(self, folder, dataset='cityscapes', overlay_folder=None, num_classes=150):
        if dataset not in ('cityscapes', 'ade20k'):
            raise UsageError("dataset must be 'cityscapes' or 'ade20k', got {!r}".format(dataset))
        self.folder, self.dataset, self.overlay_folder = folder, dataset, overlay_folder
        self.num_classes = num_classes
        for path in (folder, overlay_folder):
            if path:
                os.makedirs(path, exist_ok=True)

    def write(self, image_name, classes, image=None):
        """Write the prediction of ``image_name`` (its file name or path); returns the PNG path."""
        if self.dataset == 'cityscapes':
            path = os.path.join(self.folder, cityscapes_prediction_name(image_name))
            write_cityscapes_labels(path, classes)
        else:
            stem = os.path.splitext(os.path.basename(image_name))[0]
            path = os.path.join(self.folder, stem + '.png')
            write_ade20k_png(path, classes, self.num_classes)
        if self.overlay_folder and image is not None:
            palette = 'cityscapes' if self.dataset == 'cityscapes' else None
            stem = os.path.splitext(os.path.basename(path))[0]
            imwrite_rgb(os.path.join(self.overlay_folder, stem + '_overlay.jpg'),
                        semantic_overlay(image, classes, palette))
        return path
