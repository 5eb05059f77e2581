"""What the train / eval / demo scripts share: contexts, datasets and model names from flags, their
checks (every bad flag is a one-line usage error, see :mod:`gluonpan.errors`), and one evaluation
routine (predict, write official-format files and overlays, print the PQ tables)."""
import json
import logging
import os

import mxnet as mx
from mxnet.gluon.data import DataLoader

from ..data import CityscapesPanoptic, COCOPanoptic, val_batchify
from ..data.synthetic import ensure_cityscapes, ensure_coco_panoptic
from ..errors import DataError, UsageError, check_minimums, flag_name, read_json
from ..model_zoo.panoptic_fpn import predict_panoptic
from ..model_zoo.panoptic_fpn.conventions import recorded_conventions
from .checkpoint import atomic_write_json
from .engine import evaluate
from .metrics import PanopticQuality, format_results
from .panoptic_writer import PanopticWriter, imwrite_rgb
from .visualize import panoptic_overlay

__all__ = ['DATASETS', 'is_coco_format', 'parse_ctx', 'add_dataset_args', 'get_dataset', 'model_name',
           'evaluate_panoptic', 'add_model_args', 'run_args', 'load_model', 'add_fusion_args',
           'fusion_kwargs', 'apply_config', 'check_minimums', 'parse_model_kwargs', 'flag_name',
           'check_pretrained', 'recorded_model_kwargs']

logger = logging.getLogger(__name__)

#: --dataset choices -> (model-zoo suffix, default root)
DATASETS = {'citys': ('citys', '~/.mxnet/datasets/citys'),
            'coco': ('coco', '~/.mxnet/datasets/coco'),
            'synthetic': ('citys', 'data/synthetic_citys'),
            'synthetic_coco': ('coco', 'data/synthetic_coco')}
#: the synthetic datasets and their generators (made on first use, see :func:`get_dataset`)
SYNTHETIC = {'synthetic': ensure_cityscapes, 'synthetic_coco': ensure_coco_panoptic}


def is_coco_format(dataset):
    """Whether ``--dataset`` is in the COCO panoptic format (its categories come from its JSON)."""
    return DATASETS[dataset][0] == 'coco'


def parse_ctx(gpus, cpu_contexts=1):
    """``--gpus 0,1`` -> ``[mx.gpu(0), mx.gpu(1)]``; ``''`` -> ``cpu_contexts`` CPU contexts.

    Raises
    ------
    UsageError
        Ids that are not non-negative integers, repeated, or beyond the GPUs MXNet sees.
    """
    ids = [g.strip() for g in str(gpus).split(',') if g.strip()]
    if not ids:
        return [mx.cpu(i) for i in range(cpu_contexts)]
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UsageError("--gpus takes distinct comma-separated GPU ids >= 0, or '' for the CPU; "
                         "got {!r}".format(gpus))
    available = mx.context.num_gpus()
    beyond = [int(i) for i in ids if int(i) >= available]
    if beyond:
        raise UsageError("--gpus {}: MXNet sees {} GPU(s){}; use --gpus '' for the CPU".format(
            gpus, available, ' (this MXNet build or machine has none)' if not available else
            ', ids 0..{}'.format(available - 1)))
    return [mx.gpu(int(i)) for i in ids]


def apply_config(parser, argv):
    """Make the keys of ``--config FILE`` (a JSON object of flag destinations) the parser's
    defaults, so that flags given on the command line win; bad files are usage errors."""
    config = parser.parse_known_args(argv)[0].config
    if not config:
        return
    defaults = read_json(config, '--config file', error=UsageError)
    if not isinstance(defaults, dict):
        parser.error('--config {}: expected a JSON object of flag values, got {}'.format(
            config, type(defaults).__name__))
    unknown = sorted(set(defaults) - {a.dest for a in parser._actions} - {'config'})
    if unknown:
        parser.error('--config {}: unknown keys {}'.format(config, unknown))
    parser.set_defaults(**{k: json.dumps(v) if k == 'model_kwargs' and not isinstance(v, str)
                           else v for k, v in defaults.items()})


def parse_model_kwargs(parser, text, model, flag='--model-kwargs'):
    """``--model-kwargs`` JSON -> dict, checked against the options of zoo model ``model``."""
    from ..model_zoo import model_options
    try:
        kwargs = _model_kwargs(text, flag)
    except UsageError as err:
        parser.error(str(err))
    try:
        valid = model_options(model)
    except UsageError as err:
        parser.error(str(err))
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        parser.error('{}: unknown key(s) {} for {}; valid keys: {}'.format(
            flag, ', '.join(unknown), model, ', '.join(valid)))
    return kwargs


def add_dataset_args(parser):
    """``--dataset``, ``--dataset-root`` and the synthetic-dataset size options."""
    parser.add_argument('--dataset', choices=sorted(DATASETS), default=None,
                        help='citys (default), coco, or the built-in synthetic Cityscapes / COCO '
                             '(synthetic, synthetic_coco: generated if absent); eval takes the '
                             'training run\'s by default')
    parser.add_argument('--dataset-root', default=None,
                        help='dataset root (default: ~/.mxnet/datasets/citys, ~/.mxnet/datasets/coco, '
                             'data/synthetic_citys, data/synthetic_coco)')
    parser.add_argument('--synthetic-size', default=None,
                        help='HxW of synthetic images (default 256x512)')
    parser.add_argument('--synthetic-train', type=int, default=None,
                        help='synthetic train images (default 64)')
    parser.add_argument('--synthetic-val', type=int, default=None,
                        help='synthetic val images (default 16)')


#: the synthetic dataset made when no --synthetic-* flag is given and none exists yet
SYNTHETIC_DEFAULTS = {'synthetic_size': '256x512', 'synthetic_train': 64, 'synthetic_val': 16}


def get_dataset(args, split, transform=None):
    """The dataset named by the flags.

    The synthetic dataset is generated when absent, or (re)generated when ``--synthetic-*`` flags
    ask for other parameters than it was made with; without such flags an existing one is used as
    it is (so evaluating never rewrites the data a model was trained on).
    """
    root = os.path.expanduser(args.dataset_root or DATASETS[args.dataset][1])
    if args.dataset not in SYNTHETIC and not os.path.isdir(root):
        raise UsageError('--dataset-root {} does not exist (the {} dataset{})'.format(
            root, args.dataset, ' root by default' if not args.dataset_root else ''))
    coco = is_coco_format(args.dataset)
    if args.dataset in SYNTHETIC:
        given = {k: getattr(args, k, None) for k in SYNTHETIC_DEFAULTS}
        made = os.path.isfile(os.path.join(root, 'annotations', 'panoptic_{}2017.json'.format(split))
                              if coco else os.path.join(root, 'gtFine',
                                                        'cityscapes_panoptic_{}.json'.format(split)))
        if not made or any(v is not None for v in given.values()):
            opts = {k: v if v is not None else SYNTHETIC_DEFAULTS[k] for k, v in given.items()}
            height, width = _synthetic_size(opts['synthetic_size'])
            for key in ('synthetic_train', 'synthetic_val'):
                if opts[key] < 1:
                    raise UsageError('{} must be >= 1, got {}'.format(flag_name(key), opts[key]))
            SYNTHETIC[args.dataset](root, splits=(('train', opts['synthetic_train']),
                                                  ('val', opts['synthetic_val'])),
                                    height=height, width=width)
    if coco:
        return COCOPanoptic(root, split, transform=transform)
    return CityscapesPanoptic(root, split, transform=transform)


def _synthetic_size(text):
    """``'256x512'`` -> ``(256, 512)``, both positive multiples of 32 (a usage error otherwise)."""
    try:
        height, width = (int(v) for v in str(text).lower().split('x'))
    except ValueError:
        height = width = 0
    if height < 32 or width < 32 or height % 32 or width % 32:
        raise UsageError('--synthetic-size expects HxW, positive multiples of 32, got {!r}'
                         .format(text))
    return height, width


#: fusion thresholds of the references (Cityscapes / COCO image sizes)
FUSION_DEFAULTS = {'score_thresh': 0.5, 'overlap_thresh': 0.5, 'stuff_area': 4096}


def add_fusion_args(parser):
    """Panoptic fusion thresholds; unset ones come from the training run, else the references."""
    parser.add_argument('--score-thresh', type=float, default=None,
                        help='instance score threshold (default 0.5)')
    parser.add_argument('--overlap-thresh', type=float, default=None,
                        help='drop an instance when more than this fraction of it is already '
                             'taken (default 0.5)')
    parser.add_argument('--stuff-area', type=int, default=None,
                        help='smallest stuff region kept, in pixels (default 4096, for '
                             'Cityscapes/COCO image sizes: scale it with the image area)')


def fusion_kwargs(args, saved=None):
    """Keyword arguments of ``predict_panoptic`` from the flags, else ``saved`` run args, else the
    reference defaults."""
    value = {}
    for key, default in FUSION_DEFAULTS.items():
        value[key] = next(v for v in (getattr(args, key, None), (saved or {}).get(key), default)
                          if v is not None)
    return dict(score_threshold=value['score_thresh'], overlap_threshold=value['overlap_thresh'],
                stuff_area_threshold=int(value['stuff_area']))


def model_name(network, dataset):
    """``--network resnet50_v1b --dataset citys`` -> ``panoptic_fpn_resnet50_v1b_citys``."""
    return 'panoptic_fpn_{}_{}'.format(network, DATASETS[dataset][0])


def evaluate_panoptic(net, dataset, ctx, out_dir=None, overlays=0, num_workers=0, progress=None,
                      predict_fn=predict_panoptic, **thresholds):
    """Predict every image of ``dataset`` (a val-transformed dataset), score it, write files.

    Parameters
    ----------
    net : PanopticFPN
        The network on ``ctx``.
    dataset : PanopticDataset
        With :class:`~gluonpan.data.PanopticValTransform`.
    ctx : list of mx.Context
        Images go to the contexts in turn.
    out_dir : str, optional
        Writes ``{out_dir}/panoptic_pred.json`` + ``{out_dir}/panoptic_pred/*.png`` (the official
        format, accepted by cityscapesscripts' and COCO's evaluators), ``{out_dir}/pq.json`` and
        overlays ``{out_dir}/overlays/*.png``.
    overlays : int
        How many overlay PNGs to write (the first images).
    num_workers : int
        DataLoader processes reading the images.
    predict_fn : callable
        ``predict_fn(net, data, **thresholds) -> (pan_ids, segments_info)``.
    **thresholds
        Fusion thresholds for :func:`predict_panoptic`.

    Returns
    -------
    dict
        :meth:`PanopticQuality.results`.
    """
    metric = PanopticQuality(dataset.categories)
    writer = None
    if out_dir:
        writer = PanopticWriter(os.path.join(out_dir, 'panoptic_pred'),
                                os.path.join(out_dir, 'panoptic_pred.json'), dataset.categories)
        os.makedirs(os.path.join(out_dir, 'overlays'), exist_ok=True)
    written = [0]

    def output(sample, pan_ids, segments_info):
        if writer is None:
            return
        writer.add(sample['image_id'], pan_ids, segments_info)
        if written[0] < overlays:
            written[0] += 1
            over = panoptic_overlay(sample['image'], pan_ids, segments_info, dataset.categories)
            imwrite_rgb(os.path.join(out_dir, 'overlays', '{}.png'.format(sample['image_id'])),
                        over)

    def predict(network, data):
        return predict_fn(network, data, **thresholds)

    loader = DataLoader(dataset, batch_size=1, batchify_fn=val_batchify, num_workers=num_workers)
    evaluate(net, loader, ctx, metric, predict, output, progress=progress)
    results = metric.results()
    logger.info('panoptic quality on %d images:\n%s', len(dataset), format_results(results))
    if writer is not None:
        writer.close()
        atomic_write_json(os.path.join(out_dir, 'pq.json'), results, indent=1, default=float)
        logger.info('predictions, pq.json and %d overlays written to %s', written[0], out_dir)
    return results



def add_model_args(parser):
    """``--network``, ``--pretrained`` and ``--model-kwargs`` of eval / demo."""
    parser.add_argument('--network', default='resnet50_v1b', help='backbone: resnet{18,50,101}_v1b')
    parser.add_argument('--pretrained', required=True,
                        help='a .params file (a training run\'s args.json beside it supplies '
                             '--network/--dataset/--model-kwargs) or a model-zoo name whose '
                             'released weights are downloaded on first use')
    parser.add_argument('--model-kwargs', default=None,
                        help='JSON model options, on top of those the training run recorded in '
                             'its args.json (its recipe and conventions)')


def check_pretrained(parser, args):
    """``parser.error`` unless ``--pretrained`` is a file or a zoo name, and ``--model-kwargs``
    (when given) a JSON object."""
    from ..model_zoo import get_model_list
    if not os.path.isfile(args.pretrained) and args.pretrained not in get_model_list():
        parser.error('--pretrained {}: no such .params file{}'.format(
            args.pretrained, ' (it is a folder)' if os.path.isdir(args.pretrained) else
            ' nor model-zoo name'))
    if args.model_kwargs is not None:
        try:
            _model_kwargs(args.model_kwargs, '--model-kwargs')
        except UsageError as err:
            parser.error(str(err))


def run_args(pretrained):
    """The ``args.json`` a training run wrote beside its ``.params`` files (``{}`` if none)."""
    path = os.path.join(os.path.dirname(os.path.abspath(pretrained)), 'args.json')
    if not os.path.isfile(pretrained) or not os.path.isfile(path):
        return {}
    saved = read_json(path, "training run's arguments")
    if not isinstance(saved, dict):
        raise DataError("training run's arguments {} must be a JSON object, got {}".format(
            path, type(saved).__name__))
    logger.info('training run arguments from %s: network %s, dataset %s, anchor sizes %s, '
                'model_kwargs %s', path, saved.get('network'), saved.get('dataset'),
                saved.get('anchor_sizes'), saved.get('model_kwargs'))
    return saved


def load_model(args, ctx, saved=None, categories=None):
    """The network named by ``--pretrained`` (zoo name or .params) with its weights, on ``ctx``.

    ``saved`` is the training run's (or a converter's) :func:`run_args`: its ``network``,
    ``anchor_sizes`` and ``categories`` are used where the command line does not set them, and
    its ``model_kwargs`` (which hold the conventions the weights were made with) are updated with
    ``--model-kwargs``.  ``categories`` (a ``PanopticCategories``, a panoptic JSON path or its
    categories list) is required for COCO-format models, whose category ids come from the
    dataset; default: the run's.
    """
    from ..model_zoo import get_model, get_model_list
    from ..nn.anchors import FPNAnchors
    saved = saved or {}
    categories = categories if categories is not None else saved.get('categories')
    coco = {'categories': categories} if categories is not None else {}
    if args.pretrained in get_model_list():
        return get_model(args.pretrained, pretrained=True, ctx=ctx,
                         **dict(_model_kwargs(args.model_kwargs, '--model-kwargs'), **coco))
    if not os.path.isfile(args.pretrained):
        raise UsageError('--pretrained {!r} is neither a file nor a model-zoo name ({})'
                         .format(args.pretrained, ', '.join(get_model_list())))
    network = saved.get('network', args.network)
    kwargs = recorded_model_kwargs(saved)
    kwargs.update(_model_kwargs(args.model_kwargs, '--model-kwargs'))
    if saved.get('anchor_sizes'):
        kwargs['anchors'] = FPNAnchors(sizes=tuple(int(v) for v in saved['anchor_sizes'].split(',')))
    return get_model(model_name(network, args.dataset), pretrained=args.pretrained, ctx=ctx,
                     **dict(kwargs, **coco))


def recorded_model_kwargs(saved):
    """The ``model_kwargs`` of a run record (:func:`run_args`; ``{}`` -> ``{}``) with the
    conventions it was made with: a record from before conventions were recorded names no
    preset and ran with the legacy one (see
    :func:`~gluonpan.model_zoo.panoptic_fpn.conventions.recorded_conventions`)."""
    kwargs = _model_kwargs(saved.get('model_kwargs'), "model_kwargs of the training run's args.json")
    if saved:
        kwargs.update(recorded_conventions(kwargs))
    return kwargs


def _model_kwargs(text, where):
    """A JSON object of model options (``None`` -> ``{}``); a usage error naming ``where``."""
    try:
        kwargs = json.loads(text) if isinstance(text, str) else (text or {})
    except ValueError as err:
        raise UsageError('{} is not valid JSON ({}): {!r}'.format(where, err, text)) from None
    if not isinstance(kwargs, dict):
        raise UsageError('{} must be a JSON object, got {!r}'.format(where, text))
    return kwargs
