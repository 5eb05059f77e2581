"""Train PanopticFCN (box-free: kernels from a position head, masks = kernel x features).

Quick start on the built-in synthetic Cityscapes (generated on first use; CPU, 2 cores)::

    OMP_NUM_THREADS=2 python scripts/panoptic/train_panoptic_fcn.py \\
        --config scripts/panoptic/configs/fcn_synthetic_quick.json

The reference's COCO 1x (``PanopticFCN-R50-1x``: 16 images per step, 90k steps ~ 12 epochs,
poly schedule, gradients clipped at 35; not run here, no GPU in this workplace runs MXNet)::

    python scripts/panoptic/train_panoptic_fcn.py --dataset coco --network resnet50_v1b \\
        --gpus 0,1,2,3,4,5,6,7 --batch-size 16 --epochs 12 --lr 0.01 --lr-mode poly \\
        --lr-warmup 1000 --lr-warmup-factor 0.001 --clip-gradient 35 --pretrained-base

Training with the deformable position head (the reference's default) needs GPUs: on the CPU add
``--model-kwargs '{"deform": false}'`` (the ResNet-18 models default to it).  ``--resume``,
``--config`` and every other flag belong to :mod:`gluonpan.tools.train`, the train program of all
models.
"""
import mxnet as mx  # noqa: F401,I001  (first: it turns a parameter-server process into a server)

from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, train

parse_args, main = entry_points(train, 'panoptic_fcn')

if __name__ == '__main__':
    run_cli(main)
