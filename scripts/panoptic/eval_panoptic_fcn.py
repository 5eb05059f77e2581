"""Score a PanopticFCN on Cityscapes or COCO val (PQ, mIoU) and write its predictions.

A trained run's weights need nothing else (the run's ``args.json`` names the model, its options
and thresholds)::

    python scripts/panoptic/eval_panoptic_fcn.py --gpus 0 \\
        --pretrained runs/panoptic_fcn_resnet50_v1b_citys/panoptic_fcn_resnet50_v1b_citys-final.params

The reference's test-time settings are model options: ``--model-kwargs '{"preset": "fast512"}'``
resizes every image to short side 512 (long side <= 854) and raises the centre / stuff
thresholds to 0.2 / 0.1, as ``PanopticFCN-R50-512-3x-FAST`` does; the fusion thresholds
(``--score-thresh``, default 0.2 here) are flags.  Output files, tables and flags are those of
every model's eval program, :mod:`gluonpan.tools.evaluate`.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, evaluate

parse_args, main = entry_points(evaluate, 'panoptic_fcn')

if __name__ == '__main__':
    run_cli(main)
