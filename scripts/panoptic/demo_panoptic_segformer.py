"""Run a Panoptic SegFormer on your own images: for each, a panoptic PNG, its segments as JSON and
an overlay (``{stem}_panoptic.png``, ``{stem}_panoptic.json``, ``{stem}_overlay.png``).

Example, with weights from ``train_panoptic_segformer.py``::

    python scripts/panoptic/demo_panoptic_segformer.py \\
        --pretrained RUN/panoptic_segformer_resnet18_v1b_citys-final.params \\
        --images street.png folder_of_images/ --out-dir demo_out

Flags: :mod:`gluonpan.tools.demo` (the same for every model).
"""
from gluonpan.errors import run_cli
from gluonpan.tools import demo, entry_points

parse_args, main = entry_points(demo, 'panoptic_segformer')

if __name__ == '__main__':
    run_cli(main)
