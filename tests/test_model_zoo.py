"""Model zoo and PanopticFPN end to end on tiny CPU inputs (resnet18, small RPN/RoI counts)."""
import functools
import hashlib

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from gluoncv.model_zoo.rcnn.rpn.rpn_target import RPNTargetGenerator
from gluoncv.model_zoo.resnetv1b import resnet18_v1b, resnet50_v1b

from gluonpan.data.categories import PanopticCategories, cityscapes_categories
from gluonpan.model_zoo import count_parameters, get_model, get_model_list, model_store
from gluonpan.model_zoo.panoptic_fpn import LOSS_NAMES, pad_input, predict_panoptic
from gluonpan.errors import DataError
from gluonpan.model_zoo import model_options
from gluonpan.model_zoo.panoptic_fpn.conventions import CONVENTION_NAMES, DEFAULT_PRESET, PRESETS
from gluonpan.nn.anchors import FPNAnchors

H, W = 96, 160
TINY = dict(rpn_train_pre_nms=600, rpn_train_post_nms=200, rpn_test_pre_nms=300,
            rpn_test_post_nms=100, rcnn_num_sample=64, max_num_gt=8, test_max_dets=20)
NAMES = ['panoptic_fpn_resnet18_v1b_citys', 'panoptic_fpn_resnet50_v1b_citys',
         'panoptic_fpn_resnet101_v1b_citys', 'panoptic_fpn_resnet18_v1b_coco',
         'panoptic_fpn_resnet50_v1b_coco', 'panoptic_fpn_resnet101_v1b_coco',
         'panoptic_fpn_resnet50_msra_coco', 'panoptic_fpn_resnet101_msra_coco']


def fake_coco_categories():
    """80 things and 53 stuff with made-up ids: COCO's real ids come from its JSON."""
    return PanopticCategories([dict(id=i + 1, name='c{}'.format(i), isthing=int(i < 80))
                               for i in range(133)])


def build(name):
    kwargs = {'categories': fake_coco_categories()} if name.endswith('coco') else {}
    return get_model(name, **kwargs)


@functools.lru_cache(maxsize=None)
def r50_citys():
    return build('panoptic_fpn_resnet50_v1b_citys')


def tiny_net(**kwargs):
    return get_model('panoptic_fpn_resnet18_v1b_citys', **dict(TINY, **kwargs))


def make_image(net, boxes, classes, seed):
    """One training sample: rectangle masks, random semantic labels, RPN targets."""
    rng = np.random.RandomState(seed)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)  # (M, 4)
    masks = np.zeros((len(boxes), H, W), np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
        if x2 >= 0:
            mask[y1:y2 + 1, x1:x2 + 1] = 1
    gen = RPNTargetGenerator(num_sample=256, pos_iou_thresh=0.7, neg_iou_thresh=0.3,
                             pos_ratio=0.5, stds=(1., 1., 1., 1.))
    with np.errstate(divide='ignore', invalid='ignore'):  # log of padding boxes' sizes
        rpn = gen(mx.nd.array(boxes), mx.nd.array(net.anchors(H, W)), W, H)
    sem = rng.randint(0, net.sem_seg_head.num_classes, (H, W)).astype(np.float32)
    sem[:8] = 255
    classes = np.asarray(classes, np.float32).reshape(-1, 1)  # (M, 1)
    return [rng.normal(size=(3, H, W)), boxes, classes, masks, sem] + list(rpn)


def make_batch(net, images):
    """Stack samples into the per-context batch dict of the data contract."""
    keys = ('data', 'gt_boxes', 'gt_classes', 'gt_masks', 'sem_seg', 'rpn_cls_targets',
            'rpn_box_targets', 'rpn_box_masks')
    batch = {k: mx.nd.array(np.stack([im[i] for im in images])) for i, k in enumerate(keys)}
    batch['gt_masks'] = batch['gt_masks'].astype('uint8')
    return batch


ONE = ([[10, 12, 60, 70], [80, 20, 150, 90]], [0, 3])
EMPTY = ([[-1, -1, -1, -1]], [-1])


@pytest.fixture(scope='module')
def net():
    return tiny_net()


def test_model_list_and_unknown_name():
    assert set(NAMES) <= set(get_model_list())
    with pytest.raises(ValueError) as err:
        get_model('panoptic_fpn_resnet50_citys')
    assert all(name in str(err.value) for name in NAMES)


@pytest.mark.parametrize('name', NAMES)
def test_every_registered_model_builds(name):
    net = r50_citys() if name == 'panoptic_fpn_resnet50_v1b_citys' else build(name)
    things, stuff = (80, 53) if name.endswith('coco') else (8, 11)
    assert (net.categories.num_things, net.categories.num_stuff) == (things, stuff)
    assert net.roi_heads.class_predictor.weight.shape[0] == things + 1
    assert net.sem_seg_head.predictor.weight.shape[0] == stuff + 1
    assert count_parameters(net) > 3e7
    if 'resnet18' in name:  # a forward only for the small one
        assert len(net.predict(mx.nd.zeros((1, 3, 64, 96)))) == 5


def test_coco_needs_its_categories():
    with pytest.raises(ValueError, match='JSON'):
        get_model('panoptic_fpn_resnet50_v1b_coco')
    # any COCO-format category set (a user's data, the synthetic COCO split), also as a JSON list
    cats = cityscapes_categories().to_json()
    net = get_model('panoptic_fpn_resnet18_v1b_coco', categories=cats, **TINY)
    assert net.categories.thing_ids == cityscapes_categories().thing_ids
    with pytest.raises(ValueError, match='thing and stuff'):
        get_model('panoptic_fpn_resnet18_v1b_coco', categories={'categories': [
            dict(id=1, name='a', isthing=1)]}, **TINY)


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def test_parameter_count_decomposition():
    """Total = backbone + FPN + RPN + box head + mask head + semantic head, from layer shapes."""
    net = r50_citys()
    T, K = 8, 12
    resnet = resnet50_v1b()
    resnet.initialize()
    resnet(mx.nd.zeros((1, 3, 32, 32)))
    parts = {
        'backbone': count_parameters(resnet) - conv(2048, 1000, 1),  # without the classifier
        'fpn': sum(conv(c, 256, 1) for c in (256, 512, 1024, 2048)) + 4 * conv(256, 256, 3),
        'rpn': conv(256, 256, 3) + conv(256, 3, 1) + conv(256, 12, 1),
        'roi_heads': conv(256 * 49, 1024, 1) + conv(1024, 1024, 1) + conv(1024, T + 1, 1) +
        conv(1024, 4 * T, 1) + 4 * conv(256, 256, 3) + conv(256, 256, 2) + conv(256, T, 1),
        'sem_seg_head': 4 * conv(256, 128, 3, False) + 3 * conv(128, 128, 3, False) +
        7 * 2 * 128 + conv(128, K, 1)}
    for part, expected in parts.items():
        assert count_parameters(getattr(net, part)) == expected, part
    assert count_parameters(net) == sum(parts.values())


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:Cannot decide type')  # gluoncv's FPN SymbolBlock
def test_parameter_count_against_gluoncv_mask_rcnn():
    """Ours = gluoncv Mask R-CNN R50-FPN - its P6 conv - its wider RPN - 72 classes + semantic."""
    from gluoncv.model_zoo import get_model as gcv_get_model
    gcv = gcv_get_model('mask_rcnn_fpn_resnet50_v1b_coco', pretrained_base=False)
    gcv.initialize()
    # materialise the deferred shapes part by part (a full forward runs 1000 RoIs x 80 masks)
    feats = gcv.features(mx.nd.zeros((1, 3, 64, 64)))
    gcv.rpn(mx.nd.zeros((1, 3, 64, 64)), *feats)
    box_feat = gcv.box_features(mx.nd.zeros((1, 256, 14, 14)))
    gcv.class_predictor(box_feat), gcv.box_predictor(box_feat)
    gcv.mask(mx.nd.zeros((1, 256, 14, 14)))
    classes = conv(1024, 81, 1) + conv(1024, 320, 1) + conv(256, 80, 1) - \
        (conv(1024, 9, 1) + conv(1024, 32, 1) + conv(256, 8, 1))
    rpn = conv(256, 1024, 3) + conv(1024, 3, 1) + conv(1024, 12, 1) - \
        (conv(256, 256, 3) + conv(256, 3, 1) + conv(256, 12, 1))
    net = r50_citys()
    assert count_parameters(net) == count_parameters(gcv) - conv(256, 256, 3) - rpn - classes + \
        count_parameters(net.sem_seg_head)


@functools.lru_cache(maxsize=None)
def torchvision_net():
    """The tiny net with torchvision's conventions, anchors given as the train script does."""
    return tiny_net(preset='torchvision', anchors=FPNAnchors(sizes=(24, 48, 96, 192, 384)))


@pytest.mark.parametrize('size', [(96, 160), (130, 257)])
@pytest.mark.parametrize('preset', [None, 'torchvision'])
def test_rpn_anchors_equal_net_anchors(net, size, preset):
    net = torchvision_net() if preset else net
    data = pad_input(mx.nd.zeros((1, 3) + size))
    feats = net.fpn(*net.backbone(data))
    used = net.rpn.level_anchors(*feats).asnumpy()
    np.testing.assert_array_equal(used, net.anchors(*data.shape[2:]))


def test_conventions_default_preset_and_overrides(net, tmp_path):
    assert DEFAULT_PRESET == 'detectron2'
    expected = dict(PRESETS['detectron2'], preset='detectron2')
    expected.update((k, v) for k, v in TINY.items() if k in expected)  # TINY's RPN counts
    assert net.conventions == expected
    assert (net.rpn.train_pre_nms, net.rpn.test_pre_nms, net.rpn.topk_per_level) == (600, 300, True)
    assert net.anchors.style == 'detectron2' and net.roi_heads._level_style == 'detectron2'
    assert FPNAnchors().style == PRESETS[DEFAULT_PRESET]['anchor_style']  # data side default
    tv = torchvision_net()
    # explicit options win over the preset; the given anchors are re-made in its style
    assert tv.conventions['rpn_test_pre_nms'] == 300 and tv.conventions['anchor_style'] == \
        'torchvision' and tv.conventions['roi_level_style'] == 'torchvision'
    assert tv.rpn.topk_per_level and tv.rpn.min_size == 1e-3 and tv.roi_heads._min_box_size == 1e-2
    assert tv.anchors.style == 'torchvision' and tv.anchors.sizes == (24, 48, 96, 192, 384)
    # RPN targets in the data workers come from net.anchors: torchvision's boxes
    np.testing.assert_array_equal(tv.anchors(32, 32)[:3], [[-17, -8, 17, 8], [-12, -12, 12, 12],
                                                           [-8, -17, 8, 17]])
    # explicit anchors keep their style without a preset or anchor_style
    own = tiny_net(anchors=FPNAnchors(style='detectron1'))
    assert own.anchors.style == own.conventions['anchor_style'] == 'detectron1'
    # weights carry their anchors: loading them into a net of other anchors is an error
    path = str(tmp_path / 'detectron2.params')
    net.save_parameters(path)
    with pytest.raises(DataError, match="made with other anchors.*theirs: anchor_style='detectron2'"):
        get_model('panoptic_fpn_resnet18_v1b_citys', pretrained=path,
                  **dict(TINY, preset='torchvision'))
    assert get_model('panoptic_fpn_resnet18_v1b_citys', pretrained=path, **TINY).check_anchors()
    # weights of the former default (gluoncv's conventions) without their args.json: the error
    # says how to run them
    legacy = str(tmp_path / 'gluoncv.params')
    tiny_net(preset='gluoncv').save_parameters(legacy)
    with pytest.raises(DataError, match='former default.*"preset": "gluoncv"'):
        get_model('panoptic_fpn_resnet18_v1b_citys', pretrained=legacy, **TINY)
    assert get_model('panoptic_fpn_resnet18_v1b_citys', pretrained=legacy,
                     **dict(TINY, preset='gluoncv')).check_anchors()
    # get_model and --model-kwargs accept every convention (and check their names)
    assert set(CONVENTION_NAMES) | {'preset'} <= set(model_options('panoptic_fpn_resnet18_v1b_citys'))
    with pytest.raises(ValueError, match='unknown preset'):
        tiny_net(preset='detectron3')
    with pytest.raises(ValueError, match='anchor_style'):
        tiny_net(anchor_style='torchvison')


def test_detectron2_preset_trains_with_l1_box_losses():
    net = tiny_net(preset='detectron2')
    assert net.conventions['rpn_box_loss_beta'] == net.roi_heads._box_loss_beta == 0
    assert net.rpn.min_size_strict and net.conventions['mask_paste'] == 'detectron2'
    values = check_losses(net.train_losses(make_batch(net, [make_image(net, *ONE, seed=0)])))
    assert values['loss_rcnn_box'] > 0 and values['loss_mask'] > 0


def test_predict_clips_to_the_image_inside_the_padding():
    mx.random.seed(0)  # random weights and input: the same whatever ran before in the process
    net = tiny_net(preset='detectron2')
    x = mx.nd.random.uniform(-2, 2, shape=(1, 3, 96, 160))
    ids, _, boxes, _, _ = net.predict(x, (70, 130))
    found = boxes[0].asnumpy()[ids[0, :, 0].asnumpy() >= 0]
    assert len(found) and (found[:, 2] <= 130).all() and (found[:, 3] <= 70).all()
    ids, _, boxes, _, _ = net.predict(x)
    found = boxes[0].asnumpy()[ids[0, :, 0].asnumpy() >= 0]
    assert (found[:, 2] > 130).any() or (found[:, 3] > 70).any()
    with pytest.raises(ValueError, match='window'):
        net.predict(x, (100, 150))


def check_losses(losses):
    assert list(losses) == list(LOSS_NAMES)
    values = {k: float(v.asscalar()) for k, v in losses.items()}
    assert all(np.isfinite(v) and v >= 0 for v in values.values()), values
    return values


def test_training_losses_finite_and_gradients_reach_every_head(net):
    batch = make_batch(net, [make_image(net, *ONE, seed=0)])
    with autograd.record():
        losses = net.train_losses(batch)
        mx.nd.add_n(*losses.values()).backward()
    values = check_losses(losses)
    assert values['loss_rcnn_box'] > 0 and values['loss_mask'] > 0  # the gt boxes are sampled
    for layer in (net.fpn.output[0], net.rpn.head.score, net.roi_heads.class_predictor,
                  net.roi_heads.box_predictor, net.roi_heads.mask_head.predictor,
                  net.sem_seg_head.predictor, net.backbone.layer4):
        grads = [p.grad().abs().sum().asscalar() for p in layer.collect_params().values()
                 if p.grad_req != 'null']
        assert grads and all(np.isfinite(grads)) and max(grads) > 0, layer.name


def test_image_without_instances(net):
    batch = make_batch(net, [make_image(net, *EMPTY, seed=1)])
    values = check_losses(net.train_losses(batch))
    assert values['loss_rcnn_box'] == 0 and values['loss_mask'] == 0
    assert values['loss_rcnn_cls'] > 0 and values['loss_sem_seg'] > 0


def test_two_images_per_context_one_empty():
    net = tiny_net(per_device_batch_size=2)
    one = make_image(net, *ONE, seed=2)
    empty = make_image(net, *EMPTY, seed=3)
    empty[1] = np.concatenate([empty[1], empty[1]])  # pad instances to M = 2
    empty[2] = np.concatenate([empty[2], empty[2]])
    empty[3] = np.concatenate([empty[3], empty[3]])
    check_losses(net.train_losses(make_batch(net, [one, empty])))
    with pytest.raises(ValueError, match='per_device_batch_size=2'):
        net.train_losses(make_batch(net, [one]))


@pytest.mark.parametrize('preset', [None, 'torchvision'])
def test_hybridized_equals_imperative_in_both_modes(preset):
    net = tiny_net(preset=preset)
    batch = make_batch(net, [make_image(net, *ONE, seed=4)])
    data = mx.nd.random.normal(shape=(1, 3, H, W))
    results = []
    for hybridize in (False, True):
        if hybridize:
            net.hybridize()
        mx.random.seed(7)
        losses = [v.asnumpy() for v in net.train_losses(batch).values()]
        outputs = [o.asnumpy() for o in net.predict(data)]
        mx.random.seed(7)  # back to training without calling hybridize() again
        again = [v.asnumpy() for v in net.train_losses(batch).values()]
        results.append((losses, outputs, again))
    for a, b in zip(*results):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    for x, y in zip(results[1][0], results[1][2]):
        np.testing.assert_allclose(x, y, rtol=1e-5)


def test_loss_weights():
    net = tiny_net(loss_weights={'loss_sem_seg': 2.0})
    net.hybridize()  # weights are applied outside the graph: changing one needs no rebuild
    batch = make_batch(net, [make_image(net, *ONE, seed=5)])
    weighted = net.train_losses(batch)['loss_sem_seg'].asscalar()
    net.loss_weights['loss_sem_seg'] = 0.5
    assert weighted == pytest.approx(4 * net.train_losses(batch)['loss_sem_seg'].asscalar(),
                                     rel=1e-5)
    with pytest.raises(ValueError, match='loss_semseg'):
        tiny_net(loss_weights={'loss_semseg': 1.0})


@pytest.mark.parametrize('size', [(130, 257), (96, 160)])
@pytest.mark.parametrize('preset', [None, 'torchvision'])
def test_predict_panoptic_any_size(net, size, preset):
    net = torchvision_net() if preset else net
    pan, segments = predict_panoptic(net, mx.nd.random.normal(shape=(1, 3) + size),
                                     score_threshold=0.05, stuff_area_threshold=0)
    assert pan.shape == size and pan.dtype == np.int32
    assert segments and sorted(s['id'] for s in segments) == sorted(set(np.unique(pan)) - {0})
    for s in segments:
        assert s['area'] == int((pan == s['id']).sum()) > 0
        net.categories.check_category(s['category_id'])
        assert s['id'] // 1000 == s['category_id'] if s['isthing'] else s['id'] == s['category_id']


def test_bad_inputs_give_clear_errors(net):
    batch = make_batch(net, [make_image(net, *ONE, seed=6)])
    with pytest.raises(KeyError, match='sem_seg'):
        net.train_losses({k: v for k, v in batch.items() if k != 'sem_seg'})
    wrong = dict(batch, rpn_cls_targets=batch['rpn_cls_targets'][:, :-3])
    with pytest.raises(ValueError, match='rpn_cls_targets'):
        net.train_losses(wrong)
    with pytest.raises(ValueError, match='gt_masks'):
        net.train_losses(dict(batch, gt_masks=batch['gt_masks'][:, :, :-1]))
    with pytest.raises(ValueError, match='one image'):
        net.predict(mx.nd.zeros((2, 3, H, W)))
    with pytest.raises(ValueError, match='proposals'):
        net.predict(mx.nd.zeros((1, 3, 16, 16)))


def sha1_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def test_pretrained_weights_from_store_and_path(net, tmp_path, monkeypatch):
    name = 'panoptic_fpn_resnet18_v1b_citys'
    with pytest.raises(ValueError, match='no pretrained weights'):
        get_model(name, pretrained=True, root=str(tmp_path))
    saved = tmp_path / 'mine.params'
    net.save_parameters(str(saved))
    sha1 = sha1_of(saved)
    monkeypatch.setitem(model_store.MODEL_SHA1, name, sha1)
    expected = tmp_path / '{}-{}.params'.format(name, sha1[:8])
    with pytest.raises(FileNotFoundError) as err:
        get_model(name, pretrained=True, root=str(tmp_path), **TINY)
    assert str(expected) in str(err.value)
    expected.write_bytes(b'not the weights')
    with pytest.raises(ValueError, match='sha1'):
        get_model(name, pretrained=True, root=str(tmp_path), **TINY)
    expected.write_bytes(saved.read_bytes())
    monkeypatch.setenv('MXNET_HOME', str(tmp_path.parent))  # an explicit root wins
    for loaded in (get_model(name, pretrained=True, root=str(tmp_path), **TINY),
                   get_model(name, pretrained=str(saved), **TINY)):
        w = loaded.roi_heads.class_predictor.weight.data()
        np.testing.assert_array_equal(w.asnumpy(),
                                      net.roi_heads.class_predictor.weight.data().asnumpy())
    with pytest.raises(FileNotFoundError, match='no-such'):
        get_model(name, pretrained=str(tmp_path / 'no-such.params'))


def test_pretrained_base_from_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        get_model('panoptic_fpn_resnet18_v1b_citys', pretrained_base=True)
    assert str(tmp_path / 'models' / 'resnet18_v1b-2d9d980c.params') in str(err.value)
    # an ImageNet-style file (with its classifier) under a sha1 we register for the test
    resnet = resnet18_v1b()
    resnet.initialize()
    resnet(mx.nd.zeros((1, 3, 32, 32)))
    saved = tmp_path / 'resnet18.params'
    resnet.save_parameters(str(saved))
    sha1 = sha1_of(saved)
    monkeypatch.setitem(model_store.GLUONCV_SHA1, 'resnet18_v1b', sha1)
    (tmp_path / 'models').mkdir()
    saved.rename(tmp_path / 'models' / 'resnet18_v1b-{}.params'.format(sha1[:8]))
    net = get_model('panoptic_fpn_resnet18_v1b_citys', pretrained_base=True, **TINY)
    np.testing.assert_array_equal(net.backbone.layer3[1].conv2.weight.data().asnumpy(),
                                  resnet.layer3[1].conv2.weight.data().asnumpy())


def test_reset_class_reuses_rows_and_trains():
    net = tiny_net()
    old = net.categories
    keep = [c for c in old.categories if c['name'] in ('road', 'sky', 'person', 'car', 'bus')]
    new = PanopticCategories(keep)
    old_cls = net.roi_heads.class_predictor.weight.data().asnumpy()
    old_sem = net.sem_seg_head.predictor.weight.data().asnumpy()
    old_mask = net.roi_heads.mask_head.predictor.bias.data().asnumpy()
    net.reset_class(new, reuse_weights=True)
    assert net.categories is new
    cls = net.roi_heads.class_predictor.weight.data().asnumpy()
    assert cls.shape[0] == 4
    car_old, car_new = old.thing_id_to_contiguous[26], new.thing_id_to_contiguous[26]
    np.testing.assert_array_equal(cls[[0, car_new + 1]], old_cls[[0, car_old + 1]])
    sem = net.sem_seg_head.predictor.weight.data().asnumpy()
    sky_old, sky_new = old.stuff_ids.index(23), new.stuff_ids.index(23)
    np.testing.assert_array_equal(sem[[sky_new, -1]], old_sem[[sky_old, -1]])
    assert net.roi_heads.mask_head.predictor.bias.data().asnumpy()[car_new] == old_mask[car_old]
    check_losses(net.train_losses(make_batch(net, [make_image(net, [[5, 5, 50, 50]], [2], 8)])))


def test_a_damaged_backbone_file_is_an_error_naming_it(tmp_path):
    bad = tmp_path / 'backbone.params'
    bad.write_bytes(b'\0' * 4096)
    with pytest.raises(DataError, match='backbone.params into the resnet18_v1b backbone: not an '
                                        'MXNet parameter file'):
        get_model('panoptic_fpn_resnet18_v1b_citys', pretrained_base=str(bad), **TINY)
