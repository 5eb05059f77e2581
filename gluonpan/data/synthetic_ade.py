"""The synthetic street scenes in the official ADE20K SceneParsing layout.

::

    root/ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_{n:08d}.jpg
    root/ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_{n:08d}.png
    root/synthetic_ade20k.json                                (stamp: generator version, parameters)

Image ``n = index + 1`` of split ``training`` / ``validation`` is scene ``index`` of the synthetic
Cityscapes split ``train`` / ``val`` (:func:`gluonpan.data.synthetic.generate_scene`, same seed and
size): the same picture, saved as JPEG (quality 95) as ADE20K's images are.  Its annotation holds
"our 19 Cityscapes classes under ADE20K's class ids": label id -> train id
(:func:`~gluonpan.data.categories.cityscapes_train_id_lut`) -> ADE20K id
(:data:`~gluonpan.data.categories.CITYSCAPES_TO_ADE20K`), and 0 for every pixel of an ignored
Cityscapes label.  Read it with :class:`gluonpan.data.semantic_dataset.ADE20KSemantic`.

The stamp works as for the other synthetic sets (:mod:`gluonpan.data.synthetic`): a complete set
with the same parameters is not written again, and a folder without our stamp is never deleted.
"""
import logging
import os

import cv2

from .categories import cityscapes_train_id_lut, cityscapes_train_id_to_ade20k
from .synthetic import GENERATOR_VERSION, _imwrite, _params, _read_stamp, _stamp, _start, \
    generate_scene

__all__ = ['generate_ade20k', 'ensure_ade20k', 'ade20k_annotation', 'ade20k_file_stem',
           'ADE20K_STAMP', 'SCENE_SPLITS']

ADE20K_STAMP = 'synthetic_ade20k.json'
SUBDIR = 'ADEChallengeData2016'
DEFAULT_SPLITS = (('training', 8), ('validation', 4))
#: ADE20K split -> (synthetic scene split, file name prefix)
SCENE_SPLITS = {'training': ('train', 'ADE_train_'), 'validation': ('val', 'ADE_val_')}
log = logging.getLogger(__name__)


def ade20k_file_stem(split, index):
    """``'ADE_val_00000001'`` for image ``index`` (0-based) of an ADE20K split."""
    return '{}{:08d}'.format(SCENE_SPLITS[split][1], int(index) + 1)


def ade20k_annotation(label_ids):
    """Cityscapes label ids ``(H, W)`` uint8 -> ADE20K annotation ``(H, W)`` uint8 (ids 0..150)."""
    return cityscapes_train_id_to_ade20k()[cityscapes_train_id_lut()[label_ids]]


def _split_dirs(root, split):
    return (os.path.join(root, SUBDIR, 'images', split),
            os.path.join(root, SUBDIR, 'annotations', split))


def _checked_params(splits, height, width, seed):
    params = _params(splits, height, width, seed)
    unknown = [s for s, _ in params['splits'] if s not in SCENE_SPLITS]
    if unknown:
        raise ValueError('ADE20K splits are {}, got {}'.format(sorted(SCENE_SPLITS), unknown))
    return params


def generate_ade20k(root, splits=DEFAULT_SPLITS, height=256, width=512, seed=0, overwrite=False):
    """Write the synthetic scenes as an ADE20K SceneParsing dataset (see the module docstring).

    Parameters
    ----------
    root : str
        Output root; gets ``ADEChallengeData2016/`` and the stamp ``synthetic_ade20k.json``.
    splits : sequence of (str, int)
        ``('training', n)`` and / or ``('validation', m)``: image counts (0 writes empty folders).
    height, width, seed : int
        As :func:`gluonpan.data.synthetic.generate_cityscapes`; the same values give the same
        scenes.
    overwrite : bool
        Replace an earlier synthetic ADE20K set in ``root`` (data without our stamp is never
        deleted: a ``FileExistsError`` instead).

    Returns
    -------
    dict
        ``root``, ``dataset`` (the ``ADEChallengeData2016`` folder), ``splits`` {split: count},
        ``images`` total, ``generated`` (True).
    """
    root = os.path.abspath(os.path.expanduser(root))
    params = _checked_params(splits, height, width, seed)
    _start(root, ADE20K_STAMP, [SUBDIR], params, overwrite)
    summary = {'root': root, 'dataset': os.path.join(root, SUBDIR), 'splits': {}, 'images': 0}
    for split, count in params['splits']:
        image_dir, ann_dir = _split_dirs(root, split)
        for folder in (image_dir, ann_dir):
            os.makedirs(folder, exist_ok=True)
        for i in range(count):
            scene = generate_scene(seed, SCENE_SPLITS[split][0], i, height, width)
            stem = ade20k_file_stem(split, i)
            _imwrite(os.path.join(image_dir, stem + '.jpg'), scene.image,
                     [cv2.IMWRITE_JPEG_QUALITY, 95])
            _imwrite(os.path.join(ann_dir, stem + '.png'), ade20k_annotation(scene.label_ids))
        summary['splits'][split] = count
        summary['images'] += count
        log.info('synthetic ADE20K %s: %d images of %dx%d in %s', split, count, height, width,
                 root)
    _stamp(root, ADE20K_STAMP, params, [SUBDIR], summary)
    return dict(summary, generated=True)


def _complete(root, summary):
    """Every file the stamp's summary promises is there."""
    for split, count in summary['splits'].items():
        image_dir, ann_dir = _split_dirs(root, split)
        for i in range(count):
            stem = ade20k_file_stem(split, i)
            if not (os.path.isfile(os.path.join(image_dir, stem + '.jpg')) and
                    os.path.isfile(os.path.join(ann_dir, stem + '.png'))):
                return False
    return True


def ensure_ade20k(root, **kwargs):
    """:func:`generate_ade20k` (same keyword arguments) unless ``root`` already holds a complete
    synthetic ADE20K set of this generator version with the same parameters; returns its summary
    (``generated`` says whether it was written now)."""
    kwargs = {k: v for k, v in kwargs.items() if k != 'overwrite'}
    root = os.path.abspath(os.path.expanduser(root))
    old = _read_stamp(root, ADE20K_STAMP)
    if old is not None and old.get('complete') and old.get('version') == GENERATOR_VERSION \
            and old.get('params') == _checked_params(**dict(
                dict(splits=DEFAULT_SPLITS, height=256, width=512, seed=0), **kwargs)) \
            and _complete(root, old['summary']):
        return dict(old['summary'], generated=False)
    return generate_ade20k(root, overwrite=old is not None, **kwargs)
