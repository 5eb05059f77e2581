"""Write panoptic predictions in the official format: one PNG per image plus one JSON.

The output is what ``cityscapesscripts``' ``evalPanopticSemanticLabeling`` (``csEvalPanopticSemantic
Labeling --prediction-json-file ... --prediction-folder ...``) and COCO's ``pq_compute`` accept
unchanged, and what ``python -m gluonpan.evaluate`` reads.
"""
import os

import cv2
import numpy as np

from ..data.categories import id2rgb
from ..errors import UnreadableFileError
from .checkpoint import atomic_write, atomic_write_json

__all__ = ['PanopticWriter', 'prediction_file_name', 'json_value', 'imwrite_rgb']


def prediction_file_name(image_id):
    """PNG name of an image's prediction (Cityscapes: ``{image_id}_gtFine_panoptic.png``)."""
    if isinstance(image_id, str):
        return '{}_gtFine_panoptic.png'.format(image_id)
    return '{:012d}.png'.format(int(image_id))


def imwrite_rgb(path, rgb):
    """Write an ``(H, W, 3)`` uint8 RGB image atomically (a reader or a killed writer never leaves
    half a file); the format follows the extension; a failed write raises, naming the file."""
    ok, data = cv2.imencode(os.path.splitext(path)[1] or '.png',
                            np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise UnreadableFileError('could not encode image {}'.format(path))

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data.tobytes())
    atomic_write(path, write)


def json_value(key, value):
    """numpy scalars -> JSON numbers (ids, areas and flags as int, scores as float)."""
    if value is None:
        return None
    if key in ('id', 'category_id', 'area', 'iscrowd', 'isthing'):
        return int(value)
    if key == 'score':
        return float(value)
    return value


class PanopticWriter(object):
    """Collects predictions and writes ``{folder}/*.png`` and ``{json_file}``.

    Parameters
    ----------
    folder : str
        Folder for the PNGs (created).
    json_file : str
        The predictions JSON, written by :meth:`close`.
    categories : PanopticCategories, optional
        Stored in the JSON as ``categories``.
    """

    def __init__(self, folder, json_file, categories=None):
        self.folder = folder
        self.json_file = json_file
        self.categories = categories
        self.annotations = []
        os.makedirs(folder, exist_ok=True)

    def add(self, image_id, pan_ids, segments_info):
        """Write one image's PNG and remember its segments.

        Parameters
        ----------
        image_id : str or int
            The dataset's image id.
        pan_ids : np.ndarray
            ``(H, W)`` panoptic ids (0 = void).
        segments_info : list of dict
            At least ``id`` and ``category_id`` per segment; other keys are kept.
        """
        name = prediction_file_name(image_id)
        path = os.path.join(self.folder, name)
        imwrite_rgb(path, id2rgb(pan_ids))
        segments = [{k: json_value(k, v) for k, v in s.items()} for s in segments_info]
        self.annotations.append({'image_id': image_id, 'file_name': name,
                                 'segments_info': segments})

    def close(self):
        """Write the JSON atomically; returns its path."""
        data = {'annotations': self.annotations}
        if self.categories is not None:
            data['categories'] = self.categories.to_json()
        atomic_write_json(self.json_file, data)
        return self.json_file
