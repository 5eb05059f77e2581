"""The semantic task: Cityscapes / ADE20K semantic data, mIoU, label-id and ADE20K PNG predictions.

Seed recipes: mmsegmentation's ``configs/sem_fpn`` (SGD lr 0.01, momentum 0.9, wd 5e-4, poly
decay per iteration (power 0.9, min 1e-4), no warmup; the defaults of the train program here).
Cityscapes: 512x1024 crops, 80k iterations of 4 GPUs x 2 images = 215 epochs of 2975 images,
R50 74.52 / R101 75.80 mIoU.  ADE20K: 512x512 crops of images first scaled to fit 2048x512, 160k
iterations of 4 x 4 images = 127 epochs of 20210 images, R50 37.49 / R101 39.35 mIoU::

    python scripts/segmentation/train_semantic_fpn.py --network resnet50_v1b --dataset citys \\
        --gpus 0,1,2,3 --num-workers 16 --batch-size 8 --epochs 215 --pretrained-base
    python scripts/segmentation/train_semantic_fpn.py --network resnet101_v1b --dataset citys \\
        --gpus 0,1,2,3 --num-workers 16 --batch-size 8 --epochs 215 --pretrained-base
    python scripts/segmentation/train_semantic_fpn.py --network resnet50_v1b --dataset ade20k \\
        --gpus 0,1,2,3 --num-workers 16 --batch-size 16 --epochs 127 --crop-size 512x512 \\
        --pretrained-base
    python scripts/segmentation/train_semantic_fpn.py --network resnet101_v1b --dataset ade20k \\
        --gpus 0,1,2,3 --num-workers 16 --batch-size 16 --epochs 127 --crop-size 512x512 \\
        --pretrained-base

(mmsegmentation's backbone is a ResNetV1c with trainable SyncBN; ours is gluoncv's ResNetV1b with
frozen batch norm, the head's batch norm trainable.)  Evaluation: whole images at one scale by
default; mmsegmentation's multi-scale + flip test is ``--test-scales 0.5,0.75,1.0,1.25,1.5,1.75
--flip``, its sliding window ``--test-mode slide --test-crop 769x769 --test-stride 513x513``.

A Cityscapes model (19 classes) evaluated on an ADE20K-layout dataset predicts ADE20K classes
through :data:`~gluonpan.data.categories.CITYSCAPES_TO_ADE20K`: the synthetic ADE20K holds our
19 classes under those ids, so the same model scores the same there.
"""
import logging
import os

import numpy as np
from mxnet.gluon.data import DataLoader

from ..data.batchify import val_batchify
from ..data.categories import (IGNORE_LABEL, ade20k_class_names, cityscapes_train_id_names,
                               cityscapes_train_id_to_ade20k)
from ..data.io import read_image
from ..data.semantic_dataset import ADE20KSemantic, CityscapesSemantic
from ..data.semantic_presets import SemanticTrainTransform, SemanticValTransform
from ..data.synthetic_ade import ADE20K_STAMP, ensure_ade20k
from ..errors import DataError, UsageError, read_json
from ..model_zoo.semantic_fpn import NUM_CLASSES, predict_semantic_labels
from ..utils.checkpoint import atomic_write_json
from ..utils.cli import dataset_root, ensure_synthetic, generate_synthetic, parse_numbers
from ..utils.engine import evaluate
from ..utils.metrics import SemanticMetric, evaluate_cityscapes_semantic_files
from ..utils.panoptic_writer import imwrite_rgb
from ..utils.semantic_writer import (SemanticWriter, semantic_overlay, write_ade20k_png,
                                     write_cityscapes_labels)
from .base import Task

__all__ = ['SemanticTask', 'DATASETS']

logger = logging.getLogger(__name__)

#: --dataset choices -> (model-zoo suffix, default root)
DATASETS = {'citys': ('citys', '~/.mxnet/datasets/citys'),
            'ade20k': ('ade', '~/.mxnet/datasets/ade'),
            'synthetic': ('citys', 'data/synthetic_citys'),
            'synthetic_ade': ('ade', 'data/synthetic_ade20k')}
#: zoo suffix -> the layout of the data and of the prediction files (SemanticWriter's names)
LAYOUTS = {'citys': 'cityscapes', 'ade': 'ade20k'}
#: mmsegmentation's ADE20K RandomResize / test Resize scale (keep_ratio)
ADE20K_BASE_SCALE = (2048, 512)
TEST_MODES = ('whole', 'slide')


def _synthetic_ade(args, root):
    """Make the synthetic ADE20K in ``root`` as the synthetic Cityscapes is made
    (:func:`~gluonpan.utils.cli.generate_synthetic`): when absent (no complete stamp) or when
    ``--synthetic-*`` flags ask."""
    stamp = os.path.join(root, ADE20K_STAMP)
    made = os.path.isfile(stamp) and bool(read_json(stamp, 'synthetic ADE20K stamp').get(
        'complete'))
    generate_synthetic(args, root, ensure_ade20k, made, ('training', 'validation'))


def _base_factor(base_scale, height, width):
    """mmsegmentation's keep-ratio rescale factor of an image into ``base_scale`` (1 without)."""
    if base_scale is None:
        return 1.0
    return min(max(base_scale) / float(max(height, width)),
               min(base_scale) / float(min(height, width)))


class _EngineMetric(object):
    """:class:`SemanticMetric` behind the engine's ``update(gt, gt_info, pred, pred_info,
    image_id)``; a bad value names the image."""

    def __init__(self, metric):
        self.metric = metric

    def reset(self):
        self.metric.reset()

    def update(self, gt, gt_info, pred, pred_info, image_id=None):
        try:
            self.metric.update(pred, gt)
        except DataError as err:
            raise DataError('image {}: {}'.format(image_id, err)) from None


class SemanticTask(Task):
    """Semantic models (Semantic FPN): every pixel a class, scored with mIoU.

    Flags: ``--base-scale`` (train and eval; ``auto``: mmsegmentation's 2048x512 on ADE20K)
    and, for eval, the test-time options of
    :func:`~gluonpan.model_zoo.semantic_fpn.predict_semantic` (``--test-mode``,
    ``--test-crop``, ``--test-stride``, ``--test-scales``, ``--flip``).  Validations during
    training predict whole images at one scale.
    """

    datasets = DATASETS
    train_defaults = {'lr_mode': 'poly', 'lr_power': 0.9, 'lr_min': 1e-4, 'lr': 0.01, 'wd': 5e-4,
                      'momentum': 0.9, 'lr_warmup': 0, 'crop_size': '512x1024',
                      'scale_range': '0.5,2.0', 'batch_size': 8, 'epochs': 215,
                      'val_interval': 20}
    history_keys = ('mIoU', 'mAcc', 'aAcc')

    # --- flags ------------------------------------------------------------------------------
    def _add_base_scale(self, parser):
        parser.add_argument('--base-scale', default='auto',
                            help='LONGxSHORT: first rescale every image, keeping its aspect, to '
                                 'fit it (mmsegmentation\'s ADE20K 2048x512); "none"; "auto": '
                                 '2048x512 on ade20k, none otherwise')

    def _check_base_scale(self, parser, args):
        text = str(args.base_scale).lower()
        if text == 'auto':
            args.base_scale = 'auto'  # resolved once --dataset is known (base_scale)
        elif text == 'none':
            args.base_scale = None
        else:
            args.base_scale = parse_numbers(parser, '--base-scale', text, 'x', int, 2)
            if min(args.base_scale) < 1:
                parser.error('--base-scale {!r} must be positive'.format(text))

    def base_scale(self, args):
        """The ``(long, short)`` rescale of ``--base-scale`` for ``--dataset``, or ``None``."""
        value = getattr(args, 'base_scale', None)
        if value == 'auto':
            return ADE20K_BASE_SCALE if args.dataset == 'ade20k' else None
        return value

    def add_train_args(self, parser):
        self._add_base_scale(parser)

    def check_train_args(self, parser, args):
        self._check_base_scale(parser, args)

    def add_eval_args(self, parser):
        self._add_base_scale(parser)
        parser.add_argument('--test-mode', choices=TEST_MODES, default='whole',
                            help='whole images, or sliding windows of --test-crop')
        parser.add_argument('--test-crop', default=None, help='HxW window of --test-mode slide')
        parser.add_argument('--test-stride', default=None,
                            help='HxW step of the windows (default: the crop, no overlap)')
        parser.add_argument('--test-scales', default='1.0',
                            help='comma-separated resize factors averaged (mmsegmentation\'s '
                                 'multi-scale test: 0.5,0.75,1.0,1.25,1.5,1.75)')
        parser.add_argument('--flip', action='store_true', help='also predict every view flipped')

    def check_eval_args(self, parser, args):
        self._check_base_scale(parser, args)
        args.test_scales = parse_numbers(parser, '--test-scales', args.test_scales, ',', float)
        if not all(0 < s < float('inf') for s in args.test_scales):
            parser.error('--test-scales {} must be positive factors'.format(args.test_scales))
        if args.test_mode == 'whole':
            for flag in ('--test-crop', '--test-stride'):
                if getattr(args, flag[2:].replace('-', '_')) is not None:
                    parser.error('{} is for --test-mode slide only'.format(flag))
            return
        if args.test_crop is None:
            parser.error('--test-mode slide needs --test-crop HxW (the window, e.g. 769x769)')
        args.test_crop = parse_numbers(parser, '--test-crop', args.test_crop, 'x', int, 2)
        args.test_stride = args.test_crop if args.test_stride is None else parse_numbers(
            parser, '--test-stride', args.test_stride, 'x', int, 2)
        if min(args.test_crop + args.test_stride) < 1 or any(
                s > c for s, c in zip(args.test_stride, args.test_crop)):
            parser.error('--test-crop {} and --test-stride {}: positive sizes, the stride at most '
                         'the crop (no pixel left outside every window)'.format(
                             'x'.join(map(str, args.test_crop)),
                             'x'.join(map(str, args.test_stride))))

    # --- data -------------------------------------------------------------------------------
    def layout(self, dataset):
        """``'cityscapes'`` or ``'ade20k'``: the on-disk layout of ``--dataset``."""
        return LAYOUTS[self.datasets[dataset][0]]

    def get_dataset(self, args, split, transform=None):
        root = dataset_root(args, self.datasets, ('synthetic', 'synthetic_ade'))
        if args.dataset == 'synthetic':
            ensure_synthetic(args, root, split)  # the panoptic task's synthetic Cityscapes
        elif args.dataset == 'synthetic_ade':
            _synthetic_ade(args, root)
        if self.layout(args.dataset) == 'cityscapes':
            return CityscapesSemantic(root, split, transform=transform)
        return ADE20KSemantic(root, split, transform=transform)

    def train_transform(self, args, net, dataset):
        return SemanticTrainTransform(args.crop, args.scales, base_scale=self.base_scale(args))

    def val_transform(self):
        return SemanticValTransform()

    # --- evaluation -------------------------------------------------------------------------
    def class_map(self, net, dataset):
        """``None`` when ``net`` predicts ``dataset``'s classes, else the lookup table from its
        classes to the dataset's (a Cityscapes model on ADE20K data); a usage error otherwise."""
        if net.num_classes == dataset.num_classes:
            return None
        citys = NUM_CLASSES['citys']
        if net.num_classes == citys and isinstance(dataset, ADE20KSemantic):
            logger.info('the model predicts the 19 Cityscapes classes: its predictions are mapped '
                        'to ADE20K classes through CITYSCAPES_TO_ADE20K (gluonpan/data/'
                        'categories.py), the ids the synthetic ADE20K gives our 19 classes')
            return cityscapes_train_id_to_ade20k()[:citys].astype(np.int32) - 1  # ADE20K id - 1
        raise UsageError('a model of {} classes cannot be evaluated on {} data ({} classes)'
                         .format(net.num_classes, type(dataset).__name__, dataset.num_classes))

    def test_options(self, args, height, width):
        """The options of :func:`~gluonpan.model_zoo.semantic_fpn.predict_semantic` for an image
        of ``height x width`` from the test-time flags (absent ones: whole image, one scale):
        the scales are multiplied by the ``--base-scale`` rescale factor of the image."""
        factor = _base_factor(self.base_scale(args), height, width)
        return dict(mode=getattr(args, 'test_mode', 'whole'),
                    crop_size=getattr(args, 'test_crop', None),
                    stride=getattr(args, 'test_stride', None), flip=getattr(args, 'flip', False),
                    scales=[s * factor for s in getattr(args, 'test_scales', (1.0,))])

    def demo_image(self, net, path, out_dir, args, saved):
        """A label PNG in the layout of the model's dataset (Cityscapes label ids, ADE20K
        classes + 1) and an overlay."""
        from .. import predict
        image = read_image(path, allow_gray=True)
        classes = predict(net, image, **self.test_options(args, *image.shape[:2]))
        layout = self.layout(args.dataset)
        stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
        if layout == 'cityscapes':
            write_cityscapes_labels(stem + '_labelIds.png', classes)
            names = cityscapes_train_id_names()
        else:
            write_ade20k_png(stem + '_ade20k.png', classes, net.num_classes)
            names = ade20k_class_names()
        imwrite_rgb(stem + '_overlay.png', semantic_overlay(
            image, classes, 'cityscapes' if layout == 'cityscapes' else None))
        ids, counts = np.unique(classes, return_counts=True)
        top = sorted(zip(counts.tolist(), ids.tolist()), reverse=True)[:5]
        return stem, '{} classes, largest: {}'.format(len(ids), ', '.join(
            '{} {:.0f}%'.format(names[k], 100. * n / classes.size) for n, k in top))

    def evaluate(self, net, dataset, ctx, args, out_dir=None, overlays=0, num_workers=0,
                 saved=None):
        """mIoU / mAcc / aAcc over ``dataset`` (:class:`SemanticMetric`); with ``out_dir`` the
        predictions in the official format in ``{out_dir}/semantic_pred/`` (Cityscapes label-id
        PNGs, scored again from the files for class / category IoU and iIoU; ADE20K PNGs),
        ``overlays`` overlays in ``{out_dir}/overlays/`` and ``{out_dir}/miou.json``."""
        layout = 'cityscapes' if isinstance(dataset, CityscapesSemantic) else 'ade20k'
        lut = self.class_map(net, dataset)
        metric = SemanticMetric(dataset.num_classes, IGNORE_LABEL, dataset.class_names)
        pred_dir = os.path.join(out_dir, 'semantic_pred') if out_dir else None
        writer = SemanticWriter(pred_dir, layout, os.path.join(out_dir, 'overlays'),
                                dataset.num_classes) if out_dir else None
        written = [0]

        def predict(network, data):
            labels = predict_semantic_labels(network, data, **self.test_options(
                args, *data.shape[2:]))[0]  # (H, W)
            return (labels if lut is None else lut[labels]), None

        def output(sample, labels, _):
            if writer is not None:
                image = sample['image'] if written[0] < overlays else None
                writer.write(sample['file_name'], labels, image)
                written[0] += image is not None

        loader = DataLoader(dataset, batch_size=1, batchify_fn=val_batchify,
                            num_workers=num_workers)
        evaluate(net, loader, ctx, _EngineMetric(metric), predict, output,
                 gt_keys=('sem_seg', None))
        results = metric.results()
        if lut is not None:
            mapped = [dataset.class_names[k] for k in lut]
            results['mIoU_mapped'] = float(np.nanmean([results['IoU'][n] for n in mapped]))
        if pred_dir and layout == 'cityscapes':
            results['cityscapes'] = evaluate_cityscapes_semantic_files(pred_dir, dataset.root,
                                                                       dataset.split)
        logger.info('semantic segmentation of %d images:\n%s', len(dataset), format_table(results))
        if out_dir:
            atomic_write_json(os.path.join(out_dir, 'miou.json'), results, indent=1,
                              default=_json_value)
            logger.info('predictions, miou.json and %d overlays written to %s', written[0], out_dir)
        return results

    def history(self, results):
        return {k: results[k] for k in self.history_keys}

    def summary(self, results):
        return 'mIoU {:.2f} (aAcc {:.2f}, mAcc {:.2f})'.format(
            100 * results['mIoU'], 100 * results['aAcc'], 100 * results['mAcc'])


def _json_value(value):
    """numpy arrays and scalars of the results, for ``json``."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else float(value)


def format_table(results):
    """The per-class IoU / Acc table (percent) of ``results``, with the iIoU column and the class /
    category averages of the Cityscapes files when they were scored.  Classes without pixels in
    either map are left out (counted as absent)."""
    files = results.get('cityscapes')
    lines = ['{:<24}{:>8}{:>8}{}'.format('class', 'IoU', 'Acc', '    iIoU' if files else '')]
    absent = 0
    for name, iou in results['IoU'].items():
        if np.isnan(iou):
            absent += 1
            continue
        row = '{:<24}{:>8.2f}{:>8.2f}'.format(name[:23], 100 * iou, 100 * results['Acc'][name])
        if files:  # iIoU: classes with instances only
            inst = files['classInstScores'][name]
            row += '{:>8}'.format('-' if np.isnan(inst) else '{:.2f}'.format(100 * inst))
        lines.append(row)
    lines.append('{:<24}{:>8.2f}{:>8.2f}   aAcc {:.2f}{}'.format(
        'mean', 100 * results['mIoU'], 100 * results['mAcc'], 100 * results['aAcc'],
        ' ({} classes absent)'.format(absent) if absent else ''))
    if 'mIoU_mapped' in results:
        lines.append('mIoU over the 19 mapped Cityscapes classes: {:.2f}'.format(
            100 * results['mIoU_mapped']))
    if files:
        lines.append('cityscapesscripts (files): IoU class {:.2f}, iIoU class {:.2f}, IoU '
                     'category {:.2f}, iIoU category {:.2f}'.format(
                         *(100 * files['averageScore' + k] for k in
                           ('Classes', 'InstClasses', 'Categories', 'InstCategories'))))
    return '\n'.join(lines)
