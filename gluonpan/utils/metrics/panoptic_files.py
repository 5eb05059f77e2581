"""File-level panoptic evaluation: a prediction folder + JSON against a ground-truth folder + JSON.

Both the Cityscapes panoptic format (string image ids such as ``frankfurt_000000_000294``, label-id
categories, as ``cityscapesscripts.preparation.createPanopticImgs`` writes it) and the COCO panoptic
format (integer image ids) are read; the format is detected from the ground truth's image ids and
changes nothing in the rules (see :mod:`.panoptic_quality`).
"""
import ctypes
import json
import logging
import multiprocessing
import os
import sys
import time

import numpy as np

from ...data.categories import PanopticCategories
from ...data.io import read_panoptic_ids
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


def load_panoptic_json(path):
    """Load a panoptic JSON with ``annotations`` (and, for the ground truth, ``categories``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('missing panoptic JSON {}'.format(path))
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or 'annotations' not in data:
        raise KeyError('panoptic JSON {} has no "annotations"'.format(path))
    for ann in data['annotations']:
        for key in ('image_id', 'file_name', 'segments_info'):
            if key not in ann:
                raise KeyError('an annotation in {} lacks "{}": image_id {}'
                               .format(path, key, ann.get('image_id')))
    return data


def detect_format(gt_json):
    """``'cityscapes'`` when the ground truth's image ids are strings, else ``'coco'``."""
    ids = [ann['image_id'] for ann in gt_json['annotations']]
    return 'cityscapes' if ids and isinstance(ids[0], str) else 'coco'


def _pair_annotations(gt_json, pred_json, gt_folder, pred_folder):
    preds = {ann['image_id']: ann for ann in pred_json['annotations']}
    tasks = []
    for gt_ann in gt_json['annotations']:
        image_id = gt_ann['image_id']
        if image_id not in preds:
            hint = ''
            if preds and type(next(iter(preds))) is not type(image_id):
                hint = ' (prediction image ids are {}, ground-truth ones {})'.format(
                    type(next(iter(preds))).__name__, type(image_id).__name__)
            raise KeyError('no prediction for the image with id: {}{}'.format(image_id, hint))
        pred_ann = preds[image_id]
        tasks.append((image_id,
                      os.path.join(gt_folder, gt_ann['file_name']), gt_ann['segments_info'],
                      os.path.join(pred_folder, pred_ann['file_name']), pred_ann['segments_info']))
    return tasks


def _evaluate_tasks(args):
    """Worker: statistics of a list of images (top level so that a Pool can pickle it)."""
    categories, tasks = args
    stats = PQStats(categories)
    for image_id, gt_png, gt_segments, pred_png, pred_segments in tasks:
        panoptic_image_stats(read_panoptic_ids(gt_png), gt_segments, read_panoptic_ids(pred_png),
                             pred_segments, stats, image_id)
    return stats


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
    """
    start = time.perf_counter()
    gt_json, pred_json = load_panoptic_json(gt_json_file), load_panoptic_json(pred_json_file)
    for folder in (gt_folder, pred_folder):
        if not os.path.isdir(folder):
            raise FileNotFoundError("folder {} with panoptic PNGs doesn't exist".format(folder))
    if 'categories' not in gt_json:
        raise KeyError('ground-truth JSON {} has no "categories"'.format(gt_json_file))
    categories = PanopticCategories(gt_json['categories'])
    fmt = detect_format(gt_json)
    tasks = _pair_annotations(gt_json, pred_json, gt_folder, pred_folder)
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
