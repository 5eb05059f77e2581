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

import cv2

from .errors import ArgumentParser, UsageError, check_minimums, run_cli
from .utils.metrics import evaluate_panoptic_files, format_results

__all__ = ['main', 'parse_args', 'cli']


def parse_args(argv=None):
    """Command-line arguments of ``gluonpan-evaluate``."""
    parser = ArgumentParser(prog='python -m gluonpan.evaluate', description=__doc__.split('\n')[0],
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
    check_minimums(parser, args, {'workers': 1})
    for flag in ('gt_json', 'pred_json', 'gt_folder', 'pred_folder'):
        _check_given_path(parser, flag, getattr(args, flag), folder=flag.endswith('folder'))
    if args.output:
        _check_output(parser, args.output)
    args.gt_folder = args.gt_folder or os.path.splitext(args.gt_json)[0]
    args.pred_folder = args.pred_folder or os.path.splitext(args.pred_json)[0]
    return args


def _check_given_path(parser, dest, path, folder):
    """A path a flag names must exist and be a file (``folder``: a folder); a usage error if not."""
    if path is None:
        return
    flag = '--' + dest.replace('_', '-')
    if not os.path.exists(path):
        parser.error('{} {} does not exist'.format(flag, path))
    if folder != os.path.isdir(path):
        parser.error('{} {} is a {}, not a {}'.format(flag, path, *(
            ('file', 'folder') if folder else ('folder', 'file'))))


def _check_output(parser, path):
    """``--output`` must be writable: checked before the evaluation, not after it."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        parser.error('--output {} is a folder, not a file'.format(path))
    if not os.path.isdir(parent):
        parser.error('--output {}: folder {} does not exist'.format(path, parent))


def _write_results(path, out):
    """Write the results JSON; a usage error naming ``--output`` if it cannot be written."""
    try:
        with open(path, 'w') as f:
            json.dump(out, f, indent=2, sort_keys=True)
    except OSError as err:
        raise UsageError('cannot write --output {}: {}'.format(path, err.strerror or err)) from None


def main(argv=None):
    """Run the evaluation, log the tables, optionally write JSON; returns the results dict.

    Bad input raises a :class:`gluonpan.errors.InputError` naming the file (run as a command,
    :func:`gluonpan.errors.run_cli` turns it into one line and exit status 2 or 1).
    """
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    args = parse_args(argv)
    cv2.setNumThreads(1)  # one thread per worker process, as --workers says
    results = evaluate_panoptic_files(args.gt_json, args.gt_folder, args.pred_json,
                                      args.pred_folder, workers=args.workers)
    logging.info('%s', format_results(results))
    logging.info('%d images (%s format) in %.2f s', results['num_images'], results['format'],
                 results['seconds'])
    if args.output:
        out = dict(results, gt_json=args.gt_json, gt_folder=args.gt_folder,
                   pred_json=args.pred_json, pred_folder=args.pred_folder)
        _write_results(args.output, out)
        logging.info('results written to %s', args.output)
    return results


def cli():
    """The command (``python -m gluonpan.evaluate``, the ``gluonpan-evaluate`` entry point):
    :func:`main` through :func:`gluonpan.errors.run_cli` (one error line, exit status 0/1/2)."""
    run_cli(main)


if __name__ == '__main__':
    cli()
