"""Named transform policies: what a training or a validation sample is made of."""
import mxnet as mx
import numpy as np
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator

from .targets import panoptic_targets
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, affine_matrix, normalize, warp_image,
                         warp_labels)

__all__ = ['PanopticTrainTransform', 'PanopticValTransform', 'RPNTargets', 'box_iou', 'encode_boxes',
           'match_anchors']


class RPNTargets(object):
    """RPN training targets for one image, in one of two styles (the net's ``rpn_target_style``).

    Both label an anchor positive at IoU >= ``pos_iou_thresh`` with a box, negative below
    ``neg_iou_thresh``, make the best anchors of each box positive, and sample ``num_sample``
    anchors of which at most ``pos_ratio`` are positive; box targets are the (1, 1, 1, 1)
    weighted deltas to the anchor's best box.

    * ``'gluoncv'``: gluoncv's ``RPNTargetGenerator``.  Anchors crossing the image border are
      ignored, and the negative threshold overrides a box's best anchor.  An image without
      instances gets ``num_sample`` random negatives among the anchors inside the image (gluoncv's
      generator needs at least one box).
    * ``'detectron2'``: detectron2's ``Matcher`` (thresholds 0.3 / 0.7, low-quality matches
      allowed) and ``subsample_labels``, its RPN's ``BOUNDARY_THRESH -1`` (torchvision's RPN
      follows the same rules): every anchor takes part, and every anchor whose IoU with a box
      equals that box's highest IoU is positive, however low.

    Parameters
    ----------
    anchors : gluonpan.nn.anchors.FPNAnchors
        The network's anchors.
    num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio
        Sampling of anchors (Mask R-CNN defaults).
    style : str
        ``'detectron2'`` (default) or ``'gluoncv'``.
    """

    STYLES = ('gluoncv', 'detectron2')

    def __init__(self, anchors, num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3,
                 pos_ratio=0.5, style='detectron2'):
        if style not in self.STYLES:
            raise ValueError('unknown RPN target style {!r}; valid: {}'.format(style,
                                                                              self.STYLES))
        self.anchors = anchors
        self.num_sample = num_sample
        self.style = style
        self._thresh = (pos_iou_thresh, neg_iou_thresh)
        self._max_pos = int(num_sample * pos_ratio)  # detectron2's subsample_labels truncates
        self._cache = {}  # (height, width) -> (anchors numpy, anchors NDArray)
        self._gen = RPNTargetGenerator(num_sample=num_sample, pos_iou_thresh=pos_iou_thresh,
                                       neg_iou_thresh=neg_iou_thresh, pos_ratio=pos_ratio,
                                       stds=(1., 1., 1., 1.))

    def __call__(self, boxes, height, width, rng):
        """Targets for ``boxes`` (M, 4) on an input of ``height x width``.

        Returns
        -------
        tuple of np.ndarray
            ``cls (N,)`` float32 (1 pos, 0 neg, -1 ignore), ``box (N, 4)``, ``box_mask (N, 4)``.
        """
        if (height, width) not in self._cache:
            a = self.anchors(height, width)
            self._cache = {(height, width): (a, mx.nd.array(a))}
        anchors, anchors_nd = self._cache[(height, width)]
        if self.style == 'detectron2':
            return self._detectron2(np.asarray(boxes, np.float32).reshape(-1, 4), anchors, rng)
        n = anchors.shape[0]
        if len(boxes) == 0:
            inside = np.nonzero((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) &
                                (anchors[:, 2] < width) & (anchors[:, 3] < height))[0]
            cls = np.full(n, -1, dtype=np.float32)
            cls[rng.choice(inside, min(self.num_sample, len(inside)), replace=False)] = 0
            return cls, np.zeros((n, 4), np.float32), np.zeros((n, 4), np.float32)
        # gluoncv's sampler draws from numpy's global generator: seed it from our own stream
        np.random.seed(int(rng.integers(2 ** 31)))
        cls, box, mask = self._gen(mx.nd.array(boxes), anchors_nd, width, height)
        return tuple(np.asarray(t, dtype=np.float32) for t in (cls, box, mask))

    def _detectron2(self, boxes, anchors, rng):
        """The ``'detectron2'`` style: match, subsample, encode."""
        n = anchors.shape[0]
        cls, match = match_anchors(anchors, boxes, *self._thresh)
        pos = np.nonzero(cls == 1)[0]
        neg = np.nonzero(cls == 0)[0]
        num_pos = min(len(pos), self._max_pos)
        num_neg = min(len(neg), self.num_sample - num_pos)
        pos = rng.permutation(pos)[:num_pos]
        neg = rng.permutation(neg)[:num_neg]
        cls[:] = -1
        cls[pos] = 1
        cls[neg] = 0
        box = np.zeros((n, 4), np.float32)
        mask = np.zeros((n, 4), np.float32)
        if num_pos:
            box[pos] = encode_boxes(boxes[match[pos]], anchors[pos])
            mask[pos] = 1
        return cls, box, mask


def match_anchors(anchors, boxes, pos_iou_thresh=0.7, neg_iou_thresh=0.3):
    """detectron2's ``Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)``.

    Parameters
    ----------
    anchors : np.ndarray
        (N, 4) corner boxes.
    boxes : np.ndarray
        (M, 4) ground-truth corner boxes (M may be 0).

    Returns
    -------
    labels : np.ndarray
        (N,) float32: 1 at IoU >= ``pos_iou_thresh`` and for every anchor whose IoU with a box
        equals that box's highest (> 0) IoU, 0 below ``neg_iou_thresh``, -1 between; all 0
        without boxes.
    match : np.ndarray
        (N,) int64 index of each anchor's best box (ties: the first).
    """
    n = anchors.shape[0]
    if not len(boxes):
        return np.zeros(n, np.float32), np.zeros(n, np.int64)
    iou = box_iou(anchors, boxes)  # (N, M)
    best = iou.max(axis=1)
    labels = np.full(n, -1, np.float32)
    labels[best < neg_iou_thresh] = 0
    labels[best >= pos_iou_thresh] = 1
    per_box = iou.max(axis=0)  # (M,) each box's highest IoU; an empty box has none
    labels[((iou == per_box) & (per_box > 0)).any(axis=1)] = 1
    return labels, iou.argmax(axis=1)


def box_iou(a, b):
    """IoU of corner boxes ``a`` (N, 4) and ``b`` (M, 4), sides ``x2 - x1``; (N, M) float32
    (0 where the boxes do not intersect, as detectron2's ``pairwise_iou``)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)  # (N, M)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(inter > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def encode_boxes(boxes, anchors):
    """Deltas ``(dx, dy, dw, dh)`` (weights 1) from ``anchors`` (K, 4) to ``boxes`` (K, 4), sides
    ``x2 - x1`` (the decoding of :mod:`gluonpan.nn.rpn` and detectron2's ``Box2BoxTransform``)."""
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    dx = (boxes[:, 0] + 0.5 * bw - anchors[:, 0] - 0.5 * aw) / aw
    dy = (boxes[:, 1] + 0.5 * bh - anchors[:, 1] - 0.5 * ah) / ah
    return np.stack([dx, dy, np.log(bw / aw), np.log(bh / ah)], axis=1).astype(np.float32)


class PanopticTrainTransform(object):
    """Training policy: random rescale, crop (keeping an instance when it can), flip, normalise.

    Parameters
    ----------
    categories : PanopticCategories
        The dataset's categories.
    anchors : FPNAnchors, optional
        If given, RPN targets are added (keys ``rpn_cls_targets``, ``rpn_box_targets``,
        ``rpn_box_masks``).
    crop_size : tuple of int
        Output ``(height, width)``; multiples of 32, the image is padded if smaller.
    scale_range : tuple of float
        Random resize factor of the whole image (0.5-2.0x).
    flip : bool
        Random horizontal flip with probability 0.5.
    sem_mode : str
        Semantic target mode, see :mod:`gluonpan.data.categories`.
    rpn_target_style : str
        :class:`RPNTargets`' style: the net's ``conventions['rpn_target_style']``.
    targets : callable, optional
        A model's own targets (``net.train_targets(categories)``, e.g. PanopticFCN's):
        ``targets(sample) -> dict`` takes the sample's ``sem_seg``, ``gt_masks`` and
        ``gt_classes`` (instances of any size, none dropped) and returns the keys of the model's
        training batch besides ``data``, which replace them.
    """

    def __init__(self, categories, anchors=None, crop_size=(512, 1024), scale_range=(0.5, 2.0),
                 flip=True, sem_mode='separated', mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, rpn_target_style='detectron2', targets=None):
        if crop_size[0] % 32 or crop_size[1] % 32:
            raise ValueError('crop_size {} must be multiples of 32'.format(crop_size))
        self.categories = categories
        self.crop_size = tuple(int(c) for c in crop_size)
        self.scale_range = scale_range
        self.flip = flip
        self.sem_mode = sem_mode
        self.mean, self.std = mean, std
        self.rpn = (RPNTargets(anchors, style=rpn_target_style) if anchors is not None
                    else None)
        self.targets = targets

    def _thing_boxes(self, segments_info):
        """(K, 4) x1, y1, x2, y2 of the non-crowd thing segments, from the JSON bboxes."""
        boxes = [s['bbox'] for s in segments_info if not s.get('iscrowd', 0) and
                 self.categories.check_category(s['category_id'])['isthing']]
        boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)  # (K, 4) x, y, w, h
        boxes[:, 2:] += boxes[:, :2]
        return boxes

    def choose_crop(self, height, width, scale, segments_info, rng):
        """Top-left ``(x0, y0)`` of the crop in the scaled image.

        A uniformly random crop is kept if it holds the centre of an instance box (or there is no
        instance); otherwise the crop is drawn uniformly among the positions that hold the centre
        of one randomly chosen instance, so a crop never loses every instance when it can keep one.
        """
        ch, cw = self.crop_size
        max_y = max(int(round(height * scale)) - ch, 0)
        max_x = max(int(round(width * scale)) - cw, 0)
        y0, x0 = int(rng.integers(0, max_y + 1)), int(rng.integers(0, max_x + 1))
        boxes = self._thing_boxes(segments_info) * scale  # (K, 4) in the scaled image
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (cx >= x0) & (cx < x0 + cw) & (cy >= y0) & (cy < y0 + ch)
        if len(boxes) and not inside.any():
            k = rng.integers(len(boxes))
            # integer offsets with x0 <= cx < x0 + cw, inside [0, max_x]
            lo_x, hi_x = max(0, int(np.floor(cx[k])) - cw + 1), min(max_x, int(np.floor(cx[k])))
            lo_y, hi_y = max(0, int(np.floor(cy[k])) - ch + 1), min(max_y, int(np.floor(cy[k])))
            if lo_x <= hi_x and lo_y <= hi_y:
                x0, y0 = int(rng.integers(lo_x, hi_x + 1)), int(rng.integers(lo_y, hi_y + 1))
        return x0, y0

    def __call__(self, sample, seed=None):
        rng = np.random.default_rng(seed)
        image, segments = sample['image'], sample['segments_info']
        height, width = image.shape[:2]
        scale = float(rng.uniform(*self.scale_range))
        x0, y0 = self.choose_crop(height, width, scale, segments, rng)
        flip = self.flip and rng.random() < 0.5
        matrix = affine_matrix(scale, (x0, y0), self.crop_size[1] if flip else None)
        fill = tuple(255.0 * m for m in self.mean)
        image = warp_image(image, matrix, self.crop_size, fill)
        seg_index = warp_labels(sample['seg_index'], matrix, self.crop_size)
        out = panoptic_targets(seg_index, segments, self.categories, self.sem_mode,
                               where=sample['file_name'],
                               min_box_size=1 if self.targets is not None else 2)
        if self.targets is not None:
            out = self.targets(out)
        out['data'] = normalize(image, self.mean, self.std)
        out['image_id'] = sample['image_id']
        if self.rpn is not None:
            cls, box, mask = self.rpn(out['gt_boxes'], self.crop_size[0], self.crop_size[1], rng)
            out.update(rpn_cls_targets=cls, rpn_box_targets=box, rpn_box_masks=mask)
        return out


class PanopticValTransform(object):
    """Validation policy: full resolution, normalised; keeps the ground truth for the metric."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = mean, std

    def __call__(self, sample, seed=None):
        return {'data': normalize(sample['image'], self.mean, self.std),
                'image': sample['image'], 'pan_ids': sample['pan_ids'],
                'segments_info': sample['segments_info'], 'image_id': sample['image_id'],
                'file_name': sample['file_name']}
