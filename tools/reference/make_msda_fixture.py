"""Reference multi-scale deformable attention core, computed with torch's ``grid_sample``, for
``tests/test_deformable_attention.py``.

Runs with the PyTorch venv, never with gluonpan's (and no test imports torch)::

    OMP_NUM_THREADS=1 nice -n 19 /work/refenv/bin/python tools/reference/make_msda_fixture.py \
        [--out tests/fixtures/msda_reference.npz] [--seed 3]

What it does: draws (numpy, ``--seed``) per-level value maps ``value_{l}`` (N, M * D, H_l, W_l)
for the levels :data:`LEVELS` (3x5, 1x4, 4x1, 1x1: single-row / single-column / single-pixel
maps included), sampling locations ``locations`` (N, Q, M, L, P, 2) in [0, 1] of each map, half of
them at special pixel positions (centres, edges, half a pixel and more outside) and half uniform
in [-0.25, 1.25], attention weights ``weights`` (N, Q, M, L, P) and a cotangent ``cotangent``
(N, Q, M * D), all float32.  It then computes, in float64 from those float32 numbers, the
deformable attention of mmcv 1.x's ``multi_scale_deformable_attn_pytorch`` (the semantics, not
its code): per level and head ``grid_sample(value, 2 * loc - 1, mode='bilinear',
padding_mode='zeros', align_corners=False)``, weighted and summed over levels and points, heads
concatenated -> ``output`` (N, Q, M * D), and with autograd the gradients of ``sum(output *
cotangent)``: ``grad_value_{l}``, ``grad_locations``, ``grad_weights`` (float64).  A JSON
``meta`` holds the seed, the versions and the sizes.
"""
import argparse
import logging
import os
import platform
import sys

import numpy as np
import torch
import torch.nn.functional as tF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import write_fixture  # noqa: E402

#: (H, W) of the levels
LEVELS = ((3, 5), (1, 4), (4, 1), (1, 1))
N, Q, M, D, P = 2, 6, 2, 3, 3
#: special pixel coordinates, relative to the start (``k``) or the end (``size + k``) of an axis
SPECIAL = (('start', -2.), ('start', -1.), ('start', -0.75), ('start', -0.5), ('start', -0.2),
           ('start', 0.), ('start', 0.5), ('end', -1.), ('end', -0.5), ('end', -0.3),
           ('end', 0.), ('end', 0.6))


def draw_locations(rng):
    """(N, Q, M, L, P, 2) float32 locations: half at :data:`SPECIAL` pixels, half uniform."""
    loc = rng.uniform(-0.25, 1.25, size=(N, Q, M, len(LEVELS), P, 2))
    special = rng.rand(*loc.shape) < 0.5
    which = rng.randint(0, len(SPECIAL), size=loc.shape)
    for lvl, (h, w) in enumerate(LEVELS):
        for axis, size in ((0, w), (1, h)):
            sel = (Ellipsis, lvl, slice(None), axis)
            pixel = np.array([k if ref == 'start' else size + k for ref, k in SPECIAL])
            loc_special = (pixel[which[sel]] + 0.5) / size  # pixel centre i at (i + 0.5) / size
            loc[sel] = np.where(special[sel], loc_special, loc[sel])
    return loc.astype(np.float32)


def torch_msda(values, locations, weights):
    """The deformable attention of float64 torch tensors: (N, Q, M * D)."""
    per_level = []
    for lvl, value in enumerate(values):
        h, w = value.shape[-2:]
        maps = value.reshape(N * M, D, h, w)  # head m owns channels m * D .. (m + 1) * D - 1
        grid = 2 * locations[:, :, :, lvl] - 1  # (N, Q, M, P, 2)
        grid = grid.permute(0, 2, 1, 3, 4).reshape(N * M, Q, P, 2)  # (N*M, Q, P, 2)
        per_level.append(tF.grid_sample(maps, grid, mode='bilinear', padding_mode='zeros',
                                        align_corners=False))  # (N*M, D, Q, P)
    sampled = torch.stack(per_level, dim=3)  # (N*M, D, Q, L, P)
    wts = weights.permute(0, 2, 1, 3, 4).reshape(N * M, 1, Q, len(values), P)  # (N*M,1,Q,L,P)
    out = (sampled * wts).sum(dim=(3, 4))  # (N*M, D, Q)
    return out.reshape(N, M * D, Q).permute(0, 2, 1)  # (N, Q, M*D)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'fixtures',
        'msda_reference.npz')))
    parser.add_argument('--seed', type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    rng = np.random.RandomState(args.seed)
    out = {}
    for lvl, (h, w) in enumerate(LEVELS):
        out['value_{}'.format(lvl)] = rng.normal(size=(N, M * D, h, w)).astype(np.float32)
    out['locations'] = draw_locations(rng)
    out['weights'] = rng.uniform(0, 1, size=(N, Q, M, len(LEVELS), P)).astype(np.float32)
    out['cotangent'] = rng.normal(size=(N, Q, M * D)).astype(np.float32)

    def leaf(x):
        return torch.tensor(x, dtype=torch.float64, requires_grad=True)
    values = [leaf(out['value_{}'.format(lvl)]) for lvl in range(len(LEVELS))]
    locations, weights = leaf(out['locations']), leaf(out['weights'])
    result = torch_msda(values, locations, weights)
    (result * torch.tensor(out['cotangent'], dtype=torch.float64)).sum().backward()
    out['output'] = result.detach().numpy()
    for lvl, value in enumerate(values):
        out['grad_value_{}'.format(lvl)] = value.grad.numpy()
    out['grad_locations'] = locations.grad.numpy()
    out['grad_weights'] = weights.grad.numpy()
    meta = dict(seed=args.seed, levels=LEVELS, sizes=dict(N=N, Q=Q, M=M, D=D, P=P),
                torch=torch.__version__, numpy=np.__version__, python=platform.python_version(),
                command='tools/reference/make_msda_fixture.py --seed {}'.format(args.seed))
    write_fixture(args.out, out, meta)


if __name__ == '__main__':
    main()
