"""Check a prepared panoptic dataset: every image and PNG decodes and matches its JSON.

    python -m gluonpan.data.check --dataset citys --root ~/.mxnet/datasets/citys --split val

Loads every sample through the same code as training (so a file that would stop a training run
stops this check first, with its name), and logs per-class segment and instance counts.
"""
import collections
import logging
import os

from tqdm import tqdm

from ..errors import ArgumentParser, DataError, run_cli
from .cityscapes_panoptic import CityscapesPanoptic
from .coco_panoptic import COCOPanoptic

__all__ = ['check_dataset', 'main']

DATASETS = {'citys': CityscapesPanoptic, 'coco': COCOPanoptic}


def check_dataset(dataset):
    """Decode every sample of ``dataset``; return per-category segment and instance counts.

    Raises
    ------
    gluonpan.errors.InputError
        The dataset is empty, or a sample's files are missing or broken (named).

    Returns
    -------
    dict
        ``images``, ``segments`` (Counter by category name), ``instances`` (Counter by thing
        name, crowd excluded), ``crowd`` (Counter), ``void_fraction`` (mean over images).
    """
    if not len(dataset):
        raise DataError('{} has no images: nothing to check'.format(
            getattr(dataset, 'json_path', dataset)))
    cats = dataset.categories
    segments, instances, crowd = (collections.Counter() for _ in range(3))
    void = 0.0
    for i in tqdm(range(len(dataset)), desc='check', leave=False):
        s = dataset[i]
        void += float((s['pan_ids'] == 0).mean())
        for seg in s['segments_info']:
            name = cats.by_id[int(seg['category_id'])]['name']
            segments[name] += 1
            crowd[name] += int(bool(seg.get('iscrowd', 0)))
        for c in s['gt_classes']:
            instances[cats.thing_names()[int(c)]] += 1
    return {'images': len(dataset), 'segments': segments, 'instances': instances, 'crowd': crowd,
            'void_fraction': void / max(1, len(dataset))}


def main(argv=None):
    """Check the given splits and log their per-class counts; returns 0.

    Bad input raises a :class:`gluonpan.errors.InputError` naming the file (run as a command,
    :func:`gluonpan.errors.run_cli` turns it into one line and exit status 2 or 1).
    """
    parser = ArgumentParser(prog='python -m gluonpan.data.check',
                            description='Check a prepared panoptic dataset.')
    parser.add_argument('--dataset', choices=sorted(DATASETS), default='citys')
    parser.add_argument('--root', required=True, help='dataset root')
    parser.add_argument('--split', nargs='+', default=['train', 'val'])
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.expanduser(args.root)):
        parser.error('--root {} is not a folder'.format(args.root) if os.path.exists(
            os.path.expanduser(args.root)) else '--root {} does not exist'.format(args.root))
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    for split in args.split:
        ds = DATASETS[args.dataset](args.root, split)
        r = check_dataset(ds)
        logging.info('%s %s: %d images OK, %.1f%% void pixels', args.dataset, split, r['images'],
                     100 * r['void_fraction'])
        for c in ds.categories.categories:
            n = r['segments'][c['name']]
            if n:
                logging.info('  %-14s %5d segments%s', c['name'], n,
                             '  %5d instances %4d crowd' % (r['instances'][c['name']],
                                                            r['crowd'][c['name']])
                             if c['isthing'] else '')
    return 0


if __name__ == '__main__':
    run_cli(main)
