"""Panoptic segmentation of images: panoptic PNG + JSON and a coloured overlay per image.

    python scripts/panoptic/demo_panoptic_fpn.py --pretrained runs/x/model-final.params \\
        --images street.png more_images/ --out-dir demo_out
"""
import logging
import os

import gluonpan
from gluonpan.data.categories import id2rgb
from gluonpan.data.io import read_image
from gluonpan.errors import ArgumentParser, DataError, InputError, run_cli
from gluonpan.utils.checkpoint import atomic_write_json
from gluonpan.utils.cli import (DATASETS, add_fusion_args, add_model_args, check_pretrained,
                                fusion_kwargs, load_model, parse_ctx, run_args)
from gluonpan.utils.logger import setup_logger
from gluonpan.utils.panoptic_writer import imwrite_rgb, json_value
from gluonpan.utils.visualize import panoptic_overlay

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp')


def parse_args(argv=None):
    """Command-line arguments of the demo."""
    p = ArgumentParser(description='Panoptic FPN demo.')
    add_model_args(p)
    p.add_argument('--dataset', choices=sorted(DATASETS), default=None,
                   help="the category set the model was trained on (default: the training run's, "
                        "else citys)")
    p.add_argument('--categories-json', default=None,
                   help='COCO-format models: a panoptic JSON of the dataset (its category ids); '
                        "default: the categories in the training run's args.json")
    p.add_argument('--images', nargs='+', required=True, help='image files or folders')
    p.add_argument('--out-dir', default='demo_out')
    p.add_argument('--gpus', default='', help="GPU id, e.g. 0; '' for the CPU")
    add_fusion_args(p)
    args = p.parse_args(argv)
    check_pretrained(p, args)
    missing = [path for path in args.images if not os.path.exists(path)]
    if missing:
        p.error('--images: no such file or folder: {}'.format(', '.join(missing)))
    if args.categories_json is not None and not os.path.isfile(args.categories_json):
        p.error('--categories-json {}: no such file'.format(args.categories_json))
    return args


def list_images(paths):
    """Files given directly, plus the images inside given folders (sorted)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if f.lower().endswith(IMAGE_EXTS))
        else:
            files.append(path)
    if not files:
        raise DataError('--images {}: no {} images there'.format(' '.join(paths),
                                                                  '/'.join(IMAGE_EXTS)))
    return files


def segment_image(net, path, out_dir, thresholds):
    """Read, segment and write one image -> (output stem, segments_info)."""
    image = read_image(path, allow_gray=True)
    pan_ids, segments = gluonpan.predict(net, image, **thresholds)
    stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
    imwrite_rgb(stem + '_panoptic.png', id2rgb(pan_ids))
    atomic_write_json(stem + '_panoptic.json', {
        'file_name': os.path.basename(path),
        'segments_info': [{k: json_value(k, v) for k, v in s.items()} for s in segments]})
    imwrite_rgb(stem + '_overlay.png', panoptic_overlay(image, pan_ids, segments, net.categories))
    return stem, segments


def main(argv=None):
    """Segment every image; returns the output path stems."""
    args = parse_args(argv)
    setup_logger()
    saved = run_args(args.pretrained)
    args.dataset = args.dataset or saved.get('dataset') or 'citys'
    net = load_model(args, parse_ctx(args.gpus)[:1], saved, args.categories_json)
    net.hybridize(static_alloc=True)
    os.makedirs(args.out_dir, exist_ok=True)
    outputs, failed = [], []
    for path in list_images(args.images):
        try:
            stem, segments = segment_image(net, path, args.out_dir, fusion_kwargs(args, saved))
        except InputError as err:  # one unreadable image does not stop the others
            logging.warning('skipped %s', err)
            failed.append(path)
            continue
        names = [net.categories.by_id[s['category_id']]['name'] for s in segments if s['isthing']]
        logging.info('%s: %d segments (%d instances: %s) -> %s_overlay.png', path, len(segments),
                     len(names), ', '.join(names) or 'none', stem)
        outputs.append(stem)
    if failed:
        raise DataError('{} of {} images could not be segmented: {} (see the warnings above)'
                        .format(len(failed), len(failed) + len(outputs), ', '.join(failed)))
    return outputs


if __name__ == '__main__':
    run_cli(main)
