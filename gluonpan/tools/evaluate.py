"""The eval program of every architecture: a trained model on a dataset split, scored with the
task's metric (PQ, mIoU), predictions written in the official formats, overlays.

``--pretrained`` is a ``.params`` file (the ``args.json`` its training run wrote beside it
supplies ``--network``, ``--dataset``, the dataset root and every model option) or a zoo name of
the architecture, whose released weights are downloaded on first use.  The task
(:mod:`gluonpan.tasks`) brings the dataset, its flags, the model options a loaded model needs and
the evaluation itself.
"""
import json
import logging
import os

import cv2
import mxnet as mx

from ..errors import ArgumentParser, UsageError
from ..tasks import get_task
from ..utils.cli import (add_dataset_args, add_model_args, apply_run_config, check_minimums,
                         check_pretrained, inference_model, parse_ctx, run_args)
from ..utils.logger import setup_logger

__all__ = ['main', 'parse_args', 'make_parser']


def make_parser(task):
    """The flags of the eval program of ``task`` (a :mod:`~gluonpan.tasks` object)."""
    p = ArgumentParser(description='Evaluate {}.'.format(task.title))
    add_model_args(p)
    add_dataset_args(p, task.datasets)
    p.add_argument('--split', default='val')
    p.add_argument('--gpus', default='0', help="GPU ids, e.g. 0,1; '' for the CPU")
    p.add_argument('--num-workers', '-j', type=int, default=2, help='image-reading processes')
    p.add_argument('--save-dir', default=None, help='default: beside --pretrained, eval_<split>/')
    p.add_argument('--overlays', type=int, default=8, help='overlay PNGs to write')
    task.add_eval_args(p)
    p.add_argument('--no-hybridize', action='store_true')
    return p


def parse_args(arch, argv=None):
    """Command line (with the ``--config`` recipe's defaults, :func:`~gluonpan.utils.cli.
    apply_run_config`) of the evaluation of architecture ``arch`` -> checked arguments
    (``args.task`` is its :mod:`~gluonpan.tasks` object)."""
    task = get_task(arch)
    p = make_parser(task)
    apply_run_config(p, argv, task)
    args = p.parse_args(argv)
    check_minimums(p, args, {'num_workers': 0, 'overlays': 0})
    check_pretrained(p, args, task)
    task.check_eval_args(p, args)
    if args.save_dir is None:
        base = os.path.dirname(os.path.abspath(args.pretrained)) \
            if os.path.isfile(args.pretrained) else os.path.join('runs', args.pretrained)
        args.save_dir = os.path.join(base, 'eval_{}'.format(args.split))
    args.task = task
    return args


def main(arch, argv=None):
    """Predict the split, write official-format files and overlays; returns the task's results
    (:meth:`~gluonpan.tasks.base.Task.evaluate`)."""
    args = parse_args(arch, argv)
    task = args.task
    setup_logger(os.path.join(args.save_dir, 'eval.log'))
    logging.info('arguments: %s', json.dumps({k: v for k, v in vars(args).items() if k != 'task'},
                                             sort_keys=True))
    cv2.setNumThreads(1)
    ctx = [mx.cpu()] if args.onnx is not None else parse_ctx(args.gpus)  # onnxruntime: CPU
    saved = run_args(args.pretrained)
    args.dataset = args.dataset or saved.get('dataset') or task.default_dataset
    if args.dataset not in task.datasets:  # a run record of another architecture's data
        raise UsageError('--dataset {} (from the args.json beside --pretrained) is not a {} '
                         'dataset ({}); give --dataset'.format(
                             args.dataset, task.title, ', '.join(sorted(task.datasets))))
    if args.dataset_root is None and args.dataset == saved.get('dataset'):
        args.dataset_root = saved.get('dataset_root')
    dataset = task.get_dataset(args, args.split, task.val_transform())
    net = inference_model(args, ctx, saved, task.model_categories(args, dataset), task)
    return task.evaluate(net, dataset, ctx, args, out_dir=args.save_dir, overlays=args.overlays,
                         num_workers=args.num_workers, saved=saved)
