"""Bilinear resizing in numpy with PyTorch's ``interpolate(mode='bilinear', align_corners=False)``
sampling (half-pixel centres, no antialiasing), shared by the data targets and the inference of
every model that resizes maps the way its reference does."""
import numpy as np

__all__ = ['bilinear_axis', 'resize_bilinear']


def bilinear_axis(n_out, n_in):
    """Sampling of one axis: ``(lo, hi, frac)`` with output ``i`` = ``(1 - frac[i]) * x[lo[i]] +
    frac[i] * x[hi[i]]``.

    Output pixel ``i`` reads input coordinate ``max((i + 0.5) * n_in / n_out - 0.5, 0)``, the
    upper neighbour clamped to the edge; computed in float32 as PyTorch's CPU kernel does.
    """
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) *
                     np.float32(n_in / n_out) - np.float32(0.5), np.float32(0))
    lo = np.minimum(src.astype(np.int64), n_in - 1)
    return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)


def resize_bilinear(image, height, width, window=None):
    """Resize the last two axes of a float array to ``height x width``.

    Parameters
    ----------
    image : np.ndarray
        ``(..., H, W)``; computed in float32.
    height, width : int
        Output size.
    window : tuple of int, optional
        ``(top, bottom, left, right)``: compute only these output rows and columns of the
        ``height x width`` result (bitwise the values of the full resize there).

    Returns
    -------
    np.ndarray
        ``(..., height, width)`` float32, or ``(..., bottom - top, right - left)`` for a window.
    """
    image = np.asarray(image, dtype=np.float32)
    y0, y1, fy = bilinear_axis(height, image.shape[-2])
    x0, x1, fx = bilinear_axis(width, image.shape[-1])
    if window is not None:
        top, bottom, left, right = window
        y0, y1, fy = y0[top:bottom], y1[top:bottom], fy[top:bottom]
        x0, x1, fx = x0[left:right], x1[left:right], fx[left:right]
    rows0, rows1 = image[..., y0, :], image[..., y1, :]  # (..., height, W)
    top = rows0[..., x0] * (1 - fx) + rows0[..., x1] * fx  # (..., height, width)
    bottom = rows1[..., x0] * (1 - fx) + rows1[..., x1] * fx  # (..., height, width)
    return top * (1 - fy[:, None]) + bottom * fy[:, None]
