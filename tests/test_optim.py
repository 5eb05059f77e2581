"""AdamW and clipping by the global gradient norm (gluonpan.utils.optim) against PyTorch's
``torch.optim.AdamW`` and ``clip_grad_norm_`` (fixture made by
``tools/reference/make_adamw_fixture.py``, which says how to regenerate it), and through the
engine: data parallelism, exact resume of the optimizer state, a non-finite norm."""
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluonpan.utils.dist import create_trainer
from gluonpan.utils.engine import NonFiniteLossError, train_one_epoch
from gluonpan.utils.lr_scheduler import WarmupStepLR
from gluonpan.utils.optim import AdamW, clip_global_norm, global_grad_norm

from _toy_train import ToyNet
from test_engine import _batches, _params

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'adamw_reference.npz')


def _fixture_params(ref, ctx_list):
    """Two gluon Parameters holding the fixture's weights, the second with lr_mult 0.1."""
    params = gluon.ParameterDict()
    for i in range(2):
        p = params.get('p{}'.format(i), shape=ref['weight{}'.format(i)].shape)
        p.initialize(mx.init.Constant(0), ctx=ctx_list)
        p.set_data(mx.nd.array(ref['weight{}'.format(i)]))
    params['p1'].lr_mult = 0.1
    return params


def _set_grads(params, grads, scale=1.0):
    """Give every copy of each parameter the gradient ``grads[i] * scale``, by a backward of
    ``sum(w * grad)`` (so the trainer sees fresh gradients)."""
    with mx.autograd.record():
        losses = [(w * mx.nd.array(grads[i] * scale, ctx=w.context)).sum()
                  for i, p in enumerate(params.values()) for w in p.list_data()]
    mx.autograd.backward(losses)


def test_adamw_equals_torch_adamw_with_lr_mult():
    ref = np.load(FIXTURE)
    params = _fixture_params(ref, [mx.cpu()])
    trainer = gluon.Trainer(params, 'adamw', {'learning_rate': float(ref['lr']),
                                              'wd': float(ref['wd'])})
    for step in range(int(ref['steps'])):
        # the engine's gradients are sums over the batch; step(batch) divides them back
        _set_grads(params, [ref['grad{}_{}'.format(step, i)] for i in range(2)], scale=4)
        trainer.step(4)
    for i, p in enumerate(params.values()):
        np.testing.assert_allclose(p.data().asnumpy(), ref['adamw{}'.format(i)], rtol=1e-5,
                                   atol=1e-6)
    # the update is not plain Adam: without the weight decay the weights differ
    plain = _fixture_params(ref, [mx.cpu()])
    no_wd = gluon.Trainer(plain, 'adamw', {'learning_rate': float(ref['lr'])})
    for step in range(int(ref['steps'])):
        _set_grads(plain, [ref['grad{}_{}'.format(step, i)] for i in range(2)])
        no_wd.step(1)
    assert not np.allclose(plain['p0'].data().asnumpy(), ref['adamw0'], atol=1e-5)


def test_adamw_is_registered_for_the_trainer():
    assert isinstance(mx.optimizer.create('adamw'), AdamW)
    with pytest.raises(ValueError, match='optimizer must be one of'):
        create_trainer(gluon.ParameterDict(), 'device', 0.1, 0., optimizer='adam')


@pytest.mark.parametrize('num_ctx', [1, 2])
def test_clip_global_norm_equals_torch(num_ctx):
    ref = np.load(FIXTURE)
    params = _fixture_params(ref, [mx.cpu(i) for i in range(num_ctx)])
    trainer = gluon.Trainer(params, 'sgd', {'learning_rate': 0.1}, update_on_kvstore=False)
    trainer._init_kvstore()
    batch = 3
    # every context holds the same summed gradient after allreduce: batch x the mean's gradient
    _set_grads(params, [ref['grad0_{}'.format(i)] for i in range(2)], scale=batch / num_ctx)
    trainer.allreduce_grads()
    norm = clip_global_norm(trainer, float(ref['max_norm']), batch)
    assert np.isclose(norm, float(ref['norm']), rtol=1e-6)
    for i, p in enumerate(params.values()):
        for g in p.list_grad():
            np.testing.assert_allclose(g.asnumpy() / batch, ref['clipped{}'.format(i)],
                                       rtol=1e-5, atol=1e-7)
    # below the limit nothing changes
    assert np.isclose(clip_global_norm(trainer, 100., batch), float(ref['max_norm']), rtol=1e-5)
    assert np.isclose(global_grad_norm(trainer, batch), float(ref['max_norm']), rtol=1e-5)


def _toy_adamw(ctx, clip=0.05):
    mx.random.seed(0)
    net = ToyNet()
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net, create_trainer(net.collect_params(), 'device', 0.01, 1e-4, optimizer='adamw',
                               clip_global_norm=clip)


def test_engine_adamw_clipped_two_contexts_equal_one():
    schedule = WarmupStepLR(0.01, 3, warmup_iters=0)
    results = []
    for ctx in ([mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]):
        net, trainer = _toy_adamw(ctx)
        train_one_epoch(net, trainer, _batches(4, 3), ctx, 0, schedule, log_interval=0,
                        progress=False)
        results.append(_params(net))
    for k, single in results[0].items():
        np.testing.assert_allclose(results[1][k], single, rtol=1e-5, atol=1e-6, err_msg=k)
    unclipped, trainer = _toy_adamw([mx.cpu(0)], clip=0)
    train_one_epoch(unclipped, trainer, _batches(4, 3), [mx.cpu(0)], 0, schedule, log_interval=0,
                    progress=False)
    assert any(not np.allclose(v, results[0][k]) for k, v in _params(unclipped).items())


def test_engine_adamw_state_resumes_exactly(tmp_path):
    """One epoch, save, a fresh net and trainer load, a second epoch: the weights of two
    uninterrupted epochs (the moments and the per-parameter step counts are in the states)."""
    ctx = [mx.cpu(0)]
    schedule = WarmupStepLR(0.01, 3, warmup_iters=0)
    batches = [_batches(4, 3, seed=0), _batches(4, 3, seed=1)]
    net, trainer = _toy_adamw(ctx)
    for epoch in range(2):
        train_one_epoch(net, trainer, batches[epoch], ctx, epoch, schedule, log_interval=0,
                        progress=False)
        if epoch == 0:
            net.save_parameters(str(tmp_path / 'w.params'))
            trainer.save_states(str(tmp_path / 'w.states'))
    resumed, trainer2 = _toy_adamw(ctx)
    resumed.load_parameters(str(tmp_path / 'w.params'), ctx=ctx)
    trainer2.load_states(str(tmp_path / 'w.states'))
    train_one_epoch(resumed, trainer2, batches[1], ctx, 1, schedule, log_interval=0,
                    progress=False)
    for k, v in _params(net).items():
        np.testing.assert_array_equal(_params(resumed)[k], v, err_msg=k)


class _SqrtAtZero(gluon.Block):
    """A finite loss (0) whose gradient is not: d sqrt(|w|) / dw at w = 0."""

    def __init__(self):
        super().__init__()
        self.w = self.params.get('w', shape=(2,), init=mx.init.Zero())

    def train_losses(self, batch):
        w = self.w.data(batch['data'].context)
        return {'loss_sqrt': mx.nd.sqrt(mx.nd.abs(w)).sum() + 0 * batch['data'].sum()}


def test_non_finite_gradient_norm_stops_before_the_step(caplog):
    ctx = [mx.cpu(0)]
    net = _SqrtAtZero()
    net.initialize(ctx=ctx)
    trainer = create_trainer(net.collect_params(), 'device', 0.01, 0., optimizer='adamw',
                             clip_global_norm=1.0)
    with pytest.raises(NonFiniteLossError, match='grad_norm=nan'):
        train_one_epoch(net, trainer, _batches(4, 1), ctx, 0,
                        WarmupStepLR(0.01, 1, warmup_iters=0), log_interval=0, progress=False)
    assert np.array_equal(net.w.data().asnumpy(), np.zeros(2))  # the step was not applied
    assert 'loss_sqrt=0.0' in caplog.text
