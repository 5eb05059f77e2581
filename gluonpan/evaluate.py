"""Evaluate panoptic predictions (PNG folder + JSON) against ground truth: PQ/SQ/RQ and mIoU.

Numbers equal those of cityscapesscripts' ``evalPanopticSemanticLabeling`` and COCO's panopticapi
``pq_compute``.  The format (Cityscapes: string image ids; COCO: integer ids) is detected from the
ground truth.  Example (Cityscapes val, after ``cityscapesscripts``' ``createPanopticImgs``)::

    python -m gluonpan.evaluate \\
        --gt-json $CITYSCAPES_DATASET/gtFine/cityscapes_panoptic_val.json \\
        --pred-json results/panoptic_val.json --workers 2 --output results/pq.json

``--gt-folder``/``--pred-folder`` default to the JSON path without ``.json``, as in the references.
Prints the per-class table and the All/Things/Stuff table; ``--output`` writes every number as JSON.
"""
import argparse
import json
import logging
import os
import sys

import cv2

from .utils.metrics import evaluate_panoptic_files, format_results

__all__ = ['main', 'parse_args']


def parse_args(argv=None):
    """Command-line arguments of ``gluonpan-evaluate``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--gt-json', required=True, help='ground-truth panoptic JSON')
    parser.add_argument('--gt-folder', default=None,
                        help='ground-truth panoptic PNGs (default: --gt-json without .json)')
    parser.add_argument('--pred-json', required=True, help='predicted panoptic JSON')
    parser.add_argument('--pred-folder', default=None,
                        help='predicted panoptic PNGs (default: --pred-json without .json)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes over images (default 1)')
    parser.add_argument('--output', default=None, help='write the results as JSON to this file')
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error('--workers must be >= 1, got {}'.format(args.workers))
    args.gt_folder = args.gt_folder or os.path.splitext(args.gt_json)[0]
    args.pred_folder = args.pred_folder or os.path.splitext(args.pred_json)[0]
    return args


def main(argv=None):
    """Run the evaluation, log the tables, optionally write JSON; returns the results dict."""
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    cv2.setNumThreads(1)  # one thread per worker process, as --workers says
    try:
        results = evaluate_panoptic_files(args.gt_json, args.gt_folder, args.pred_json,
                                          args.pred_folder, workers=args.workers)
    except (KeyError, ValueError, OSError) as err:
        logging.error('error: %s', err.args[0] if err.args else err)
        sys.exit(1)
    logging.info('%s', format_results(results))
    logging.info('%d images (%s format) in %.2f s', results['num_images'], results['format'],
                 results['seconds'])
    if args.output:
        out = dict(results, gt_json=args.gt_json, gt_folder=args.gt_folder,
                   pred_json=args.pred_json, pred_folder=args.pred_folder)
        with open(args.output, 'w') as f:
            json.dump(out, f, indent=2, sort_keys=True)
        logging.info('results written to %s', args.output)
    return results


if __name__ == '__main__':
    main()
