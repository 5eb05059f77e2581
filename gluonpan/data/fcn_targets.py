"""PanopticFCN training targets (Li et al., CVPR 2021), computed in numpy in the data workers.

The reference computes its targets on the GPU inside the model (``panopticfcn/gt_generate.py``,
``GenerateGT``); :class:`FCNTargets` computes the same numbers for one training crop, so the model
only has to gather them.  The crop is the whole network input (height and width multiples of 32,
no padding), so the reference's padded ``image_shape`` is the crop size and its encoder size
``inst_outsize`` is the stride-4 size ``(H/4, W/4)``.

Layout
------
Per-position targets of the five levels P3..P7 are flattened row-major and concatenated level
after level into one axis of ``P = sum(h_l * w_l)`` positions (:meth:`FCNTargets.level_shapes`
gives the ``(h_l, w_l)``; :meth:`FCNTargets.level_offsets` where each level starts).  Things are
returned as *slots*: one per (level, instance) pair, level-major (P3's instances in input order,
then P4's, ...).  An instance whose size falls in two overlapping ``instance_scales`` intervals
gives two slots, one outside every interval gives none.

What reproduces which reference function
----------------------------------------
``stuff_masks``
    ``assign_multi_scale``: one-hot of the stuff-head labels over ``S + 1`` classes with the
    ignore value 255 mapped to class ``S`` (``STUFF.WITH_THING=True``), class ``S`` dropped, so an
    ignored pixel is zero in every channel; resized bilinear to ``int(H / 4 + 0.5)``.
``stuff_targets``
    ``_sem_assign``: ``stuff_masks`` resized bilinear to each level, clamped to at most 1, values
    below 0.5 set to 0 (the ``gt_scoremap`` the stuff focal loss is trained on).
``center_targets``
    ``_label_assignment`` + ``generate_score_map`` / ``get_gaussian_radius`` / ``gaussian2D`` /
    ``draw_gaussian``: an instance goes to a level when ``sqrt(box area)`` is in the level's
    closed ``instance_scales`` interval; its box width and height are rescaled by
    ``level_size / input_size``, the CornerNet radius (with the reference's ``(b + sq) / 2`` for
    all three roots) is truncated to an int, and a Gaussian of ``sigma = (2 r + 1) /
    gaussian_sigma`` is max-drawn at the truncated centre into the channel of its class.
``inst_masks``, ``inst_centers``
    ``decode_bitwise_mask`` (the instance mask resized bilinear to stride 4, not binarised; its
    mass centre is the mean ``(x, y)`` of the nonzero stride-4 pixels) and the centre of
    ``_label_assignment`` (stride-4 centre times ``level_size / encoder_size``, truncated, clamped
    to ``[0, w_l]`` x ``[0, h_l]`` -- note the reference clamps to the size, not the size - 1;
    with the crop as the input a centre never reaches it), as the reference's ``gt_index``.
``inst_guide``
    ``PanopticFCN.loss_single_level``: the slot's stride-4 mask resized bilinear to its level and
    compared ``> 0.1`` (``guided_inst``), the positions whose centre scores are top-k weighted.

Boxes are detectron2's ``BitMasks.get_bounding_boxes`` boxes: exclusive right/bottom edge.  The
float arithmetic of the radius, the centres and the rescaling is float32 as in the reference.

Deliberate difference
---------------------
With ``center_type='mass'`` an instance can have pixels but an all-zero stride-4 mask (a line one
pixel thin on rows/columns ``4k`` or ``4k + 3``, which bilinear downsampling by 4 never reads).
The reference then takes the mean of no pixels (NaN), which it casts to an integer and clamps:
the instance's centre becomes the top-left position ``(0, 0)`` of every level it is assigned to.
We use its box centre (``center_type='box'``) instead.  Such a slot keeps an all-zero
``inst_masks`` row and ``inst_guide`` row, as in the reference.  (A numerical detail: the mass
centre is an exact mean rounded to float32, where the reference sums in float32; the two can
only differ for very large masks and only change the truncated centre when the mean is within
float32 rounding of an integer.)  The reference also pads every level to ``TENSOR_DIM = 100``
slots (and fails beyond); here ``N`` is exactly the number of slots, with no cap.
"""
import collections
import logging

import numpy as np

from ..errors import DataError, UsageError
from ..utils.resize import resize_bilinear

__all__ = ['FCNTargets', 'level_shapes', 'level_offsets', 'gaussian_radius', 'gaussian_kernel', 'draw_gaussian', 'mask_boxes',
           'downsample_binary', 'stuff_onehot', 'stuff_level_scores']

log = logging.getLogger(__name__)

_LevelSlots = collections.namedtuple('_LevelSlots', 'level members center_index guide offset')
_LevelSlots.__doc__ = """The slots of one level: ``members`` (indices of the kept instances),
``center_index`` (offset + y * w + x per member), ``guide`` ((K, h * w) bool) and ``offset`` (the
level's first position on the concatenated axis)."""

IGNORE_VALUE = 255
GUIDE_THRESHOLD = 0.1
STUFF_THRESHOLD = 0.5
SIZE_DIVISIBILITY = 32


def gaussian_radius(width, height, min_overlap):
    """CornerNet's Gaussian radius for boxes of ``width x height`` (reference
    ``get_gaussian_radius``).

    The reference's three roots all divide by 2 (not by ``2 a``); it is kept so.

    Parameters
    ----------
    width, height : np.ndarray
        Box sizes in level pixels, computed in float32.
    min_overlap : float
        The IoU a box shifted by the radius still has with the original.

    Returns
    -------
    np.ndarray
        float32 radii (real-valued, not yet truncated), the shape of ``width``.
    """
    width = np.asarray(width, dtype=np.float32)
    height = np.asarray(height, dtype=np.float32)
    min_overlap = float(min_overlap)
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(r1, np.minimum(r2, r3))


def gaussian_kernel(radius, sigma_factor):
    """The ``(2 r + 1, 2 r + 1)`` Gaussian of ``sigma = (2 r + 1) / sigma_factor`` (reference
    ``gaussian2D``), values below ``eps * max`` set to 0; computed in float64, returned float32.

    Parameters
    ----------
    radius : int
        Non-negative radius.
    sigma_factor : float
        The reference's ``GAUSSIAN_SIGMA``.

    Returns
    -------
    np.ndarray
        ``(2 r + 1, 2 r + 1)`` float32, 1 at the centre.
    """
    diameter = 2 * radius + 1
    sigma = diameter / sigma_factor
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    return kernel.astype(np.float32)


def draw_gaussian(heatmap, x, y, radius, sigma_factor):
    """Max-draw :func:`gaussian_kernel` centred at column ``x``, row ``y`` into ``heatmap``
    in place, cut at the borders (reference ``draw_gaussian``).

    Parameters
    ----------
    heatmap : np.ndarray
        ``(h, w)`` float32, modified in place.
    x, y : int
        Centre, ``0 <= x <= w``, ``0 <= y <= h`` (the reference's clamp allows ``w`` and ``h``).
    radius : int
        Non-negative radius.
    sigma_factor : float
        The reference's ``GAUSSIAN_SIGMA``.
    """
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return
    kernel = gaussian_kernel(radius, sigma_factor)
    window = heatmap[y - top:y + bottom, x - left:x + right]
    np.maximum(window, kernel[radius - top:radius + bottom, radius - left:radius + right],
               out=window)


def _extent(mask):
    """First and last nonzero row and column of a 2-D mask, or ``None`` when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def mask_boxes(masks):
    """Tight boxes of binary masks, detectron2's ``BitMasks.get_bounding_boxes``.

    Parameters
    ----------
    masks : np.ndarray
        ``(M, H, W)`` binary masks.

    Returns
    -------
    boxes : np.ndarray
        ``(M, 4)`` float32 ``(x1, y1, x2, y2)`` with exclusive ``x2`` / ``y2`` (last column /
        row + 1); zeros for an empty mask.
    nonempty : np.ndarray
        ``(M,)`` bool, whether the mask has a pixel.
    """
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    nonempty = np.zeros(len(masks), dtype=bool)
    for i, mask in enumerate(masks):
        extent = _extent(mask)
        if extent is not None:
            y1, y2, x1, x2 = extent
            boxes[i] = (x1, y1, x2 + 1, y2 + 1)
            nonempty[i] = True
    return boxes, nonempty


def downsample_binary(mask, stride):
    """A binary map resized bilinear to ``1 / stride`` of its size, exactly
    ``resize_bilinear(mask, H // stride, W // stride)``, computed on the stride-aligned window
    around its pixels only.

    Resizing by an integer factor reads, for output row ``i``, only input rows of the block
    ``[stride * i, stride * (i + 1))`` with weights that do not depend on ``i``, so cropping at
    block borders changes nothing and the output outside the window is 0.

    Parameters
    ----------
    mask : np.ndarray
        ``(H, W)`` binary (bool or integer 0/1), ``H`` and ``W`` multiples of ``stride``.
    stride : int
        The integer downsampling factor.

    Returns
    -------
    np.ndarray
        ``(H // stride, W // stride)`` float32.
    """
    height, width = mask.shape
    if height % stride or width % stride:
        raise UsageError('downsample_binary: map size {}x{} is not a multiple of the stride {}'
                         .format(height, width, stride))
    out = np.zeros((height // stride, width // stride), dtype=np.float32)
    extent = _extent(mask)
    if extent is not None:
        _downsample_window(mask, stride, _blocks(extent, stride), out)
    return out


def _blocks(extent, stride):
    """Pixel extent ``(first row, last row, first col, last col)`` -> the stride blocks
    ``(y0, y1, x0, x1)`` (end exclusive) that hold it."""
    return (extent[0] // stride, extent[1] // stride + 1,
            extent[2] // stride, extent[3] // stride + 1)


def _downsample_window(mask, stride, blocks, out):
    """Resize the window of ``mask`` made of the stride ``blocks`` into ``out`` (the output map
    of the whole mask, modified in place); returns the written window of ``out``."""
    y0, y1, x0, x1 = blocks
    window = mask[y0 * stride:y1 * stride, x0 * stride:x1 * stride]
    out[y0:y1, x0:x1] = resize_bilinear(window, y1 - y0, x1 - x0)
    return out[y0:y1, x0:x1]


def _mass_center(window, y0, x0):
    """Mean ``(x, y)`` of the nonzero pixels of a window whose top-left pixel is at ``(x0, y0)``
    (reference ``decode_bitwise_mask``), from exact integer sums; ``None`` if it has none."""
    nonzero = window != 0
    count = int(nonzero.sum())
    if count == 0:
        return None
    x = int(nonzero.sum(axis=0) @ np.arange(x0, x0 + window.shape[1])) / count
    y = int(nonzero.sum(axis=1) @ np.arange(y0, y0 + window.shape[0])) / count
    return x, y


def stuff_onehot(sem_seg, num_stuff_classes, stride):
    """The stride-``stride`` one-hot stuff map of ``assign_multi_scale``.

    Parameters
    ----------
    sem_seg : np.ndarray
        ``(H, W)`` integer labels in ``[0, num_stuff_classes)`` or 255 (ignored), ``H`` and ``W``
        multiples of ``stride``.
    num_stuff_classes : int
        ``S``.
    stride : int
        The encoder stride (``common_stride``).

    Returns
    -------
    np.ndarray
        ``(S, H / stride, W / stride)`` float32: per class the bilinear resize of its indicator;
        ignored pixels count for no class.
    """
    height, width = sem_seg.shape
    out = np.zeros((num_stuff_classes, int(height / stride + 0.5), int(width / stride + 0.5)),
                   dtype=np.float32)
    present = np.flatnonzero(np.bincount(sem_seg.ravel(), minlength=IGNORE_VALUE + 1))
    for cls in present[present < num_stuff_classes]:
        out[cls] = downsample_binary(sem_seg == cls, stride)
    return out


def stuff_level_scores(onehot, height, width):
    """One level's stuff score map (reference ``_sem_assign``'s ``gt_scoremap``).

    Parameters
    ----------
    onehot : np.ndarray
        ``(S, h4, w4)`` stride-4 one-hot map of :func:`stuff_onehot`.
    height, width : int
        The level size.

    Returns
    -------
    np.ndarray
        ``(S, height, width)`` float32: the resize clamped to at most 1, values below 0.5 zeroed.
    """
    scores = np.minimum(resize_bilinear(onehot, height, width), 1.0)
    scores[scores < STUFF_THRESHOLD] = 0
    return scores


def level_shapes(height, width, first_stride=8, num_levels=5):
    """Feature sizes ``[(h_l, w_l)]`` of the levels P3..P7 for a ``height x width`` input
    (multiples of 32): the first is ``input / first_stride``, every next one what a 3x3 stride-2
    pad-1 convolution makes of the previous one, ``ceil(size / 2)`` (exact halves up to P5).
    The targets, the network's position checks and its post-processing all use this."""
    shapes = [(height // first_stride, width // first_stride)]
    while len(shapes) < num_levels:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def level_offsets(shapes):
    """``(L + 1,)`` int64 start of every level of ``shapes`` on the concatenated position axis,
    the total ``P`` last: level ``l`` occupies positions ``[offsets[l], offsets[l + 1])``."""
    sizes = [int(h) * int(w) for h, w in shapes]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


class FCNTargets(object):
    """PanopticFCN targets of one training crop (see the module docstring for the layout).

    Parameters
    ----------
    num_things : int
        ``T``, the thing classes of the centre heatmaps (``THING.NUM_CLASSES``).
    num_stuff_classes : int
        ``S``, the stuff-head classes, class 0 being "things" (``STUFF.NUM_CLASSES`` with
        ``WITH_THING=True``: 12 on Cityscapes, 54 on COCO).
    strides : tuple of int
        Strides of the levels P3..P7, each twice the previous.
    instance_scales : tuple of (float, float)
        Per level the closed interval of ``sqrt(box area)`` (input pixels) of its instances.
    min_overlap : float
        CornerNet radius overlap (``THING.MIN_OVERLAP``), in ``(0, 1)``.
    gaussian_sigma : float
        Gaussian ``sigma = diameter / gaussian_sigma`` (``THING.GAUSSIAN_SIGMA``).
    common_stride : int
        Stride of the encoder map and of ``inst_masks`` / ``stuff_masks``; divides 32.
    center_type : str
        ``'mass'`` (mean of the stride-4 mask pixels) or ``'box'`` (box centre).
    """

    def __init__(self, num_things, num_stuff_classes, strides=(8, 16, 32, 64, 128),
                 instance_scales=((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048)),
                 min_overlap=0.7, gaussian_sigma=3, common_stride=4, center_type='mass'):
        _check_positive_int('num_things', num_things)
        _check_positive_int('num_stuff_classes', num_stuff_classes)
        _check_strides(strides)
        _check_scales(instance_scales, len(strides))
        if not 0 < min_overlap < 1:
            raise UsageError('FCNTargets: min_overlap {!r} is not in (0, 1)'.format(min_overlap))
        if not gaussian_sigma > 0:
            raise UsageError('FCNTargets: gaussian_sigma {!r} is not positive'.format(
                gaussian_sigma))
        _check_positive_int('common_stride', common_stride)
        if SIZE_DIVISIBILITY % common_stride:
            raise UsageError('FCNTargets: common_stride {} does not divide {}'.format(
                common_stride, SIZE_DIVISIBILITY))
        if center_type not in ('mass', 'box'):
            raise UsageError("FCNTargets: center_type {!r} is not 'mass' or 'box'".format(
                center_type))
        self.num_things = int(num_things)
        self.num_stuff_classes = int(num_stuff_classes)
        self.strides = tuple(int(s) for s in strides)
        self.instance_scales = tuple((lo, hi) for lo, hi in instance_scales)
        self.min_overlap = float(min_overlap)
        self.gaussian_sigma = gaussian_sigma
        self.common_stride = int(common_stride)
        self.center_type = center_type

    def level_shapes(self, height, width):
        """Feature sizes of the levels for a ``height x width`` input.

        The first level is ``input / strides[0]``; every next one is what a 3x3 stride-2 pad-1
        convolution makes of the previous one, ``ceil(size / 2)`` (exact halves up to P5).

        Parameters
        ----------
        height, width : int
            Input size, multiples of 32.

        Returns
        -------
        list of (int, int)
            ``[(h_l, w_l)]`` for P3..P7.
        """
        _check_size(height, width)
        return level_shapes(height, width, self.strides[0], len(self.strides))

    def level_offsets(self, height, width):
        """Start of each level on the concatenated position axis, and ``P`` last.

        Returns
        -------
        list of int
            ``len(strides) + 1`` offsets.
        """
        return [int(v) for v in level_offsets(self.level_shapes(height, width))]

    def __call__(self, sem_seg, masks, classes):
        """The targets of one crop.

        Parameters
        ----------
        sem_seg : np.ndarray
            ``(H, W)`` uint8 stuff-head labels: 0 = things, 1..S-1 stuff, 255 ignored; ``H`` and
            ``W`` multiples of 32.
        masks : np.ndarray
            ``(M, H, W)`` binary instance masks (``M`` may be 0; empty masks are skipped).
        classes : np.ndarray
            ``(M,)`` integer thing classes in ``[0, T)``.

        Returns
        -------
        dict of np.ndarray
            With ``P`` the positions of all levels, ``N`` the slots and ``(h4, w4) = (H/4, W/4)``:
            ``center_targets`` (T, P) float32, ``stuff_targets`` (S, P) float32,
            ``stuff_masks`` (S, h4, w4) float32, ``inst_masks`` (N, h4, w4) float32,
            ``inst_guide`` (N, P) uint8, ``inst_classes`` (N,) float32, ``inst_levels`` (N,)
            int32, ``inst_centers`` (N,) int64.

        Raises
        ------
        ValueError
            (:class:`~gluonpan.errors.DataError`) naming the bad size, shape or value.
        """
        sem_seg, masks, classes = self._check_inputs(sem_seg, masks, classes)
        height, width = sem_seg.shape
        shapes = self.level_shapes(height, width)
        stuff_masks = stuff_onehot(sem_seg, self.num_stuff_classes, self.common_stride)
        stuff_targets = np.concatenate(
            [stuff_level_scores(stuff_masks, h, w).reshape(self.num_stuff_classes, h * w)  # (S, hw)
             for h, w in shapes], axis=1)
        targets = self._things(masks, classes, shapes)
        targets.update(stuff_targets=stuff_targets, stuff_masks=stuff_masks)
        return targets

    def _check_inputs(self, sem_seg, masks, classes):
        """Arrays of the right shapes, dtypes and values, or a :class:`DataError`."""
        sem_seg = np.asarray(sem_seg)
        if sem_seg.ndim != 2:
            raise DataError('FCNTargets: sem_seg has shape {}, expected (H, W)'.format(
                sem_seg.shape))
        _check_size(*sem_seg.shape)
        _check_labels(sem_seg, self.num_stuff_classes)
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[1:] != sem_seg.shape:
            raise DataError('FCNTargets: masks have shape {}, expected (M, {}, {}) like sem_seg'
                            .format(masks.shape, *sem_seg.shape))
        if masks.size and masks.dtype != bool:
            low, high = masks.min(), masks.max()
            if low < 0 or high > 1:
                raise DataError('FCNTargets: masks are not binary: value {} found'.format(
                    low if low < 0 else high))
        classes = np.asarray(classes)
        if classes.shape != (len(masks),):
            raise DataError('FCNTargets: classes have shape {}, expected ({},) for {} masks'
                            .format(classes.shape, len(masks), len(masks)))
        if classes.size and not np.issubdtype(classes.dtype, np.integer):
            raise DataError('FCNTargets: classes have dtype {}, expected integers'.format(
                classes.dtype))
        bad = classes[(classes < 0) | (classes >= self.num_things)]
        if bad.size:
            raise DataError('FCNTargets: thing class {} out of range [0, {})'.format(
                bad[0], self.num_things))
        return sem_seg, masks, classes.astype(np.int64)

    def _things(self, masks, classes, shapes):
        """Centre heatmaps and slot arrays (the thing part of the output dict)."""
        height, width = masks.shape[1:]
        boxes, nonempty = mask_boxes(masks)
        if not nonempty.all():
            log.debug('FCNTargets: skipping %d empty instance mask(s)', (~nonempty).sum())
        keep = np.flatnonzero(nonempty)
        boxes, classes = boxes[keep], classes[keep]
        bit_masks, centers = self._stride_masks(masks, keep, boxes)
        box_w, box_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sizes = np.sqrt(box_w * box_h)

        heatmaps, slots = [], []
        offset = 0
        for level, (scale, shape) in enumerate(zip(self.instance_scales, shapes)):
            members = np.flatnonzero((sizes >= scale[0]) & (sizes <= scale[1]))
            heatmap, center_index, guide = self._level_targets(
                shape, (height, width), members, classes, centers, box_w, box_h, bit_masks)
            heatmaps.append(heatmap.reshape(self.num_things, -1))  # (T, h * w)
            slots.append(_LevelSlots(level, members, offset + center_index, guide, offset))
            offset += shape[0] * shape[1]
        out = _slot_arrays(slots, bit_masks, classes, offset)
        out['center_targets'] = np.concatenate(heatmaps, axis=1)
        return out

    def _level_targets(self, shape, input_shape, members, classes, centers, box_w, box_h,
                       bit_masks):
        """One level's centre heatmap (``_label_assignment``) and its ``members``' centre
        positions and guides.

        Returns
        -------
        heatmap : np.ndarray
            ``(T, h, w)`` float32.
        center_index : np.ndarray
            ``(K,)`` int64 ``y * w + x`` of each member's centre on the level.
        guide : np.ndarray
            ``(K, h * w)`` bool, the member's stride-4 mask resized to the level ``> 0.1``.
        """
        h, w = shape
        enc_shape = bit_masks.shape[1:]
        cx, cy = _level_centers(centers[members], shape, enc_shape)
        radii = gaussian_radius(box_w[members] * np.float32(w / input_shape[1]),
                                box_h[members] * np.float32(h / input_shape[0]),
                                self.min_overlap)
        radii = np.maximum(radii, 0).astype(np.int32)
        heatmap = np.zeros((self.num_things, h, w), dtype=np.float32)
        for k, inst in enumerate(members):
            draw_gaussian(heatmap[classes[inst]], int(cx[k]), int(cy[k]), int(radii[k]),
                          self.gaussian_sigma)
        guide = resize_bilinear(bit_masks[members], h, w) > GUIDE_THRESHOLD  # (K, h, w)
        return heatmap, cy * w + cx, guide.reshape(len(members), h * w)  # (K, h * w)

    def _stride_masks(self, masks, keep, boxes):
        """The stride-4 masks of ``masks[keep]`` (``decode_bitwise_mask``) and their ``(x, y)``
        centres in stride-4 pixels.

        Returns
        -------
        bit_masks : np.ndarray
            ``(K, H / 4, W / 4)`` float32.
        centers : np.ndarray
            ``(K, 2)`` float32: mass centres, or box centres / ``common_stride`` (for
            ``center_type='box'`` and for a mass centre of no pixel, the deliberate difference).
        """
        stride = self.common_stride
        height, width = masks.shape[1:]
        bit_masks = np.zeros((len(keep), height // stride, width // stride), dtype=np.float32)
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride  # float32 as the reference
        for i, index in enumerate(keep):
            x1, y1, x2, y2 = (int(v) for v in boxes[i])
            blocks = _blocks((y1, y2 - 1, x1, x2 - 1), stride)
            window = _downsample_window(masks[index], stride, blocks, bit_masks[i])
            if self.center_type != 'mass':
                continue
            center = _mass_center(window, blocks[0], blocks[2])
            if center is None:
                log.debug('FCNTargets: instance %d has no pixel at stride %d, using its box '
                          'centre', index, stride)
            else:
                centers[i] = center
        return bit_masks, centers.astype(np.float32)


def _level_centers(centers, level_shape, enc_shape):
    """Stride-4 ``(K, 2)`` centres -> integer level columns and rows, truncated and clamped to
    ``[0, size]`` as the reference does."""
    h, w = level_shape
    cx = (centers[:, 0] * np.float32(w / enc_shape[1])).astype(np.int64)
    cy = (centers[:, 1] * np.float32(h / enc_shape[0])).astype(np.int64)
    return np.clip(cx, 0, w), np.clip(cy, 0, h)


def _slot_arrays(slots, bit_masks, classes, num_positions):
    """Stack the :class:`_LevelSlots` of the levels (level-major) into the ``inst_*`` arrays."""
    members = np.concatenate([s.members for s in slots]).astype(np.int64)
    guide = np.zeros((len(members), num_positions), dtype=np.uint8)
    row = 0
    for slot in slots:
        rows, cols = len(slot.members), slot.guide.shape[1]
        guide[row:row + rows, slot.offset:slot.offset + cols] = slot.guide
        row += rows
    return {
        'inst_masks': bit_masks[members],
        'inst_guide': guide,
        'inst_classes': classes[members].astype(np.float32),
        'inst_levels': np.concatenate([np.full(len(s.members), s.level, dtype=np.int32)
                                       for s in slots]),
        'inst_centers': np.concatenate([s.center_index for s in slots]).astype(np.int64),
    }


def _check_positive_int(name, value):
    """A :class:`UsageError` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError('FCNTargets: {} {!r} is not a positive integer'.format(name, value))


def _check_strides(strides):
    """A :class:`UsageError` unless the strides double level to level from a divisor of 32."""
    strides = tuple(strides)
    if not strides or any(not isinstance(s, (int, np.integer)) or s < 1 for s in strides):
        raise UsageError('FCNTargets: strides {!r} are not positive integers'.format(strides))
    if SIZE_DIVISIBILITY % strides[0] or any(b != 2 * a for a, b in zip(strides, strides[1:])):
        raise UsageError('FCNTargets: strides {!r} do not start at a divisor of {} and double '
                         'level to level'.format(strides, SIZE_DIVISIBILITY))


def _check_scales(instance_scales, num_levels):
    """A :class:`UsageError` unless there is one ``lo <= hi`` interval per level."""
    scales = tuple(tuple(s) for s in instance_scales)
    if len(scales) != num_levels or any(len(s) != 2 or s[0] > s[1] for s in scales):
        raise UsageError('FCNTargets: instance_scales {!r} are not {} (lo, hi) intervals with '
                         'lo <= hi, one per stride'.format(instance_scales, num_levels))


def _check_size(height, width):
    """A :class:`DataError` unless the input size is a positive multiple of 32."""
    for name, value in (('height', height), ('width', width)):
        if value < SIZE_DIVISIBILITY or value % SIZE_DIVISIBILITY:
            raise DataError('FCNTargets: input {} {} is not a positive multiple of {}'.format(
                name, value, SIZE_DIVISIBILITY))


def _check_labels(sem_seg, num_stuff_classes):
    """A :class:`DataError` unless ``sem_seg`` holds integers in ``[0, S)`` or 255."""
    if not np.issubdtype(sem_seg.dtype, np.integer):
        raise DataError('FCNTargets: sem_seg has dtype {}, expected integers'.format(
            sem_seg.dtype))
    low, high = int(sem_seg.min()), int(sem_seg.max())
    if low < 0 or high > IGNORE_VALUE:
        raise DataError('FCNTargets: sem_seg label {} is not in [0, {}) or {}'.format(
            low if low < 0 else high, num_stuff_classes, IGNORE_VALUE))
    counts = np.bincount(sem_seg.ravel(), minlength=IGNORE_VALUE + 1)
    bad = np.flatnonzero(counts[num_stuff_classes:IGNORE_VALUE])
    if bad.size:
        raise DataError('FCNTargets: sem_seg label {} is not in [0, {}) or {}'.format(
            bad[0] + num_stuff_classes, num_stuff_classes, IGNORE_VALUE))
