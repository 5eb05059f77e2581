"""File-level semantic evaluation: Cityscapes label-id PNGs and ADE20K PNGs.

* :func:`evaluate_cityscapes_semantic_files` gives what ``cityscapesscripts``'
  ``evalPixelLevelSemanticLabeling.evaluateImgLists`` gives (see :mod:`.semantic`): the ground
  truth is ``{gt_root}/gtFine/{split}/*/*_gtFine_labelIds.png`` (+ ``_instanceIds.png``), and the
  prediction of ``{city}_{seq}_{frame}_gtFine_labelIds.png`` is the one file matching
  ``{city}_{seq}_{frame}*.png`` anywhere under the prediction folder, as its ``getPrediction``
  finds it.  Predictions hold label ids (not train ids).
* :func:`evaluate_ade20k_files` is mmsegmentation's ``IoUMetric`` with ``reduce_zero_label``:
  ``ADEChallengeData2016/annotations/{split}/NAME.png`` (0 = ignore, label ``k`` is class
  ``k - 1``) against ``{pred_dir}/NAME.png`` holding class ``k`` as ``k + 1``.

Every problem is one :mod:`gluonpan.errors` input error naming the file: a missing or duplicate
prediction, a PNG that cannot be read or is not single-channel, a size that differs from the
ground truth, a value that is not a label.  PNGs are read by
:func:`gluonpan.data.png.read_label_png` (re-exported here), the one label-PNG reader.  numpy,
OpenCV and PIL; no MXNet.
"""
import bisect
import glob
import logging
import os
import time

import numpy as np

from ...data.png import read_label_png
from ...errors import DataError, MissingFileError, UnreadableFileError
from .semantic import CityscapesSemanticMetric, SemanticMetric

__all__ = ['read_label_png', 'cityscapes_ground_truth', 'find_cityscapes_prediction',
           'evaluate_cityscapes_semantic_files', 'evaluate_ade20k_files']

_ADE_LABEL = np.arange(256, dtype=np.int64) - 1  # ADE20K annotation -> class (0 -> ignore 255)
_ADE_LABEL[0] = 255


def _check_folder(folder, what):
    if not os.path.exists(folder):
        raise MissingFileError('{} {} does not exist'.format(what, folder))
    if not os.path.isdir(folder):
        raise UnreadableFileError('{} {} is a file, not a folder'.format(what, folder))


def _same_size(pred, gt, pred_file, gt_file):
    if pred.shape != gt.shape:
        raise DataError('prediction {} is {}x{} but its ground truth {} is {}x{} (height x width)'
                        .format(pred_file, pred.shape[0], pred.shape[1], gt_file, *gt.shape[:2]))


def cityscapes_ground_truth(gt_root, split='val'):
    """The sorted ``*_gtFine_labelIds.png`` of ``{gt_root}/gtFine/{split}/*/``."""
    folder = os.path.join(gt_root, 'gtFine', split)
    _check_folder(folder, 'Cityscapes ground-truth folder')
    files = sorted(glob.glob(os.path.join(folder, '*', '*_gtFine_labelIds.png')))
    if not files:
        raise DataError('no */*_gtFine_labelIds.png in {}: nothing to evaluate'.format(folder))
    return files


def _prediction_index(pred_dir):
    """``(sorted file names, their folders)`` of every file under ``pred_dir``."""
    entries = sorted((name, root) for root, _, names in os.walk(pred_dir) for name in names)
    return [e[0] for e in entries], [e[1] for e in entries]


def find_cityscapes_prediction(index, gt_file, pred_dir):
    """The one file of ``index`` (:func:`_prediction_index`) matching ``{city}_{seq}_{frame}*.png``
    for ``gt_file``, as ``getPrediction`` of cityscapesscripts (a sorted-prefix search)."""
    parts = os.path.basename(gt_file).split('_')
    if len(parts) < 4:
        raise DataError('ground truth {} is not named {{city}}_{{seq}}_{{frame}}_gtFine_'
                        'labelIds.png'.format(gt_file))
    prefix = '_'.join(parts[:3])
    names, roots = index
    found = []
    for i in range(bisect.bisect_left(names, prefix), len(names)):
        if not names[i].startswith(prefix):
            break
        if names[i].endswith('.png'):
            found.append(os.path.join(roots[i], names[i]))
    if not found:
        raise MissingFileError('no prediction for ground truth {}: no file {}*.png under {}'
                               .format(gt_file, prefix, pred_dir))
    if len(found) > 1:
        raise DataError('several predictions for ground truth {}: {}'.format(gt_file, found[:4]))
    return found[0]


def evaluate_cityscapes_semantic_files(pred_dir, gt_root, split='val', instance_level=True):
    """Cityscapes class and category IoU / iIoU of a folder of label-id PNGs.

    Parameters
    ----------
    pred_dir : str
        Folder searched recursively for one ``{city}_{seq}_{frame}*.png`` per ground-truth image.
    gt_root : str
        Cityscapes root (holding ``gtFine/``).
    split : str
        ``'val'``, ``'train'`` ...
    instance_level : bool
        Read the instanceIds PNGs and compute iIoU (else the iIoU scores are NaN).

    Returns
    -------
    dict
        :meth:`CityscapesSemanticMetric.results` (the keys of ``evaluateImgLists``' result) plus
        ``seconds``.
    """
    start = time.perf_counter()
    _check_folder(pred_dir, 'prediction folder')
    gt_files = cityscapes_ground_truth(gt_root, split)
    index = _prediction_index(pred_dir)
    pairs = [(find_cityscapes_prediction(index, gt, pred_dir), gt) for gt in gt_files]
    logging.info('evaluating %d Cityscapes semantic predictions in %s', len(pairs), pred_dir)
    metric = CityscapesSemanticMetric()
    for pred_file, gt_file in pairs:
        gt = read_label_png(gt_file, 'ground-truth labelIds PNG')
        pred = read_label_png(pred_file, 'prediction PNG')
        _same_size(pred, gt, pred_file, gt_file)
        inst = None
        if instance_level:
            folder, name = os.path.split(gt_file)
            inst_file = os.path.join(folder, name.replace('labelIds', 'instanceIds'))
            inst = read_label_png(inst_file, 'ground-truth instanceIds PNG')
            _same_size(inst, gt, inst_file, gt_file)
        try:
            metric.update(pred, gt, inst, name=os.path.basename(gt_file))
        except DataError as err:
            raise DataError('{} (prediction {}, ground truth {})'.format(err, pred_file, gt_file)) \
                from None
    results = metric.results()
    results['seconds'] = time.perf_counter() - start
    return results


def _ade_root(ade_root):
    inner = os.path.join(ade_root, 'ADEChallengeData2016')
    return inner if os.path.isdir(inner) else ade_root


def evaluate_ade20k_files(pred_dir, ade_root, split='validation', num_classes=150,
                          class_names=None):
    """mmsegmentation's aAcc / mIoU / mAcc of ADE20K prediction PNGs (class ``k`` stored as
    ``k + 1``) against ``ADEChallengeData2016/annotations/{split}/*.png``.

    Parameters
    ----------
    pred_dir : str
        Folder with one ``NAME.png`` per annotation ``NAME.png``.
    ade_root : str
        The folder holding ``ADEChallengeData2016/``, or that folder itself.
    split : str
        ``'validation'`` or ``'training'``.
    num_classes : int
        Classes (150): annotations hold 0..num_classes, predictions 1..num_classes.
    class_names : sequence of str, optional
        Names for the per-class results.

    Returns
    -------
    dict
        :meth:`SemanticMetric.results` plus ``seconds``.
    """
    start = time.perf_counter()
    folder = os.path.join(_ade_root(ade_root), 'annotations', split)
    _check_folder(folder, 'ADE20K annotation folder')
    _check_folder(pred_dir, 'prediction folder')
    gt_files = sorted(glob.glob(os.path.join(folder, '*.png')))
    if not gt_files:
        raise DataError('no *.png annotations in {}: nothing to evaluate'.format(folder))
    logging.info('evaluating %d ADE20K predictions in %s', len(gt_files), pred_dir)
    metric = SemanticMetric(num_classes, 255, class_names)
    for gt_file in gt_files:
        pred_file = os.path.join(pred_dir, os.path.basename(gt_file))
        if not os.path.exists(pred_file):
            raise MissingFileError('no prediction {} for annotation {}'.format(pred_file, gt_file))
        gt = read_label_png(gt_file, 'ground-truth annotation PNG')
        pred = read_label_png(pred_file, 'prediction PNG')
        _same_size(pred, gt, pred_file, gt_file)
        if gt.max() > num_classes:
            raise DataError('annotation {}: value {} is not an ADE20K label (0..{})'.format(
                gt_file, gt.max(), num_classes))
        low, high = pred.min(), pred.max()
        if low < 1 or high > num_classes:
            raise DataError('prediction {}: value {} is not a class; ADE20K predictions store '
                            'class k as k + 1 (1..{})'.format(
                                pred_file, low if low < 1 else high, num_classes))
        metric.update(pred.astype(np.int64) - 1, _ADE_LABEL[gt])
    results = metric.results()
    results['seconds'] = time.perf_counter() - start
    return results
