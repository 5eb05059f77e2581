"""Joint geometric transforms of an image and its segment index map.

Scale, crop, pad and flip are folded into one affine map and applied with a single
``cv2.warpAffine`` per array, over the output pixels only: a 2x upscale followed by a 512x1024 crop
never materialises the 4x larger image.  The map follows ``cv2.resize``'s pixel-centre convention
(``src = (dst + 0.5) / s - 0.5``), so image and labels stay aligned to the pixel; labels use nearest
neighbour and padding becomes void (segment index 0).
"""
import cv2
import numpy as np

__all__ = ['affine_matrix', 'warp_image', 'warp_labels', 'normalize', 'denormalize',
           'IMAGENET_MEAN', 'IMAGENET_STD']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def affine_matrix(scale, offset_xy=(0, 0), flip_width=None):
    """2x3 matrix from source pixels to output pixels.

    Parameters
    ----------
    scale : float
        Resize factor.
    offset_xy : tuple of float
        Top-left corner of the output window in the *scaled* image (crop offset; negative pads).
    flip_width : int, optional
        Output width; if given the output is mirrored horizontally.
    """
    shift = 0.5 * scale - 0.5
    m = np.array([[scale, 0.0, shift - offset_xy[0]],
                  [0.0, scale, shift - offset_xy[1]]], dtype=np.float64)
    if flip_width is not None:
        m[0] = -m[0]
        m[0, 2] += flip_width - 1
    return m


def warp_image(image, matrix, out_hw, fill=(0, 0, 0)):
    """Bilinear warp of an ``(H, W, 3)`` uint8 image to ``out_hw``; outside pixels get ``fill``."""
    return cv2.warpAffine(image, matrix, (int(out_hw[1]), int(out_hw[0])), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill))


def warp_labels(labels, matrix, out_hw, fill=0):
    """Nearest-neighbour warp of an ``(H, W)`` label map (uint8/uint16); outside pixels get ``fill``."""
    return cv2.warpAffine(labels, matrix, (int(out_hw[1]), int(out_hw[0])), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """``(H, W, 3)`` uint8 RGB -> ``(3, H, W)`` float32 ``(x / 255 - mean) / std``."""
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float32))
    shift = np.asarray(mean, dtype=np.float32) * 255.0
    out = (image.astype(np.float32) - shift) * scale  # (H, W, 3)
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (3, H, W)


def denormalize(data, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The inverse of :func:`normalize`: ``(3, H, W)`` float32 -> ``(H, W, 3)`` uint8 RGB, exact
    for what :func:`normalize` made (rounded to the nearest integer, clipped to 0..255).  The
    models that resize the uint8 image at test time as their references do use it."""
    image = np.asarray(data, np.float32).transpose(1, 2, 0)  # (H, W, 3)
    scale, shift = np.float32(255) * np.asarray([std, mean], np.float32)
    return np.ascontiguousarray(np.rint(image * scale + shift).clip(0, 255).astype(np.uint8))
