"""Engine: data-parallel steps, logging, non-finite losses, evaluation, lr schedule."""
import mxnet as mx
import numpy as np
import pytest

from gluonpan.data.sampler import EpochSampler
from gluonpan.utils.checkpoint import CheckpointManager, find_checkpoint, read_checkpoint
from gluonpan.utils.dist import create_trainer
from gluonpan.utils.engine import NonFiniteLossError, evaluate, step_seed, train_one_epoch
from gluonpan.utils.logger import reset_logger, setup_logger
from gluonpan.utils.lr_scheduler import WarmupStepLR, parse_epochs

from _toy_train import ToyDataset, ToyNet, toy_batchify


def _toy(ctx, seed=0):
    mx.random.seed(seed)
    net = ToyNet()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    trainer = create_trainer(net.collect_params(), 'device', 0.1, 1e-4)
    return net, trainer


def _batches(batch_size, num_batches, nan_index=-1, seed=0):
    dataset = ToyDataset(batch_size * num_batches, nan_index)
    sampler = EpochSampler(len(dataset), seed=seed)
    sampler.set_epoch(0, 0, batch_size)
    keys = list(sampler)
    return [toy_batchify([dataset[k] for k in keys[b * batch_size:(b + 1) * batch_size]])
            for b in range(num_batches)]


def _params(net):
    return {k: v.data().asnumpy() for k, v in net._collect_params_with_prefix().items()}


def test_step_seed_depends_on_every_coordinate():
    seeds = {step_seed(0, 0, 0), step_seed(1, 0, 0), step_seed(0, 1, 0), step_seed(0, 0, 1),
             step_seed(0, 0, 0, rank=1)}
    assert len(seeds) == 5 and step_seed(3, 2, 1) == step_seed(3, 2, 1)


@pytest.mark.parametrize('batch_size', [4, 5])
def test_two_contexts_equal_one_context(batch_size):
    """Data parallel over cpu(0), cpu(1) gives the single-context result on the same global batch."""
    schedule = WarmupStepLR(0.1, 3, warmup_iters=2)
    results = []
    for ctx in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        net, trainer = _toy(ctx)
        train_one_epoch(net, trainer, _batches(batch_size, 3), ctx, 0, schedule, log_interval=0,
                        progress=False)
        results.append(_params(net))
    init = _params(_toy([mx.cpu(0)])[0])
    for k, single in results[0].items():
        # the only difference is float summation order inside the batched backward
        np.testing.assert_allclose(results[1][k], single, rtol=1e-5, atol=1e-6, err_msg=k)
    assert max(np.abs(results[0][k] - init[k]).max() for k in init) > 1e-3  # it did train


def test_logs_losses_lr_and_speed_to_file(tmp_path):
    log_file = str(tmp_path / 'logs' / 'train.log')
    setup_logger(log_file)
    setup_logger(log_file)  # idempotent: no doubled lines
    try:
        net, trainer = _toy([mx.cpu()])
        means = train_one_epoch(net, trainer, _batches(4, 4), [mx.cpu()], 0,
                                WarmupStepLR(0.2, 4), log_interval=2, progress=True)
    finally:
        reset_logger()
    text = open(log_file).read()
    assert text.count('[Epoch 0][Batch 2/4] loss_cls=') == 1
    assert '[Epoch 0][Batch 4/4]' in text and 'lr=0.2' in text and 'samples/s' in text
    assert list(means) == ['loss_cls', 'loss_reg'] and all(np.isfinite(list(means.values())))


def test_nan_loss_stops_before_the_step_and_keeps_checkpoint(tmp_path, caplog):
    sampler = EpochSampler(20, seed=0)  # the order _batches(4, 5) uses
    sampler.set_epoch(0, 0, 4)
    bad = _batches(4, 5, nan_index=list(sampler)[3 * 4][0])  # NaN in batch 3
    assert [np.isfinite(b['data']).all() for b in bad] == [True, True, True, False, True]

    net, trainer = _toy([mx.cpu()])
    schedule = WarmupStepLR(0.1, 5)
    ckpt = CheckpointManager(str(tmp_path), 'toy', net, trainer, schedule)
    with pytest.raises(NonFiniteLossError, match=r'epoch 0, iteration 3: loss_cls=nan, '
                                                 r'loss_reg=nan') as err:
        train_one_epoch(net, trainer, bad, [mx.cpu()], 0, schedule, checkpoint=ckpt,
                        ckpt_interval=1, log_interval=0, progress=False)
    assert list(err.value.losses) == ['loss_cls', 'loss_reg']
    assert 'loss_cls=nan' in caplog.text and 'last checkpoint is left' in caplog.text

    record = read_checkpoint(find_checkpoint(str(tmp_path)))
    assert (record['epoch'], record['iteration']) == (0, 3)  # the one just before the NaN
    saved = mx.nd.load(record['params'])
    for k, v in _params(net).items():  # the bad step was not applied in memory either
        np.testing.assert_array_equal(saved[k].asnumpy(), v, err_msg=k)
        assert np.isfinite(v).all()


class _VectorLossNet(ToyNet):
    def train_losses(self, batch):
        return {'loss_vec': self(batch['data']).sum(axis=1)}  # (B,): not a scalar


def test_bad_batches_and_losses_are_named():
    batch = _batches(4, 1)[0]
    net, trainer = _toy([mx.cpu()])
    bad = dict(batch, label=batch['label'][:3])
    with pytest.raises(ValueError, match="disagree on the batch size: {'data': 4, 'label': 3}"):
        train_one_epoch(net, trainer, [bad], [mx.cpu()], 0, WarmupStepLR(0.1, 1), progress=False)
    mx.random.seed(0)
    net = _VectorLossNet()
    net.initialize(ctx=mx.cpu())
    trainer = create_trainer(net.collect_params(), 'device', 0.1, 0)
    with pytest.raises(ValueError, match=r'loss loss_vec must be a scalar, got shape \(4,\)'):
        train_one_epoch(net, trainer, [batch], [mx.cpu()], 0, WarmupStepLR(0.1, 1), progress=False)


class _FakeMetric:
    def __init__(self):
        self.calls, self.resets = [], 0

    def reset(self):
        self.resets += 1
        self.calls = []

    def update(self, gt, gt_segments, pred, pred_segments, image_id=None):
        self.calls.append((image_id, gt, gt_segments, pred, pred_segments))


def _sample(image_id, h, w, pan_ids_nd=False):
    rng = np.random.RandomState(h * w)
    pan = rng.randint(0, 3, (h, w)).astype(np.int32)
    return {'data': rng.randn(3, h, w).astype(np.float32), 'image_id': image_id,
            'pan_ids': mx.nd.array(pan, dtype='int32') if pan_ids_nd else pan,
            'segments_info': [{'id': 1, 'category_id': 7}], 'image': np.zeros((h, w, 3), np.uint8)}


def test_evaluate_feeds_predictions_and_ground_truth_to_metric():
    samples = [_sample('a', 5, 7), _sample('b', 6, 4, pan_ids_nd=True), _sample('c', 3, 9)]
    loader = [samples[0], [samples[1], samples[2]]]  # one sample, then a list (one per context)
    seen_ctx, written = [], []

    def predict_fn(net, data):
        assert net == 'net' and data.shape[:2] == (1, 3)
        seen_ctx.append(data.context)
        return (data[0, 0].asnumpy() > 0).astype(np.int32), [{'id': 1, 'category_id': 7}]

    metric = _FakeMetric()
    metric.calls.append('stale')
    out = evaluate('net', loader, [mx.cpu(0), mx.cpu(1)], metric, predict_fn,
                   output_fn=lambda s, p, seg: written.append((s['image_id'], p.shape)),
                   progress=False)
    assert out is metric and metric.resets == 1
    assert [c[0] for c in metric.calls] == ['a', 'b', 'c']
    assert seen_ctx == [mx.cpu(0), mx.cpu(1), mx.cpu(0)]
    for (image_id, gt, _, pred, _), s in zip(metric.calls, samples):
        expected_gt = s['pan_ids'].asnumpy() if isinstance(s['pan_ids'], mx.nd.NDArray) \
            else s['pan_ids']
        np.testing.assert_array_equal(gt, expected_gt)
        np.testing.assert_array_equal(pred, (s['data'][0] > 0).astype(np.int32))
    assert written == [('a', (5, 7)), ('b', (6, 4)), ('c', (3, 9))]


def test_evaluate_rejects_mismatched_sample():
    bad = _sample('frankfurt_000000_000294', 5, 7)
    bad['pan_ids'] = bad['pan_ids'][:4]
    with pytest.raises(ValueError, match='image frankfurt_000000_000294'):
        evaluate(None, [bad], mx.cpu(), _FakeMetric(), lambda n, d: None, progress=False)


def test_lr_schedule_warmup_then_steps():
    s = WarmupStepLR(0.02, iters_per_epoch=10, warmup_iters=15, warmup_factor=0.25,
                     decay_epochs=parse_epochs('3, 1'), decay_factor=0.1)
    assert s.decay_epochs == (1, 3)
    assert s(0, 0) == pytest.approx(0.02 * 0.25)
    assert s(0, 6) == pytest.approx(0.02 * (0.25 + 0.75 * 6 / 15))
    assert s(1, 4) == pytest.approx(0.002 * (0.25 + 0.75 * 14 / 15))  # warmup spans a decay
    assert s(1, 5) == pytest.approx(0.002)
    assert s(2, 9) == pytest.approx(0.002) and s(3, 0) == pytest.approx(0.0002)
    assert s(700, 0) == pytest.approx(0.0002)


def test_lr_schedule_poly_as_mmsegmentation():
    """mmseg's PolyLR (power 0.9, eta_min 1e-4, per iteration) over epochs x iterations."""
    s = WarmupStepLR(0.01, iters_per_epoch=10, policy='poly', max_epochs=4)
    for epoch, it in ((0, 0), (1, 3), (3, 9)):
        t = epoch * 10 + it
        assert s(epoch, it) == pytest.approx((0.01 - 1e-4) * (1 - t / 40.) ** 0.9 + 1e-4)
    assert s(4, 0) == pytest.approx(1e-4) and s(9, 0) == pytest.approx(1e-4)
    warm = WarmupStepLR(0.01, 10, warmup_iters=5, warmup_factor=0.5, policy='poly', max_epochs=4)
    assert warm(0, 2) == pytest.approx((0.01 - 1e-4) * (1 - 2 / 40.) ** 0.9 * 0.7 + 1e-4)
    with pytest.raises(ValueError, match='max_epochs must be >= 1'):
        WarmupStepLR(0.01, 10, policy='poly')
    with pytest.raises(ValueError, match='policy must be one of'):
        WarmupStepLR(0.01, 10, policy='cosine')
    # a state saved before the poly keys existed restores as a step schedule, without warnings
    old = {k: v for k, v in WarmupStepLR(0.02, 10, 15, decay_epochs=(3,)).state_dict().items()
           if k not in WarmupStepLR._LATER_KEYS}
    restored = WarmupStepLR(0.02, 10, 15, decay_epochs=(3,))
    restored.load_state_dict(old)
    assert restored.policy == 'step' and restored(3, 0) == pytest.approx(0.002)


def test_lr_schedule_state_restores_and_validates(caplog):
    saved = WarmupStepLR(0.02, 10, 15, decay_epochs=(430, 590)).state_dict()
    s = WarmupStepLR(0.5, 7)
    s.load_state_dict(saved)
    assert s.state_dict() == saved and s(500, 0) == pytest.approx(0.002)
    assert 'base_lr' in caplog.text and 'ignoring new values' in caplog.text
    with pytest.raises(ValueError, match='strictly increasing'):
        WarmupStepLR(0.1, 10, decay_epochs=(5, 5))
    with pytest.raises(ValueError, match='warmup_factor must be in'):
        WarmupStepLR(0.1, 10, warmup_factor=0)
    with pytest.raises(ValueError, match="'430;590'"):
        parse_epochs('430;590')
    with pytest.raises(ValueError, match='lacks'):
        s.load_state_dict({'base_lr': 1})


@pytest.mark.parametrize('recorded,expected', [(False, [1, 2, 3]), (True, [2, 3])])
def test_fit_reruns_a_validation_the_kill_interrupted(recorded, expected):
    """A checkpoint at the end of epoch 2 is written before its validation: resuming from it runs
    that validation first unless it was recorded."""
    from gluonpan.utils.engine import fit
    net, trainer = _toy([mx.cpu()])
    validated = []
    fit(net, trainer, lambda epoch, start: _batches(2, 2), [mx.cpu()], WarmupStepLR(0.1, 2), 4,
        start_epoch=2, val_fn=validated.append, val_interval=1,
        val_done=lambda epoch: recorded, log_interval=0, progress=False)
    assert validated == expected
