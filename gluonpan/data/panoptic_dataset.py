"""The dataset base shared by Cityscapes and COCO panoptic: records in, training samples out."""
import json
import os

import numpy as np
from mxnet.gluon.data import Dataset

from .io import read_image, read_panoptic_ids
from .targets import panoptic_targets, segment_index

__all__ = ['PanopticDataset', 'check_files', 'load_panoptic_records']


class PanopticDataset(Dataset):
    """Panoptic samples from a list of records.

    Parameters
    ----------
    records : list of dict
        One per image: ``image_id``, ``image_path``, ``pan_path``, ``segments_info``.
    categories : PanopticCategories
        The dataset's categories.
    transform : callable, optional
        ``transform(sample, seed) -> sample``; see :mod:`gluonpan.data.presets`.  Without it a sample
        is returned at full resolution with its targets.
    sem_mode : str
        Semantic target: ``'separated'`` (stuff + one "things" class) or ``'all'``.
    allow_gray : bool
        Convert grayscale images to RGB (COCO) instead of raising (Cityscapes).

    Indexing with an int gives a sample; indexing with ``(index, seed)`` (what
    :class:`gluonpan.data.sampler.EpochSampler` yields) also fixes the augmentation randomness.
    """

    def __init__(self, records, categories, transform=None, sem_mode='separated', allow_gray=False):
        self.records = records
        self.categories = categories
        self.transform = transform
        self.sem_mode = sem_mode
        self.allow_gray = allow_gray
        categories.num_semantic_classes(sem_mode)  # validates the mode
        for rec in records:  # once here, from the JSON, instead of for every loaded sample
            for seg in rec['segments_info']:
                categories.check_category(seg['category_id'],
                                          '{} segment {}'.format(rec['pan_path'], seg['id']))

    def __len__(self):
        return len(self.records)

    def load(self, idx):
        """Decoded image and panoptic ground truth of record ``idx`` (no transform, no targets).

        Returns
        -------
        dict
            ``image`` (H, W, 3) uint8 RGB, ``pan_ids`` (H, W) int32, ``seg_index`` (H, W) uint16,
            ``segments_info``, ``image_id``, ``file_name`` (the panoptic PNG's name).
        """
        rec = self.records[idx]
        image = read_image(rec['image_path'], allow_gray=self.allow_gray)
        pan_ids = read_panoptic_ids(rec['pan_path']).view(np.int32)
        if image.shape[:2] != pan_ids.shape:
            raise ValueError('image {} is {}x{} but its panoptic PNG {} is {}x{}'.format(
                rec['image_path'], image.shape[0], image.shape[1], rec['pan_path'], *pan_ids.shape))
        where = rec['pan_path']
        seg_index = segment_index(pan_ids, rec['segments_info'], where)
        return {'image': image, 'pan_ids': pan_ids, 'seg_index': seg_index,
                'segments_info': rec['segments_info'], 'image_id': rec['image_id'],
                'file_name': rec['file_name']}

    def __getitem__(self, key):
        idx, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.load(idx)
        if self.transform is not None:
            return self.transform(sample, seed)
        sample.update(panoptic_targets(sample['seg_index'], sample['segments_info'],
                                       self.categories, self.sem_mode, where=sample['file_name']))
        return sample

    def image_ids(self):
        """Image ids in dataset order."""
        return [r['image_id'] for r in self.records]

    def __repr__(self):
        return '{}({} images, {} categories)'.format(type(self).__name__, len(self),
                                                      len(self.categories.categories))


def check_files(paths, hint):
    """Raise one clear error listing missing files (first few) with a hint for fixing them."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError('{} missing file(s), e.g. {}{}'.format(
            len(missing), missing[:3], hint))



def load_panoptic_json(json_path, hint):
    """Read a panoptic JSON; a missing file raises with ``hint`` (how to make it)."""
    if not os.path.isfile(json_path):
        raise FileNotFoundError('missing panoptic JSON {}{}'.format(json_path, hint))
    with open(json_path) as f:
        return json.load(f)


def load_panoptic_records(data, json_path, pan_dir, image_path, image_hint, pan_hint):
    """One record per image of a panoptic JSON, sorted by image id, files checked.

    Parameters
    ----------
    data : dict
        The panoptic JSON (``images``, ``annotations``).
    json_path, pan_dir : str
        Where the JSON and its PNG folder are (for paths and messages).
    image_path : callable
        ``image_path(image_entry) -> path`` of the dataset's image file.
    image_hint, pan_hint : str
        Appended to the error listing missing images / PNGs (where they go, how to make them).

    Returns
    -------
    list of dict
        ``image_id``, ``image_path``, ``pan_path``, ``file_name``, ``segments_info``.
    """
    anns = {a['image_id']: a for a in data.get('annotations', [])}
    missing = [im['id'] for im in data.get('images', []) if im['id'] not in anns]
    if missing:
        raise ValueError('{}: no annotation for image id(s) {}'.format(json_path, missing[:10]))
    records = []
    for im in sorted(data['images'], key=lambda im: im['id']):
        ann = anns[im['id']]
        records.append({'image_id': im['id'], 'image_path': image_path(im),
                        'pan_path': os.path.join(pan_dir, ann['file_name']),
                        'file_name': ann['file_name'], 'segments_info': ann['segments_info']})
    check_files([r['image_path'] for r in records], image_hint)
    check_files([r['pan_path'] for r in records], pan_hint)
    return records
