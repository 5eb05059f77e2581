"""Train Semantic FPN: data-parallel over GPUs (or CPU), exact resume, periodic mIoU evaluation.

Cityscapes recipe (mmsegmentation's ``fpn_r50`` 512x1024 80k; the four seed recipes are in
:mod:`gluonpan.tasks.semantic`)::

    python scripts/segmentation/train_semantic_fpn.py --network resnet50_v1b --dataset citys \\
        --gpus 0,1,2,3 --num-workers 16 --batch-size 8 --epochs 215 --pretrained-base

The built-in synthetic dataset on the CPU (generated on first use), about 10 minutes on 2 cores::

    OMP_NUM_THREADS=2 python scripts/segmentation/train_semantic_fpn.py \\
        --config scripts/segmentation/configs/synthetic_quick.json

Every flag (``--resume`` to continue a run exactly, ``--config`` for a recipe file) is the shared
train program's, :mod:`gluonpan.tools.train`.
"""
import mxnet as mx  # noqa: F401,I001  (first: it turns a parameter-server process into a server)

from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, train

parse_args, main = entry_points(train, 'semantic_fpn')

if __name__ == '__main__':
    run_cli(main)
