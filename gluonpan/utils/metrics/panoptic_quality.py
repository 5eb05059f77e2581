"""Panoptic quality (PQ, SQ, RQ) and semantic mIoU, computed exactly as the official evaluators do.

The rules are those of COCO's ``panopticapi.evaluation.pq_compute`` and Cityscapes'
``evalPanopticSemanticLabeling`` (which share them), checked against both by ``tests/test_pq.py``
and ``tests/test_evaluate.py``:

* id 0 is void; a ground-truth (GT) id in the PNG but not in ``segments_info`` is neither void nor
  a segment (ignored); the GT area is the ``area`` of ``segments_info`` (the pixel count when
  absent), a predicted area is its pixel count.
* A GT segment and a predicted segment of the same category match when
  ``IoU = inter / (pred_area + gt_area - inter - pred_on_void) > 0.5`` (strictly).  Crowd GT
  (``iscrowd == 1``) never matches.
* An unmatched non-crowd GT segment is a false negative.  An unmatched prediction is a false
  positive unless more than half of its pixels lie on void plus the crowd region of its category
  (the last crowd segment of that category in ``segments_info``, as the references keep).
* Per category ``PQ = sum(IoU of TPs) / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP``,
  ``RQ = TP / (TP + FP/2 + FN/2)``; All/Things/Stuff average over the categories that have any TP,
  FP or FN, and ``n`` counts them.  With ``n == 0`` we report 0 (the references divide by zero).
* Errors (:class:`gluonpan.errors.DataError`) where the references raise them (predicted id in the PNG but not in the JSON or the reverse,
  unknown predicted category), naming the image and the segment; a GT segment of an unknown
  category is an error too (the references silently leave it out of every average).

One pass also fills a pixel confusion matrix for the semantic mIoU (category of the GT segment vs.
category of the predicted segment; void/unknown GT pixels are ignored, void predictions count as
misses), as Semantic FPN and PanopticFCN report it: ``mIoU`` is the mean IoU over categories whose
``TP + FP + FN`` pixels are not 0.

Pixel pairs are counted from the runs of equal (GT id, predicted id) pairs in raster order (found in
one compiled pass), so no sort of the millions of pixels is needed.  numpy and numba; no MXNet.
"""
import numpy as np

from ..._jit import njit
from ...data.categories import MAX_PANOPTIC_ID, PanopticCategories, short_list
from ...errors import DataError

__all__ = ['PQStats', 'PanopticQuality', 'panoptic_image_stats', 'format_results']

_GROUPS = (('All', None), ('Things', True), ('Stuff', False))


def _as_categories(categories):
    if isinstance(categories, PanopticCategories):
        return categories
    return PanopticCategories(categories)


class PQStats(object):
    """Per-category panoptic counts and the semantic confusion matrix; add them with ``+=``.

    Parameters
    ----------
    categories : PanopticCategories or list of dict
        Dataset categories; statistics are kept in their sorted-id order.
    """

    def __init__(self, categories):
        self.categories = _as_categories(categories)
        num = len(self.categories.categories)
        self.cat_index = self.categories.all_id_to_contiguous  # dataset id -> row
        self.tp = np.zeros(num, np.int64)
        self.fp = np.zeros(num, np.int64)
        self.fn = np.zeros(num, np.int64)
        self.iou = np.zeros(num, np.float64)
        #: pixels: rows = GT category, columns = predicted category, last column = void prediction
        self.confusion = np.zeros((num, num + 1), np.int64)
        self.num_images = 0

    def __iadd__(self, other):
        if self.categories.all_id_to_contiguous != other.categories.all_id_to_contiguous:
            raise ValueError('cannot add panoptic statistics over different categories')
        for key in ('tp', 'fp', 'fn', 'iou', 'confusion'):
            getattr(self, key)[...] += getattr(other, key)
        self.num_images += other.num_images
        return self

    def results(self):
        """Averages as the reference evaluators return them, plus counts and mIoU.

        Returns
        -------
        dict
            ``All``/``Things``/``Stuff``: ``{'pq', 'sq', 'rq', 'n'}``; ``per_class``: dataset
            category id -> ``{'name', 'isthing', 'pq', 'sq', 'rq', 'tp', 'fp', 'fn', 'iou'}``
            (``iou`` is the semantic IoU, ``None`` when the category has no pixel);
            ``mIoU``, ``num_images``.
        """
        cats = self.categories.categories
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        present = (self.tp + self.fp + self.fn) > 0
        with np.errstate(divide='ignore', invalid='ignore'):
            pq = np.where(present, self.iou / denom, 0.0)
            sq = np.where(self.tp > 0, self.iou / self.tp, 0.0)
            rq = np.where(present, self.tp / denom, 0.0)
            inter = np.diag(self.confusion[:, :-1])
            union = self.confusion.sum(1) + self.confusion[:, :-1].sum(0) - inter
            sem_iou = inter / union
        results = {}
        for group, isthing in _GROUPS:
            in_group = [isthing is None or bool(c['isthing']) == isthing for c in cats]
            sel = np.array(in_group, bool) & present
            n = int(sel.sum())
            results[group] = {key: float(vals[sel].sum() / n) if n else 0.0
                              for key, vals in (('pq', pq), ('sq', sq), ('rq', rq))}
            results[group]['n'] = n
        results['per_class'] = {
            int(c['id']): {'name': c['name'], 'isthing': int(bool(c['isthing'])),
                           'pq': float(pq[i]), 'sq': float(sq[i]), 'rq': float(rq[i]),
                           'tp': int(self.tp[i]), 'fp': int(self.fp[i]), 'fn': int(self.fn[i]),
                           'iou': float(sem_iou[i]) if union[i] > 0 else None}
            for i, c in enumerate(cats)}
        results['mIoU'] = float(sem_iou[union > 0].mean()) if (union > 0).any() else 0.0
        results['num_images'] = self.num_images
        return results


class _Segments(object):
    """One image's ``segments_info`` as arrays, with the references' dict semantics (a repeated id
    keeps its last entry at its first place).

    ``keys`` are the sorted ids plus 0 (void); pixel bin ``1 + position in keys``; bin 0 gathers ids
    that are not in ``segments_info``.  ``bins``/``cats`` give each segment's bin and category row.
    """

    def __init__(self, segments_info, cat_index, image_id, which):
        table = {}
        if not isinstance(segments_info, (list, tuple)):
            raise DataError('the {} segments_info of image {} must be a list, got {}'.format(
                which, image_id, repr(segments_info)[:80]))
        for seg in segments_info:
            table[_segment_id(seg, image_id, which)] = seg
        for seg_id, seg in table.items():
            cat = seg['category_id']
            if not isinstance(cat, (int, np.integer)) or isinstance(cat, bool) or \
                    cat not in cat_index:
                raise DataError('In the image with ID {} {} segment with ID {} has unknown '
                                'category_id {!r}; valid ids: {}'.format(
                                    image_id, which, seg_id, seg['category_id'],
                                    short_list(sorted(cat_index), 25)))
        self.table = table
        self.ids = np.array(list(table), np.int64)
        self.keys = np.unique(np.append(self.ids, 0))
        self.bins = self.bin_of(self.ids)
        self.cats = np.array([cat_index[s['category_id']] for s in table.values()], np.int64)

    @property
    def num_bins(self):
        return self.keys.size + 1

    def bin_of(self, ids):
        """Map ids to their pixel bin (0 for ids not in ``segments_info``)."""
        pos = np.minimum(np.searchsorted(self.keys, ids), self.keys.size - 1)
        return np.where(self.keys[pos] == ids, pos + 1, 0)


def _segment_id(seg, image_id, which):
    """The integer id of one ``segments_info`` entry; a :class:`DataError` naming the image if
    the entry is not an object with an integer ``id`` in ``[0, 256**3)`` and a ``category_id``."""
    if not isinstance(seg, dict) or 'id' not in seg or 'category_id' not in seg:
        raise DataError('a {} segment of image {} lacks "id" or "category_id": {}'
                        .format(which, image_id, repr(seg)[:200]))
    seg_id = seg['id']
    if type(seg_id) is not int and (not isinstance(seg_id, (int, np.integer)) or
                                    isinstance(seg_id, (bool, np.bool_))):
        raise DataError('a {} segment of image {} has the non-integer id {!r}'
                        .format(which, image_id, seg_id))
    if not 0 <= seg_id < MAX_PANOPTIC_ID:
        raise DataError('a {} segment of image {} has the id {}, out of range [0, 256**3)'
                        .format(which, image_id, seg_id))
    return int(seg_id)


def _id_map(ids, image_id, which):
    ids = np.asarray(ids.asnumpy() if hasattr(ids, 'asnumpy') else ids)
    if ids.ndim != 2 or ids.dtype.kind not in 'iu' or not ids.size:
        raise DataError('{} panoptic ids of image {} must be a non-empty (H, W) integer map, '
                        'got shape {} dtype {}'.format(which, image_id, ids.shape, ids.dtype))
    return ids


@njit(nogil=True)
def _run_starts(gt, pred):  # pragma: no cover (compiled)
    """Start indices of the runs of equal (gt, pred) pairs of two flat maps (one pass)."""
    starts = np.empty(gt.size, np.int64)
    starts[0] = 0
    num = 1
    last_gt, last_pred = gt[0], pred[0]
    for i in range(1, gt.size):
        if gt[i] != last_gt or pred[i] != last_pred:
            starts[num] = i
            num += 1
            last_gt, last_pred = gt[i], pred[i]
    return starts[:num]


def _runs(gt, pred):
    """Runs of equal (gt, pred) pairs of two flat maps in raster order: values and lengths."""
    if gt.dtype != pred.dtype:
        gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    starts = _run_starts(gt, pred)
    lengths = np.diff(np.append(starts, gt.size))
    return gt[starts], pred[starts], lengths


def _pixel_pairs(gt_map, pred_map, gt, pred, image_id):
    """``(GT bins, predicted bins)`` pixel counts; raises on predicted ids missing from the JSON."""
    gt_run, pred_run, lengths = _runs(gt_map.ravel(), pred_map.ravel())
    pbin = pred.bin_of(pred_run)
    joint = np.bincount(gt.bin_of(gt_run) * pred.num_bins + pbin, weights=lengths,
                        minlength=gt.num_bins * pred.num_bins).astype(np.int64)
    joint = joint.reshape(gt.num_bins, pred.num_bins)  # (GT bins, predicted bins)
    if joint[:, 0].any():
        raise DataError('In the image with ID {} segment(s) with ID {} are in the prediction PNG '
                        'but not in its JSON segments_info.'
                        .format(image_id, short_list(np.unique(pred_run[pbin == 0]))))
    return joint


def panoptic_image_stats(gt_ids, gt_segments, pred_ids, pred_segments, stats, image_id=None):
    """Add one image's TP/FP/FN/IoU and pixel confusion to ``stats``.

    Parameters
    ----------
    gt_ids, pred_ids : np.ndarray
        ``(H, W)`` integer panoptic id maps (0 = void).
    gt_segments, pred_segments : list of dict
        ``segments_info``: ``id``, ``category_id``, and for the GT ``iscrowd`` (default 0) and
        ``area`` (default: the pixel count).
    stats : PQStats
        Accumulator, updated in place.
    image_id : str or int, optional
        Named in error messages.

    Raises
    ------
    gluonpan.errors.DataError
        A predicted id in the PNG but not in ``segments_info`` or the reverse, an unknown category
        (predicted or GT), a segment without ``id``/``category_id`` or with a non-integer or
        out-of-range id; id maps that are not 2-D integer arrays of the same shape.  (A
        ``ValueError``; the references raise ``KeyError`` for the first ones.)
    """
    gt_map = _id_map(gt_ids, image_id, 'ground-truth')
    pred_map = _id_map(pred_ids, image_id, 'predicted')
    if gt_map.shape != pred_map.shape:
        raise DataError('image {}: ground truth is {}x{} but the prediction is {}x{}'
                        .format(image_id, *gt_map.shape, *pred_map.shape))
    gt = _Segments(gt_segments, stats.cat_index, image_id, 'ground-truth')
    pred = _Segments(pred_segments, stats.cat_index, image_id, 'predicted')
    joint = _pixel_pairs(gt_map, pred_map, gt, pred, image_id)
    pred_area = joint.sum(0)[pred.bins]
    if (pred_area == 0).any():
        raise DataError('In the image with ID {} the following segment IDs {} are in the JSON '
                        'segments_info and not in the prediction PNG.'
                        .format(image_id, short_list(pred.ids[pred_area == 0])))
    crowd = np.array([int(s.get('iscrowd', 0)) == 1 for s in gt.table.values()], bool)
    gt_area = np.array([s.get('area', -1) for s in gt.table.values()], np.float64)
    gt_area = np.where(gt_area < 0, joint.sum(1)[gt.bins], gt_area)
    void_bin = gt.bin_of(0)

    # match: (G, P) intersections of same-category, non-crowd pairs
    inter = joint[gt.bins][:, pred.bins]  # (G, P)
    pred_void = joint[void_bin, pred.bins]  # (P,)
    candidate = (inter > 0) & ~crowd[:, None] & (gt.cats[:, None] == pred.cats[None, :])
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / (pred_area[None, :] + gt_area[:, None] - inter - pred_void[None, :])
    match = candidate & (iou > 0.5)
    gi, pj = np.nonzero(match)
    np.add.at(stats.tp, gt.cats[gi], 1)
    np.add.at(stats.iou, gt.cats[gi], iou[gi, pj])
    np.add.at(stats.fn, gt.cats[~match.any(1) & ~crowd], 1)

    # false positives: unmatched predictions not mostly on void + the crowd of their category
    crowd_bin = {}
    for cat, gbin, is_crowd in zip(gt.cats.tolist(), gt.bins.tolist(), crowd.tolist()):
        if is_crowd:
            crowd_bin[cat] = gbin  # the last crowd segment of a category wins
    ignored = pred_void.copy()
    for j, cat in enumerate(pred.cats.tolist()):
        if cat in crowd_bin:
            ignored[j] += joint[crowd_bin[cat], pred.bins[j]]
    fp = ~match.any(0) & ~(ignored / pred_area > 0.5)
    np.add.at(stats.fp, pred.cats[fp], 1)
    _add_confusion(stats, joint, gt, pred)
    stats.num_images += 1


def _add_confusion(stats, joint, gt, pred):
    """Semantic pixel confusion: GT segment category x predicted category (void column last)."""
    num = stats.confusion.shape[0]
    gt_cat = np.full(gt.num_bins, -1, np.int64)  # void and unlisted GT ids are ignored
    gt_cat[gt.bins] = gt.cats
    pred_cat = np.full(pred.num_bins, num, np.int64)  # void predictions are misses
    pred_cat[pred.bins] = pred.cats
    rows = gt_cat >= 0
    stats.confusion += np.bincount(
        (gt_cat[rows, None] * (num + 1) + pred_cat[None, :]).ravel(),
        weights=joint[rows].ravel(), minlength=num * (num + 1)
    ).astype(np.int64).reshape(num, num + 1)  # (C, C + 1)


class PanopticQuality(object):
    """Panoptic quality over in-memory id maps, with the ``mx.metric.EvalMetric`` interface.

    It follows EvalMetric's conventions (``reset``, ``update``, ``get`` -> ``(names, values)``,
    ``get_name_value``) without importing MXNet, so evaluation processes start fast; NDArrays are
    accepted (``asnumpy`` is called).  Values are fractions in [0, 1].

    Parameters
    ----------
    categories : PanopticCategories or list of dict
        The dataset's categories (``gluonpan.data.cityscapes_categories()`` or a panoptic JSON's
        ``categories``).
    name : str
        Metric name.

    Examples
    --------
    >>> metric = PanopticQuality(cityscapes_categories())
    >>> metric.update(gt_pan_ids, gt_segments_info, pred_pan_ids, pred_segments_info, 'img0')
    >>> names, values = metric.get()   # PQ, SQ, RQ, PQ_th, ..., mIoU
    """

    def __init__(self, categories, name='panoptic_quality'):
        self.name = name
        self.categories = _as_categories(categories)
        self.stats = PQStats(self.categories)

    def reset(self):
        """Forget every image seen."""
        self.stats = PQStats(self.categories)

    def update(self, gt_pan_ids, gt_segments_info, pred_pan_ids, pred_segments_info, image_id=None):
        """Add one image; see :func:`panoptic_image_stats` for the arguments and errors."""
        panoptic_image_stats(gt_pan_ids, gt_segments_info, pred_pan_ids, pred_segments_info,
                             self.stats, image_id)

    @property
    def num_inst(self):
        """Number of images seen (EvalMetric's name)."""
        return self.stats.num_images

    def results(self):
        """Full results dict; see :meth:`PQStats.results`."""
        return self.stats.results()

    def get(self):
        """``(names, values)``: PQ, SQ, RQ for All, Things (``_th``), Stuff (``_st``), then mIoU."""
        res = self.results()
        names, values = [], []
        for group, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st')):
            for key in ('pq', 'sq', 'rq'):
                names.append(key.upper() + suffix)
                values.append(res[group][key])
        return names + ['mIoU'], values + [res['mIoU']]

    def get_name_value(self):
        """``[(name, value), ...]`` as EvalMetric."""
        return list(zip(*self.get()))


def format_results(results):
    """The per-class table and the All/Things/Stuff table (in percent) as one string."""
    lines = ['{:14s}| {:>5s}  {:>5s}  {:>5s}  {:>5s}'.format('Category', 'PQ', 'SQ', 'RQ', 'IoU')]
    for cid in sorted(results['per_class']):
        r = results['per_class'][cid]
        iou = '{:5.1f}'.format(100 * r['iou']) if r['iou'] is not None else '    -'
        lines.append('{:14s}| {:5.1f}  {:5.1f}  {:5.1f}  {}'.format(
            r['name'][:14], 100 * r['pq'], 100 * r['sq'], 100 * r['rq'], iou))
    lines.append('-' * 48)
    lines.append('{:14s}| {:>5s}  {:>5s}  {:>5s}  {:>5s}'.format('', 'PQ', 'SQ', 'RQ', 'N'))
    for group, _ in _GROUPS:
        r = results[group]
        lines.append('{:14s}| {:5.1f}  {:5.1f}  {:5.1f}  {:5d}'.format(
            group, 100 * r['pq'], 100 * r['sq'], 100 * r['rq'], r['n']))
    lines.append('mIoU: {:.1f}  ({} images)'.format(100 * results['mIoU'], results['num_images']))
    return '\n'.join(lines)
