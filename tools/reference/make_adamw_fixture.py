"""Reference fixture of ``tests/test_optim.py``: ``torch.optim.AdamW`` on fixed weights and
gradients, with two parameter groups (the second at a tenth of the learning rate, as a model's
backbone with ``lr_mult=0.1``), and ``torch.nn.utils.clip_grad_norm_`` on the same gradients.

Regenerate (needs PyTorch, never the package or CI)::

    /work/refenv/bin/python tools/reference/make_adamw_fixture.py tests/fixtures/adamw_reference.npz
"""
import sys

import numpy as np
import torch

LR, WD, STEPS, MAX_NORM = 0.01, 0.05, 4, 0.5


def main(out):
    rng = np.random.RandomState(0)
    weights = [rng.randn(3, 4).astype(np.float32), rng.randn(5).astype(np.float32)]
    grads = [[rng.randn(*w.shape).astype(np.float32) for w in weights] for _ in range(STEPS)]
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in weights]
    opt = torch.optim.AdamW([{'params': [params[0]]}, {'params': [params[1]], 'lr': LR * 0.1}],
                            lr=LR, weight_decay=WD)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    clipped = [torch.nn.Parameter(torch.zeros(w.shape)) for w in weights]
    for p, g in zip(clipped, grads[0]):
        p.grad = torch.from_numpy(g.copy())
    norm = torch.nn.utils.clip_grad_norm_(clipped, MAX_NORM)
    np.savez(out, **{'weight{}'.format(i): w for i, w in enumerate(weights)},
             **{'grad{}_{}'.format(s, i): g for s, step in enumerate(grads)
                for i, g in enumerate(step)},
             **{'adamw{}'.format(i): p.detach().numpy() for i, p in enumerate(params)},
             **{'clipped{}'.format(i): p.grad.numpy() for i, p in enumerate(clipped)},
             norm=np.float64(norm), lr=LR, wd=WD, steps=STEPS, max_norm=MAX_NORM,
             torch_version=torch.__version__)


if __name__ == '__main__':
    main(sys.argv[1])
