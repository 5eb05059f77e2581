"""Named transform policies: what a training or a validation sample is made of."""
import mxnet as mx
import numpy as np
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator

from .targets import panoptic_targets
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, affine_matrix, normalize, warp_image,
                         warp_labels)

__all__ = ['PanopticTrainTransform', 'PanopticValTransform', 'RPNTargets']


class RPNTargets(object):
    """RPN training targets for one image, from gluoncv's ``RPNTargetGenerator``.

    An image without instances gets ``num_sample`` random negatives among the anchors inside the
    image (gluoncv's generator needs at least one box).

    Parameters
    ----------
    anchors : gluonpan.nn.anchors.FPNAnchors
        The network's anchors.
    num_sample, pos_iou_thresh, neg_iou_thresh, pos_ratio
        Sampling of anchors (Mask R-CNN defaults).
    """

    def __init__(self, anchors, num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3,
                 pos_ratio=0.5):
        self.anchors = anchors
        self.num_sample = num_sample
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
    """

    def __init__(self, categories, anchors=None, crop_size=(512, 1024), scale_range=(0.5, 2.0),
                 flip=True, sem_mode='separated', mean=IMAGENET_MEAN,
                 std=IMAGENET_STD):
        if crop_size[0] % 32 or crop_size[1] % 32:
            raise ValueError('crop_size {} must be multiples of 32'.format(crop_size))
        self.categories = categories
        self.crop_size = tuple(int(c) for c in crop_size)
        self.scale_range = scale_range
        self.flip = flip
        self.sem_mode = sem_mode
        self.mean, self.std = mean, std
        self.rpn = RPNTargets(anchors) if anchors is not None else None

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
                               where=sample['file_name'])
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
