"""Id conventions for every dataset gluonpan reads.  THE one place they are written down.

Four kinds of ids appear in panoptic segmentation; mixing them up is the most common bug.

* **label id** (Cityscapes) / **category id** (COCO): the dataset's own category id, as stored in its
  panoptic JSON ``categories`` and ``segments_info[*]["category_id"]``.  Cityscapes uses its 34 label
  ids (only the 19 evaluated ones appear: road=7 ... bicycle=33); COCO panoptic uses 133 non-contiguous
  ids (1..200).  Predictions written for an evaluator always use these ids.
* **train id** (Cityscapes): 0..18 for the 19 evaluated classes, 255 for the rest.  Read from
  ``cityscapesscripts.helpers.labels`` and never retyped.
* **contiguous ids** (ours): what the network predicts.

  - *thing class* ``0..T-1``: the detector's class index (Cityscapes T=8, COCO T=80), in dataset-id
    order.  gluoncv's RCNN adds its own background internally; ``-1`` pads a batch.
  - *semantic class*: in the default ``"separated"`` mode of the Panoptic FPN paper the stuff classes
    are ``0..S-1`` (dataset-id order) and every thing pixel is the single class ``S`` ("things");
    Cityscapes 11+1=12 classes, COCO 53+1=54.  In ``"all"`` mode (semantic-only models) every category
    gets its own class ``0..C-1`` (Cityscapes: that is exactly the train id).  ``255`` = ignore (void,
    padding, and, in "all" mode, crowd regions are still labelled with their class).

* **panoptic id**: a segment's id, stored in the panoptic PNG as ``id = R + 256*G + 256**2*B``
  (0 = void / unlabeled).  Cityscapes (``createPanopticImgs``): a thing instance is
  ``label_id * 1000 + k`` (k = 0, 1, ...), a stuff region is its raw ``label_id``, and a crowd ("group")
  region of a thing class is also its raw ``label_id`` with ``iscrowd = 1``.  COCO: arbitrary ids, all
  meaning is in ``segments_info``.  Our own predictions use ``category_id * 1000 + k`` for things and
  ``category_id`` for stuff, which both evaluators accept.

Semantic-segmentation data (:mod:`gluonpan.data.semantic_dataset`) stores one class value per pixel
in a single-channel 8-bit PNG; every dataset maps it to *contiguous semantic classes* ``0..C-1``
with ``255`` = ignore (:data:`IGNORE_LABEL`):

* **Cityscapes** ``gtFine/*/*_gtFine_labelIds.png`` holds label ids (0..33).
  :func:`cityscapes_train_id_lut` (256 entries, built from cityscapesscripts' table) maps them to
  the **train id**, which is the contiguous class (C = 19); ids whose train id is 255 or -1
  (unlabeled, ego vehicle, ..., caravan, trailer) become 255.  A value that is no label id of the
  table (34..255) is a data error (:func:`cityscapes_label_id_valid`).  ``license plate`` (id -1)
  cannot occur in a PNG.
* **ADE20K** SceneParsing (``ADEChallengeData2016/annotations/*/*.png``) holds **ADE20K class ids**
  1..150 (the benchmark's ``objectInfo150`` list, shipped as ``ade20k_categories.json``) and 0 for
  "other / unlabelled".  The benchmark ignores 0, so (as mmsegmentation's
  ``reduce_zero_label=True``) 0 -> 255 and id k -> contiguous class ``k - 1`` (C = 150) by
  :func:`ade20k_label_lut`.  Values above 150 are data errors.
* **Cityscapes classes under ADE20K ids** (the synthetic ADE20K layout of
  :mod:`gluonpan.data.synthetic_ade`, and evaluating a Cityscapes-trained model on ADE20K):
  :data:`CITYSCAPES_TO_ADE20K` gives each of the 19 train ids one distinct ADE20K class id of the
  same or nearest meaning; pixels of ignored Cityscapes labels get ADE20K id 0.  Exact matches:
  road, sidewalk, building, wall, fence, pole, traffic light, sky, person, car, truck, bus,
  motorcycle ("minibike, motorbike"), bicycle.  Approximations: traffic sign -> "signboard, sign"
  (any sign), vegetation -> "tree", terrain -> "grass" (ADE's "earth, ground" and "land, ground,
  soil" stay unmapped).  Stand-ins, since ADE20K has no such class and the 19 must stay distinct:
  rider -> "animal, animate being" (ADE20K labels riders "person"), train -> "van" (ADE20K's trains
  are outside the 150 classes).
"""
import functools
import os

import numpy as np

from ..errors import DataError, read_json

__all__ = ['IGNORE_LABEL', 'OFFSET', 'MAX_PANOPTIC_ID', 'rgb2id', 'id2rgb', 'PanopticCategories',
           'cityscapes_categories', 'coco_categories_from_json', 'short_list',
           'cityscapes_train_id_lut', 'cityscapes_label_id_valid', 'cityscapes_train_id_names',
           'ADE20K_NUM_CLASSES', 'ade20k_categories', 'ade20k_class_names', 'ade20k_label_lut',
           'CITYSCAPES_TO_ADE20K', 'cityscapes_train_id_to_ade20k', 'ade20k_to_cityscapes_train_id']

#: semantic-target value that the losses and the metric ignore
IGNORE_LABEL = 255
#: label_id * OFFSET + k is a thing instance's panoptic id (Cityscapes and our predictions)
OFFSET = 1000
#: panoptic ids are 24-bit (three bytes of a PNG pixel): they lie in [0, MAX_PANOPTIC_ID)
MAX_PANOPTIC_ID = 256 ** 3


def short_list(values, limit=5):
    """``values`` for an error message: the first ``limit`` and how many more there are.

    A corrupt file can hold millions of ids; the message names a few of them and the count.

    Parameters
    ----------
    values : sequence
        Ids (or anything with a ``repr``).
    limit : int
        How many to show.

    Returns
    -------
    str
        ``'[1, 2, 3]'`` or ``'[1, 2, 3, 4, 5] and 995 more'``.
    """
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    shown = '[{}]'.format(', '.join(repr(v) for v in values[:limit]))
    return shown if len(values) <= limit else '{} and {} more'.format(shown, len(values) - limit)


def rgb2id(color):
    """Panoptic PNG colours -> segment ids.

    Parameters
    ----------
    color : np.ndarray
        ``(H, W, 3)`` uint8 RGB (as read by PIL, or cv2 after BGR->RGB).

    Returns
    -------
    np.ndarray
        ``(H, W)`` int32 ids ``R + 256*G + 256**2*B``.
    """
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3:
        raise ValueError('a panoptic PNG must be HxWx3 RGB, got shape {}'.format(color.shape))
    c = color.astype(np.int32)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def id2rgb(ids):
    """Segment ids ``(H, W)`` -> ``(H, W, 3)`` uint8 RGB colours of a panoptic PNG."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 256 ** 3:
        raise ValueError('panoptic ids must lie in [0, 256**3), got range [{}, {}]'
                         .format(ids.min(), ids.max()))
    rgb = np.empty(ids.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256 % 256
    rgb[..., 2] = ids // (256 * 256)
    return rgb


class PanopticCategories(object):
    """A dataset's categories and every contiguous-id map derived from them.

    Parameters
    ----------
    categories : list of dict
        Panoptic-JSON style entries with ``id``, ``name``, ``isthing`` and optionally ``color``
        (and ``trainId`` for Cityscapes).  Order does not matter; ids are sorted.
    """

    def __init__(self, categories):
        cats = sorted((_checked_category(c) for c in categories), key=lambda c: int(c['id']))
        if not cats:
            raise DataError('no categories given')
        self.categories = cats
        self.by_id = {int(c['id']): c for c in cats}
        if len(self.by_id) != len(cats):
            ids = [c['id'] for c in cats]
            raise DataError('duplicate category ids {}'.format(
                short_list(sorted({i for i in ids if ids.count(i) > 1}))))
        #: dataset ids of thing / stuff categories, ascending
        self.thing_ids = [int(c['id']) for c in cats if c['isthing']]
        self.stuff_ids = [int(c['id']) for c in cats if not c['isthing']]
        self.thing_id_to_contiguous = {cid: i for i, cid in enumerate(self.thing_ids)}
        self.stuff_id_to_contiguous = {cid: i for i, cid in enumerate(self.stuff_ids)}
        self.all_id_to_contiguous = {int(c['id']): i for i, c in enumerate(cats)}
        self._luts = {}  # semantic mode -> read-only lookup table (built once, used per sample)

    @property
    def num_things(self):
        """Number of thing classes T (the detector's classes)."""
        return len(self.thing_ids)

    @property
    def num_stuff(self):
        """Number of stuff classes S."""
        return len(self.stuff_ids)

    def num_semantic_classes(self, mode='separated'):
        """Semantic-head classes: S+1 in ``'separated'`` mode, all C categories in ``'all'`` mode."""
        self._check_mode(mode)
        return self.num_stuff + 1 if mode == 'separated' else len(self.categories)

    def thing_names(self):
        """Names of the thing classes in contiguous order."""
        return [self.by_id[i]['name'] for i in self.thing_ids]

    def semantic_class_names(self, mode='separated'):
        """Names of the semantic classes in contiguous order (``'things'`` last when separated)."""
        self._check_mode(mode)
        if mode == 'separated':
            return [self.by_id[i]['name'] for i in self.stuff_ids] + ['things']
        return [c['name'] for c in self.categories]

    def semantic_class_to_category(self, mode='separated'):
        """Semantic class -> dataset category id (``-1`` for the merged "things" class)."""
        self._check_mode(mode)
        if mode == 'separated':
            return list(self.stuff_ids) + [-1]
        return [int(c['id']) for c in self.categories]

    def semantic_lut(self, mode='separated'):
        """Lookup table dataset category id -> semantic class (255 for ids that are not categories).

        Returns
        -------
        np.ndarray
            ``(max_id + 1,)`` uint8, read-only (built once per mode).
        """
        self._check_mode(mode)
        if mode in self._luts:
            return self._luts[mode]
        lut = np.full(max(self.by_id) + 1, IGNORE_LABEL, dtype=np.uint8)
        for cid in self.by_id:
            if mode == 'all':
                lut[cid] = self.all_id_to_contiguous[cid]
            elif cid in self.stuff_id_to_contiguous:
                lut[cid] = self.stuff_id_to_contiguous[cid]
            else:
                lut[cid] = self.num_stuff
        lut.setflags(write=False)
        self._luts[mode] = lut
        return lut

    def color(self, category_id):
        """RGB colour of a dataset category (grey if the dataset gives none)."""
        return tuple(self.by_id[int(category_id)].get('color', (128, 128, 128)))

    def check_category(self, category_id, where=''):
        """The category entry of ``category_id``; a :class:`DataError` if it is not one.

        Parameters
        ----------
        category_id : int
            A dataset category id (an integer; ``bool``, float and str values are errors).
        where : str
            What holds the id (file, segment), named in the message.

        Raises
        ------
        DataError
            ``category_id`` is not an integer or not one of this dataset's categories (the
            message names it, ``where`` and the valid ids).
        """
        found = self.by_id.get(category_id) if _is_int(category_id) else None
        if found is None:
            shown = category_id.item() if isinstance(category_id, np.generic) else category_id
            raise DataError('{} category id {!r}{}; valid ids: {}'.format(
                'unknown' if _is_int(category_id) else 'non-integer', shown,
                ' in ' + where if where else '', short_list(sorted(self.by_id), 25)))
        return found

    def to_json(self):
        """Categories as a panoptic JSON ``categories`` list."""
        return [dict(c) for c in self.categories]

    @staticmethod
    def _check_mode(mode):
        if mode not in ('separated', 'all'):
            raise ValueError("semantic mode must be 'separated' or 'all', got {!r}".format(mode))


def _is_int(value):
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _checked_category(entry):
    """A copy of one ``categories`` entry; :class:`DataError` if it lacks an integer ``id``,
    a ``name`` or ``isthing``."""
    if not isinstance(entry, dict):
        raise DataError('a category must be an object with "id", "name", "isthing", got {!r}'
                        .format(entry))
    missing = [key for key in ('id', 'name', 'isthing') if key not in entry]
    if missing:
        raise DataError('category {!r} lacks {}'.format(entry, ', '.join(missing)))
    if not _is_int(entry['id']):
        raise DataError('category {!r} has a non-integer id'.format(entry))
    return dict(entry)


def cityscapes_categories():
    """The 19 evaluated Cityscapes classes, read from cityscapesscripts' label table.

    Ids are label ids (what ``createPanopticImgs`` writes without ``--use-train-id``); each entry
    also carries its ``trainId``.  8 things (person, rider, car, truck, bus, train, motorcycle,
    bicycle), 11 stuff.
    """
    from cityscapesscripts.helpers.labels import labels
    cats = [{'id': int(l.id), 'trainId': int(l.trainId), 'name': l.name, 'color': tuple(l.color),
             'supercategory': l.category, 'isthing': int(l.hasInstances)}
            for l in labels if not l.ignoreInEval]
    return PanopticCategories(cats)


def coco_categories_from_json(json_file_or_dict, json_path=None):
    """COCO panoptic categories (133: 80 things, 53 stuff) from the dataset's own JSON.

    Parameters
    ----------
    json_file_or_dict : str or dict
        The JSON file or its content.
    json_path : str, optional
        The file the content came from, named in errors.

    Raises
    ------
    DataError
        No ``categories`` list, or an entry without an integer ``id``, ``name``, ``isthing``.
    """
    d = json_file_or_dict
    path = d if not isinstance(d, dict) else json_path
    where = 'panoptic JSON {}'.format(path) if path else 'panoptic JSON'
    if not isinstance(d, dict):
        d = read_json(d, 'panoptic JSON')
    if not isinstance(d, dict) or not isinstance(d.get('categories'), list):
        raise DataError('{} has no "categories" list'.format(where))
    try:
        return PanopticCategories(d['categories'])
    except DataError as err:
        raise DataError('{}: {}'.format(where, err)) from None


# ---------------------------------------------------------------------------------------------
# semantic segmentation: label values of the PNGs -> contiguous classes (see the module docstring)

#: number of ADE20K SceneParsing classes (ids 1..150)
ADE20K_NUM_CLASSES = 150
#: Cityscapes label name (train ids 0..18) -> ADE20K class id (1..150); see the module docstring
CITYSCAPES_TO_ADE20K = {
    'road': 7, 'sidewalk': 12, 'building': 2, 'wall': 1, 'fence': 33, 'pole': 94,
    'traffic light': 137, 'traffic sign': 44, 'vegetation': 5, 'terrain': 10, 'sky': 3,
    'person': 13, 'rider': 127, 'car': 21, 'truck': 84, 'bus': 81, 'train': 103,
    'motorcycle': 117, 'bicycle': 128}
_ADE20K_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'ade20k_categories.json')


def _read_only(array):
    array.setflags(write=False)
    return array


def _cityscapes_table():
    """``(label_id, train_id)`` of every label of cityscapesscripts' table that a PNG can hold."""
    from cityscapesscripts.helpers.labels import labels
    return [(int(l.id), int(l.trainId)) for l in labels if 0 <= l.id < 256]


@functools.lru_cache(maxsize=None)
def cityscapes_train_id_lut():
    """Cityscapes label id -> train id, from cityscapesscripts' label table.

    Returns
    -------
    np.ndarray
        ``(256,)`` uint8, read-only: the train id (0..18) of each label id, 255 for label ids that
        are not evaluated (train id 255 or -1) and for values that are no label id (see
        :func:`cityscapes_label_id_valid` to tell those apart).
    """
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for label_id, train_id in _cityscapes_table():
        if 0 <= train_id < IGNORE_LABEL:
            lut[label_id] = train_id
    return _read_only(lut)


@functools.lru_cache(maxsize=None)
def cityscapes_label_id_valid():
    """``(256,)`` bool, read-only: True for the values that are label ids of the table (0..33)."""
    valid = np.zeros(256, dtype=bool)
    valid[[label_id for label_id, _ in _cityscapes_table()]] = True
    return _read_only(valid)


def cityscapes_train_id_names():
    """Names of the 19 Cityscapes train ids, in train-id order (``road`` ... ``bicycle``)."""
    from cityscapesscripts.helpers.labels import labels
    return [name for _, name in sorted((l.trainId, l.name) for l in labels
                                       if 0 <= l.trainId < IGNORE_LABEL)]


@functools.lru_cache(maxsize=None)
def ade20k_categories():
    """The 150 ADE20K classes from the package's ``ade20k_categories.json`` (objectInfo150).

    Returns
    -------
    tuple of dict
        ``id`` (1..150), ``name`` (first synonym), ``full_name``; in id order.
    """
    data = read_json(_ADE20K_JSON, 'package data file')
    cats = sorted(data['categories'], key=lambda c: c['id'])
    if [c['id'] for c in cats] != list(range(1, ADE20K_NUM_CLASSES + 1)):
        raise DataError('{} must list ADE20K class ids 1..{}'.format(_ADE20K_JSON,
                                                                    ADE20K_NUM_CLASSES))
    return tuple(cats)


def ade20k_class_names():
    """Names of the 150 contiguous ADE20K classes (class ``k`` is ADE20K id ``k + 1``)."""
    return [c['name'] for c in ade20k_categories()]


@functools.lru_cache(maxsize=None)
def ade20k_label_lut():
    """ADE20K annotation value -> contiguous class: 0 -> 255, k -> k - 1 for 1..150, and 255
    above 150 (values a dataset must reject first).  ``(256,)`` uint8, read-only."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    lut[1:ADE20K_NUM_CLASSES + 1] = np.arange(ADE20K_NUM_CLASSES)
    return _read_only(lut)


@functools.lru_cache(maxsize=None)
def cityscapes_train_id_to_ade20k():
    """Cityscapes train id -> ADE20K class id (:data:`CITYSCAPES_TO_ADE20K`).

    Returns
    -------
    np.ndarray
        ``(256,)`` uint8, read-only: entries 0..18 hold the ADE20K id (1..150) of each train id,
        every other entry (255 = ignore) holds 0, ADE20K's "other".  Subtract 1 for the
        contiguous ADE20K class of a prediction.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for train_id, name in enumerate(cityscapes_train_id_names()):
        lut[train_id] = CITYSCAPES_TO_ADE20K[name]
    return _read_only(lut)


@functools.lru_cache(maxsize=None)
def ade20k_to_cityscapes_train_id():
    """ADE20K class id -> Cityscapes train id, the inverse of :func:`cityscapes_train_id_to_ade20k`
    (255 for 0 and the 131 ADE20K classes no Cityscapes class maps to).  ``(256,)`` uint8."""
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    num = len(CITYSCAPES_TO_ADE20K)
    lut[cityscapes_train_id_to_ade20k()[:num]] = np.arange(num)
    return _read_only(lut)
