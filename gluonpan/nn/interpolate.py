"""Bilinear resizing inside a graph (``F`` is ``mx.nd`` or ``mx.sym``) with PyTorch's
``interpolate(mode='bilinear', align_corners=False)`` sampling, by interpolation matrices: any
sizes (the target's, read in the graph), and a deterministic backward (GEMMs), unlike
``contrib.BilinearResize2D``'s CPU backward, which accumulates in a thread-dependent order (a
training run with ``OMP_NUM_THREADS > 1`` would not be repeatable, nor its resume exact).  The
numpy twin is :mod:`gluonpan.utils.resize`."""

__all__ = ['resize_like']


def _interpolation_matrix(F, source, source_axis, target, target_axis):
    """(n_out, n_in) weights of PyTorch's bilinear ``interpolate(size=..., align_corners=False)``
    along one axis: ``n_in`` is ``source``'s size along ``source_axis``, ``n_out``
    ``target``'s along ``target_axis``.  Output ``i`` reads input coordinate ``max((i + 0.5) *
    n_in / n_out - 0.5, 0)`` (the scale from the sizes, not a fixed factor), the upper
    neighbour clamped to the edge."""
    src = F.contrib.arange_like(source, axis=source_axis)  # (n_in,)
    dst = F.contrib.arange_like(target, axis=target_axis)  # (n_out,)
    n_in, n_out = F.sum(F.ones_like(src)), F.sum(F.ones_like(dst))  # (1,) each
    pos = F.relu(F.broadcast_mul(dst + 0.5, n_in / n_out) - 0.5)  # (n_out,)
    low = F.broadcast_minimum(F.floor(pos), n_in - 1)
    frac = (pos - low).reshape((-1, 1))  # (n_out, 1)
    high = F.broadcast_minimum(low + 1, n_in - 1)
    cols = src.reshape((1, -1))  # (1, n_in)
    low, high = low.reshape((-1, 1)), high.reshape((-1, 1))  # (n_out, 1) each
    weights = F.broadcast_mul(F.broadcast_equal(low, cols), 1 - frac) + \
        F.broadcast_mul(F.broadcast_equal(high, cols), frac)  # (n_out, n_in)
    return F.BlockGrad(weights)


def resize_like(F, x, like):
    """Bilinear resize of ``x`` (K, h, w) to the size of ``like`` (K', H, W), as PyTorch's
    ``interpolate(x, size=(H, W), mode='bilinear', align_corners=False)``.

    Two separable interpolation matrices built in the graph and applied with ``dot``: any sizes
    (the scale is ``h / H``, not a fixed factor), and a deterministic backward (a GEMM), unlike
    ``contrib.BilinearResize2D``'s CPU backward.
    """
    rows = _interpolation_matrix(F, x, 1, like, 1)  # (H, h)
    cols = _interpolation_matrix(F, x, 2, like, 2)  # (W, w)
    out = F.dot(x, cols, transpose_b=True)  # (K, h, W)
    out = F.dot(F.swapaxes(out, 1, 2), rows, transpose_b=True)  # (K, W, h) -> (K, W, H)
    return F.swapaxes(out, 1, 2)  # (K, H, W)
