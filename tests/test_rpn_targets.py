"""RPN training targets against detectron2's own ``Matcher`` / ``subsample_labels`` /
``Box2BoxTransform`` (fixture ``tests/fixtures/detectron2_rpn_targets.npz``).

Regenerate the fixture with the reference venv (detectron2 built from source, see
``tools/reference/make_detectron2_rpn_target_fixtures.py``)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_detectron2_rpn_target_fixtures.py
"""
import json
import os

import numpy as np
import pytest

from gluonpan.data.presets import RPNTargets, encode_boxes, match_anchors
from gluonpan.nn.anchors import FPNAnchors

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'detectron2_rpn_targets.npz')


@pytest.fixture(scope='module')
def ref():
    data = np.load(FIXTURE)
    meta = json.loads(str(data['meta']))
    cases = sum(1 for k in data.files if k.startswith('boxes_'))
    return data, meta, cases


def test_anchors_are_detectron2s(ref):
    data, meta, _ = ref
    height, width = meta['input']
    ours = FPNAnchors()(height, width)  # the default style is detectron2's
    np.testing.assert_allclose(ours, data['anchors'], rtol=0, atol=1e-4)


def test_labels_and_deltas_equal_detectron2(ref):
    """Before sampling: the same label for every anchor (border anchors, IoU ties and boxes
    smaller than every anchor included), the same matched box and box deltas for positives."""
    data, _, cases = ref
    anchors = data['anchors']
    rpn = RPNTargets(FPNAnchors())
    for i in range(cases):
        boxes = data['boxes_{}'.format(i)]
        labels, match = match_anchors(anchors, boxes)
        np.testing.assert_array_equal(labels, data['labels_{}'.format(i)].astype(np.float32),
                                      err_msg='case {}'.format(i))
        pos = labels == 1
        np.testing.assert_array_equal(match[pos], data['match_{}'.format(i)][pos])
        if pos.any():
            np.testing.assert_allclose(encode_boxes(boxes[match[pos]], anchors[pos]),
                                       data['deltas_{}'.format(i)], rtol=1e-5, atol=1e-5)
        # sampled: detectron2's counts, the sampled anchors among its labels, deltas on positives
        cls, box, mask = rpn(boxes, 128, 160, np.random.default_rng(i))
        n_pos, n_neg = data['sampled_{}'.format(i)]
        assert ((cls == 1).sum(), (cls == 0).sum()) == (n_pos, n_neg), i
        assert (labels[cls == 1] == 1).all() and (labels[cls == 0] == 0).all()
        assert (mask[cls == 1] == 1).all() and (mask[cls != 1] == 0).all()
        np.testing.assert_array_equal(box[cls != 1], 0)


def test_gluoncv_style_differs_where_expected(ref):
    """gluoncv's generator ignores border anchors and drops the best anchor of a tiny box when
    its IoU is < 0.3: both cases of the fixture show it."""
    data, _, _ = ref
    anchors = data['anchors']
    inside = ((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] < 160) &
              (anchors[:, 3] < 128))
    gluoncv = RPNTargets(FPNAnchors(), style='gluoncv')
    for i in (1, 2):  # tiny boxes, boxes at the border
        labels = data['labels_{}'.format(i)]
        cls, _, _ = gluoncv(data['boxes_{}'.format(i)], 128, 160, np.random.default_rng(0))
        assert (cls[~inside] == -1).all()
        assert (labels[~inside] != -1).any()
        assert (cls == 1).sum() < (labels == 1).sum()


def test_unknown_style():
    with pytest.raises(ValueError, match='unknown RPN target style'):
        RPNTargets(FPNAnchors(), style='mmdet')
