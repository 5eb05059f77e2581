"""Transform policies of semantic segmentation: what a training or a validation sample is made of.

The training policy is mmsegmentation's (``RandomResize`` -> ``RandomCrop(cat_max_ratio)`` ->
``RandomFlip`` -> ``Normalize`` -> ``Pad``), written with the joint affine warp of
:mod:`gluonpan.data.transforms`: the rescale and the crop are one ``cv2.warpAffine`` over the output
pixels only, the padding is part of the same warp (image: the mean colour, i.e. 0 once normalised;
labels: ``ignore_label``).  All randomness comes from the per-sample ``seed`` that
:class:`gluonpan.data.sampler.EpochSampler` gives, so a resumed run sees the same crops.
"""
import numpy as np

from .categories import IGNORE_LABEL
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, affine_matrix, normalize, warp_image,
                         warp_labels)

__all__ = ['SemanticTrainTransform', 'SemanticValTransform', 'largest_class_share']


def largest_class_share(sem_seg, ignore_label=IGNORE_LABEL):
    """Share of the labelled pixels of ``sem_seg`` that its most frequent class covers.

    Parameters
    ----------
    sem_seg : np.ndarray
        ``(H, W)`` uint8 classes.
    ignore_label : int
        The value that is not a class.

    Returns
    -------
    tuple
        ``(share, num_classes)``: the largest class's share of the labelled pixels (0.0 if none)
        and how many classes are present.
    """
    counts = np.bincount(sem_seg.ravel(), minlength=256)  # ravel: (H*W,)
    counts[ignore_label] = 0
    counts = counts[counts > 0]
    return (float(counts.max()) / counts.sum() if len(counts) else 0.0), len(counts)


class SemanticTrainTransform(object):
    """Training policy: random rescale, crop (``cat_max_ratio`` rule), flip, normalise, pad.

    Parameters
    ----------
    crop_size : tuple of int
        Output ``(height, width)``; multiples of 32.  A smaller (rescaled) image is padded at the
        bottom / right (the left after a flip): the image with the mean colour, the labels with
        ``ignore_label``.
    scale_range : tuple of float
        Random resize factor of the whole image, uniform in the range (mmsegmentation's
        ``RandomResize(ratio_range=...)``), applied after ``base_scale``.
    flip : bool
        Random horizontal flip with probability 0.5.
    mean, std : tuple of float
        Normalisation of RGB values in [0, 1] (ImageNet's by default, as the panoptic transforms).
    cat_max_ratio : float
        mmsegmentation's ``RandomCrop`` rule: a crop is drawn again (up to ``max_tries`` more
        times) unless it holds at least two classes and none covers ``cat_max_ratio`` or more of
        its labelled (not ignored, not padded) pixels; after the last try the last crop is kept.
        ``1.0`` turns the rule off.
    ignore_label : int
        The label value of ignored and padded pixels.
    max_tries : int
        How many crops are drawn again at most (mmsegmentation: 10).
    base_scale : tuple of int, optional
        mmsegmentation's ``RandomResize(scale=...)`` with ``keep_ratio=True``: the image is first
        rescaled, keeping its aspect ratio, by ``min(max(base_scale) / long side, min(base_scale) /
        short side)``; ``(2048, 512)`` for ADE20K (images of varied sizes), ``(2048, 1024)`` or
        ``None`` (no base rescale) for Cityscapes' 2048x1024 images.
    """

    def __init__(self, crop_size=(512, 1024), scale_range=(0.5, 2.0), flip=True,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, cat_max_ratio=0.75,
                 ignore_label=IGNORE_LABEL, max_tries=10, base_scale=None):
        if crop_size[0] % 32 or crop_size[1] % 32:
            raise ValueError('crop_size {} must be multiples of 32'.format(crop_size))
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError('scale_range {} must be (low, high) with 0 < low <= high'.format(
                scale_range))
        self.crop_size = tuple(int(c) for c in crop_size)
        self.scale_range = tuple(float(s) for s in scale_range)
        self.flip = flip
        self.mean, self.std = mean, std
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_label = int(ignore_label)
        self.max_tries = int(max_tries)
        self.base_scale = None if base_scale is None else tuple(int(b) for b in base_scale)

    def base_factor(self, height, width):
        """Resize factor of the base scale for an image of ``height x width`` (1 without one)."""
        if self.base_scale is None:
            return 1.0
        return min(max(self.base_scale) / float(max(height, width)),
                   min(self.base_scale) / float(min(height, width)))

    def choose_crop(self, sem_seg, scale, rng):
        """Top-left ``(x0, y0)`` of the crop in the scaled image, and the crop's labels.

        Returns
        -------
        tuple
            ``(x0, y0, labels)`` with ``labels`` the ``crop_size`` uint8 label crop (not flipped).
        """
        ch, cw = self.crop_size
        height, width = sem_seg.shape
        max_y = max(int(round(height * scale)) - ch, 0)
        max_x = max(int(round(width * scale)) - cw, 0)
        for _ in range(self.max_tries + 1):
            y0, x0 = int(rng.integers(0, max_y + 1)), int(rng.integers(0, max_x + 1))
            labels = warp_labels(sem_seg, affine_matrix(scale, (x0, y0)), self.crop_size,
                                 self.ignore_label)
            if self.cat_max_ratio >= 1.0:
                break
            share, num = largest_class_share(labels, self.ignore_label)
            if num > 1 and share < self.cat_max_ratio:
                break
        return x0, y0, labels

    def __call__(self, sample, seed=None):
        """A training sample from a loaded one (``image``, ``sem_seg``, ``image_id``).

        Returns
        -------
        dict
            ``data`` (3, h, w) float32 normalised, ``sem_seg`` (h, w) uint8 (``ignore_label`` on
            padding), ``image_id``; ``(h, w) = crop_size``.
        """
        rng = np.random.default_rng(seed)
        scale = float(rng.uniform(*self.scale_range)) * self.base_factor(*sample['sem_seg'].shape)
        x0, y0, labels = self.choose_crop(sample['sem_seg'], scale, rng)
        fill = tuple(255.0 * m for m in self.mean)
        image = warp_image(sample['image'], affine_matrix(scale, (x0, y0)), self.crop_size, fill)
        if self.flip and rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]  # flip the crop as a whole
        return {'data': normalize(image, self.mean, self.std),
                'sem_seg': np.ascontiguousarray(labels), 'image_id': sample['image_id']}


class SemanticValTransform(object):
    """Validation policy: full resolution, normalised; keeps the image and the ground truth."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.mean, self.std = mean, std

    def __call__(self, sample, seed=None):
        """``data`` (3, H, W) float32, ``image`` (H, W, 3) uint8, ``sem_seg`` (H, W) uint8,
        ``image_id``, ``file_name``."""
        return {'data': normalize(sample['image'], self.mean, self.std), 'image': sample['image'],
                'sem_seg': sample['sem_seg'], 'image_id': sample['image_id'],
                'file_name': sample['file_name']}
