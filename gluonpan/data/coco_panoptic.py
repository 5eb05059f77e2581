"""COCO panoptic, in the layout of the official 2017 release.

::

    root/{split}2017/{image_id:012d}.jpg
    root/annotations/panoptic_{split}2017.json
    root/annotations/panoptic_{split}2017/{image_id:012d}.png

Categories (133 on COCO: 80 things, 53 stuff, non-contiguous ids) are read from the JSON itself.
"""
import os

from .categories import coco_categories_from_json
from .panoptic_dataset import PanopticDataset, load_panoptic_json, load_panoptic_records

__all__ = ['COCOPanoptic']


class COCOPanoptic(PanopticDataset):
    """COCO panoptic segmentation.

    Parameters
    ----------
    root : str
        Dataset root holding ``{split}2017/`` and ``annotations/``.
    split : str
        ``'train'`` or ``'val'``.
    transform, sem_mode
        See :class:`PanopticDataset`.  COCO's few grayscale images are converted to RGB.
    """

    def __init__(self, root, split='train', transform=None, sem_mode='separated'):
        self.root = os.path.expanduser(root)
        self.split = split
        self.json_path = os.path.join(self.root, 'annotations', 'panoptic_{}2017.json'.format(split))
        self.pan_dir = os.path.join(self.root, 'annotations', 'panoptic_{}2017'.format(split))
        data = load_panoptic_json(self.json_path, ' (unzip panoptic_annotations_trainval2017.zip '
                                  'and its panoptic_{}2017.zip into {})'.format(
                                      split, os.path.join(self.root, 'annotations')), self.root)
        records = load_panoptic_records(
            data, self.json_path, self.pan_dir,
            lambda im: os.path.join(self.root, '{}2017'.format(split), im['file_name']),
            ' (COCO images go in {})'.format(os.path.join(self.root, split + '2017')),
            ' (panoptic PNGs go in {})'.format(self.pan_dir))
        categories = coco_categories_from_json(data, self.json_path)
        super(COCOPanoptic, self).__init__(records, categories, transform, sem_mode,
                                           allow_gray=True)
