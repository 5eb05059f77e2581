"""Train Panoptic SegFormer (queries, multi-scale deformable attention, Hungarian matching).

The reference's COCO R50 1x (``panformer_r50_12e_coco_panoptic``: 8 GPUs x 1 image, AdamW lr
1.4e-4, weight decay 1e-4, gradients clipped to a global norm of 0.1, 12 epochs with the rate
x0.1 after 8; not run here, no GPU in this workplace runs MXNet; these optimizer settings are the
defaults of this script)::

    python scripts/panoptic/train_panoptic_segformer.py --dataset coco --network resnet50_v1b \\
        --gpus 0,1,2,3,4,5,6,7 --batch-size 8 --epochs 12 --lr-decay-epoch 8 --pretrained-base

``--resume``, ``--config`` and every other flag belong to :mod:`gluonpan.tools.train`, the train
program of all models.
"""
import mxnet as mx  # noqa: F401,I001  (first: it turns a parameter-server process into a server)

from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, train

parse_args, main = entry_points(train, 'panoptic_segformer')

if __name__ == '__main__':
    run_cli(main)
