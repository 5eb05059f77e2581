"""Evaluate Semantic FPN: mIoU, predictions in the official formats, overlays.

    python scripts/segmentation/eval_semantic_fpn.py --gpus 0 --pretrained \\
        runs/semantic_fpn_resnet50_v1b_citys/semantic_fpn_resnet50_v1b_citys-final.params

Writes ``{save-dir}/semantic_pred/*.png`` (Cityscapes: label-id PNGs that cityscapesscripts'
``csEvalPixelLevelSemanticLabeling`` reads unchanged, also scored here from the files for class /
category IoU and iIoU; ADE20K: class ``k`` stored as ``k + 1``), ``miou.json`` and overlays, and
logs the per-class table.  ``--test-scales 0.5,0.75,1.0,1.25,1.5,1.75 --flip`` is
mmsegmentation's multi-scale + flip test; ``--test-mode slide --test-crop 769x769 --test-stride
513x513`` its sliding window.  A Cityscapes model evaluated with ``--dataset synthetic_ade`` (or
``ade20k``) predicts ADE20K classes through ``CITYSCAPES_TO_ADE20K``.  The program (every flag)
is :mod:`gluonpan.tools.evaluate`, shared by every architecture.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, evaluate

parse_args, main = entry_points(evaluate, 'semantic_fpn')

if __name__ == '__main__':
    run_cli(main)
