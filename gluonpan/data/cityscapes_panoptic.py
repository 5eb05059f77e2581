"""Cityscapes panoptic, in exactly the layout cityscapesscripts writes.

::

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/cityscapes_panoptic_{split}.json
    root/gtFine/cityscapes_panoptic_{split}/{city}_{seq}_{frame}_gtFine_panoptic.png

The JSON and PNGs come from cityscapesscripts' ``createPanopticImgs`` (command
``csCreatePanopticImgs``), run on the ``gtFine/{split}/*/*_instanceIds.png`` files.
"""
import json
import os

from .categories import cityscapes_categories
from .panoptic_dataset import PanopticDataset, check_files

__all__ = ['CityscapesPanoptic']


def _prepare_hint(root, split):
    return ('; create the panoptic ground truth with cityscapesscripts: '
            'csCreatePanopticImgs --dataset-folder {0} --output-folder {0} --set-names {1}'
            .format(os.path.join(root, 'gtFine'), split))


class CityscapesPanoptic(PanopticDataset):
    """Cityscapes panoptic segmentation (19 evaluated classes: 8 things, 11 stuff).

    Parameters
    ----------
    root : str
        Dataset root holding ``leftImg8bit/`` and ``gtFine/``.
    split : str
        ``'train'``, ``'val'`` (or ``'test'`` if its panoptic JSON exists).
    transform, sem_mode
        See :class:`PanopticDataset`.
    """

    def __init__(self, root, split='train', transform=None, sem_mode='separated'):
        self.root = os.path.expanduser(root)
        self.split = split
        self.json_path = os.path.join(self.root, 'gtFine', 'cityscapes_panoptic_{}.json'.format(split))
        self.pan_dir = os.path.join(self.root, 'gtFine', 'cityscapes_panoptic_{}'.format(split))
        if not os.path.isfile(self.json_path):
            raise FileNotFoundError('missing Cityscapes panoptic JSON {}{}'.format(
                self.json_path, _prepare_hint(self.root, split)))
        with open(self.json_path) as f:
            data = json.load(f)
        categories = cityscapes_categories()
        json_ids = sorted(int(c['id']) for c in data.get('categories', []))
        if json_ids != sorted(categories.by_id):
            raise ValueError('{} has category ids {}, expected the 19 Cityscapes label ids {} '
                             '(was it made with --use-train-id?)'.format(
                                 self.json_path, json_ids, sorted(categories.by_id)))
        anns = self._index_annotations(data, self.json_path)
        records = []
        for im in sorted(data['images'], key=lambda im: im['id']):
            image_id = im['id']
            city = image_id.split('_')[0]
            ann = anns[image_id]
            records.append({
                'image_id': image_id,
                'image_path': os.path.join(self.root, 'leftImg8bit', split, city,
                                           image_id + '_leftImg8bit.png'),
                'pan_path': os.path.join(self.pan_dir, ann['file_name']),
                'file_name': ann['file_name'],
                'segments_info': ann['segments_info']})
        check_files([r['image_path'] for r in records],
                    ' (Cityscapes images go in {}/leftImg8bit/{}/<city>/)'.format(self.root, split))
        check_files([r['pan_path'] for r in records], _prepare_hint(self.root, split))
        super(CityscapesPanoptic, self).__init__(records, categories, transform, sem_mode)
