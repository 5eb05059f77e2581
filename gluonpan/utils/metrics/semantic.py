"""Semantic-segmentation pixel metrics: mmsegmentation's mIoU and Cityscapes' IoU / iIoU.

:class:`SemanticMetric` is mmsegmentation's ``IoUMetric`` (``mIoU``): per class the intersection,
union, predicted and label areas are summed over the whole dataset, then ``IoU = intersect /
union``, ``Acc = intersect / label area``, ``aAcc = sum intersect / sum label area``; ``mIoU`` and
``mAcc`` are the ``nanmean`` over classes (NaN where the denominator is 0).  mmseg reports them in
percent rounded to 2 decimals; we keep unrounded fractions.

:class:`CityscapesSemanticMetric` is ``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``
over *label ids* (0..33), checked against it by ``tests/test_semantic_metrics.py``:

* The confusion matrix has a row for every ground-truth pixel, ignored labels included.  A class's
  false negatives are its whole row minus the diagonal (so predicting an ignored id such as 0 is
  a miss); its false positives are its column over the rows of labels that are *not*
  ``ignoreInEval``.  Classes that are ``ignoreInEval`` score NaN; so does a class with
  ``TP + FP + FN == 0``; averages are over the non-NaN scores.
* iIoU: every ground-truth instance (instanceIds value > 1000 of a label that is not ignored)
  weighs its TP and FN pixels by ``avgClassSize[class] / instance size``; FP are unweighted, as
  for IoU.  Crowd/group regions (instanceIds value < 1000, e.g. ``26`` for a car group) add
  nothing to the weighted TP/FN, but their pixels predicted as another class still are that
  class's FP.
* Categories: TP/FN/FP over the category's non-ignored labels; false positives come from the rows
  of non-ignored labels of *other* categories.  Category iIoU exists for categories whose labels
  (with id >= 0) all have instances (human, vehicle); there a pixel is a hit when it is predicted
  as *any* label of the category, ignored ones (caravan, trailer) included, and the FP columns are
  all of the category's labels too (unlike category IoU).
"""
import numpy as np
from cityscapesscripts.helpers.labels import category2labels, labels

from ..._jit import njit
from ...errors import DataError, UsageError

__all__ = ['SemanticMetric', 'CityscapesSemanticMetric', 'CITYSCAPES_AVG_CLASS_SIZE']

#: mean instance size per class on Cityscapes train, the iIoU weights (the values of
#: ``evalPixelLevelSemanticLabeling.args.avgClassSize``; the tests check they are equal)
CITYSCAPES_AVG_CLASS_SIZE = {
    'bicycle': 4672.3249222261, 'caravan': 36771.8241758242, 'motorcycle': 6298.7200839748,
    'rider': 3930.4788056518, 'bus': 35732.1511111111, 'train': 67583.7075812274,
    'car': 12794.0202738185, 'person': 3462.4756337644, 'truck': 27855.1264367816,
    'trailer': 16926.9763313609}

_LABELS = [l for l in labels if l.id >= 0]
_K = max(l.id for l in _LABELS) + 1  # confusion-matrix size over label ids
assert sorted(l.id for l in _LABELS) == list(range(_K)), 'Cityscapes label ids have a gap'
_VALID = np.zeros(_K, bool)  # rows that count: known and not ignoreInEval
_VALID[[l.id for l in _LABELS if not l.ignoreInEval]] = True
_NAMES = {l.id: l.name for l in _LABELS}
_CATEGORIES = list(category2labels)
_ROWS = np.array([l.id for l in _LABELS])
_CAT_OF = np.zeros((_K, len(_CATEGORIES)), bool)  # (K, G): label id -> its category
_CAT_OF[_ROWS, [_CATEGORIES.index(l.category) for l in _LABELS]] = True
_CAT_COLS = _CAT_OF & _VALID[:, None]  # category IoU: its non-ignored labels
_INST_CATS = [g for g, c in enumerate(_CATEGORIES)
              if all(l.hasInstances for l in category2labels[c] if l.id >= 0)]
_INST_COLS = _CAT_OF & np.isin(np.arange(len(_CATEGORIES)), _INST_CATS)  # all labels, ignored too
_INST_CLASS = np.zeros(_K, bool)  # classes with an iIoU
_INST_CLASS[[l.id for l in _LABELS if l.hasInstances and not l.ignoreInEval]] = True
_AVG_SIZE = np.array([CITYSCAPES_AVG_CLASS_SIZE.get(_NAMES[k], 0.0) for k in range(_K)])
_PRED_ICAT = np.full(_K, -1)  # label id -> its instance category (or -1)
_LABEL_ICAT = np.full(_K, -2)  # same, never equal to -1 for an instance outside them
for _g in _INST_CATS:
    _PRED_ICAT[_CAT_OF[:, _g]] = _LABEL_ICAT[_CAT_OF[:, _g]] = _g


def _ids(x, what):
    """An integer numpy array from a numpy array or NDArray; floats (MXNet's ``argmax`` gives
    float32) are accepted when every value is a whole number."""
    arr = x.asnumpy() if hasattr(x, 'asnumpy') else np.asarray(x)
    if arr.dtype.kind == 'f':
        ints = arr.astype(np.int64)
        if not np.array_equal(ints, arr):
            raise DataError('{} holds values that are not whole numbers (NaN or fractions)'
                            .format(what))
        return ints
    if arr.dtype.kind not in 'iu':
        raise DataError('{} must hold integer ids, got dtype {}'.format(what, arr.dtype))
    return arr


def _nanmean(values):
    values = np.asarray(values, np.float64)
    valid = ~np.isnan(values)
    return float(values[valid].sum() / valid.sum()) if valid.any() else float('nan')


@njit(nogil=True, boundscheck=False)
def _count_pairs(label, pred, num, ignore, out):  # pragma: no cover (compiled)
    """``out[label[i], pred[i]] += 1`` where ``label[i] != ignore``; returns -1, or the first
    ``i`` whose prediction (any pixel) or label is outside ``0..num-1``.  One pass, no
    temporaries: ~4x faster than ``np.bincount`` of ``label * num + pred``."""
    for i in range(label.size):
        p, lab = pred[i], label[i]
        if p < 0 or p >= num:
            return i
        if lab != ignore:
            if lab < 0 or lab >= num:
                return i
            out[lab, p] += 1
    return -1


@njit(nogil=True, boundscheck=False)
def _count_instances(inst, pred, pred_cat, label_cat, out):  # pragma: no cover (compiled)
    """Per instance id > 1000: ``out[0]`` pixels, ``out[1]`` predicted as its label,
    ``out[2]`` predicted in its instance category; returns -1 or the first id too large."""
    for i in range(inst.size):
        v = inst[i]
        if v > 1000:
            if v >= out.shape[1]:
                return i
            lab = v // 1000
            out[0, v] += 1
            out[1, v] += pred[i] == lab
            out[2, v] += pred_cat[pred[i]] == label_cat[lab]
    return -1


def _pair_counts(label, pred, num, ignore, what):
    """``(num, num)`` int64 counts of (label, pred) pairs; a value outside is a DataError."""
    out = np.zeros((num, num), np.int64)
    lab, prd = label.ravel(), pred.ravel()  # (N,) each
    bad = _count_pairs(lab, prd, num, ignore, out)
    if bad >= 0:
        p = int(prd[bad])
        raise DataError(what[0].format(p) if p < 0 or p >= num else what[1].format(int(lab[bad])))
    return out


class SemanticMetric(object):
    """mmsegmentation's ``IoUMetric`` over contiguous class ids, with EvalMetric's interface.

    Parameters
    ----------
    num_classes : int
        Classes ``0..num_classes-1``.
    ignore_label : int
        Ground-truth value that is left out.
    class_names : sequence of str, optional
        Names for the per-class results (default ``'0'``, ``'1'`` ...).
    name : str
        Metric name.
    """

    def __init__(self, num_classes, ignore_label=255, class_names=None, name='semantic_miou'):
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise UsageError('num_classes must be an int >= 1, got {!r}'.format(num_classes))
        if 0 <= ignore_label < num_classes:
            raise UsageError('ignore_label {} is one of the {} classes'.format(
                ignore_label, num_classes))
        names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
        if len(names) != num_classes:
            raise UsageError('{} class names for {} classes'.format(len(names), num_classes))
        self.num_classes, self.ignore_label = int(num_classes), ignore_label
        self.class_names, self.name = names, name
        self.reset()

    def reset(self):
        """Forget every image seen."""
        #: pixels: rows = ground-truth class, columns = predicted class
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.num_inst = 0

    def update(self, pred, label):
        """Add images: ``pred``/``label`` are ``(H, W)`` or ``(B, H, W)`` integer arrays (or
        NDArrays).  A predicted value outside the classes, or a label value that is neither a
        class nor ``ignore_label``, is a :class:`~gluonpan.errors.DataError` naming it."""
        pred, label = _ids(pred, 'prediction'), _ids(label, 'label')
        if pred.shape != label.shape or pred.ndim not in (2, 3):
            raise DataError('prediction {} and label {} must have the same (H, W) or (B, H, W) '
                            'shape'.format(pred.shape, label.shape))
        c = self.num_classes
        self.confusion += _pair_counts(label, pred, c, self.ignore_label, (
            'predicted value {{}} is not a class (0..{})'.format(c - 1),
            'label value {{}} is neither a class (0..{}) nor the ignore label {}'.format(
                c - 1, self.ignore_label)))
        self.num_inst += 1 if pred.ndim == 2 else pred.shape[0]

    def results(self):
        """``aAcc``, ``mIoU``, ``mAcc`` (fractions), per-class ``IoU``/``Acc`` dicts (name ->
        value, NaN where undefined), the summed ``area_*`` arrays and ``num_images``."""
        inter = np.diag(self.confusion).astype(np.float64)
        area_label = self.confusion.sum(1)
        area_pred = self.confusion.sum(0)
        union = area_pred + area_label - inter
        with np.errstate(divide='ignore', invalid='ignore'):
            iou, acc = inter / union, inter / area_label
            a_acc = inter.sum() / area_label.sum()
        return {'aAcc': float(a_acc), 'mIoU': _nanmean(iou), 'mAcc': _nanmean(acc),
                'IoU': dict(zip(self.class_names, iou.tolist())),
                'Acc': dict(zip(self.class_names, acc.tolist())),
                'area_intersect': inter, 'area_union': union, 'area_pred_label': area_pred,
                'area_label': area_label, 'num_images': self.num_inst}

    def get(self):
        """``(names, values)``: ``aAcc``, ``mIoU``, ``mAcc``."""
        res = self.results()
        return ['aAcc', 'mIoU', 'mAcc'], [res['aAcc'], res['mIoU'], res['mAcc']]

    def get_name_value(self):
        """``[(name, value), ...]`` as EvalMetric."""
        return list(zip(*self.get()))


class CityscapesSemanticMetric(object):
    """Cityscapes' class / category IoU and iIoU over label-id maps (see the module docstring).

    iIoU needs the gtFine instanceIds map of every image: when an image came without one, the
    iIoU scores are NaN.
    """

    def __init__(self, name='cityscapes_iou'):
        self.name = name
        self.reset()

    def reset(self):
        """Forget every image seen."""
        self.confusion = np.zeros((_K, _K), np.int64)  # rows = ground truth, columns = prediction
        self.tp_weighted, self.fn_weighted = np.zeros(_K), np.zeros(_K)
        self.cat_tp_weighted = np.zeros(len(_CATEGORIES))
        self.cat_fn_weighted = np.zeros(len(_CATEGORIES))
        self.num_inst, self.without_instances = 0, 0

    def update(self, pred, label, instance_ids=None, name='image'):
        """Add one image: ``(H, W)`` predicted and ground-truth label ids and optionally the
        gtFine instanceIds; ``name`` (a file name) is used in error messages.  Convert train-id
        predictions with :func:`gluonpan.utils.semantic_writer.train_to_label_ids`."""
        pred, label = _ids(pred, name + ' prediction'), _ids(label, name + ' ground truth')
        if pred.shape != label.shape or pred.ndim != 2:
            raise DataError('{}: prediction {} and ground truth {} must have the same (H, W) shape'
                            .format(name, pred.shape, label.shape))
        conf = _pair_counts(label, pred, _K, -1, ('{}: predicted value {{}} is not a Cityscapes '
                                                  'label id (0..{})'.format(name, _K - 1),
                                                  '{}: ground-truth value {{}} is not a Cityscapes '
                                                  'label id (0..{})'.format(name, _K - 1)))
        self.confusion += conf
        if instance_ids is None:
            self.without_instances += 1
        else:
            self._add_instances(pred, _ids(instance_ids, name + ' instanceIds'), name)
        self.num_inst += 1

    def _add_instances(self, pred, instance_ids, name):
        if instance_ids.shape != pred.shape:
            raise DataError('{}: instanceIds {} and prediction {} differ in size'.format(
                name, instance_ids.shape, pred.shape))
        counts = np.zeros((3, _K * 1000), np.int64)  # pixels, hits, category hits per id
        bad = _count_instances(instance_ids.ravel(), pred.ravel(), _PRED_ICAT, _LABEL_ICAT, counts)
        if bad >= 0:
            raise DataError('{}: instance id {} has no Cityscapes label id'.format(
                name, instance_ids.ravel()[bad]))
        ids = np.flatnonzero(counts[0])
        ids = ids[_VALID[ids // 1000]]  # instances of ignored labels do not count
        if not _INST_CLASS[ids // 1000].all():
            bad = int(ids[~_INST_CLASS[ids // 1000]][0])
            raise DataError('{}: instance id {} of label {!r}, which has no instances'.format(
                name, bad, _NAMES[bad // 1000]))
        size, hit, cat_hit = counts[:, ids]
        lab = ids // 1000
        weight = _AVG_SIZE[lab] / size
        tp_w, fn_w = hit * weight, (size - hit) * weight
        self.tp_weighted += np.bincount(lab, tp_w, _K)
        self.fn_weighted += np.bincount(lab, fn_w, _K)
        cat = _LABEL_ICAT[lab]
        in_cat = cat >= 0
        cat_tp, cat_n = cat_hit * weight, len(_CATEGORIES)
        self.cat_tp_weighted += np.bincount(cat[in_cat], cat_tp[in_cat], cat_n)
        cat_fn = (size - cat_hit) * weight
        self.cat_fn_weighted += np.bincount(cat[in_cat], cat_fn[in_cat], cat_n)

    def _false_positives(self, cols, excluded):
        """Per column group: pixels predicted in ``cols`` (K, G) on rows of non-ignored labels
        that are not ``excluded`` (K, G) for that group."""
        return ((self.confusion @ cols.astype(np.int64)) * (_VALID[:, None] & ~excluded)).sum(0)

    def results(self):
        """The result dict of ``evaluateImgLists``: ``classScores``, ``classInstScores``,
        ``categoryScores``, ``categoryInstScores`` (name -> value, NaN where undefined), their
        ``averageScore*``, ``confMatrix`` (int64), ``priors``, ``labels``; plus ``num_images``."""
        conf, eye = self.confusion, np.eye(_K, dtype=bool)
        tp = np.diag(conf)
        fn = conf.sum(1) - tp
        fp = self._false_positives(eye, eye)
        cat_tp = ((conf @ _CAT_COLS.astype(np.int64)) * _CAT_COLS).sum(0)  # rows and cols in it
        cat_fn = conf.sum(1) @ _CAT_COLS - cat_tp
        cat_fp = self._false_positives(_CAT_COLS, _CAT_OF)
        inst_fp = self._false_positives(_INST_COLS, _CAT_OF)
        has_inst = self.without_instances == 0
        with np.errstate(divide='ignore', invalid='ignore'):
            iou = np.where(_VALID, tp / (tp + fp + fn), np.nan)
            iiou = np.where(_INST_CLASS & has_inst, self.tp_weighted / (
                self.tp_weighted + fp + self.fn_weighted), np.nan)
            cat_iou = np.where(_CAT_COLS.any(0), cat_tp / (cat_tp + cat_fp + cat_fn), np.nan)
            cat_iiou = np.where(_INST_COLS.any(0) & has_inst, self.cat_tp_weighted / (
                self.cat_tp_weighted + inst_fp + self.cat_fn_weighted), np.nan)
            priors = conf.sum(1) / conf.sum()
        res = {'classScores': {_NAMES[i]: float(iou[i]) for i in _ROWS},
               'classInstScores': {_NAMES[i]: float(iiou[i]) for i in _ROWS},
               'categoryScores': dict(zip(_CATEGORIES, cat_iou.tolist())),
               'categoryInstScores': dict(zip(_CATEGORIES, cat_iiou.tolist())),
               'confMatrix': conf.copy(), 'priors': {_NAMES[i]: float(priors[i]) for i in _ROWS},
               'labels': {_NAMES[i]: int(i) for i in _ROWS}, 'num_images': self.num_inst}
        for key, scores in (('Classes', 'classScores'), ('InstClasses', 'classInstScores'),
                            ('Categories', 'categoryScores'),
                            ('InstCategories', 'categoryInstScores')):
            res['averageScore' + key] = _nanmean(list(res[scores].values()))
        return res

    def get(self):
        """``(names, values)``: class mIoU and iIoU, category mIoU and iIoU."""
        res = self.results()
        return (['IoU_class', 'iIoU_class', 'IoU_category', 'iIoU_category'],
                [res['averageScoreClasses'], res['averageScoreInstClasses'],
                 res['averageScoreCategories'], res['averageScoreInstCategories']])

    def get_name_value(self):
        """``[(name, value), ...]`` as EvalMetric."""
        return list(zip(*self.get()))
