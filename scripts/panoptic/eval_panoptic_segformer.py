"""Score a Panoptic SegFormer on Cityscapes or COCO val (PQ, mIoU) and write its predictions.

A trained run's weights need nothing else (the run's ``args.json`` names the model, its options
and thresholds)::

    python scripts/panoptic/eval_panoptic_segformer.py --gpus 0 \\
        --pretrained runs/panoptic_segformer_resnet50_v1b_coco/panoptic_segformer_resnet50_v1b_coco-final.params

The mask-wise merging's thresholds are the reference's (quality 0.25, overlap 0.4 for things and
0.2 for stuff, no stuff area limit); ``--score-thresh`` sets both quality thresholds,
``--overlap-thresh`` the things' overlap.  Output files, tables and flags are those of every
model's eval program, :mod:`gluonpan.tools.evaluate`.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, evaluate

parse_args, main = entry_points(evaluate, 'panoptic_segformer')

if __name__ == '__main__':
    run_cli(main)
