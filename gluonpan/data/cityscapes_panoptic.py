"""Cityscapes panoptic, in exactly the layout cityscapesscripts writes.

::

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/cityscapes_panoptic_{split}.json
    root/gtFine/cityscapes_panoptic_{split}/{city}_{seq}_{frame}_gtFine_panoptic.png

The JSON and PNGs come from cityscapesscripts' ``createPanopticImgs`` (command
``csCreatePanopticImgs``), run on the ``gtFine/{split}/*/*_instanceIds.png`` files.
"""
import os

from ..errors import DataError
from .categories import cityscapes_categories
from .panoptic_dataset import PanopticDataset, load_panoptic_json, load_panoptic_records

__all__ = ['CityscapesPanoptic']


def _prepare_hint(root, split):
    return ('; create the panoptic ground truth with cityscapesscripts: '
            'csCreatePanopticImgs --dataset-folder {0} --output-folder {0} --set-names {1}'
            .format(os.path.join(root, 'gtFine'), split))


def _check_json_categories(json_path, json_cats, categories):
    """The JSON's categories must be the 19 Cityscapes label ids; a :class:`DataError` if not."""
    if not isinstance(json_cats, list) or not all(
            isinstance(c, dict) and type(c.get('id')) is int for c in json_cats):
        raise DataError('{} has no "categories" list of objects with integer ids'.format(json_path))
    json_ids = sorted(c['id'] for c in json_cats)
    if json_ids != sorted(categories.by_id):
        raise DataError('{} has category ids {}, expected the 19 Cityscapes label ids {} '
                        '(was it made with --use-train-id?)'.format(
                            json_path, json_ids, sorted(categories.by_id)))


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
        data = load_panoptic_json(self.json_path, _prepare_hint(self.root, split), self.root)
        categories = cityscapes_categories()
        _check_json_categories(self.json_path, data.get('categories'), categories)

        def image_path(im):  # image ids are {city}_{seq}_{frame}
            if not isinstance(im['id'], str):
                raise DataError('{}: Cityscapes image ids are strings {{city}}_{{seq}}_{{frame}}, '
                                'got {!r}'.format(self.json_path, im['id']))
            return os.path.join(self.root, 'leftImg8bit', split, im['id'].split('_')[0],
                                im['id'] + '_leftImg8bit.png')

        records = load_panoptic_records(
            data, self.json_path, self.pan_dir, image_path,
            ' (Cityscapes images go in {}/leftImg8bit/{}/<city>/)'.format(self.root, split),
            _prepare_hint(self.root, split))
        super(CityscapesPanoptic, self).__init__(records, categories, transform, sem_mode)
