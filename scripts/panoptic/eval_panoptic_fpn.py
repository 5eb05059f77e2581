"""Evaluate Panoptic FPN: predictions in the official panoptic format, PQ tables, overlays.

    python scripts/panoptic/eval_panoptic_fpn.py --network resnet50_v1b --gpus 0 \\
        --pretrained ./panoptic_fpn_resnet50_v1b_citys-final.params

Writes ``{save-dir}/panoptic_pred.json`` + ``{save-dir}/panoptic_pred/*.png`` (accepted unchanged by
cityscapesscripts' ``csEvalPanopticSemanticLabeling`` and by ``python -m gluonpan.evaluate``),
``pq.json`` and overlay PNGs, and prints the per-class and All/Things/Stuff tables.  The program
(every flag) is :mod:`gluonpan.tools.evaluate`, shared by every architecture.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, evaluate

parse_args, main = entry_points(evaluate, 'panoptic_fpn')

if __name__ == '__main__':
    run_cli(main)
