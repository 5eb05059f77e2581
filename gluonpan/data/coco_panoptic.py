"""COCO panoptic, in the layout of the official 2017 release.

::

    root/{split}2017/{image_id:012d}.jpg
    root/annotations/panoptic_{split}2017.json
    root/annotations/panoptic_{split}2017/{image_id:012d}.png

Categories (133 on COCO: 80 things, 53 stuff, non-contiguous ids) are read from the JSON itself.
"""
import json
import os

from .categories import coco_categories_from_json
from .panoptic_dataset import PanopticDataset, check_files

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
        if not os.path.isfile(self.json_path):
            raise FileNotFoundError('missing COCO panoptic JSON {} (unzip panoptic_annotations_'
                                    'trainval2017.zip and its panoptic_{}2017.zip into {})'.format(
                                        self.json_path, split, os.path.join(self.root, 'annotations')))
        with open(self.json_path) as f:
            data = json.load(f)
        categories = coco_categories_from_json(data)
        anns = self._index_annotations(data, self.json_path)
        records = []
        for im in sorted(data['images'], key=lambda im: im['id']):
            ann = anns[im['id']]
            records.append({
                'image_id': im['id'],
                'image_path': os.path.join(self.root, '{}2017'.format(split), im['file_name']),
                'pan_path': os.path.join(self.pan_dir, ann['file_name']),
                'file_name': ann['file_name'],
                'segments_info': ann['segments_info']})
        check_files([r['image_path'] for r in records],
                    ' (COCO images go in {})'.format(os.path.join(self.root, split + '2017')))
        check_files([r['pan_path'] for r in records],
                    ' (panoptic PNGs go in {})'.format(self.pan_dir))
        super(COCOPanoptic, self).__init__(records, categories, transform, sem_mode,
                                           allow_gray=True)
