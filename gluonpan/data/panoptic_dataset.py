"""The dataset base shared by Cityscapes and COCO panoptic: records in, training samples out.

Every problem of the files is a :mod:`gluonpan.errors` input error naming the file (and image id,
segment id): the JSON is checked when the dataset is made, each image and PNG when it is loaded.
"""
import os

import numpy as np
from mxnet.gluon.data import Dataset

from ..errors import DataError, MissingFileError, UnreadableFileError, read_json
from .categories import short_list
from .io import check_annotations, read_image, read_panoptic_ids
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
        json_path = getattr(self, 'json_path', None)
        for rec in records:  # once here, from the JSON, instead of for every loaded sample
            for seg in rec['segments_info']:
                categories.check_category(seg['category_id'], '{}image {!r} ({}) segment {}'.format(
                    'panoptic JSON {}, '.format(json_path) if json_path else '', rec['image_id'],
                    os.path.basename(rec['pan_path']), seg['id']))

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
            raise DataError('image {} is {}x{} but its panoptic PNG {} is {}x{}'.format(
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
    """Raise one clear error listing missing files (first few) with a hint for fixing them.

    Raises
    ------
    MissingFileError
        Some files do not exist (how many, the first three, ``hint``).
    UnreadableFileError
        A path is a folder, not a file.
    """
    missing = [p for p in paths if not os.path.isfile(p)]
    folders = [p for p in missing if os.path.isdir(p)]
    if folders:
        raise UnreadableFileError('{} is a folder, not a file'.format(folders[0]))
    if missing:
        raise MissingFileError('{} missing file(s), e.g. {}{}'.format(
            len(missing), missing[:3], hint))


def load_panoptic_json(json_path, hint, root=None):
    """Read a panoptic JSON (its content is checked by :func:`load_panoptic_records`).

    Parameters
    ----------
    json_path : str
        The file.
    hint : str
        Appended to the error of a missing file (how to make it).
    root : str, optional
        The dataset root: named instead when it does not exist at all.
    """
    if root is not None and not os.path.exists(root):
        raise MissingFileError('dataset root {} does not exist'.format(root))
    if root is not None and not os.path.isdir(root):
        raise UnreadableFileError('dataset root {} is a file, not a folder'.format(root))
    if not os.path.exists(json_path):
        raise MissingFileError('missing panoptic JSON {}{}'.format(json_path, hint))
    data = read_json(json_path, 'panoptic JSON')
    if not isinstance(data, dict):
        raise DataError('panoptic JSON {} must hold a JSON object with "images" and "annotations", '
                        'got a {}'.format(json_path, type(data).__name__))
    return data


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
    images = _checked_images(data, json_path)
    anns = {a['image_id']: a for a in data['annotations']}
    missing = [im['id'] for im in images if im['id'] not in anns]
    if missing:
        raise DataError('{}: no annotation for image id(s) {}'.format(
            json_path, short_list(missing)))
    records = []
    for im in sorted(images, key=lambda im: im['id']):
        ann = anns[im['id']]
        try:
            path = image_path(im)
        except (KeyError, TypeError) as err:
            raise DataError('{}: the entry of image {!r} in "images" lacks a valid {}'.format(
                json_path, im['id'], err if isinstance(err, KeyError) else 'file_name')) from None
        records.append({'image_id': im['id'], 'image_path': path,
                        'pan_path': os.path.join(pan_dir, ann['file_name']),
                        'file_name': ann['file_name'], 'segments_info': ann['segments_info']})
    check_files([r['image_path'] for r in records], image_hint)
    check_files([r['pan_path'] for r in records], pan_hint)
    return records


def _checked_images(data, json_path):
    """The ``images`` list of a panoptic JSON: objects with unique ids of one type, not empty."""
    check_annotations(data, 'panoptic JSON {}'.format(json_path))
    images = data.get('images')
    if not isinstance(images, list):
        raise DataError('{} has no "images" list'.format(json_path))
    if not images:
        raise DataError('{} lists no images (an empty split)'.format(json_path))
    kinds, seen = set(), set()
    for im in images:
        image_id = im.get('id') if isinstance(im, dict) else None
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise DataError('{}: an entry of "images" has no valid "id": {}'.format(
                json_path, repr(im)[:120]))
        if image_id in seen:
            raise DataError('{}: image id {!r} is listed twice in "images"'.format(
                json_path, image_id))
        seen.add(image_id)
        kinds.add(type(image_id))
    if len(kinds) > 1:
        raise DataError('{}: image ids mix integers and strings'.format(json_path))
    return images
