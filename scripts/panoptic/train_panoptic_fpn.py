"""Train Panoptic FPN: data-parallel over GPUs (or CPU), exact resume, periodic PQ evaluation.

Cityscapes recipe (8 GPUs)::

    python scripts/panoptic/train_panoptic_fpn.py --network resnet50_v1b --gpus 0,1,2,3,4,5,6,7 \\
        --num-workers 32 --batch-size 8 --log-interval 10 --save-interval 20 --epochs 700 \\
        --lr_decay_epoch 430,590 --lr-warmup 4000 --pretrained-base

The built-in synthetic dataset on the CPU (generated on first use), <= 10 minutes on 2 cores::

    OMP_NUM_THREADS=2 python scripts/panoptic/train_panoptic_fpn.py \\
        --config scripts/panoptic/configs/synthetic_quick.json

Every flag (``--resume`` to continue a run exactly, ``--config`` for a recipe file) is the shared
train program's, :mod:`gluonpan.tools.train`.
"""
import mxnet as mx  # noqa: F401,I001  (first: it turns a parameter-server process into a server)

from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, train

parse_args, main = entry_points(train, 'panoptic_fpn')

if __name__ == '__main__':
    run_cli(main)
