"""Semantic-segmentation datasets: Cityscapes (19 train ids) and ADE20K SceneParsing (150 classes).

Layouts, as downloaded::

    Cityscapes:  root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
                 root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
    ADE20K:      [root/]ADEChallengeData2016/images/{training,validation}/ADE_*_{n:08d}.jpg
                 [root/]ADEChallengeData2016/annotations/{training,validation}/ADE_*_{n:08d}.png

The label PNGs are 8-bit single-channel (grayscale, or palette: its indices), read by
:func:`gluonpan.data.png.read_label_png`; how their values become contiguous classes (255 =
ignore) is written down in :mod:`gluonpan.data.categories`.  A sample is a dict

* ``image`` -- ``(H, W, 3)`` uint8 RGB,
* ``sem_seg`` -- ``(H, W)`` uint8 contiguous classes, 255 = ignore,
* ``image_id`` -- ``'{city}_{seq}_{frame}'`` / ``'ADE_val_00000001'``,
* ``file_name`` -- the label PNG's name, to name a prediction after,

passed through ``transform(sample, seed)`` if one is given (see :mod:`.semantic_presets`).  Every
problem of the files is a :mod:`gluonpan.errors` input error naming the file (and value): missing
folders and label files when the dataset is made, unreadable files, size mismatches and label values
that are not classes when a sample is loaded.
"""
import glob
import os

import numpy as np
from mxnet.gluon.data import Dataset

from ..errors import DataError, MissingFileError, UnreadableFileError
from .categories import (ADE20K_NUM_CLASSES, ade20k_class_names, ade20k_label_lut,
                         cityscapes_label_id_valid, cityscapes_train_id_lut,
                         cityscapes_train_id_names, short_list)
from .io import read_image
from .panoptic_dataset import check_files
from .png import read_label_png

__all__ = ['SemanticDataset', 'CityscapesSemantic', 'ADE20KSemantic', 'read_label_png']

#: ADE20K split names; 'train' / 'val' are accepted as aliases
ADE20K_SPLITS = {'train': 'training', 'val': 'validation'}


def _checked_folder(folder, what, root, hint=''):
    """``folder`` exists and is a folder; else one error naming it (or the missing root)."""
    if not os.path.exists(root):
        raise MissingFileError('dataset root {} does not exist'.format(root))
    if not os.path.exists(folder):
        raise MissingFileError('{} {} does not exist{}'.format(what, folder, hint))
    if not os.path.isdir(folder):
        raise UnreadableFileError('{} {} is a file, not a folder'.format(what, folder))
    return folder


class SemanticDataset(Dataset):
    """Semantic samples from a list of records.

    Parameters
    ----------
    records : list of dict
        One per image: ``image_id``, ``image_path``, ``label_path``, ``file_name``.
    class_names : list of str
        Names of the contiguous classes ``0..C-1``.
    lut : np.ndarray
        ``(256,)`` uint8 label value -> contiguous class (255 = ignore).
    valid : np.ndarray
        ``(256,)`` bool: the label values a PNG may hold.
    value_kind : str
        What a valid value is, for the error naming an invalid one.
    transform : callable, optional
        ``transform(sample, seed) -> sample``; see :mod:`gluonpan.data.semantic_presets`.
    allow_gray : bool
        Convert non-RGB images (grayscale, CMYK ...) to RGB instead of raising.

    Indexing with an int gives a sample; indexing with ``(index, seed)`` (what
    :class:`gluonpan.data.sampler.EpochSampler` yields) also fixes the augmentation randomness.
    """

    def __init__(self, records, class_names, lut, valid, value_kind, transform=None,
                 allow_gray=False):
        self.records = records
        self.class_names = list(class_names)
        self.lut, self.valid, self.value_kind = lut, valid, value_kind
        self.transform = transform
        self.allow_gray = allow_gray

    @property
    def num_classes(self):
        """Number of contiguous classes C."""
        return len(self.class_names)

    def __len__(self):
        return len(self.records)

    def classes(self, values, path):
        """Label values ``(H, W)`` uint8 -> contiguous classes ``(H, W)`` uint8 (255 ignore).

        Raises
        ------
        DataError
            A value is not valid (the message names ``path``, the values and what is valid).
        """
        present = np.bincount(values.ravel(), minlength=256) > 0  # ravel: (H*W,)
        bad = np.nonzero(present & ~self.valid)[0]
        if len(bad):
            raise DataError('label PNG {} holds value(s) {} that are not {}'.format(
                path, short_list(bad), self.value_kind))
        return self.lut[values]

    def load(self, idx):
        """Decoded image and semantic ground truth of record ``idx`` (no transform).

        Returns
        -------
        dict
            ``image`` (H, W, 3) uint8 RGB, ``sem_seg`` (H, W) uint8, ``image_id``, ``file_name``.
        """
        rec = self.records[idx]
        image = read_image(rec['image_path'], allow_gray=self.allow_gray)
        values = read_label_png(rec['label_path'])
        if values.dtype != np.uint8:
            raise DataError('label PNG {} must be 8-bit single-channel, got 16-bit grayscale'
                            .format(rec['label_path']))
        if image.shape[:2] != values.shape:
            raise DataError('image {} is {}x{} but its label PNG {} is {}x{}'.format(
                rec['image_path'], image.shape[0], image.shape[1], rec['label_path'],
                *values.shape))
        return {'image': image, 'sem_seg': self.classes(values, rec['label_path']),
                'image_id': rec['image_id'], 'file_name': rec['file_name']}

    def __getitem__(self, key):
        idx, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.load(idx)
        return sample if self.transform is None else self.transform(sample, seed)

    def image_ids(self):
        """Image ids in dataset order."""
        return [r['image_id'] for r in self.records]

    def __repr__(self):
        return '{}({} images, {} classes)'.format(type(self).__name__, len(self), self.num_classes)


class CityscapesSemantic(SemanticDataset):
    """Cityscapes semantic segmentation: the 19 train ids (``road`` ... ``bicycle``), 255 ignore.

    Parameters
    ----------
    root : str
        Dataset root holding ``leftImg8bit/`` and ``gtFine/``.
    split : str
        ``'train'``, ``'val'`` (``'test'`` has no labels).
    transform : callable, optional
        See :class:`SemanticDataset`.
    """

    SUFFIX = '_leftImg8bit.png'

    def __init__(self, root, split='train', transform=None):
        self.root = os.path.expanduser(root)
        self.split = split
        image_dir = _checked_folder(os.path.join(self.root, 'leftImg8bit', split),
                                    'Cityscapes image folder', self.root)
        paths = sorted(glob.glob(os.path.join(image_dir, '*', '*' + self.SUFFIX)))
        if not paths:
            raise DataError('Cityscapes image folder {} holds no <city>/*{} images (an empty '
                            'split)'.format(image_dir, self.SUFFIX))
        records = []
        for path in paths:
            stem = os.path.basename(path)[:-len(self.SUFFIX)]
            name = stem + '_gtFine_labelIds.png'
            city = os.path.basename(os.path.dirname(path))
            label = os.path.join(self.root, 'gtFine', split, city, name)
            records.append({'image_id': stem, 'image_path': path, 'label_path': label,
                            'file_name': name})
        check_files([r['label_path'] for r in records],
                    ' (the *_gtFine_labelIds.png of gtFine_trainvaltest.zip go in {}/<city>/)'
                    .format(os.path.join(self.root, 'gtFine', split)))
        super(CityscapesSemantic, self).__init__(
            records, cityscapes_train_id_names(), cityscapes_train_id_lut(),
            cityscapes_label_id_valid(), 'Cityscapes label ids (0..33)', transform)


class ADE20KSemantic(SemanticDataset):
    """ADE20K SceneParsing (ADEChallengeData2016): 150 classes, annotation 0 ignored.

    Annotation values 1..150 become classes 0..149 and 0 ("other") becomes 255, the benchmark's
    definition (mmsegmentation's ``reduce_zero_label=True``).  Images that are not RGB (ADE20K has
    a few grayscale JPEGs) are converted to RGB.

    Parameters
    ----------
    root : str
        The folder that contains ``ADEChallengeData2016/`` (where the zip is unpacked), or the
        ``ADEChallengeData2016`` folder itself (any folder holding ``images/`` and
        ``annotations/``).
    split : str
        ``'training'`` or ``'validation'`` (``'train'`` / ``'val'`` are accepted too).
    transform : callable, optional
        See :class:`SemanticDataset`.
    """

    def __init__(self, root, split='training', transform=None):
        self.root = os.path.expanduser(root)
        self.split = ADE20K_SPLITS.get(split, split)
        nested = os.path.join(self.root, 'ADEChallengeData2016')
        self.data_dir = nested if os.path.isdir(nested) else self.root
        image_dir = _checked_folder(
            os.path.join(self.data_dir, 'images', self.split), 'ADE20K image folder', self.root,
            ' (the root must contain ADEChallengeData2016/ or be that folder)')
        paths = sorted(glob.glob(os.path.join(image_dir, '*.jpg')))
        if not paths:
            raise DataError('ADE20K image folder {} holds no *.jpg images (an empty split)'.format(
                image_dir))
        ann_dir = os.path.join(self.data_dir, 'annotations', self.split)
        records = []
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            records.append({'image_id': stem, 'image_path': path, 'file_name': stem + '.png',
                            'label_path': os.path.join(ann_dir, stem + '.png')})
        check_files([r['label_path'] for r in records],
                    ' (ADE20K annotations go in {})'.format(ann_dir))
        valid = np.zeros(256, bool)
        valid[:ADE20K_NUM_CLASSES + 1] = True
        super(ADE20KSemantic, self).__init__(
            records, ade20k_class_names(), ade20k_label_lut(), valid,
            'ADE20K class ids (0..{})'.format(ADE20K_NUM_CLASSES), transform, allow_gray=True)
