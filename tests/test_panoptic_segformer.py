"""Panoptic SegFormer's network (``model_zoo.panoptic_segformer``): parameter counts from layer
shapes (the reference's 51,271,900 for R50 COCO), the inference outputs, hybridization at
several input sizes, the training step on batches of the real data pipeline (targets made in the
data transform), empty ground truth, and bad inputs."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from gluonpan.data import batchify
from gluonpan.data.categories import PanopticCategories
from gluonpan.data.cityscapes_panoptic import CityscapesPanoptic
from gluonpan.data.presets import PanopticTrainTransform
from gluonpan.errors import UsageError
from gluonpan.model_zoo import count_parameters, get_model, get_model_list
from gluonpan.model_zoo.panoptic_segformer import LR_MULT, loss_names
from gluonpan.model_zoo.panoptic_segformer.location_decoder import inverse_sigmoid
from gluonpan.model_zoo.panoptic_segformer.matching import ThingQueries
from gluonpan.model_zoo.panoptic_segformer.panoptic_segformer import select_things
from gluonpan.model_zoo.panoptic_segformer.targets import (TARGET_KEYS, BatchTargets,
                                                           SegFormerSampleTargets,
                                                           loss_normalizers)
from gluonpan.nn.set_matching import MatchResult, location_matcher
from gluonpan.utils.dist import create_trainer
from gluonpan.utils.engine import _train_step

NAMES = ('panoptic_segformer_resnet50_v1b_coco', 'panoptic_segformer_resnet101_v1b_coco',
         'panoptic_segformer_resnet50_v1b_citys', 'panoptic_segformer_resnet18_v1b_citys',
         'panoptic_segformer_resnet18_v1b_coco')
#: a tiny CPU network (8 heads of 4 channels)
TINY = dict(embed_dims=32, feedforward_channels=64, encoder_layers=1, decoder_layers=2,
            num_queries=20, thing_blocks=1, stuff_blocks=2, num_candidates=10, dropout=0.)
#: learnable values of gluoncv's ResNet v1b without the classifier (torchvision's counts)
RESNET = {'resnet18_v1b': 11689512 - 513000, 'resnet50_v1b': 25557032 - 2049000}
CROP = (64, 96)


def coco_like_categories():
    """80 things and 53 stuff with made-up ids (COCO's real ids come from its JSON)."""
    return PanopticCategories([dict(id=i + 1, name='c{}'.format(i), isthing=int(i < 80))
                               for i in range(133)])


def linear(i, o):
    return i * o + o


def expected_parameters(backbone, c3_to_c5, T, S, C=256, M=8, L=4, P=4, ff=1024, enc=6, dec=6,
                        Q=300, th=4, st=6):
    """The architecture's count from layer shapes (PANOPTIC_SEGFORMER_ARCH.md section 3), as the
    reference's components: backbone, neck, transformer, head (excl. transformer)."""
    ln = 2 * C
    neck = sum(c * C + 2 * C for c in c3_to_c5) + c3_to_c5[-1] * C * 9 + 2 * C  # no conv bias
    msda = linear(C, M * L * P * 2) + linear(C, M * L * P) + 2 * linear(C, C)
    ffn = linear(C, ff) + linear(ff, C)
    mha = 3 * C * C + 3 * C + linear(C, C)
    transformer = (enc * (msda + ffn + 2 * ln) + dec * (mha + msda + ffn + 3 * ln) + L * C +
                   linear(C, 2))  # + level_embeds, reference_points
    cls, reg = linear(C, T), 2 * linear(C, C) + linear(C, 4)
    fusion = 3 * linear(M, M) + linear(3 * M, 1)
    block = 4 * linear(C, C) + fusion + 2 * ln + linear(C, 4 * C) + linear(4 * C, C)
    self_attn = linear(C, 3 * C) + linear(C, C) + ln
    tail = 2 * linear(C, C) + fusion
    head = (Q * 2 * C + S * 2 * C + dec * (cls + reg) + th * (reg + cls) + st * linear(C, 1) +
            th * block + tail + st * (block + self_attn) + tail)
    return RESNET[backbone], neck, transformer, head


def test_zoo_names_are_registered():
    assert set(NAMES) <= set(get_model_list())


def test_r50_coco_parameter_count_is_the_references():
    net = get_model('panoptic_segformer_resnet50_v1b_coco', categories=coco_like_categories())
    backbone, neck, transformer, head = expected_parameters('resnet50_v1b', (512, 1024, 2048),
                                                            80, 53)
    assert (backbone, neck, transformer, head) == (23508032, 5638144, 10665986, 11459738)
    assert count_parameters(net) == backbone + neck + transformer + head == 51271900
    # our blocks regroup the reference's components: the encoder holds the level embeddings, the
    # location decoder its queries, reference points and branches, the heads their queries
    parts = {name: count_parameters(getattr(net, name)) for name in (
        'backbone', 'neck', 'encoder', 'location_decoder', 'thing_head', 'stuff_head',
        'thing_branches')}
    assert parts == dict(backbone=23508032, neck=5638144, encoder=4541184 + 1024,
                         location_decoder=6123264 + 514 + 153600 + 123360 + 795672,
                         thing_head=3291829, stuff_head=6453911 + 27136 + 1542,
                         thing_branches=530448 + 82240)
    assert net.inference_options['test_size'] == (800, 1333)
    del net
    r101 = get_model('panoptic_segformer_resnet101_v1b_coco', categories=coco_like_categories())
    assert count_parameters(r101) == 44549160 - 2049000 + neck + transformer + head == 70264028


def test_cpu_model_parameter_count_and_defaults():
    net = get_model('panoptic_segformer_resnet18_v1b_citys')
    assert count_parameters(net) == sum(expected_parameters(
        'resnet18_v1b', (128, 256, 512), 8, 11, C=128, ff=512, enc=3, dec=3, Q=100, th=2, st=2))
    assert net.location_decoder.num_queries == 100 and net.num_candidates == 100
    assert net.inference_options['test_size'] is None


def test_lr_mult_and_frozen_branches():
    net = get_model('panoptic_segformer_resnet18_v1b_citys', **TINY)
    slow = {k for k, v in net.collect_params().items() if v.lr_mult == LR_MULT}
    assert slow == set(net.backbone.collect_params()) | {
        k for k in net.collect_params() if 'sampling_offsets' in k or 'reference_points' in k}
    assert any('sampling_offsets' in k for k in slow) and any('reference_points' in k
                                                             for k in slow)
    frozen = {k for k, v in net.collect_params().items() if v.grad_req == 'null' and
              not k.endswith(('running_mean', 'running_var'))}
    assert frozen == set(net.thing_branches.collect_params())


@pytest.fixture(scope='module')
def net():
    mx.random.seed(0)
    return get_model('panoptic_segformer_resnet18_v1b_citys', **TINY)


def test_inference_outputs_and_hybridization_across_sizes(net):
    """Imperative == hybridized, then other sizes (not multiples of 32: 70 x 100 gives a 9 x 13
    stride-8 map over a 5 x 7 stride-16 one)."""
    net.hybridize(active=False)
    x = mx.nd.random.normal(shape=(1, 3, 64, 96))
    want = net.predict(x)
    assert [o.shape for o in want] == [(1, 10), (1, 10), (1, 10, 8, 12), (1, 11), (1, 11, 8, 12)]
    net.hybridize()
    try:
        for a, b in zip(net.predict(x), want):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-5)
        for shape, hw in (((1, 3, 70, 100), (9, 13)), ((2, 3, 40, 33), (5, 5))):
            got = net.predict(mx.nd.random.normal(shape=shape))
            assert got[2].shape == (shape[0], 10) + hw and got[4].shape == (shape[0], 11) + hw
            assert (got[2].asnumpy() >= 0).all() and np.isfinite(got[4].asnumpy()).all()
    finally:
        net.hybridize(active=False)


def test_thing_selection_is_the_top_pairs():
    logits = np.random.RandomState(0).normal(size=(2, 5, 3)).astype(np.float32)
    scores, labels, index = select_things(mx.nd, mx.nd.array(logits), 4, 3)
    probs = 1 / (1 + np.exp(-logits.reshape(2, -1)))
    top = np.argsort(-probs, axis=1)[:, :4]
    np.testing.assert_allclose(scores.asnumpy(), np.take_along_axis(probs, top, 1), rtol=1e-6)
    np.testing.assert_array_equal(labels.asnumpy(), top % 3)
    np.testing.assert_array_equal(index.asnumpy()[1], top // 3)
    np.testing.assert_array_equal(index.asnumpy()[0], [[0] * 4, [1] * 4])


def test_inverse_sigmoid_clamps():
    x = mx.nd.array([-0.5, 0., 1e-7, 0.5, 0.9, 1., 2.])
    got = inverse_sigmoid(mx.nd, x).asnumpy()
    eps = 1e-5
    np.testing.assert_allclose(got, np.log(np.maximum([0, 0, 1e-7, .5, .9, 1, 1], eps) /
                                            np.maximum([1, 1, 1 - 1e-7, .5, .1, 0, 0], eps)),
                               rtol=1e-5)


def test_location_decoder_starts_at_its_reference_points(net):
    """Layer 0 adds its 2-d reference to (cx, cy) and starts boxes at w = h = sigmoid(-2); with
    zero-initialised last box layers every later layer returns its (detached) reference."""
    memory, masks = net.encoder(net.neck(*net.backbone(mx.nd.random.normal(
        shape=(1, 3, 64, 96)))[1:]))
    _, classes, boxes = net.location_decoder(memory, masks)
    pos = net.location_decoder.query_embedding.data()[:, :32]  # (Q, C): [position | content]
    ref = mx.nd.sigmoid(net.location_decoder.reference_points(pos)).asnumpy()  # (Q, 2)
    first = boxes[0][0].asnumpy()
    np.testing.assert_allclose(first[:, :2], ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first[:, 2:], 1 / (1 + np.exp(2.)), rtol=1e-5)
    np.testing.assert_allclose(boxes[1].asnumpy(), boxes[0].asnumpy(), rtol=1e-4, atol=1e-6)
    assert classes[0].shape == (1, 20, 8)
    np.testing.assert_allclose(net.location_decoder.cls_branches[0].bias.data().asnumpy(),
                               np.log(0.01 / 0.99), rtol=1e-5)


def test_predict_panoptic_gives_dataset_ids(net):
    pan_ids, segments = net.predict_panoptic(mx.nd.random.normal(shape=(1, 3, 50, 70)),
                                             score_threshold=0., overlap_threshold=1.)
    assert pan_ids.shape == (50, 70) and pan_ids.dtype == np.int32
    valid = set(net.categories.thing_ids) | set(net.categories.stuff_ids)
    for seg in segments:
        assert seg['category_id'] in valid and seg['area'] == int((pan_ids == seg['id']).sum())
        assert seg['isthing'] == int(seg['category_id'] in net.categories.thing_ids)
    assert net.fusion_defaults == {'score_thresh': 0.25, 'overlap_thresh': 0.4, 'stuff_area': 0}


# ---------------------------------------------------------------------------- training
@pytest.fixture
def train_batch(synthetic_citys, net):
    """A batch of two 64x96 crops from the real pipeline: the transform runs the net's targets;
    ``train_batchify`` pads the per-thing keys (``batchify.SLOT_KEYS``)."""
    cats = net.categories
    transform = PanopticTrainTransform(cats, crop_size=CROP, scale_range=(0.5, 0.7),
                                       targets=net.train_targets(cats))
    ds = CityscapesPanoptic(synthetic_citys, 'train', transform=transform)
    batch = batchify.train_batchify([ds[(0, 1)], ds[(1, 2)]])
    assert set(TARGET_KEYS) <= set(batch)
    assert (batch['thing_classes'].asnumpy() >= 0).sum() > 0
    return batchify.split_and_load(batch, [mx.cpu()])[0]


def test_engine_step_over_two_contexts_equals_one(synthetic_citys):
    """The engine's data-parallel step (``batch_totals`` before the split: the losses are
    normalised by the whole batch's matched things) gives one context's update on 2 CPU
    contexts, with finite named losses."""
    results = []
    for ctx in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        mx.random.seed(0)
        model = get_model('panoptic_segformer_resnet18_v1b_citys', ctx=ctx, **TINY)
        cats = model.categories
        transform = PanopticTrainTransform(cats, crop_size=CROP, scale_range=(0.5, 0.7),
                                           targets=model.train_targets(cats))
        ds = CityscapesPanoptic(synthetic_citys, 'train', transform=transform)
        batch = batchify.train_batchify([ds[(0, 1)], ds[(1, 2)]])
        trainer = create_trainer(model.collect_params(), 'device', 1e-3, 1e-4,
                                 optimizer='adamw', clip_global_norm=0.1)
        losses, size = _train_step(model, trainer, batch, ctx, 1, 0, 0)
        assert size == 2 and tuple(losses) == model.LOSS_NAMES
        assert all(np.isfinite(v) for v in losses.values())
        results.append((losses, {k: v.data(ctx[0]).asnumpy()
                                 for k, v in model.collect_params().items()}))
    (one_loss, one), (two_loss, two) = results
    np.testing.assert_allclose(list(two_loss.values()), list(one_loss.values()), rtol=1e-4,
                               atol=1e-6)
    for k, v in one.items():
        np.testing.assert_allclose(two[k], v, rtol=1e-3, atol=1e-5, err_msg=k)


def run_step(net, batch, **kwargs):
    with autograd.record():
        losses = net.train_losses(batch, **kwargs)
        sum(losses.values()).backward()
    return {k: float(v.asscalar()) for k, v in losses.items()}


def grad_norm(param):
    return float(param.grad().norm().asscalar())


def test_training_step_names_losses_and_reaches_backbone_and_queries(net, train_batch):
    losses = run_step(net, train_batch)
    assert tuple(losses) == net.LOSS_NAMES == loss_names(2, 1, 2)
    assert all(np.isfinite(v) and v >= 0 for v in losses.values())
    assert losses['loss_mask_things'] > 0 and losses['loss_cls_stuff_d1'] > 0
    assert grad_norm(net.backbone.layer2[0].conv1.weight) > 0
    assert grad_norm(net.location_decoder.query_embedding) > 0
    assert grad_norm(net.stuff_head.stuff_query) > 0
    assert grad_norm(net.thing_head.decoder.tail.q.weight) > 0  # the separate thing call


def test_training_hybridized_equals_imperative_and_weights_apply(net, train_batch):
    want = run_step(net, train_batch)
    grad = net.location_decoder.query_embedding.grad().asnumpy()
    net.hybridize()
    try:
        got = run_step(net, train_batch)
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-4)
        np.testing.assert_allclose(net.location_decoder.query_embedding.grad().asnumpy(), grad,
                                   rtol=1e-3, atol=1e-6)
    finally:
        net.hybridize(active=False)
    weighted = dict(net.loss_weights)
    net.loss_weights['loss_iou'] = 0.5
    try:
        got = run_step(net, train_batch)
    finally:
        net.loss_weights.update(weighted)
    assert got['loss_iou'] == pytest.approx(want['loss_iou'] / 2 * 0.5, rel=1e-5)
    assert got['loss_bbox_d0'] == pytest.approx(want['loss_bbox_d0'], rel=1e-5)


def test_last_layer_classification_loss_by_hand(net, train_batch):
    """``loss_cls`` = weight 2 x things ratio x focal loss over all queries and classes / matched
    things, the targets from the Hungarian matching of the last layer (numpy focal loss)."""
    losses = run_step(net, train_batch)
    with autograd.train_mode():
        classes, boxes = net(train_batch['data'])[:2]
    targets = BatchTargets(train_batch, 11)
    results = location_matcher().match_batch(
        classes[-1].asnumpy(), boxes[-1].asnumpy(), targets.classes, targets.boxes,
        targets.valid, targets.image_sizes)
    logits = classes[-1].asnumpy().astype(np.float64)  # (B, Q, T)
    onehot = np.zeros_like(logits)
    for b, res in enumerate(results):
        onehot[b, res.pred_index, targets.classes[b, res.gt_index]] = 1
    prob = 1 / (1 + np.exp(-logits))
    pt = np.where(onehot > 0, prob, 1 - prob)
    alpha = np.where(onehot > 0, 0.25, 0.75)
    focal = (-alpha * (1 - pt) ** 2 * np.log(pt)).sum()
    counts = targets.counts(20)
    ratio = counts['things'] / (counts['things'] + counts['stuff'])
    assert losses['loss_cls'] == pytest.approx(2 * ratio * focal / counts['things'], rel=1e-4)


def test_normalizers_follow_the_reference():
    norm = loss_normalizers({'things': 3, 'stuff': 1, 'images': 2})
    assert (norm.things, norm.stuff, norm.things_ratio, norm.stuff_ratio) == (3, 1, .75, .25)
    # two contexts of one image each, 6 things and 2 stuff in the step: N / 2 per context
    norm = loss_normalizers({'things': 0, 'stuff': 2, 'images': 1},
                            {'things': 6, 'stuff': 2, 'images': 2})
    assert (norm.things, norm.stuff, norm.has_things) == (3, 1, False)


def test_empty_ground_truth(net, train_batch):
    batch = dict(train_batch)
    batch['thing_classes'] = -mx.nd.ones_like(batch['thing_classes'])
    batch['stuff_present'] = mx.nd.zeros_like(batch['stuff_present'])
    batch['stuff_masks'] = mx.nd.zeros_like(batch['stuff_masks'])
    losses = run_step(net, batch)
    assert all(np.isfinite(v) for v in losses.values())
    assert losses['loss_bbox'] == losses['loss_mask_things'] == losses['loss_mask_stuff'] == 0
    assert losses['loss_cls'] > 0  # every query is background
    assert losses['loss_cls_stuff_d0'] == 0  # the reference's quirk: no thing, no stuff class
    assert grad_norm(net.backbone.layer2[0].conv1.weight) > 0


def test_thing_queries_are_the_matched_ones_ascending():
    results = [MatchResult(np.array([7, 2]), np.array([0, 1]), 20, 3),
               MatchResult(np.zeros(0, np.int64), np.zeros(0, np.int64), 20, 3)]
    queries = ThingQueries.from_matches(results)
    np.testing.assert_array_equal(queries.index, [[[0, 0], [1, 1]], [[2, 7], [0, 0]]])
    np.testing.assert_array_equal(queries.counts, [2, 0])
    empty = ThingQueries.from_matches(results[1:])
    assert empty.index.shape == (2, 1, 1)


def test_sample_targets():
    sem = np.full((16, 24), 255, np.uint8)
    sem[:8] = 2
    sem[8:, :12] = 11  # things
    masks = np.zeros((1, 16, 24), np.uint8)
    masks[0, 8:, :12] = 1
    out = SegFormerSampleTargets(11)(dict(sem_seg=sem, gt_masks=masks, gt_classes=np.array([3]),
                                          gt_boxes=np.array([[0, 8, 11, 15]])))
    assert set(out) == set(TARGET_KEYS)
    np.testing.assert_array_equal(out['thing_boxes'], [[0, 8, 12, 16]])  # exclusive x2, y2
    assert out['thing_masks'].shape == (1, 4, 6) and out['thing_cost_masks'].shape == (1, 2, 3)
    np.testing.assert_array_equal(out['stuff_present'], np.eye(11)[2])
    np.testing.assert_allclose(out['stuff_masks'][2], np.repeat([[1.], [1.], [0.], [0.]], 6, 1))
    np.testing.assert_allclose(out['thing_cost_masks'][0], [[0, 0, 0], [1, 0.5, 0]])
    empty = SegFormerSampleTargets(11)(dict(sem_seg=sem, gt_masks=np.zeros((0, 16, 24)),
                                            gt_classes=np.zeros(0), gt_boxes=np.zeros((0, 4))))
    assert empty['thing_masks'].shape == (0, 4, 6) and empty['thing_classes'].dtype == np.int32


# ---------------------------------------------------------------------------- bad inputs
def test_bad_inputs(net, train_batch):
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        net.predict(mx.nd.zeros((1, 1, 32, 32)))
    with pytest.raises(KeyError, match='stuff_present'):
        net.train_losses({k: v for k, v in train_batch.items() if k != 'stuff_present'})
    bad = dict(train_batch, thing_masks=train_batch['thing_cost_masks'])
    with pytest.raises(ValueError, match='thing_masks'):
        net.train_losses(bad)
    with pytest.raises(UsageError, match='unknown option'):
        get_model('panoptic_segformer_resnet18_v1b_citys', num_layers=3)
    with pytest.raises(ValueError, match='loss_weights'):
        get_model('panoptic_segformer_resnet18_v1b_citys', loss_weights={'loss_mask': 1}, **TINY)
    with pytest.raises(ValueError, match='num_candidates'):
        get_model('panoptic_segformer_resnet18_v1b_citys', **dict(TINY, num_candidates=500))
    with pytest.raises(ValueError, match='JSON'):
        get_model('panoptic_segformer_resnet50_v1b_coco')
