"""Seeded random weights and inputs that any environment regenerates bit for bit (pure numpy).

The reference fixtures (``tools/reference/make_torchvision_fixtures.py``, run with PyTorch) and the
tests that check them (run with MXNet) must use identical weights without storing them.  Each array
is drawn from its own ``numpy.random.default_rng([seed, crc32(name)])`` stream, so it depends on
its name, shape and the seed only (not on the order of the names), and only ``Generator.random``
(uniform float64 from PCG64's raw bits, stable across numpy versions) is used: normal-looking
values are sums of uniforms, not ``standard_normal`` (whose algorithm numpy may change).
"""
import hashlib
import re
import zlib

import numpy as np

__all__ = ['uniform', 'seeded_weights', 'seeded_images', 'fingerprint']


def uniform(seed, name, shape, low=-1., high=1.):
    """float32 array of ``shape``, uniform in [low, high), from the stream of ``(seed, name)``."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode('utf-8'))])
    size = int(np.prod(shape, dtype=np.int64))
    return (low + (high - low) * rng.random(size)).astype(np.float32).reshape(shape)  # (*shape)


def _std_uniform(seed, name, shape, std):
    """Zero-mean uniform values with standard deviation ``std``."""
    half = std * np.sqrt(3.)
    return uniform(seed, name, shape, -half, half)


def seeded_weights(spec, seed, gains=None, zero_mean=()):
    """Random weights for a network described by ``spec`` (PyTorch layouts and names).

    Parameters
    ----------
    spec : dict
        ``{name: shape}``.  The role of an array comes from its name's last part: ``weight`` of
        rank >= 2 (conv / linear, fan-in = prod(shape[1:])), ``weight`` / ``bias`` of rank 1 next to
        ``running_mean`` (batch norm), ``bias``, ``running_mean``, ``running_var``.
    seed : int
        Seed of every stream.
    gains : dict, optional
        ``{regular expression: gain}``: a conv / linear weight whose name matches (``re.search``)
        has standard deviation ``gain / sqrt(fan_in)``; the first matching expression in the
        dict's order wins, default gain ``sqrt(2)`` (variance-preserving before a ReLU).
    zero_mean : tuple of str
        Regular expressions: a conv / linear weight whose name matches has the mean of each
        output row (over ``shape[1:]``) subtracted.  A predictor after a ReLU otherwise gives
        every input the same preferred class (its inputs share a positive mean).

    Returns
    -------
    dict
        ``{name: float32 array}`` in the order of ``spec``.  Batch norms get scales in
        [0.5, 1.5), shifts and means in [-0.1, 0.1), variances in [0.5, 1.5); conv / linear biases
        in [-0.05, 0.05).
    """
    gains = dict(gains or {})
    names = set(spec)
    out = {}
    for name, shape in spec.items():
        shape = tuple(int(s) for s in shape)
        base, _, leaf = name.rpartition('.')
        is_norm = base + '.running_mean' in names
        if leaf == 'weight' and not is_norm:
            gain = next((g for p, g in gains.items() if re.search(p, name)), np.sqrt(2.))
            # a transposed conv (in, out, kh, kw) also sums over in * kh * kw / stride**2
            # inputs; fan-in = prod(shape[1:]) is close enough for random weights
            out[name] = _std_uniform(seed, name, shape, gain / np.sqrt(np.prod(shape[1:])))
            if any(re.search(p, name) for p in zero_mean):
                rows = out[name].reshape((shape[0], -1)).astype(np.float64)  # (out, fan_in)
                # in float64: the float32 result does not depend on numpy's summation order
                centred = rows - rows.mean(axis=1, keepdims=True)  # (out, fan_in)
                out[name] = centred.astype(np.float32).reshape(shape)  # (*shape)
        elif leaf == 'weight':
            out[name] = uniform(seed, name, shape, 0.5, 1.5)
        elif leaf == 'running_var':
            out[name] = uniform(seed, name, shape, 0.5, 1.5)
        elif leaf in ('bias', 'running_mean'):
            bound = 0.1 if is_norm else 0.05
            out[name] = uniform(seed, name, shape, -bound, bound)
        else:
            raise ValueError('seeded_weights: no rule for {!r} {}'.format(name, shape))
    return out


def seeded_images(seed, num_images, height, width, block=8):
    """Normalised test images: smooth random blobs plus noise, float32 (N, 3, H, W).

    Piecewise-constant colours on a ``block``-pixel grid (so the network sees edges and regions)
    plus uniform noise of amplitude 0.25; values lie roughly in [-2, 2] like ImageNet-normalised
    photographs.
    """
    gh, gw = -(-height // block), -(-width // block)
    coarse = uniform(seed, 'images.coarse', (num_images, 3, gh, gw), -1.75, 1.75)
    coarse = coarse.repeat(block, axis=2).repeat(block, axis=3)[:, :, :height, :width]
    noise = uniform(seed, 'images.noise', (num_images, 3, height, width), -0.25, 0.25)
    return coarse + noise  # (N, 3, H, W)


def fingerprint(arrays):
    """SHA-1 (first 16 hex digits) of each array's dtype, shape and bytes: the check that two
    environments drew exactly the same values."""
    out = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        digest = hashlib.sha1('{}{}'.format(a.dtype.str, a.shape).encode())
        digest.update(a.tobytes())
        out[name] = digest.hexdigest()[:16]
    return out
