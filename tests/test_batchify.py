"""RPN targets, batching with padding, splitting over contexts, the resumable sampler."""
import mxnet as mx
import numpy as np
import pytest

from gluonpan.data import EpochSampler, RPNTargets, split_and_load, train_batchify
from gluonpan.nn.anchors import FPNAnchors


def _sample(h, w, boxes, rpn=None, seed=0):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    s = {'data': np.ones((3, h, w), np.float32), 'sem_seg': np.zeros((h, w), np.uint8),
         'gt_boxes': boxes, 'gt_classes': np.arange(len(boxes), dtype=np.int32),
         'gt_masks': np.ones((len(boxes), h, w), np.uint8), 'image_id': 'im{}'.format(seed)}
    if rpn is not None:
        cls, box, mask = rpn(boxes, h, w, np.random.default_rng(seed))
        s.update(rpn_cls_targets=cls, rpn_box_targets=box, rpn_box_masks=mask)
    return s


def test_rpn_targets_positive_anchors_overlap_their_box():
    anchors = FPNAnchors()
    rpn = RPNTargets(anchors)
    box = [10, 20, 73, 59]
    cls, tgt, mask = rpn(np.array([box], np.float32), 64, 128, np.random.default_rng(0))
    a = anchors(64, 128)
    assert cls.shape == (len(a),) and tgt.shape == (len(a), 4)
    pos = np.nonzero(cls == 1)[0]
    assert len(pos) >= 1 and (cls == 0).sum() + len(pos) == 256
    ix1, iy1 = np.maximum(a[pos, 0], box[0]), np.maximum(a[pos, 1], box[1])
    ix2, iy2 = np.minimum(a[pos, 2], box[2]), np.minimum(a[pos, 3], box[3])
    assert ((ix2 > ix1) & (iy2 > iy1)).all()
    assert (mask[pos] == 1).all() and (mask[cls != 1] == 0).all()


def test_rpn_targets_without_boxes_are_all_negative_and_seeded():
    rpn = RPNTargets(FPNAnchors())
    c1, _, m1 = rpn(np.zeros((0, 4), np.float32), 64, 128, np.random.default_rng(3))
    c2, _, _ = rpn(np.zeros((0, 4), np.float32), 64, 128, np.random.default_rng(3))
    assert (c1 == 0).sum() == 256 and (c1 == 1).sum() == 0 and (m1 == 0).all()
    np.testing.assert_array_equal(c1, c2)


def test_train_batchify_pads_instances_and_size():
    batch = train_batchify([_sample(40, 60, [[1, 2, 3, 4]]), _sample(50, 64, [])])
    assert batch['data'].shape == (2, 3, 64, 64)
    assert batch['gt_boxes'].shape == (2, 1, 4) and batch['gt_classes'].shape == (2, 1, 1)
    assert batch['gt_boxes'][1].asnumpy().tolist() == [[-1, -1, -1, -1]]
    assert batch['gt_classes'][1, 0, 0].asscalar() == -1
    sem = batch['sem_seg'].asnumpy()
    assert (sem[0, 40:] == 255).all() and (sem[0, :, 60:] == 255).all() and (sem[0, :40, :60] == 0).all()
    assert batch['gt_masks'].dtype == np.uint8 and batch['data'].context.device_type == 'cpu_shared'


def test_train_batchify_of_semantic_samples():
    """Semantic samples (no instances) batch to data and sem_seg only, padded the same way."""
    samples = [{'data': np.ones((3, 40, 60), np.float32), 'sem_seg': np.full((40, 60), 3, np.uint8),
                'image_id': 'a'},
               {'data': np.ones((3, 50, 64), np.float32), 'sem_seg': np.zeros((50, 64), np.uint8),
                'image_id': 'b'}]
    batch = train_batchify(samples)
    assert sorted(batch) == ['data', 'image_id', 'sem_seg']
    assert batch['data'].shape == (2, 3, 64, 64) and batch['image_id'] == ['a', 'b']
    sem = batch['sem_seg'].asnumpy()
    assert (sem[0, :40, :60] == 3).all() and (sem[0, 40:] == 255).all() and (sem[1, 50:] == 255).all()
    assert (batch['data'].asnumpy()[0, :, 40:] == 0).all()


def test_batchify_refuses_mixed_sizes_with_rpn_targets():
    rpn = RPNTargets(FPNAnchors())
    with pytest.raises(ValueError, match='must all be'):
        train_batchify([_sample(64, 64, [[1, 1, 30, 30]], rpn), _sample(32, 64, [], rpn)])


def test_split_and_load_over_two_cpu_contexts():
    batch = train_batchify([_sample(32, 32, [[1, 1, 9, 9]], seed=i) for i in range(3)])
    parts = split_and_load(batch, [mx.cpu(0), mx.cpu(1)])
    assert [len(p['data']) for p in parts] == [2, 1]
    assert parts[1]['data'].context == mx.cpu(1) and parts[1]['image_id'] == ['im2']
    np.testing.assert_array_equal(parts[1]['gt_boxes'].asnumpy(), batch['gt_boxes'][2:].asnumpy())


def test_epoch_sampler_is_reproducible_resumable_and_shards():
    s = EpochSampler(10, shuffle=True, seed=5)
    s.set_epoch(2)
    full = list(s)
    assert sorted(i for i, _ in full) == list(range(10))
    s.set_epoch(2, start_batch=2, batch_size=3)
    assert list(s) == full[6:] and len(s) == 4
    s.set_epoch(3)
    assert [i for i, _ in s] != [i for i, _ in full]
    parts = [EpochSampler(10, seed=5, num_parts=2, part_index=p) for p in (0, 1)]
    for p in parts:
        p.set_epoch(2)
    assert sorted(list(parts[0]) + list(parts[1])) == sorted(full)


def test_epoch_sampler_parts_have_equal_length():
    """Distributed workers must run the same number of steps."""
    parts = [EpochSampler(10, seed=1, num_parts=3, part_index=p) for p in range(3)]
    keys = []
    for p in parts:
        p.set_epoch(0)
        assert len(p) == len(list(p)) == 3
        keys += list(p)
    assert len(set(k for k, _ in keys)) == 9
