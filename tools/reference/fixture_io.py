"""What the fixture scripts of ``tools/reference/`` share: the layout of a fixture ``.npz``.

Imported by the scripts beside it (run with the PyTorch venv); needs numpy only.
"""
import json
import logging
import os

import numpy as np


def add_feature_summary(out, level, i, feat):
    """Store a pyramid level of image ``i`` compactly: ``feat{level}_stats_{i}`` (mean, std,
    max |x|) and every 32nd channel ``feat{level}_slice_{i}``.

    Parameters
    ----------
    out : dict
        The arrays of the fixture.
    feat : np.ndarray
        (C, h, w) float32 level.
    """
    out['feat{}_stats_{}'.format(level, i)] = np.array(
        [feat.mean(), feat.std(), np.abs(feat).max()], np.float32)
    out['feat{}_slice_{}'.format(level, i)] = feat[::32].astype(np.float32)


def write_fixture(path, out, meta):
    """Write ``out`` and the JSON ``meta`` (key ``meta``) to the compressed ``.npz`` ``path``."""
    out = dict(out, meta=np.array(json.dumps(meta, sort_keys=True)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **out)
    logging.info('wrote %s (%.0f KB)', path, os.path.getsize(path) / 1024.)
