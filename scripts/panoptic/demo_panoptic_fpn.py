"""Panoptic segmentation of images: panoptic PNG + JSON and a coloured overlay per image.

    python scripts/panoptic/demo_panoptic_fpn.py --pretrained runs/x/model-final.params \\
        --images street.png more_images/ --out-dir demo_out

The program (every flag) is :mod:`gluonpan.tools.demo`, shared by every architecture.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, demo

parse_args, main = entry_points(demo, 'panoptic_fpn')

if __name__ == '__main__':
    run_cli(main)
