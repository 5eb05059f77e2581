"""Synthetic street scenes as raw Cityscapes (then prepared by cityscapesscripts) or COCO panoptic.

Cityscapes layout (what a user downloads, then ``createPanopticImgs`` output, made by calling it)::

    root/leftImg8bit/{split}/{city}/{city}_{seq:06d}_000019_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq:06d}_000019_gtFine_{labelIds,instanceIds,color}.png
    root/gtFine/cityscapes_panoptic_{split}.json  and  root/gtFine/cityscapes_panoptic_{split}/*.png
    root/synthetic.json                                 (stamp: generator version and parameters)

COCO layout (:func:`write_coco_panoptic`; the same scenes, JPEG images, integer image ids, random
non-sequential segment ids, the 19 Cityscapes classes under COCO-like non-contiguous category ids:
things reuse COCO's ids where COCO has the name, ``rider`` gets the unused id 12, stuff ids are
spread over 105..193; they are *not* COCO's real stuff ids)::

    root/{split}2017/{image_id:012d}.jpg
    root/annotations/panoptic_{split}2017.json  and  root/annotations/panoptic_{split}2017/*.png

Every image depends only on ``(seed, split, index, height, width)``; same parameters give
byte-identical files.  Command: ``python -m gluonpan.data.synthetic --root data/synthetic_citys``.

This module is the public API: scene generation, reading ground truth back from files, the
Cityscapes and COCO writers, their stamps, ``ensure_*`` and the command line.  The scenes are
drawn by :mod:`.synthetic_scenes` (drawing primitives, stuff layout, painting, :class:`Scene`)
and :mod:`.synthetic_things` (thing shapes, placement and occlusion, ``build_layers``).
"""
import contextlib
import io
import json
import logging
import os
import shutil
import zlib

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import id2label, labels, name2label

from ..errors import ArgumentParser, check_minimums, run_cli
from .categories import OFFSET, id2rgb
from .synthetic_scenes import Scene, _paint, _segment
from .synthetic_things import build_layers

__all__ = ['GENERATOR_VERSION', 'Scene', 'scene_rng', 'generate_scene', 'read_instance_ids',
           'segments_from_instance_ids', 'scene_for_image', 'generate_cityscapes', 'ensure_cityscapes',
           'write_coco_panoptic', 'ensure_coco_panoptic', 'COCO_CATEGORY_IDS', 'coco_categories',
           'coco_image_id', 'main']

GENERATOR_VERSION = 1
STAMP = 'synthetic.json'
COCO_STAMP = 'synthetic_coco.json'
DEFAULT_SPLITS = (('train', 8), ('val', 4))
DEFAULT_CITIES = {'train': ('aachen', 'bremen', 'zurich'), 'val': ('frankfurt', 'lindau', 'munster'),
                  'test': ('berlin', 'bonn')}
#: label name -> category id in the synthetic COCO split (non-contiguous, see the module docstring)
COCO_CATEGORY_IDS = {'person': 1, 'bicycle': 2, 'car': 3, 'motorcycle': 4, 'bus': 6, 'train': 7,
                     'truck': 8, 'rider': 12, 'traffic light': 105, 'traffic sign': 113, 'pole': 118,
                     'fence': 121, 'wall': 128, 'sidewalk': 144, 'road': 149, 'building': 151,
                     'vegetation': 184, 'sky': 187, 'terrain': 193}
log = logging.getLogger(__name__)


def scene_rng(seed, split, index):
    """The random generator of one image; depends only on ``(seed, split, index)``."""
    key = [int(seed), zlib.crc32(str(split).encode('utf-8')), int(index)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def generate_scene(seed=0, split='train', index=0, height=256, width=512):
    """Generate one street scene (a pure function of its arguments).

    Returns
    -------
    Scene
    """
    rng = scene_rng(seed, split, index)
    layers = build_layers(rng, int(height), int(width))
    return Scene(*_paint(layers, rng, int(height), int(width)), layers=layers)


def read_instance_ids(path):
    """A Cityscapes ``*_instanceIds.png`` as ``(H, W)`` uint16 (clear error if it is not one)."""
    ids = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise FileNotFoundError('cannot read instanceIds PNG {}'.format(path))
    if ids.ndim != 2 or ids.dtype != np.uint16:
        raise ValueError('{} is not a 16-bit single-channel instanceIds PNG (shape {}, dtype {})'
                         .format(path, ids.shape, ids.dtype))
    return ids


def segments_from_instance_ids(instance_ids):
    """Evaluated segments of an instanceIds map (our own reading of the Cityscapes convention).

    Returns
    -------
    list of dict
        As :meth:`Scene.segments`: id, category_id, isthing, iscrowd, area, bbox, mask; sorted by id.
    """
    segments = []
    for seg_id in np.unique(instance_ids):
        label_id = seg_id // OFFSET if seg_id >= OFFSET else seg_id
        if label_id not in id2label:
            raise ValueError('instance id {} has unknown label id {}'.format(seg_id, label_id))
        if not id2label[int(label_id)].ignoreInEval:
            segments.append(_segment(seg_id, label_id, instance_ids == seg_id))
    return segments


def _check_splits(splits):
    out = []
    for split, count in splits:
        if not str(split) or any(c in str(split) for c in '/\\_') or int(count) < 0:
            raise ValueError('bad split {!r} with {!r} images: a name without / \\ _ and a count >= 0'
                             .format(split, count))
        out.append([str(split), int(count)])
    return out


def _cities(split, cities):
    names = DEFAULT_CITIES.get(split, ('synthetic',)) if cities is None else \
        cities[split] if isinstance(cities, dict) else cities
    names = [str(c) for c in ([names] if isinstance(names, str) else names)]
    if not names or any(not c or '_' in c or '/' in c for c in names):
        raise ValueError('city names must be non-empty without "_" or "/", got {!r}'.format(names))
    return names


def _params(splits=DEFAULT_SPLITS, height=256, width=512, seed=0, **extra):
    """Normalised generator parameters: what a stamp stores and ``ensure_*`` compares."""
    out = dict(extra, splits=_check_splits(splits), height=int(height), width=int(width),
               seed=int(seed))
    if 'cities' in extra:
        out['cities'] = {s: _cities(s, extra['cities']) for s, _ in out['splits']}
    if 'write_color' in extra:
        out['write_color'] = bool(extra['write_color'])
    return out


def _write_json(path, data):
    with open(path, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)


def _read_stamp(root, stamp_name):
    path = os.path.join(os.path.abspath(os.path.expanduser(root)), stamp_name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _stamp(root, stamp_name, params, subdirs, summary=None):
    _write_json(os.path.join(root, stamp_name), {
        'generator': 'gluonpan.data.synthetic', 'version': GENERATOR_VERSION, 'params': params,
        'subdirs': subdirs, 'complete': summary is not None, 'summary': summary})


def _start(root, stamp_name, subdirs, params, overwrite):
    """Clear what an earlier synthetic run left (only with its stamp); write an incomplete stamp."""
    old = _read_stamp(root, stamp_name)
    existing = [d for d in subdirs + (old or {}).get('subdirs', [])
                if os.path.exists(os.path.join(root, d))]
    if old is None and existing:
        raise FileExistsError('{} holds {} but no {} stamp: not written by this generator, refusing '
                              'to delete it'.format(root, existing, stamp_name))
    if existing and not overwrite:
        raise FileExistsError('{} already holds {}; pass overwrite=True or use ensure_*()'
                              .format(root, existing))
    for d in sorted(set(existing)):
        shutil.rmtree(os.path.join(root, d))
    os.makedirs(root, exist_ok=True)
    _stamp(root, stamp_name, params, subdirs)
    return {'root': root, 'splits': {}, 'images': 0, 'json': {}, 'panoptic_dir': {}}


def _ensure(root, stamp_name, write, kwargs):
    """Call ``write`` unless the stamp says ``root`` is complete with the same parameters."""
    kwargs = {k: v for k, v in kwargs.items() if k != 'overwrite'}
    old = _read_stamp(root, stamp_name)
    if old is not None and old.get('complete') and old.get('version') == GENERATOR_VERSION \
            and old.get('params') == _params(**kwargs) \
            and all(os.path.isfile(p) for p in old['summary']['json'].values()):
        return dict(old['summary'], generated=False)
    return write(root, overwrite=old is not None, **kwargs)


def _imwrite(path, array, *flags):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if array.ndim == 3:
        array = array[..., ::-1]  # RGB -> BGR for cv2
    if not cv2.imwrite(path, np.ascontiguousarray(array), *flags):
        raise IOError('could not write {}'.format(path))


def generate_cityscapes(root, splits=DEFAULT_SPLITS, height=256, width=512, seed=0, cities=None,
                        overwrite=False, write_color=True):
    """Write a synthetic dataset in the raw Cityscapes layout, then run cityscapesscripts'
    ``createPanopticImgs`` on it.

    Parameters
    ----------
    root : str
        Dataset root (gets ``leftImg8bit/``, ``gtFine/``, ``synthetic.json``).
    splits : sequence of (str, int)
        Split names and image counts; a count of 0 writes nothing for that split.
    height, width, seed : int
        Image size and base seed; image ``i`` of split ``s`` depends only on ``(seed, s, i)`` and size.
    cities : None, sequence of str or dict split -> sequence of str
        City folders; images go to them round-robin (default: real Cityscapes city names).
    overwrite : bool
        Replace an earlier synthetic dataset in ``root`` (never deletes data without our stamp).
    write_color : bool
        Also write ``*_gtFine_color.png``.

    Returns
    -------
    dict
        ``root``, ``splits`` {split: count}, ``images`` total, ``json`` / ``panoptic_dir`` per split,
        ``generated`` (True).
    """
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
    root = os.path.abspath(os.path.expanduser(root))
    params = _params(splits, height, width, seed, cities=cities, write_color=write_color)
    summary = _start(root, STAMP, ['leftImg8bit', 'gtFine'], params, overwrite)
    colours = np.zeros((256, 3), np.uint8)
    colours[[l.id for l in labels if l.id >= 0]] = [l.color for l in labels if l.id >= 0]
    gt_fine = os.path.join(root, 'gtFine')
    for split, count in params['splits']:
        for i in range(count):
            scene = generate_scene(seed, split, i, height, width)
            city = params['cities'][split][i % len(params['cities'][split])]
            stem = '{}_{:06d}_{:06d}'.format(city, i, 19)
            _imwrite(os.path.join(root, 'leftImg8bit', split, city, stem + '_leftImg8bit.png'),
                     scene.image)
            gt = os.path.join(gt_fine, split, city, stem + '_gtFine_')
            _imwrite(gt + 'labelIds.png', scene.label_ids)
            _imwrite(gt + 'instanceIds.png', scene.instance_ids)
            if write_color:
                _imwrite(gt + 'color.png', colours[scene.label_ids])
        summary['splits'][split] = count
        summary['images'] += count
        if count:  # createPanopticImgs exits the process on a split without files
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                convert2panoptic(cityscapesPath=gt_fine, outputFolder=gt_fine, setNames=[split])
            log.debug('createPanopticImgs (%s): %s', split, out.getvalue().strip())
            name = os.path.join(gt_fine, 'cityscapes_panoptic_' + split)
            summary['json'][split], summary['panoptic_dir'][split] = name + '.json', name
        log.info('synthetic Cityscapes %s: %d images of %dx%d in %s', split, count, height, width, root)
    _stamp(root, STAMP, params, ['leftImg8bit', 'gtFine'], summary)
    return dict(summary, generated=True)


def ensure_cityscapes(root, **kwargs):
    """:func:`generate_cityscapes` (same keyword arguments) unless ``root`` already holds a complete
    synthetic dataset of this generator version with the same parameters; returns its summary
    (``generated`` says whether it was written now)."""
    kwargs = dict(dict(cities=None, write_color=True), **kwargs)
    return _ensure(root, STAMP, generate_cityscapes, kwargs)


def scene_for_image(root, split, image_id):
    """The in-memory :class:`Scene` (exact ground truth) of one image of a synthetic dataset,
    regenerated from the parameters in its stamp.

    Parameters
    ----------
    root : str
        A root written by :func:`generate_cityscapes` (``image_id`` = ``'city_000003_000019'``) or
        by :func:`write_coco_panoptic` (``image_id`` an int).
    split : str
    image_id : str or int
    """
    coco = not isinstance(image_id, str)
    stamp = _read_stamp(root, COCO_STAMP if coco else STAMP)
    if stamp is None or not stamp.get('complete'):
        raise FileNotFoundError('{} holds no complete synthetic dataset stamp'.format(root))
    p = stamp['params']
    if coco:
        index = next((i for s, n in p['splits'] if s == split for i in range(n)
                      if coco_image_id(split, i) == int(image_id)), None)
    else:
        parts = image_id.split('_')
        index = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
    if index is None or not any(s == split and index < n for s, n in p['splits']):
        raise KeyError('image {!r} is not in split {!r} of the synthetic dataset in {}'
                       .format(image_id, split, root))
    return generate_scene(p['seed'], split, index, p['height'], p['width'])


def coco_categories():
    """The synthetic COCO split's categories (panoptic-JSON entries, sorted by id)."""
    return [{'id': cid, 'name': name, 'isthing': int(name2label[name].hasInstances),
             'color': list(name2label[name].color), 'supercategory': name2label[name].category}
            for name, cid in sorted(COCO_CATEGORY_IDS.items(), key=lambda kv: kv[1])]


def coco_image_id(split, index):
    """Integer image id of image ``index`` of a synthetic COCO split (unique, non-sequential)."""
    return 1000 * (int(index) + 1) + zlib.crc32(str(split).encode('utf-8')) % 997


def write_coco_panoptic(root, splits=DEFAULT_SPLITS, height=256, width=512, seed=0, overwrite=False):
    """Write the scenes of :func:`generate_cityscapes` (same arguments, same images) as COCO panoptic.

    Returns
    -------
    dict
        ``root``, ``splits``, ``images``, ``json`` / ``panoptic_dir`` per split, ``generated``.
    """
    root = os.path.abspath(os.path.expanduser(root))
    params = _params(splits, height, width, seed)
    subdirs = ['annotations'] + ['{}2017'.format(s) for s, _ in params['splits']]
    summary = _start(root, COCO_STAMP, subdirs, params, overwrite)
    to_coco = {name2label[n].id: cid for n, cid in COCO_CATEGORY_IDS.items()}
    for split, count in params['splits']:
        pan_dir = os.path.join(root, 'annotations', 'panoptic_{}2017'.format(split))
        images, annotations = [], []
        for i in range(count):
            scene, image_id = generate_scene(seed, split, i, height, width), coco_image_id(split, i)
            segments = segments_from_instance_ids(scene.instance_ids)
            pan_ids = scene_rng(seed, split + '/coco-segment-ids', i).choice(
                256 ** 3 - 1, size=len(segments), replace=False) + 1
            pan = np.zeros(scene.instance_ids.shape, np.int64)
            for seg, pid in zip(segments, pan_ids):
                pan[seg['mask']] = pid
            stem = '{:012d}'.format(image_id)
            _imwrite(os.path.join(root, '{}2017'.format(split), stem + '.jpg'), scene.image,
                     [cv2.IMWRITE_JPEG_QUALITY, 95])
            _imwrite(os.path.join(pan_dir, stem + '.png'), id2rgb(pan))
            images.append({'id': image_id, 'file_name': stem + '.jpg', 'height': int(height),
                           'width': int(width)})
            annotations.append({'image_id': image_id, 'file_name': stem + '.png', 'segments_info': [
                {'id': int(pid), 'category_id': to_coco[s['category_id']], 'iscrowd': s['iscrowd'],
                 'area': s['area'], 'bbox': s['bbox']} for s, pid in zip(segments, pan_ids)]})
        os.makedirs(pan_dir, exist_ok=True)
        _write_json(pan_dir + '.json', {
            'info': {'description': 'gluonpan synthetic street scenes', 'version': GENERATOR_VERSION},
            'images': images, 'annotations': annotations, 'categories': coco_categories()})
        summary['splits'][split] = count
        summary['images'] += count
        summary['json'][split], summary['panoptic_dir'][split] = pan_dir + '.json', pan_dir
        log.info('synthetic COCO %s: %d images of %dx%d in %s', split, count, height, width, root)
    _stamp(root, COCO_STAMP, params, subdirs, summary)
    return dict(summary, generated=True)


def ensure_coco_panoptic(root, **kwargs):
    """:func:`write_coco_panoptic` unless ``root`` already holds the same synthetic COCO split."""
    return _ensure(root, COCO_STAMP, write_coco_panoptic, kwargs)


def main(argv=None):
    """Command line: ``python -m gluonpan.data.synthetic --root DIR [--train 8 --val 4 ...]``."""
    parser = ArgumentParser(description='Write the synthetic Cityscapes (and COCO) panoptic '
                                                 'dataset; a no-op if it is already up to date.')
    parser.add_argument('--root', default='data/synthetic_citys', help='Cityscapes-layout output root')
    for split, n in (('train', 8), ('val', 4), ('test', 0)):
        parser.add_argument('--' + split, type=int, default=n, help='number of {} images'.format(split))
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--coco-root', default=None, help='also write the scenes as COCO panoptic here')
    parser.add_argument('--overwrite', action='store_true', help='regenerate even if up to date')
    parser.add_argument('--no-color', action='store_true', help='skip *_gtFine_color.png')
    parser.add_argument('-v', '--verbose', action='store_true')
    args = parser.parse_args(argv)
    check_minimums(parser, args, {'train': 0, 'val': 0, 'test': 0, 'height': 32, 'width': 32,
                                  'seed': 0})
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format='%(message)s')
    kw = dict(height=args.height, width=args.width, seed=args.seed, splits=[
        (s, n) for s, n in (('train', args.train), ('val', args.val), ('test', args.test)) if n > 0])
    jobs = [(args.root, generate_cityscapes, ensure_cityscapes,
             dict(kw, write_color=not args.no_color))]
    if args.coco_root:
        jobs.append((args.coco_root, write_coco_panoptic, ensure_coco_panoptic, kw))
    for root, write, ensure, kwargs in jobs:
        s = write(root, overwrite=True, **kwargs) if args.overwrite else ensure(root, **kwargs)
        counts = ', '.join('{} {}'.format(k, v) for k, v in s['splits'].items())
        log.info('%s: %s (%s)', s['root'], counts,
                 'written' if s['generated'] else 'already up to date')
    return 0


def cli():
    """Console entry point ``gluonpan-synthetic``: :func:`main` under the one-line error rule."""
    run_cli(main)


if __name__ == '__main__':
    cli()
