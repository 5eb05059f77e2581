"""File-level panoptic evaluation: a prediction folder + JSON against a ground-truth folder + JSON.

Both the Cityscapes panoptic format (string image ids such as ``frankfurt_000000_000294``, label-id
categories, as ``cityscapesscripts.preparation.createPanopticImgs`` writes it) and the COCO panoptic
format (integer image ids) are read; the format is detected from the ground truth's image ids and
changes nothing in the rules (see :mod:`.panoptic_quality`).
"""
import ctypes
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from ...data.categories import PanopticCategories, short_list
from ...data.io import read_panoptic_ids, read_panoptic_json
from ...errors import DataError, MissingFileError, UnreadableFileError
from .panoptic_quality import PQStats, panoptic_image_stats

__all__ = ['read_panoptic_ids', 'load_panoptic_json', 'detect_format', 'evaluate_panoptic_files',
           'retain_freed_memory']

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def retain_freed_memory():
    """Make glibc keep freed multi-MB buffers for reuse instead of returning them to the OS.

    Each image pair decodes into arrays of several MB that are freed right after; by default glibc
    unmaps them and the next image page-faults the memory in again: about 4,000 faults per
    1024x2048 pair, ~10 ms on a small VM (a quarter of the evaluation time).  With a 32 MB mmap
    threshold and a 512 MB trim threshold the memory is reused.  The process then keeps up to
    512 MB of freed heap; the evaluator calls this in its own worker processes and, with one
    worker, in the calling process.  A no-op where ``mallopt`` does not exist.
    """
    if not sys.platform.startswith('linux'):
        return
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        mallopt(_M_TRIM_THRESHOLD, 512 << 20)


def load_panoptic_json(path, what='panoptic JSON', categories=None, need_categories=False):
    """Load a panoptic JSON with ``annotations`` (and, for the ground truth, ``categories``).

    Every annotation and segment is checked (:func:`gluonpan.data.io.check_annotations`): a
    problem is one :class:`~gluonpan.errors.DataError` naming the file, image id and segment id.
    ``categories`` (valid category ids) also checks every segment's ``category_id``.
    """
    return read_panoptic_json(path, what, categories, need_categories)


def _load_ground_truth(path):
    """The ground-truth JSON and its categories, checked; an empty ground truth is an error."""
    gt_json = load_panoptic_json(path, 'ground-truth JSON', need_categories=True)
    try:
        categories = PanopticCategories(gt_json['categories'])
    except DataError as err:
        raise DataError('ground-truth JSON {}: {}'.format(path, err)) from None
    ids = set(categories.by_id)
    for ann in gt_json['annotations']:  # the categories are known only now
        for seg in ann['segments_info']:
            if seg['category_id'] not in ids:
                raise DataError('ground-truth JSON {}, image {!r}, segment id {}: unknown '
                                'category_id {}; valid ids: {}'.format(
                                    path, ann['image_id'], seg['id'], seg['category_id'],
                                    short_list(sorted(ids), 25)))
    if not gt_json['annotations']:
        raise DataError('ground-truth JSON {} has no annotations: nothing to evaluate'.format(path))
    return gt_json, categories


def detect_format(gt_json):
    """``'cityscapes'`` when the ground truth's image ids are strings, else ``'coco'``."""
    ids = [ann['image_id'] for ann in gt_json['annotations']]
    return 'cityscapes' if ids and isinstance(ids[0], str) else 'coco'


def _pair_annotations(gt_json, pred_json, gt_folder, pred_folder, pred_json_file):
    preds = {ann['image_id']: ann for ann in pred_json['annotations']}
    tasks = []
    for gt_ann in gt_json['annotations']:
        image_id = gt_ann['image_id']
        if image_id not in preds:
            hint = ''
            if preds and type(next(iter(preds))) is not type(image_id):
                hint = ' (prediction image ids are {}, ground-truth ones {})'.format(
                    type(next(iter(preds))).__name__, type(image_id).__name__)
            raise DataError('{}: no prediction for the image with id: {}{}'.format(
                pred_json_file, image_id, hint))
        pred_ann = preds[image_id]
        tasks.append((image_id,
                      os.path.join(gt_folder, gt_ann['file_name']), gt_ann['segments_info'],
                      os.path.join(pred_folder, pred_ann['file_name']), pred_ann['segments_info']))
    return tasks


def _evaluate_tasks(args):
    """Worker: statistics of a list of images (top level so that a Pool can pickle it)."""
    categories, tasks = args
    stats = PQStats(categories)
    for task in tasks:
        _image_stats(stats, *task)
    return stats


def _image_stats(stats, image_id, gt_png, gt_segments, pred_png, pred_segments):
    """Add one image pair to ``stats``; a :class:`DataError` of the pair names both PNGs.

    The decoded maps are locals, freed on return before the next pair is decoded, so that the
    allocator reuses their memory (see :func:`retain_freed_memory`).
    """
    gt_ids, pred_ids = read_panoptic_ids(gt_png), read_panoptic_ids(pred_png)
    try:
        panoptic_image_stats(gt_ids, gt_segments, pred_ids, pred_segments, stats, image_id)
    except DataError as err:  # name the files: the stats know the image id only
        raise DataError('{} (ground truth {}, prediction {})'.format(err, gt_png, pred_png)) \
            from None


def evaluate_panoptic_files(gt_json_file, gt_folder, pred_json_file, pred_folder, workers=1):
    """PQ/SQ/RQ (All, Things, Stuff, per class) and mIoU of a prediction folder + JSON.

    Parameters
    ----------
    gt_json_file, pred_json_file : str
        Panoptic JSONs; categories come from the ground truth's.  Predicted segments need ``id`` and
        ``category_id``; every ground-truth image needs a prediction with the same ``image_id``.
    gt_folder, pred_folder : str
        Folders of the panoptic PNGs named by the annotations' ``file_name``.
    workers : int
        Processes over images (1: in this process).  Every evaluating process calls
        :func:`retain_freed_memory`.

    Returns
    -------
    dict
        :meth:`PQStats.results` plus ``format`` (``'cityscapes'``/``'coco'``) and ``seconds``.

    Raises
    ------
    gluonpan.errors.InputError
        Every problem of the files, naming the file (and image id, segment id): a missing or
        unreadable file, a JSON that breaks the panoptic format, an empty ground truth, a PNG that
        is not an 8-bit RGB(A) PNG or disagrees with its ``segments_info``.
    """
    start = time.perf_counter()
    gt_json, categories = _load_ground_truth(gt_json_file)
    pred_json = load_panoptic_json(pred_json_file, 'prediction JSON', set(categories.by_id))
    for folder in (gt_folder, pred_folder):
        if not os.path.exists(folder):
            raise MissingFileError("folder {} with panoptic PNGs doesn't exist".format(folder))
        if not os.path.isdir(folder):
            raise UnreadableFileError('{} should be a folder of panoptic PNGs, but it is a file'
                                      .format(folder))
    fmt = detect_format(gt_json)
    tasks = _pair_annotations(gt_json, pred_json, gt_folder, pred_folder, pred_json_file)
    logging.info('evaluating %d images (%s format) with %d worker(s)', len(tasks), fmt, workers)
    if workers <= 1 or len(tasks) <= 1:
        retain_freed_memory()
        stats = _evaluate_tasks((categories, tasks))
    else:
        # a few chunks per worker balance the load; each returns one small PQStats
        chunks = [list(c) for c in np.array_split(np.arange(len(tasks)), workers * 4) if len(c)]
        jobs = [(categories, [tasks[i] for i in c]) for c in chunks]
        stats = PQStats(categories)
        with multiprocessing.Pool(workers, initializer=retain_freed_memory) as pool:
            for part in pool.imap(_evaluate_tasks, jobs):  # in order: reproducible sums
                stats += part
    results = stats.results()
    results['format'] = fmt
    results['seconds'] = time.perf_counter() - start
    return results
