"""Semantic segmentation of images: a label PNG (Cityscapes label ids or ADE20K classes) and a
coloured overlay per image.

    python scripts/segmentation/demo_semantic_fpn.py --pretrained runs/x/model-final.params \\
        --images street.png more_images/ --out-dir demo_out

The program (every flag) is :mod:`gluonpan.tools.demo`, shared by every architecture.
"""
from gluonpan.errors import run_cli
from gluonpan.tools import entry_points, demo

parse_args, main = entry_points(demo, 'semantic_fpn')

if __name__ == '__main__':
    run_cli(main)
