"""Checks shared by the tests against reference implementations (``test_reference_*.py``).

Each fixture ``.npz`` holds a JSON ``meta`` and, per image ``i``, FPN statistics and slices
``feat{l}_stats_{i}`` / ``feat{l}_slice_{i}`` and bit-packed pasted masks ``masks_pasted_{i}``
(see ``tools/reference/``).
"""
import json

import numpy as np

from gluonpan.convert.seeded import fingerprint


def load_fixture(path):
    """The arrays of a reference fixture, with ``meta`` decoded."""
    with np.load(path) as z:
        ref = {k: z[k] for k in z.files}
    ref['meta'] = json.loads(str(ref['meta']))
    return ref


def assert_weights_regenerated(weights, meta):
    """numpy drew exactly the weights the fixture's script drew."""
    got = fingerprint(weights)
    assert sorted(got) == sorted(meta['weights_fingerprint'])
    bad = [k for k, v in meta['weights_fingerprint'].items() if got[k] != v]
    assert not bad, 'numpy drew other weights than in the fixture: {}'.format(bad[:5])


def assert_fpn_features(reference, ours, tol=1e-4):
    """Every level of every image within ``tol`` of the level's largest value."""
    for i, out in enumerate(ours):
        for level, feat in enumerate(out['feats']):
            ref = reference['feat{}_slice_{}'.format(level, i)]
            scale = np.abs(ref).max()
            err = np.abs(feat[::32] - ref).max() / scale
            assert err < tol, 'image {} P{}: max error {:.2e} of max |x|'.format(i, level + 2, err)
            stats = np.array([feat.mean(), feat.std(), np.abs(feat).max()])
            np.testing.assert_allclose(stats, reference['feat{}_stats_{}'.format(level, i)],
                                       atol=tol * scale)


def assert_pasted(reference, i, pasted):
    """Our (D, H, W) pasted masks of image ``i`` are the reference's but for a few pixels (those
    whose probability is within float error of the threshold)."""
    size = pasted.shape
    ref = np.unpackbits(reference['masks_pasted_{}'.format(i)],
                        count=int(np.prod(size))).reshape(size)  # (D, H, W)
    differ = int((pasted != ref).sum())
    assert differ <= 1e-4 * ref.sum(), 'image {}: {} of {} mask pixels differ'.format(
        i, differ, ref.sum())


def assert_detections(reference, ours, labels='labels'):
    """Per image: the same boxes (1e-3 px) in the same order, the same ``labels`` (the name of
    the class arrays, ours and ``{labels}_{i}`` of the fixture) and scores (1e-5)."""
    for i, out in enumerate(ours):
        ref = reference['boxes_{}'.format(i)]
        assert out['boxes'].shape == ref.shape, 'image {}'.format(i)
        np.testing.assert_allclose(out['boxes'], ref, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(out[labels], reference['{}_{}'.format(labels, i)])
        np.testing.assert_allclose(out['scores'], reference['scores_{}'.format(i)], rtol=0,
                                   atol=1e-5)
