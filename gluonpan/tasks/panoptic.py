"""The panoptic task: Cityscapes / COCO panoptic data, PQ, panoptic PNG + JSON predictions.

:class:`PanopticTask` serves every panoptic model (PanopticFCN as it is); :class:`PanopticFPNTask`
adds what only Panoptic FPN has: anchors (``--anchor-sizes``, RPN targets in the data workers) and
its conventions, which a run records and a resumed run keeps; :class:`PanopticSegFormerTask` only
the reference's optimizer as the train program's defaults.
"""
import json
import os

from ..data import PanopticTrainTransform, PanopticValTransform
from ..nn.anchors import FPNAnchors
from ..utils.cli import (DATASETS, add_fusion_args, evaluate_panoptic, fusion_kwargs, get_dataset,
                         is_coco_format, parse_numbers)
from ..data.categories import id2rgb
from ..data.io import read_image
from ..utils.checkpoint import atomic_write_json
from ..utils.panoptic_writer import imwrite_rgb, json_value
from ..utils.visualize import panoptic_overlay
from .base import Task

__all__ = ['PanopticTask', 'PanopticFPNTask', 'PanopticSegFormerTask']


class PanopticTask(Task):
    """Panoptic models: things and stuff, scored with PQ.

    Train, eval and demo flags: the fusion thresholds (a training run records them, so its eval and
    demo use them too; unset ones are the model's defaults, ``net.fusion_defaults``).  Runs on
    COCO-format data record the categories, which a loaded model gets back
    (:meth:`load_kwargs`).  The training targets are the model's: ``net.train_targets()`` gives
    the callable the data workers run on each augmented sample.
    """

    datasets = DATASETS
    #: parameters gluoncv's and detectron2's recipes keep fixed on an ImageNet backbone
    frozen_with_pretrained_base = r'resnetv1b_(conv0_|layers1_|down1_|.*batchnorm).*'
    history_keys = ('PQ', 'SQ', 'RQ', 'PQ_th', 'PQ_st', 'mIoU')

    def add_train_args(self, parser):
        add_fusion_args(parser)

    def add_eval_args(self, parser):
        add_fusion_args(parser)

    def model_kwargs(self, args, categories, per_device):
        if is_coco_format(args.dataset):
            return {'categories': categories}  # COCO's category ids come from its panoptic JSON
        return {}

    def load_kwargs(self, saved, categories=None):
        """The categories (given, else the run's) of a COCO-format model."""
        categories = categories if categories is not None else saved.get('categories')
        return {} if categories is None else {'categories': categories}

    def model_categories(self, args, dataset):
        return dataset.categories if is_coco_format(args.dataset) else None

    def recorded_options(self, net):
        """Model options recorded with a run besides ``--model-kwargs``: ``net.options`` (the
        builder options that define the model, e.g. PanopticFCN's ``deform``)."""
        return dict(getattr(net, 'options', {}))

    def record(self, args, net):
        kwargs = json.loads(args.model_kwargs)
        out = {'model_kwargs': json.dumps(dict(self.recorded_options(net), **kwargs),
                                          sort_keys=True)}
        if is_coco_format(args.dataset):
            out['categories'] = net.categories.to_json()
        return out

    def get_dataset(self, args, split, transform=None):
        return get_dataset(args, split, transform)

    def train_transform(self, args, net, dataset):
        return PanopticTrainTransform(dataset.categories, crop_size=args.crop,
                                      scale_range=args.scales,
                                      targets=net.train_targets(dataset.categories))

    def val_transform(self):
        return PanopticValTransform()

    def fusion(self, args, saved, net):
        """The fusion thresholds of eval / demo: flags, else the run's, else the net's defaults."""
        return fusion_kwargs(args, saved, getattr(net, 'fusion_defaults', None))

    def evaluate(self, net, dataset, ctx, args, out_dir=None, overlays=0, num_workers=0,
                 saved=None):
        return evaluate_panoptic(net, dataset, ctx, out_dir=out_dir, overlays=overlays,
                                 num_workers=num_workers, **self.fusion(args, saved, net))

    def add_demo_args(self, parser):
        parser.add_argument('--categories-json', default=None,
                            help='COCO-format models: a panoptic JSON of the dataset (its category '
                                 "ids); default: the categories in the training run's args.json")
        self.add_eval_args(parser)

    def check_demo_args(self, parser, args):
        self.check_eval_args(parser, args)
        if args.categories_json is not None and not os.path.isfile(args.categories_json):
            parser.error('--categories-json {}: no such file'.format(args.categories_json))

    def demo_categories(self, args):
        return args.categories_json

    def demo_image(self, net, path, out_dir, args, saved):
        """Panoptic PNG (ids as RGB) + JSON of ``segments_info`` + overlay."""
        from .. import predict
        image = read_image(path, allow_gray=True)
        pan_ids, segments = predict(net, image, **self.fusion(args, saved, net))
        stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
        imwrite_rgb(stem + '_panoptic.png', id2rgb(pan_ids))
        atomic_write_json(stem + '_panoptic.json', {
            'file_name': os.path.basename(path),
            'segments_info': [{k: json_value(k, v) for k, v in s.items()} for s in segments]})
        imwrite_rgb(stem + '_overlay.png', panoptic_overlay(image, pan_ids, segments,
                                                            net.categories))
        names = [net.categories.by_id[s['category_id']]['name'] for s in segments if s['isthing']]
        return stem, '{} segments ({} instances: {})'.format(len(segments), len(names),
                                                             ', '.join(names) or 'none')

    def history(self, results):
        return {'PQ': results['All']['pq'], 'SQ': results['All']['sq'],
                'RQ': results['All']['rq'], 'PQ_th': results['Things']['pq'],
                'PQ_st': results['Stuff']['pq'], 'mIoU': results['mIoU']}

    def summary(self, results):
        return 'PQ {:.1f} (things {:.1f}, stuff {:.1f}), mIoU {:.1f}'.format(
            100 * results['All']['pq'], 100 * results['Things']['pq'],
            100 * results['Stuff']['pq'], 100 * results['mIoU'])


class PanopticFPNTask(PanopticTask):
    """Panoptic FPN: :class:`PanopticTask` plus anchors and conventions.

    ``--anchor-sizes`` sets the anchors, which the data workers' RPN targets use; runs record the
    model's conventions (``net.conventions``), a resumed run keeps them, and a loaded model gets
    them back with the run's anchor sizes (:meth:`recorded_kwargs`, :meth:`load_kwargs`).
    """

    def add_train_args(self, parser):
        parser.add_argument('--anchor-sizes', default='32,64,128,256,512',
                            help='anchor size on P2..P6')
        super(PanopticFPNTask, self).add_train_args(parser)

    def check_train_args(self, parser, args):
        args.anchors = parse_numbers(parser, '--anchor-sizes', args.anchor_sizes, ',', int, 5)

    def model_kwargs(self, args, categories, per_device):
        kwargs = super(PanopticFPNTask, self).model_kwargs(args, categories, per_device)
        kwargs.update(anchors=FPNAnchors(sizes=args.anchors), per_device_batch_size=per_device)
        return kwargs

    def kept_options(self, recorded):
        """The conventions the run was made with (:meth:`recorded_kwargs`)."""
        from ..model_zoo.panoptic_fpn.conventions import CONVENTION_NAMES
        return {k: v for k, v in self.recorded_kwargs(recorded).items()
                if k in CONVENTION_NAMES or k == 'preset'}

    def recorded_kwargs(self, saved):
        """The recorded ``model_kwargs`` with the conventions the run was made with: a record
        from before conventions were recorded names no preset and ran with the legacy one (see
        :func:`~gluonpan.model_zoo.panoptic_fpn.conventions.recorded_conventions`)."""
        from ..model_zoo.panoptic_fpn.conventions import recorded_conventions
        kwargs = super(PanopticFPNTask, self).recorded_kwargs(saved)
        if saved:
            kwargs.update(recorded_conventions(kwargs))
        return kwargs

    def load_kwargs(self, saved, categories=None):
        """The run's anchor sizes, and the categories (given, else the run's) of a COCO-format
        model."""
        kwargs = super(PanopticFPNTask, self).load_kwargs(saved, categories)
        if saved.get('anchor_sizes'):
            kwargs['anchors'] = FPNAnchors(sizes=tuple(int(v) for v in
                                                       saved['anchor_sizes'].split(',')))
        return kwargs

    def recorded_options(self, net):
        return dict(net.conventions)

    def train_transform(self, args, net, dataset):
        return PanopticTrainTransform(dataset.categories, net.anchors, args.crop, args.scales,
                                      rpn_target_style=net.conventions['rpn_target_style'])


class PanopticSegFormerTask(PanopticTask):
    """Panoptic SegFormer: :class:`PanopticTask` with the reference's optimizer as defaults
    (``configs/panformer/base.py``: AdamW, lr 1.4e-4 for 8 images, weight decay 1e-4, gradients
    clipped to a global norm of 0.1, no warm-up; the backbone, sampling offsets and reference
    points at a tenth of the rate, set by the model as ``lr_mult``)."""

    train_defaults = {'optimizer': 'adamw', 'lr': 1.4e-4, 'wd': 1e-4, 'clip_grad_norm': 0.1,
                      'lr_warmup': 0}
