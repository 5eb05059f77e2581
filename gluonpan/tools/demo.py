"""The demo program of every architecture: segment image files, write the prediction files and a
coloured overlay per image (the task says which: panoptic PNG + JSON, or a label PNG).

One unreadable image does not stop the others: every readable image is segmented, and the run
ends with one error line naming the ones that could not be (exit status 1).
"""
import logging
import os

from ..errors import ArgumentParser, DataError, InputError
from ..tasks import get_task
from ..utils.cli import (add_model_args, apply_run_config, check_pretrained, inference_model,
                         parse_ctx, run_args)
from ..utils.logger import setup_logger

__all__ = ['main', 'parse_args', 'make_parser', 'list_images']

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp')


def make_parser(task):
    """The flags of the demo program of ``task`` (a :mod:`~gluonpan.tasks` object)."""
    p = ArgumentParser(description='{} demo.'.format(task.title))
    add_model_args(p)
    p.add_argument('--dataset', choices=sorted(task.datasets), default=None,
                   help="the classes the model was trained on (default: the training run's, "
                        "else {})".format(task.default_dataset))
    p.add_argument('--images', nargs='+', required=True, help='image files or folders')
    p.add_argument('--out-dir', default='demo_out')
    p.add_argument('--gpus', default='', help="GPU id, e.g. 0; '' for the CPU")
    task.add_demo_args(p)
    return p


def parse_args(arch, argv=None):
    """Command line (with the ``--config`` recipe's defaults, :func:`~gluonpan.utils.cli.
    apply_run_config`) of the demo of architecture ``arch`` -> checked arguments
    (``args.task``)."""
    task = get_task(arch)
    p = make_parser(task)
    apply_run_config(p, argv, task)
    args = p.parse_args(argv)
    check_pretrained(p, args, task)
    missing = [path for path in args.images if not os.path.exists(path)]
    if missing:
        p.error('--images: no such file or folder: {}'.format(', '.join(missing)))
    task.check_demo_args(p, args)
    args.task = task
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


def main(arch, argv=None):
    """Segment every image; returns the output path stems."""
    args = parse_args(arch, argv)
    task = args.task
    setup_logger()
    saved = run_args(args.pretrained)
    args.dataset = args.dataset or saved.get('dataset') or task.default_dataset
    net = inference_model(args, parse_ctx(args.gpus)[:1], saved, task.demo_categories(args),
                          task)
    os.makedirs(args.out_dir, exist_ok=True)
    outputs, failed = [], []
    for path in list_images(args.images):
        try:
            stem, description = task.demo_image(net, path, args.out_dir, args, saved)
        except InputError as err:  # one unreadable image does not stop the others
            logging.warning('skipped %s', err)
            failed.append(path)
            continue
        logging.info('%s: %s -> %s_overlay.png', path, description, stem)
        outputs.append(stem)
    if failed:
        raise DataError('{} of {} images could not be segmented: {} (see the warnings above)'
                        .format(len(failed), len(failed) + len(outputs), ', '.join(failed)))
    return outputs
