"""Evaluate Panoptic FPN: predictions in the official panoptic format, PQ tables, overlays.

    python scripts/panoptic/eval_panoptic_fpn.py --network resnet50_v1b --gpus 0 \\
        --pretrained ./panoptic_fpn_resnet50_v1b_citys-final.params

Writes ``{save-dir}/panoptic_pred.json`` + ``{save-dir}/panoptic_pred/*.png`` (accepted unchanged by
cityscapesscripts' ``csEvalPanopticSemanticLabeling`` and by ``python -m gluonpan.evaluate``),
``pq.json`` and overlay PNGs, and prints the per-class and All/Things/Stuff tables.
"""
import json
import logging
import os

import cv2

from gluonpan.data import PanopticValTransform
from gluonpan.errors import ArgumentParser, run_cli
from gluonpan.utils.cli import (add_dataset_args, add_fusion_args, add_model_args,
                                check_minimums, check_pretrained, evaluate_panoptic,
                                fusion_kwargs, get_dataset, is_coco_format, load_model, parse_ctx,
                                run_args)
from gluonpan.utils.logger import setup_logger


def parse_args(argv=None):
    """Command-line arguments of the evaluation."""
    p = ArgumentParser(description='Evaluate Panoptic FPN.')
    add_model_args(p)
    add_dataset_args(p)
    p.add_argument('--split', default='val')
    p.add_argument('--gpus', default='0', help="GPU ids, e.g. 0,1; '' for the CPU")
    p.add_argument('--num-workers', '-j', type=int, default=2, help='image-reading processes')
    p.add_argument('--save-dir', default=None, help='default: beside --pretrained, eval_<split>/')
    p.add_argument('--overlays', type=int, default=8, help='overlay PNGs to write')
    add_fusion_args(p)
    p.add_argument('--no-hybridize', action='store_true')
    args = p.parse_args(argv)
    check_minimums(p, args, {'num_workers': 0, 'overlays': 0})
    check_pretrained(p, args)
    if args.save_dir is None:
        base = os.path.dirname(os.path.abspath(args.pretrained)) \
            if os.path.isfile(args.pretrained) else os.path.join('runs', args.pretrained)
        args.save_dir = os.path.join(base, 'eval_{}'.format(args.split))
    return args


def main(argv=None):
    """Predict the split, write official-format files and overlays; returns the PQ results."""
    args = parse_args(argv)
    setup_logger(os.path.join(args.save_dir, 'eval.log'))
    logging.info('arguments: %s', json.dumps(vars(args), sort_keys=True))
    cv2.setNumThreads(1)
    ctx = parse_ctx(args.gpus)
    saved = run_args(args.pretrained)
    args.dataset = args.dataset or saved.get('dataset') or 'citys'
    if args.dataset_root is None and args.dataset == saved.get('dataset'):
        args.dataset_root = saved.get('dataset_root')
    dataset = get_dataset(args, args.split, PanopticValTransform())
    net = load_model(args, ctx, saved, dataset.categories if is_coco_format(args.dataset) else None)
    if not args.no_hybridize:
        net.hybridize(static_alloc=True)
    return evaluate_panoptic(net, dataset, ctx, out_dir=args.save_dir, overlays=args.overlays,
                             num_workers=args.num_workers, **fusion_kwargs(args, saved))


if __name__ == '__main__':
    run_cli(main)
