"""ONNX export (gluonpan.export): onnxruntime runs each exported graph as MXNet runs the network.

Small ResNet-18 models with seeded random weights (batch-norm statistics and biases randomised
too, so that no layer is an identity); each raw output of onnxruntime equals MXNet's within 1e-4
of the output's largest magnitude at two input sizes (one dynamic file), and the panoptic /
semantic result of the real post-processing is the same.  The converters are also checked one
operator at a time on inputs that reach their corner cases (suppression across classes,
RoIs of no level, boxes at the border, large deformable offsets).
"""
import json

import mxnet as mx
import numpy as np
import onnxruntime as ort  # the test extra installs it (setup.py)
import pytest

import gluonpan
from gluonpan.errors import DataError, MissingFileError, UsageError
from gluonpan.export import OnnxPredictor, export_mxnet, export_onnx
from gluonpan.export._deps import MissingExtraError, require
from gluonpan.export.onnx_export import symbol_to_onnx
from gluonpan.model_zoo import get_model

from _models import seeded_model, synthetic_image


TOLERANCE = 1e-4
SEMANTIC = ('semantic_fpn_resnet18_v1b_citys', dict(fpn_channels=32, head_channels=16))
FCN = ('panoptic_fcn_resnet18_v1b_citys', dict(
    fpn_channels=32, head_channels=32, semantic_channels=32, encoder_channels=16,
    center_thresh=0.02, similarity_thresh=0.99))
FPN = ('panoptic_fpn_resnet18_v1b_citys', dict(
    rpn_test_pre_nms=300, rpn_test_post_nms=100, test_max_dets=20, test_score_thresh=0.,
    fpn_channels=32, sem_seg_channels=32, box_fc_channels=64, mask_channels=32))
SEGFORMER = ('panoptic_segformer_resnet18_v1b_citys', dict(
    embed_dims=32, feedforward_channels=64, encoder_layers=1, decoder_layers=2, num_queries=20,
    thing_blocks=1, stuff_blocks=1, num_candidates=10))
MODELS = {
    'semantic_fpn': SEMANTIC,
    'panoptic_fcn': FCN,
    'panoptic_fcn_deform': (FCN[0], dict(FCN[1], deform=True)),
    'panoptic_fpn': FPN,  # the detectron2 conventions: per-level top-k and NMS, aligned RoIAlign
    'panoptic_fpn_gluoncv': (FPN[0], dict(FPN[1], preset='gluoncv')),  # global NMS, legacy
    'panoptic_segformer': SEGFORMER,  # deformable attention by gathering corners (the default)
    'panoptic_segformer_bilinear': (SEGFORMER[0], dict(SEGFORMER[1], msda_method='bilinear')),
}
#: two input sizes per model, run by the same (dynamic) file
SIZES = {'semantic_fpn': [(64, 96), (72, 50)], 'panoptic_fcn': [(64, 96), (128, 64)],
         'panoptic_fcn_deform': [(64, 96), (96, 128)], 'panoptic_fpn': [(96, 128), (128, 96)],
         'panoptic_fpn_gluoncv': [(96, 128), (128, 96)],
         'panoptic_segformer': [(64, 96), (72, 50)],  # any size: no padding to 32
         'panoptic_segformer_bilinear': [(64, 96), (33, 17)]}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """``{key: (net, OnnxPredictor)}``, each exported once (lazily)."""
    folder = tmp_path_factory.mktemp('onnx')
    cache = {}

    def get(key):
        if key not in cache:
            name, kwargs = MODELS[key]
            net = seeded_model(name, **kwargs)
            path = export_onnx(net, str(folder / '{}.onnx'.format(key)), name)
            cache[key] = net, OnnxPredictor(path)
        return cache[key]
    return get


def relative_error(expected, got):
    """max |expected - got| over the largest magnitude of ``expected``."""
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    assert expected.shape == got.shape
    return np.abs(expected - got).max() / max(np.abs(expected).max(), 1e-12) if expected.size \
        else 0.


def assert_outputs_equal(expected, got, names):
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    got = got if isinstance(got, (list, tuple)) else [got]
    assert len(expected) == len(got) == len(names)
    for name, e, g in zip(names, expected, got):
        e, g = e.asnumpy(), g.asnumpy()
        if name == 'ids':  # detections: the same classes in the same order
            np.testing.assert_array_equal(e, g)
        error = relative_error(e, g)
        assert error <= TOLERANCE, '{}: relative difference {:.2g}'.format(name, error)


@pytest.mark.parametrize('key', sorted(MODELS))
def test_raw_outputs_equal_mxnet_at_two_sizes(exported, key):
    net, onnx_model = exported(key)
    rng = np.random.RandomState(1)
    for height, width in SIZES[key]:
        data = mx.nd.array(rng.normal(0, 1, (1, 3, height, width)))
        assert_outputs_equal(net.predict(data), onnx_model.predict(data),
                             onnx_model.record['outputs'])


def test_semantic_batch_is_dynamic(exported):
    net, onnx_model = exported('semantic_fpn')
    data = mx.nd.array(np.random.RandomState(2).normal(0, 1, (2, 3, 40, 56)))
    assert_outputs_equal(net.predict(data), onnx_model.predict(data), ['logits'])


@pytest.mark.parametrize('shape', [(2, 3, 40, 56), (1, 3, 1, 1)])
def test_segformer_batch_is_dynamic_and_sizes_any(exported, shape):
    """Panoptic SegFormer takes a batch and any size, down to 1x1 (every level 1x1)."""
    net, onnx_model = exported('panoptic_segformer')
    data = mx.nd.array(np.random.RandomState(2).normal(0, 1, shape))
    assert_outputs_equal(net.predict(data), onnx_model.predict(data),
                         onnx_model.record['outputs'])


@pytest.mark.parametrize('key', ['panoptic_fpn', 'panoptic_fpn_gluoncv'])
def test_panoptic_fpn_window_clips_as_mxnet(exported, key):
    """The ``window`` input: detections clipped to the image inside the padded input."""
    net, onnx_model = exported(key)
    data = mx.nd.array(np.random.RandomState(3).normal(0, 1, (1, 3, 96, 128)))
    assert_outputs_equal(net.predict(data, (70, 101)), onnx_model.predict(data, (70, 101)),
                         onnx_model.record['outputs'])


@pytest.mark.parametrize('key', ['panoptic_fcn', 'panoptic_fcn_deform', 'panoptic_fpn',
                                 'panoptic_fpn_gluoncv', 'panoptic_segformer',
                                 'panoptic_segformer_bilinear'])
def test_panoptic_result_is_the_same(exported, key):
    """gluonpan.predict through the real post-processing and fusion: the same segments and
    panoptic map (scores within float rounding)."""
    net, onnx_model = exported(key)
    image = synthetic_image()
    fusion = dict(score_threshold=0., stuff_area_threshold=0)
    pan_ids, segments = gluonpan.predict(net, image, **fusion)
    onnx_ids, onnx_segments = gluonpan.predict(onnx_model, image, backend='onnxruntime',
                                               **fusion)
    np.testing.assert_array_equal(pan_ids, onnx_ids)
    assert any(s['isthing'] for s in segments), 'no instance: the check would be weak'
    assert [dict(s, score=None) for s in segments] == \
        [dict(s, score=None) for s in onnx_segments]
    scores = [(s['score'], o['score']) for s, o in zip(segments, onnx_segments)
              if s['score'] is not None]  # stuff segments of Panoptic FPN have none
    np.testing.assert_allclose(*zip(*scores), rtol=1e-5)


def test_segformer_test_size_resizes_as_mxnet(exported):
    """A recorded ``test_size`` (the reference's test resize): ``predict_panoptic`` resizes the
    image for the ONNX model as for the network; the result is at the input's size."""
    from gluonpan.data.transforms import normalize
    net, onnx_model = exported('panoptic_segformer')
    data = mx.nd.array(normalize(synthetic_image())[None])  # (1, 3, 75, 110)
    results = []
    for model in (net, onnx_model):
        saved = model.inference_options
        model.inference_options = dict(saved, test_size=[48, 64])
        try:
            results.append(model.predict_panoptic(data, score_threshold=0.))
        finally:
            model.inference_options = saved
    (pan_ids, segments), (onnx_ids, onnx_segments) = results
    assert pan_ids.shape == (75, 110) and segments
    np.testing.assert_array_equal(pan_ids, onnx_ids)
    assert [dict(s, score=None) for s in segments] == \
        [dict(s, score=None) for s in onnx_segments]


def test_semantic_result_is_the_same(exported):
    net, onnx_model = exported('semantic_fpn')
    image = synthetic_image()
    classes = gluonpan.predict(net, image)
    np.testing.assert_array_equal(classes, gluonpan.predict(onnx_model, image))
    assert len(np.unique(classes)) > 1
    slide = dict(mode='slide', crop_size=48, stride=32)  # windows of another size
    np.testing.assert_array_equal(gluonpan.predict(net, image, **slide),
                                  gluonpan.predict(onnx_model.path, image, **slide))


def test_predictor_has_what_the_post_processing_reads(exported):
    net, onnx_model = exported('panoptic_fcn')
    assert onnx_model.task == 'panoptic' and onnx_model.arch == 'panoptic_fcn'
    assert onnx_model.categories.to_json() == json.loads(json.dumps(net.categories.to_json()))
    assert onnx_model.fusion_defaults == net.fusion_defaults
    assert onnx_model.inference_options['center_thresh'] == 0.02
    assert onnx_model.level_shapes(64, 96) == net.level_shapes(64, 96)
    net, onnx_model = exported('panoptic_fpn')
    assert onnx_model.conventions == net.conventions
    assert repr(onnx_model.anchors) == repr(net.anchors)
    assert onnx_model.num_proposals == net.rpn.post_nms(False)


def test_predictor_has_what_the_segformer_post_processing_reads(exported):
    from gluonpan.model_zoo.panoptic_segformer.inference import inference_options
    net, onnx_model = exported('panoptic_segformer')
    assert onnx_model.arch == 'panoptic_segformer' and onnx_model.task == 'panoptic'
    assert onnx_model.record['batch'] is None and onnx_model.record['divisor'] == 1
    assert onnx_model.categories.to_json() == json.loads(json.dumps(net.categories.to_json()))
    assert onnx_model.fusion_defaults == net.fusion_defaults
    assert inference_options(onnx_model, score_threshold=0.1) == \
        inference_options(net, score_threshold=0.1)


# ----------------------------------------------------------------------------------------------
# the converters, one operator at a time
# ----------------------------------------------------------------------------------------------

def run_symbol(sym, feeds, params=None):
    """``(MXNet outputs, onnxruntime outputs)`` of a one-output symbol on ``feeds``."""
    params = {k: mx.nd.array(v) for k, v in (params or {}).items()}
    names = [n for n in sym.list_inputs() if n not in params]
    expected = sym.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in feeds.items()},
                        **params)[0].asnumpy()
    model = symbol_to_onnx(sym, params, [(n, feeds[n].shape) for n in names], ['out'])
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    got = session.run(None, {n: feeds[n].astype(np.float32) for n in names})[0]
    return expected, got


@pytest.mark.parametrize('shape, codes', [
    ((2, 3, 4, 5), (0, 0, -3)), ((2, 3, 4, 5), (0, -3, 0)), ((2, 12, 5), (0, -4, 3, -1, 0)),
    ((2, 12, 5), (0, -4, -1, 4, 0)), ((2, 3, 4, 5), (-1, 0, 0)), ((2, 3, 4, 5), (0, -2)),
    ((2, 3, 4, 5), (6, -1)), ((2, 3, 20), (0, 0, -4, 4, 5))])
def test_reshape_codes(shape, codes):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    expected, got = run_symbol(mx.sym.reshape(mx.sym.var('x'), shape=codes), {'x': data})
    np.testing.assert_array_equal(expected, got)


def test_arange_like_negative_axis_and_group_norm():
    x = np.random.RandomState(0).normal(2, 3, (2, 8, 5, 3)).astype(np.float32)
    expected, got = run_symbol(mx.sym.contrib.arange_like(mx.sym.var('x'), axis=-1,
                                                          start=2, step=0.5), {'x': x})
    np.testing.assert_array_equal(expected, got)
    gamma, beta = np.array([0.5, 2.], np.float32), np.array([1., -1.], np.float32)
    sym = mx.sym.GroupNorm(mx.sym.var('x'), mx.sym.var('g'), mx.sym.var('b'), num_groups=2,
                           eps=1e-5)
    expected, got = run_symbol(sym, {'x': x}, {'g': gamma, 'b': beta})
    assert relative_error(expected, got) < 1e-5


def nms_input(seed, num=60, classes=3):
    """(1, num, 6) rows [class, score, x1, y1, x2, y2]: clustered boxes (many overlaps), tied
    scores, scores below the threshold and -1 padding rows."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(10, 50, (num // 6, 2)).repeat(6, axis=0)
    centres += rng.normal(0, 3, centres.shape)
    sizes = rng.uniform(8, 20, (num, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    scores = rng.choice([0.05, 0.3, 0.3, 0.5, 0.7, 0.9], num) + rng.choice([0, 1e-3], num)
    rows = np.concatenate([rng.randint(0, classes, (num, 1)), scores[:, None], boxes], axis=1)
    rows[-4:] = -1
    return rows[None].astype(np.float32)


@pytest.mark.parametrize('options', [
    dict(overlap_thresh=0.5, valid_thresh=0.1, topk=-1, id_index=0, force_suppress=False),
    dict(overlap_thresh=0.3, valid_thresh=0., topk=25, id_index=-1, force_suppress=True),
    dict(overlap_thresh=0.7, valid_thresh=0.2, topk=30, id_index=0, force_suppress=True),
    dict(overlap_thresh=1., valid_thresh=-1e30, topk=20, id_index=-1, force_suppress=True)])
@pytest.mark.parametrize('seed', [0, 1])
def test_box_nms_is_mxnets(options, seed):
    sym = mx.sym.contrib.box_nms(mx.sym.var('x'), coord_start=2, score_index=1, **options)
    expected, got = run_symbol(sym, {'x': nms_input(seed)})
    np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize('aligned', [False, True])
@pytest.mark.parametrize('sample_ratio', [2, -1])
def test_roi_align_is_mxnets(aligned, sample_ratio):
    """RoIs across the border, degenerate and of batch index -1 (pooled by no call).

    MXNet's CPU ROIAlign writes a zero to *element* n of the output for a RoI n of batch index
    -1 (and leaves that RoI's rows unwritten): ``pyramid_roi_align`` puts a dummy RoI first,
    whose rows absorb those zeros and are dropped; so does this test.
    """
    rng = np.random.RandomState(0)
    feat = rng.normal(0, 1, (2, 4, 12, 16)).astype(np.float32)
    rois = np.array([[-1, -1, -1, -1, -1], [0, 3, 2, 40, 30], [1, -5, -3, 10, 8],
                     [-1, 4, 4, 20, 20], [1, 50, 30, 70, 50], [0, 6, 6, 6.5, 6.2],
                     [1, 0, 0, 63, 47]], np.float32)
    sym = mx.sym.contrib.ROIAlign(mx.sym.var('feat'), mx.sym.var('rois'), pooled_size=(3, 4),
                                  spatial_scale=0.25, sample_ratio=sample_ratio, aligned=aligned)
    expected, got = run_symbol(sym, {'feat': feat, 'rois': rois})
    assert not got[rois[:, 0] < 0].any()  # rows of batch index -1: zeros
    pooled = rois[:, 0] >= 0
    assert relative_error(expected[pooled], got[pooled]) < 1e-5


def test_modulated_deformable_convolution_with_large_offsets():
    rng = np.random.RandomState(0)
    x = rng.normal(0, 1, (1, 4, 7, 9)).astype(np.float32)
    offset = rng.normal(0, 4, (1, 18, 7, 9)).astype(np.float32)  # many samples off the map
    mask = rng.uniform(0, 1, (1, 9, 7, 9)).astype(np.float32)
    weight = rng.normal(0, 1, (5, 4, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 1, (5,)).astype(np.float32)
    sym = mx.sym.contrib.ModulatedDeformableConvolution(
        mx.sym.var('x'), mx.sym.var('offset'), mx.sym.var('mask'), mx.sym.var('w'),
        mx.sym.var('b'), kernel=(3, 3), pad=(1, 1), num_filter=5)
    expected, got = run_symbol(sym, {'x': x, 'offset': offset, 'mask': mask},
                               {'w': weight, 'b': bias})
    assert relative_error(expected, got) < 1e-5


@pytest.mark.parametrize('height, width', [(4, 6), (1, 5), (3, 1)])
def test_segformer_bilinear_sampler_outside_and_on_one_pixel_maps(height, width):
    """MXNet's BilinearSampler (the 'bilinear' deformable attention): points beyond the border
    (zero corners) and maps one pixel high or wide (read at pixel 0 with weight 1)."""
    rng = np.random.RandomState(0)
    data = rng.normal(0, 1, (2, 3, height, width)).astype(np.float32)
    grid = rng.uniform(-1.5, 1.5, (2, 2, 5, 7)).astype(np.float32)
    expected, got = run_symbol(mx.sym.BilinearSampler(mx.sym.var('data'), mx.sym.var('grid')),
                               {'data': data, 'grid': grid})
    assert relative_error(expected, got) < 1e-5


def test_segformer_ops_cumsum_power_comparison_scalars():
    rng = np.random.RandomState(0)
    x = rng.uniform(0.5, 3, (3, 4, 5)).astype(np.float32)
    y = rng.uniform(0.5, 3, (3, 4, 5)).astype(np.float32)
    var = mx.sym.var('x')
    exact = [mx.sym.cumsum(var, axis=0, dtype='int32'), mx.sym.cumsum(var, axis=2),
             mx.sym.cumsum(var), var < mx.sym.var('y'), 2.5 - var]
    close = [10000 ** (var / 3), 3. / var]
    for index, sym in enumerate(exact + close):
        expected, got = run_symbol(sym, {'x': x, 'y': y} if 'y' in sym.list_inputs() else
                                   {'x': x})
        assert expected.dtype == got.dtype and expected.shape == got.shape, sym.name
        if index < len(exact):
            np.testing.assert_array_equal(expected, got)
        else:
            assert relative_error(expected, got) < 1e-6, sym.name
    # a constant input (an initializer) in a block's name scope: mx2onnx's own converters fold
    # it into w - 2.5 and w / 3
    internal, weight = mx.sym._internal, mx.sym.var('w')
    sym = internal._RMinusScalar(weight, scalar=2.5, name='block__rminusscalar0') + \
        internal._RDivScalar(weight, scalar=3., name='block__rdivscalar0') + var
    expected, got = run_symbol(sym, {'x': x}, {'w': y})
    np.testing.assert_allclose(expected, got, rtol=1e-6)


@pytest.mark.parametrize('a_shape, b_shape, attrs', [
    ((2, 3, 4), (5, 4), dict(transpose_b=True)), ((2, 3, 4), (4, 2, 3), {}),
    ((4, 3), (4, 5), dict(transpose_a=True)), ((3, 4), (2, 5, 4), dict(transpose_b=True)),
    ((4, 2, 3), (4, 5), dict(transpose_a=True)),
    ((3, 2, 4), (5, 4, 3), dict(transpose_a=True, transpose_b=True))])
def test_segformer_dot_of_any_rank(a_shape, b_shape, attrs):
    rng = np.random.RandomState(0)
    feeds = {'a': rng.normal(0, 1, a_shape).astype(np.float32),
             'b': rng.normal(0, 1, b_shape).astype(np.float32)}
    expected, got = run_symbol(mx.sym.dot(mx.sym.var('a'), mx.sym.var('b'), **attrs), feeds)
    assert relative_error(expected, got) < 1e-6


def test_segformer_layer_norm():
    rng = np.random.RandomState(0)
    x = rng.normal(3, 2, (2, 7, 32)).astype(np.float32)
    params = {'g': rng.normal(1, 0.2, 32), 'b': rng.normal(0, 0.2, 32)}
    sym = mx.sym.LayerNorm(mx.sym.var('x'), mx.sym.var('g'), mx.sym.var('b'), eps=1e-6)
    expected, got = run_symbol(sym, {'x': x}, params)
    assert relative_error(expected, got) < 1e-5


# ----------------------------------------------------------------------------------------------
# files, the command line and the demo
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def semantic_weights(tmp_path_factory):
    """A small Semantic FPN's .params file and its options."""
    path = str(tmp_path_factory.mktemp('weights') / 'semantic.params')
    seeded_model(SEMANTIC[0], **SEMANTIC[1]).save_parameters(path)
    return path


def cli(argv):
    from gluonpan.export.__main__ import main
    return main(argv)


def test_command_line_onnx_and_mxnet(semantic_weights, tmp_path):
    net = get_model(SEMANTIC[0], pretrained=semantic_weights, **SEMANTIC[1])
    common = ['--network', SEMANTIC[0], '--pretrained', semantic_weights, '--model-kwargs',
              json.dumps(SEMANTIC[1]), '--out', str(tmp_path)]
    onnx_file, = cli(common + ['--format', 'onnx'])
    data = mx.nd.array(np.random.RandomState(0).normal(0, 1, (1, 3, 48, 80)))
    assert_outputs_equal(net.predict(data), OnnxPredictor(onnx_file).predict(data), ['logits'])
    symbol, params, record = cli(common + ['--format', 'mxnet'])
    block = mx.gluon.SymbolBlock.imports(symbol, ['data'], params)
    np.testing.assert_allclose(block(data).asnumpy(), net.predict(data).asnumpy(), atol=1e-6)
    record = json.load(open(record))
    assert record['outputs'] == ['logits'] and record['symbol_inputs'] == ['data']


def test_static_export_takes_its_size_only(semantic_weights, tmp_path):
    onnx_file, = cli(['--network', SEMANTIC[0], '--pretrained', semantic_weights,
                      '--model-kwargs', json.dumps(SEMANTIC[1]), '--out', str(tmp_path),
                      '--static', '--input-size', '32', '64'])
    model = OnnxPredictor(onnx_file)
    assert model.predict(mx.nd.zeros((1, 3, 32, 64))).shape == (1, 19, 32, 64)
    for shape in ((1, 3, 32, 32), (2, 3, 32, 64)):
        with pytest.raises(ValueError, match='exported for one 32x64 image only'):
            model.predict(mx.nd.zeros(shape))


def test_static_panoptic_fpn_keeps_a_dynamic_window(exported, tmp_path):
    net, _ = exported('panoptic_fpn')
    model = OnnxPredictor(export_onnx(net, str(tmp_path / 'static.onnx'), input_size=(96, 128),
                                      dynamic=False))
    data = mx.nd.array(np.random.RandomState(4).normal(0, 1, (1, 3, 96, 128)))
    assert_outputs_equal(net.predict(data, (80, 100)), model.predict(data, (80, 100)),
                         model.record['outputs'])


def test_export_mxnet_of_panoptic_fpn_keeps_the_window(tmp_path):
    net = seeded_model(FPN[0], **FPN[1])
    symbol, params = export_mxnet(net, str(tmp_path / 'fpn'))
    block = mx.gluon.SymbolBlock.imports(symbol, ['data0', 'data1'], params)
    data = mx.nd.array(np.random.RandomState(0).normal(0, 1, (1, 3, 96, 128)))
    window = mx.nd.zeros((1, 1, 70, 101))
    for ours, theirs in zip(net.predict(data, (70, 101)), block(data, window)):
        np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('argv, message', [
    (['--network', 'panoptic_fpn_resnet7_citys', '--pretrained', 'x.params', '--out', 'o'],
     '--network panoptic_fpn_resnet7_citys: unknown model'),
    (['--network', SEMANTIC[0], '--pretrained', 'missing.params', '--out', 'o'],
     '--pretrained missing.params: no such .params file'),
    (['--network', SEMANTIC[0], '--pretrained', 'missing.params', '--out', 'o',
      '--format', 'tflite'], "invalid choice: 'tflite'"),
])
def test_command_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_weights_of_another_model(semantic_weights, tmp_path, capsys):
    from gluonpan.errors import run_cli
    from gluonpan.export.__main__ import main
    from gluonpan.utils.logger import reset_logger
    reset_logger()  # a training run of an earlier test may have left its handlers (stderr then)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ['--network', FCN[0], '--pretrained', semantic_weights, '--out',
                       str(tmp_path)])
    assert exit_info.value.code == 1
    assert 'cannot load weights {}'.format(semantic_weights) in capsys.readouterr().err


def test_bad_models_and_backends(exported, tmp_path):
    with pytest.raises(MissingFileError, match='no such file'):
        OnnxPredictor(str(tmp_path / 'missing.onnx'))
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not a model')
    with pytest.raises(DataError, match='cannot load ONNX model .*junk.onnx'):
        OnnxPredictor(str(junk))
    net, onnx_model = exported('panoptic_fcn')
    with pytest.raises(ValueError, match='multiples of 32'):
        onnx_model.predict(mx.nd.zeros((1, 3, 48, 64)))
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        gluonpan.predict(onnx_model, synthetic_image(), backend='tensorrt')
    with pytest.raises(UsageError, match="not backend='mxnet'"):
        gluonpan.predict(onnx_model, synthetic_image(), backend='mxnet')
    with pytest.raises(UsageError, match="or an exported .onnx file, got a str 'resnet'"):
        gluonpan.predict('resnet', synthetic_image())
    with pytest.raises(UsageError, match='get_model, got a str'):
        gluonpan.predict(onnx_model.path, synthetic_image(), backend='mxnet')
    with pytest.raises(UsageError, match='cannot export a HybridSequential: export takes .*'
                                         'PanopticSegFormer'):
        export_onnx(mx.gluon.nn.HybridSequential(), str(tmp_path / 'x.onnx'))


def test_onnx_file_without_our_metadata(tmp_path):
    onnx = require('onnx')
    model = symbol_to_onnx(mx.sym.relu(mx.sym.var('x')), {}, [('x', (1, 2))], ['out'])
    path = str(tmp_path / 'plain.onnx')
    onnx.save(model, path)
    with pytest.raises(DataError, match="has no 'gluonpan' metadata"):
        OnnxPredictor(path)


def test_a_missing_extra_is_named():
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[export\]"'):
        require('gluonpan_no_such_module')


def test_predict_exports_a_network_for_onnxruntime(exported):
    net, onnx_model = exported('semantic_fpn')
    image = synthetic_image(40, 50)
    np.testing.assert_array_equal(gluonpan.predict(net, image, backend='onnxruntime'),
                                  gluonpan.predict(net, image))


@pytest.mark.slow
def test_demo_runs_the_onnx_model(semantic_weights, tmp_path):
    """The demo with ``--onnx`` writes what it writes with the MXNet network."""
    from gluonpan.utils.panoptic_writer import imwrite_rgb
    from gluonpan.export.__main__ import main as export_main
    from gluonpan.tools.demo import main as demo_main
    image = str(tmp_path / 'scene.png')
    imwrite_rgb(image, synthetic_image())
    kwargs = json.dumps(SEMANTIC[1])
    onnx_file, = export_main(['--network', SEMANTIC[0], '--pretrained', semantic_weights,
                              '--model-kwargs', kwargs, '--out', str(tmp_path / 'onnx')])
    common = ['--pretrained', semantic_weights, '--network', 'resnet18_v1b', '--dataset', 'citys',
              '--model-kwargs', kwargs, '--images', image]
    written = []
    for extra in ([], ['--onnx', onnx_file]):
        out = str(tmp_path / ('onnx_demo' if extra else 'demo'))
        stem, = demo_main('semantic_fpn', common + ['--out-dir', out] + extra)
        written.append(open(stem + '_labelIds.png', 'rb').read())
    assert written[0] == written[1]
    with pytest.raises(UsageError, match='is a semantic_fpn model, not a panoptic_fcn one'):
        demo_main('panoptic_fcn', ['--pretrained', semantic_weights, '--images', image,
                                   '--onnx', onnx_file, '--out-dir', str(tmp_path / 'x')])


@pytest.mark.slow
def test_eval_with_onnx_scores_as_mxnet(synthetic_citys, tmp_path):
    """The eval program with ``--onnx`` gives the PQ it gives with the MXNet network (seeded
    random weights, low thresholds so that segments are scored)."""
    from _scripts import load_script
    name, kwargs = MODELS['panoptic_fcn']
    net = seeded_model(name, **kwargs)
    params = str(tmp_path / 'fcn.params')
    net.save_parameters(params)
    onnx_file = export_onnx(net, str(tmp_path / 'fcn.onnx'), name)
    common = ['--pretrained', params, '--network', 'resnet18_v1b', '--model-kwargs',
              json.dumps(kwargs), '--dataset', 'synthetic', '--dataset-root', synthetic_citys,
              '--gpus', '', '--num-workers', '0', '--score-thresh', '0', '--stuff-area', '1']
    evaluate = load_script('panoptic', 'eval_panoptic_fcn').main
    want = evaluate(common + ['--save-dir', str(tmp_path / 'mxnet')])
    got = evaluate(common + ['--save-dir', str(tmp_path / 'onnx'), '--onnx', onnx_file])
    assert want['num_images'] == got['num_images'] == 2
    assert want['All']['n'] > 0  # classes were scored
    for key in ('All', 'Things', 'Stuff'):
        assert abs(want[key]['pq'] - got[key]['pq']) <= 1e-3, key  # 0.1 PQ point
    with pytest.raises(UsageError, match='is a panoptic_fcn model, not a panoptic_fpn one'):
        load_script('panoptic', 'eval_panoptic_fpn').main(
            common[:2] + ['--gpus', '', '--onnx', onnx_file, '--dataset', 'synthetic',
                          '--dataset-root', synthetic_citys])
