"""Inference in bfloat16 (gluonpan.precision, ``--dtype``): MXNet AMP's converted graph of every
architecture runs, its convolutions really are bfloat16, its dense outputs stay within bfloat16
rounding of float32's, and the post-processing, ``gluonpan.predict``, eval and demo take it.
float16 is for GPUs: only its graph is checked here (no GPU runs MXNet on this machine).

The tolerance: bfloat16 keeps 8 significant bits (relative rounding 2^-8 = 0.4% per value);
through a ResNet-18 and its heads the dense outputs of these seeded random models move by up to
~2.5% of their largest magnitude (measured), so 6% is the bound; float32 noise would be ~1e-6.
"""
import glob
import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.contrib import amp

import gluonpan
from gluonpan.errors import UsageError
from gluonpan.precision import (LowPrecisionNet, convert_symbol, cpu_has_bfloat16,
                                low_precision)

from _models import seeded_model, synthetic_image
from _scripts import load_script

TOLERANCE = 0.06
BFLOAT16 = amp.amp.bfloat16  # MXNet's numpy stand-in for bfloat16
#: tiny options and the indices of the dense outputs of ``net.predict`` compared with float32
MODELS = {
    'semantic_fpn': ('semantic_fpn_resnet18_v1b_citys', dict(fpn_channels=32, head_channels=16),
                     [0]),
    'panoptic_fcn': ('panoptic_fcn_resnet18_v1b_citys', dict(
        fpn_channels=32, head_channels=32, semantic_channels=32, encoder_channels=16, deform=False),
        [1, 5]),
    'panoptic_fcn_deform': ('panoptic_fcn_resnet18_v1b_citys', dict(  # its DCN stays float32
        fpn_channels=32, head_channels=32, semantic_channels=32, encoder_channels=16, deform=True),
        [1, 5]),
    'panoptic_fpn': ('panoptic_fpn_resnet18_v1b_citys', dict(
        rpn_test_pre_nms=300, rpn_test_post_nms=100, test_max_dets=20, fpn_channels=32,
        sem_seg_channels=32, box_fc_channels=64, mask_channels=32), [4]),
    'panoptic_segformer': ('panoptic_segformer_resnet18_v1b_citys', dict(
        embed_dims=32, feedforward_channels=64, encoder_layers=1, decoder_layers=2,
        num_queries=20, thing_blocks=1, stuff_blocks=2, num_candidates=10), [3, 4]),
}


@pytest.fixture(scope='module')
def models():
    """``{key: (float32 net, bfloat16 net)}``, built once (lazily)."""
    cache = {}

    def get(key):
        if key not in cache:
            name, kwargs, _ = MODELS[key]
            net = seeded_model(name, **kwargs)
            net.hybridize()
            cache[key] = net, low_precision(net, 'bfloat16')
        return cache[key]
    return get


def _tuple(outputs):
    return outputs if isinstance(outputs, (list, tuple)) else (outputs,)


@pytest.mark.parametrize('key', sorted(MODELS))
def test_dense_outputs_are_float32_within_bfloat16_rounding(models, key):
    net, low = models(key)
    data = mx.nd.array(np.random.RandomState(1).normal(0, 1, (1, 3, 64, 96)))
    want, got = _tuple(net.predict(data)), _tuple(low.predict(data))
    assert len(want) == len(got)
    for index in MODELS[key][2]:
        expected, actual = want[index].asnumpy(), got[index].asnumpy()
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        error = np.abs(expected - actual).max() / np.abs(expected).max()
        assert 1e-5 < error < TOLERANCE, (index, error)  # rounded as bfloat16, not float32
    for w, g in zip(want, got):  # every output: same shape, float32 (or the integer it was)
        assert w.shape == g.shape and (g.dtype == np.float32 or g.dtype == w.dtype)


def _converted_types(net, dtype, size=(64, 96)):
    """``{op: set of output dtypes}`` of the converted inference graph of ``net``."""
    net.hybridize()
    with autograd.predict_mode():
        net(mx.nd.zeros((1, 3) + size))
    inputs, sym = net._cached_graph  # pylint: disable=protected-access
    internals = convert_symbol(sym, dtype).get_internals()
    _, types, _ = internals.infer_type(**{i.name: 'float32' for i in inputs})
    nodes = json.loads(internals.tojson(remove_amp_cast=False))['nodes']
    op_of = {n['name']: n['op'] for n in nodes}
    ops = {}
    for output, out_type in zip(internals.list_outputs(), types):
        node = output.rsplit('_output', 1)[0]
        name = 'bfloat16' if np.dtype(out_type) == BFLOAT16 else np.dtype(out_type).name
        ops.setdefault(op_of.get(node, node), set()).add(name)
    return ops


def test_convolutions_run_in_bfloat16_and_softmax_in_float32(models):
    net, _ = models('panoptic_segformer')
    ops = _converted_types(net, 'bfloat16')
    assert ops['Convolution'] == {'bfloat16'}
    assert ops['FullyConnected'] == {'bfloat16'}
    assert ops['softmax'] == {'float32'} and ops['GroupNorm'] == {'float32'}


def test_float16_graph_for_gpus(models):
    """The float16 graph a GPU would run (no GPU runs it here): every output typed, convolutions
    in float16, concatenations in the widest of their inputs' types (float32 where CoordConv
    joins coordinates to features)."""
    net, _ = models('panoptic_fcn')
    ops = _converted_types(net, 'float16')
    assert ops['Convolution'] == {'float16'}
    assert ops['Concat'] == {'float16', 'float32'}


@pytest.mark.parametrize('key', ['panoptic_fcn', 'panoptic_fpn', 'panoptic_segformer'])
def test_predict_with_bfloat16(models, key):
    net, low = models(key)
    image = synthetic_image(75, 110)  # padded inside: Panoptic FPN's window is used
    for model, options in ((net, dict(dtype='bfloat16')), (low, {})):
        pan_ids, segments = gluonpan.predict(model, image, score_threshold=0., **options)
        assert pan_ids.shape == (75, 110) and pan_ids.dtype == np.int32
        assert {s['id'] for s in segments} == set(np.unique(pan_ids)) - {0}
        assert sum(s['area'] for s in segments) == (pan_ids > 0).sum()


def test_semantic_predict_with_bfloat16(models):
    net, low = models('semantic_fpn')
    image = synthetic_image(40, 50)
    labels = gluonpan.predict(low, image)
    want = gluonpan.predict(net, image)
    assert labels.shape == want.shape == (40, 50)
    assert (labels == want).mean() > 0.9  # the argmax moves only where classes nearly tie


def test_usage_errors(models, tmp_path):
    net, low = models('semantic_fpn')
    with pytest.raises(UsageError, match='float16 runs on GPUs .* use --dtype bfloat16'):
        low_precision(net, 'float16')
    with pytest.raises(UsageError, match="unknown inference dtype 'int8'; valid: float32, "):
        low_precision(net, 'int8')
    with pytest.raises(UsageError, match='takes a network from gluonpan.model_zoo'):
        low_precision(low, 'bfloat16')
    with pytest.raises(UsageError, match='image_size is for Panoptic FPN'):
        low.predict(mx.nd.zeros((1, 3, 32, 32)), image_size=(16, 16))
    assert low_precision(net, 'float32') is net
    from gluonpan.export import OnnxPredictor
    onnx_model = OnnxPredictor.from_net(net)
    with pytest.raises(UsageError, match="dtype 'bfloat16' is for MXNet networks"):
        gluonpan.predict(onnx_model, synthetic_image(40, 50), dtype='bfloat16')


def test_cpu_flags(tmp_path, caplog, monkeypatch):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor : 0\nflags : fpu sse avx512f avx512_bf16\n')
    assert cpu_has_bfloat16(str(info)) is True
    info.write_text('processor : 0\nflags : fpu sse avx2\n')
    assert cpu_has_bfloat16(str(info)) is False
    assert cpu_has_bfloat16(str(tmp_path / 'none')) is None
    monkeypatch.setattr('gluonpan.precision.cpu_has_bfloat16', lambda: False)
    net = seeded_model(MODELS['semantic_fpn'][0], **MODELS['semantic_fpn'][1])
    assert isinstance(low_precision(net, 'bfloat16'), LowPrecisionNet)
    assert 'oneDNN emulates bfloat16' in caplog.text


@pytest.mark.slow
def test_eval_and_demo_take_dtype(synthetic_citys, tmp_path, caplog):
    """eval and demo with ``--dtype bfloat16`` run the converted graph (seeded random weights:
    the scores say nothing; the files and the log say what ran)."""
    import logging
    name, kwargs, _ = MODELS['panoptic_fcn']
    params = str(tmp_path / 'fcn.params')
    seeded_model(name, **kwargs).save_parameters(params)
    common = ['--pretrained', params, '--network', 'resnet18_v1b', '--model-kwargs',
              json.dumps(kwargs), '--gpus', '', '--dtype', 'bfloat16']
    caplog.set_level(logging.INFO, logger='gluonpan.precision')
    res = load_script('panoptic', 'eval_panoptic_fcn').main(
        common + ['--dataset', 'synthetic', '--dataset-root', synthetic_citys, '--num-workers',
                  '0', '--save-dir', str(tmp_path / 'eval'), '--score-thresh', '0'])
    assert res['num_images'] == 2 and os.path.isfile(tmp_path / 'eval' / 'pq.json')
    assert 'PanopticFCN: inference graph converted to bfloat16' in caplog.text
    image = sorted(glob.glob(os.path.join(synthetic_citys, 'leftImg8bit', 'val', '*', '*.png')))[0]
    demo = load_script('panoptic', 'demo_panoptic_fcn')
    stem, = demo.main(common + ['--dataset', 'citys', '--images', image, '--out-dir',
                                str(tmp_path / 'demo')])
    assert os.path.isfile(stem + '_overlay.png')
    with pytest.raises(SystemExit):
        demo.parse_args(common + ['--images', image, '--onnx', params])
