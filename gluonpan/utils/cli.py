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
from ..precision import DTYPES, low_precision
from .checkpoint import atomic_write_json
from .engine import evaluate
from .metrics import PanopticQuality, format_results
from .panoptic_writer import PanopticWriter, imwrite_rgb
from .visualize import panoptic_overlay

__all__ = ['DATASETS', 'is_coco_format', 'parse_ctx', 'add_dataset_args', 'get_dataset',
           'dataset_root', 'ensure_synthetic', 'generate_synthetic',
           'evaluate_panoptic', 'add_model_args', 'run_args', 'load_model', 'inference_model',
           'onnx_model', 'add_fusion_args',
           'fusion_kwargs', 'apply_config', 'apply_run_config', 'program_flags',
           'check_minimums', 'parse_model_kwargs', 'flag_name', 'check_pretrained', 'json_kwargs',
           'parse_numbers']

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


def apply_config(parser, argv, known=None, skip=()):
    """Make the keys of ``--config FILE`` (a JSON object of flag destinations) the parser's
    defaults, so that flags given on the command line win; bad files are usage errors.

    Parameters
    ----------
    parser : ArgumentParser
        With a ``--config`` flag.
    argv : list of str or None
        The command line.
    known : set of str, optional
        Every key a config may hold (eval / demo: :func:`program_flags`, the flags of the
        architecture's train, eval and demo programs); default the parser's flags.  A key of
        ``known`` that is no flag of ``parser`` is ignored (a training recipe's ``lr`` in eval);
        a key outside ``known`` is a usage error naming it and the file.
    skip : iterable of str
        Flags of ``parser`` a config does not set: another meaning here (the training run's
        ``save_dir``), or what a run record decides (:func:`apply_run_config`).

    Returns
    -------
    dict
        The keys applied and their values (``{}`` without ``--config``).
    """
    config = parser.parse_known_args(argv)[0].config
    if not config:
        return {}
    defaults = read_json(config, '--config file', error=UsageError)
    if not isinstance(defaults, dict):
        parser.error('--config {}: expected a JSON object of flag values, got {}'.format(
            config, type(defaults).__name__))
    flags = {a.dest for a in parser._actions} - {'config'}
    unknown = sorted(set(defaults) - flags - set(known or ()) - {'config'})
    if unknown:
        parser.error('--config {}: unknown keys {}'.format(config, unknown))
    applied = {k: json.dumps(v) if k == 'model_kwargs' and not isinstance(v, str) else v
               for k, v in defaults.items() if k in flags and k not in skip}
    ignored = sorted(set(defaults) - set(applied) - {'config'})
    if ignored:
        logger.info('--config %s: not used here: %s', config, ', '.join(ignored))
    parser.set_defaults(**applied)
    return applied


#: flags of eval / demo that a training recipe (--config) does not set: the run folder of training
#: is not where eval writes
CONFIG_NOT_TAKEN = ('save_dir',)
#: flags of eval / demo whose value the run's args.json beside --pretrained decides when it records
#: them (what the run used: a recipe value overridden on the training command line is recorded
#: there), so a --config gives them only to weights without that record
RECORDED_FLAGS = ('dataset', 'dataset_root', 'synthetic_size', 'synthetic_train', 'synthetic_val',
                  'model_kwargs', 'score_thresh', 'overlap_thresh', 'stuff_area')


def apply_run_config(parser, argv, task):
    """``--config`` of eval / demo: a training recipe of ``task``'s architecture, applied by
    :func:`apply_config`.  Precedence: the command line, then what the run's ``args.json`` beside
    ``--pretrained`` records of :data:`RECORDED_FLAGS`, then the config, then the defaults; keys
    only another program has (``lr``, ``epochs`` ...) and :data:`CONFIG_NOT_TAKEN` are ignored, a
    key no program has is a usage error.  Returns the keys applied."""
    given = parser.parse_known_args(argv)[0]
    if not given.config:
        return {}
    recorded = [k for k in RECORDED_FLAGS if k in run_args(given.pretrained)]
    return apply_config(parser, argv, program_flags(task), CONFIG_NOT_TAKEN + tuple(recorded))


def program_flags(task):
    """The flag destinations of the train, eval and demo programs of ``task``'s architecture
    (a :mod:`~gluonpan.tasks` object): every key a ``--config`` may hold."""
    from ..tools import demo, evaluate, train  # the programs (they import this module)
    return {a.dest for program in (train, evaluate, demo)
            for a in program.make_parser(task)._actions}


def parse_numbers(parser, flag, text, sep, kind, count=None):
    """``'512x1024'`` -> ``(512, 1024)``; a bad value is a usage error naming the flag."""
    try:
        values = tuple(kind(v) for v in str(text).lower().split(sep))
    except ValueError:
        values = ()
    if not values or (count and len(values) != count):
        parser.error('{} expects {} {}-separated numbers, got {!r}'.format(
            flag, count or 'some', sep, text))
    return values


def parse_model_kwargs(parser, text, model, flag='--model-kwargs'):
    """``--model-kwargs`` JSON -> dict, checked against the options of zoo model ``model``."""
    from ..model_zoo import model_options
    try:
        kwargs = json_kwargs(text, flag)
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


def add_dataset_args(parser, datasets=None):
    """``--dataset`` (a key of ``datasets``, default :data:`DATASETS`), ``--dataset-root`` and the
    synthetic-dataset size options."""
    datasets = datasets or DATASETS
    parser.add_argument('--dataset', choices=sorted(datasets), default=None,
                        help='{} (synthetic*: the built-in synthetic sets, generated if absent); '
                             'default citys; eval takes the training run\'s'.format(
                                 ', '.join(sorted(datasets))))
    parser.add_argument('--dataset-root', default=None,
                        help='dataset root (default: {})'.format(', '.join(
                            '{} for {}'.format(root, name) for name, (_, root)
                            in sorted(datasets.items()))))
    parser.add_argument('--synthetic-size', default=None,
                        help='HxW of synthetic images (default 256x512)')
    parser.add_argument('--synthetic-train', type=int, default=None,
                        help='synthetic train images (default 64)')
    parser.add_argument('--synthetic-val', type=int, default=None,
                        help='synthetic val images (default 16)')


#: the synthetic dataset made when no --synthetic-* flag is given and none exists yet
SYNTHETIC_DEFAULTS = {'synthetic_size': '256x512', 'synthetic_train': 64, 'synthetic_val': 16}


def get_dataset(args, split, transform=None):
    """The dataset named by the flags; a synthetic one is made first if need be
    (:func:`ensure_synthetic`)."""
    root = dataset_root(args)
    if args.dataset in SYNTHETIC:
        ensure_synthetic(args, root, split)
    if is_coco_format(args.dataset):
        return COCOPanoptic(root, split, transform=transform)
    return CityscapesPanoptic(root, split, transform=transform)


def ensure_synthetic(args, root, split):
    """Make the synthetic dataset ``--dataset`` (a key of :data:`SYNTHETIC`) in ``root`` if need
    be (:func:`generate_synthetic`); ``split`` is the split about to be read."""
    if is_coco_format(args.dataset):
        made = os.path.join(root, 'annotations', 'panoptic_{}2017.json'.format(split))
    else:
        made = os.path.join(root, 'gtFine', 'cityscapes_panoptic_{}.json'.format(split))
    generate_synthetic(args, root, SYNTHETIC[args.dataset], os.path.isfile(made))


def dataset_root(args, datasets=None, synthetic=None):
    """``--dataset-root``, else the default root of ``--dataset`` in ``datasets`` (default
    :data:`DATASETS`); a usage error when it is missing and not one of the ``synthetic`` sets
    (default :data:`SYNTHETIC`), which are generated there."""
    datasets = datasets or DATASETS
    synthetic = SYNTHETIC if synthetic is None else synthetic
    root = os.path.expanduser(args.dataset_root or datasets[args.dataset][1])
    if args.dataset not in synthetic and not os.path.isdir(root):
        raise UsageError('--dataset-root {} does not exist (the {} dataset{})'.format(
            root, args.dataset, ' root by default' if not args.dataset_root else ''))
    return root


def generate_synthetic(args, root, generate, made, splits=('train', 'val')):
    """Generate a synthetic dataset in ``root`` when it is not ``made`` yet, or (re)generate it
    when ``--synthetic-*`` flags are given (the generator's stamp then decides whether they ask
    for other parameters than it was made with); without such flags an existing dataset is used
    as it is, so evaluating never rewrites the data a model was trained on.

    Parameters
    ----------
    args : argparse.Namespace
        With the ``--synthetic-size/-train/-val`` values (``None`` when not given).
    root : str
        The dataset root.
    generate : callable
        ``generate(root, splits=((train split, n), (val split, m)), height=, width=)``, e.g.
        :func:`~gluonpan.data.synthetic.ensure_cityscapes`.
    made : bool
        Whether the split asked for is there already.
    splits : tuple of str
        The generator's names of the train and val splits (ADE20K: training, validation).
    """
    given = {k: getattr(args, k, None) for k in SYNTHETIC_DEFAULTS}
    if made and all(v is None for v in given.values()):
        return
    opts = {k: v if v is not None else SYNTHETIC_DEFAULTS[k] for k, v in given.items()}
    height, width = _synthetic_size(opts['synthetic_size'])
    for key in ('synthetic_train', 'synthetic_val'):
        if opts[key] < 1:
            raise UsageError('{} must be >= 1, got {}'.format(flag_name(key), opts[key]))
    counts = (opts['synthetic_train'], opts['synthetic_val'])
    generate(root, splits=tuple(zip(splits, counts)), height=height, width=width)


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
                        help='instance score threshold (default: the training run\'s, else the '
                             'model\'s reference value: Panoptic FPN 0.5, PanopticFCN 0.2)')
    parser.add_argument('--overlap-thresh', type=float, default=None,
                        help='drop an instance when more than this fraction of it is already '
                             'taken (default: the run\'s, else the reference\'s 0.5)')
    parser.add_argument('--stuff-area', type=int, default=None,
                        help='smallest stuff region kept, in pixels (default: the run\'s, else '
                             'the reference\'s 4096, for Cityscapes/COCO image sizes: scale it '
                             'with the image area)')


def fusion_kwargs(args, saved=None, defaults=None):
    """Keyword arguments of ``predict_panoptic`` from the flags, else ``saved`` run args, else the
    model's ``defaults`` (``net.fusion_defaults``: PanopticFCN's reference thresholds), else
    :data:`FUSION_DEFAULTS` (the Panoptic FPN references')."""
    value = {}
    for key, default in dict(FUSION_DEFAULTS, **(defaults or {})).items():
        value[key] = next(v for v in (getattr(args, key, None), (saved or {}).get(key), default)
                          if v is not None)
    return dict(score_threshold=value['score_thresh'], overlap_threshold=value['overlap_thresh'],
                stuff_area_threshold=int(value['stuff_area']))


def evaluate_panoptic(net, dataset, ctx, out_dir=None, overlays=0, num_workers=0, progress=None,
                      predict_fn=None, **thresholds):
    """Predict every image of ``dataset`` (a val-transformed dataset), score it, write files.

    Parameters
    ----------
    net : PanopticFPN or PanopticFCN
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
    predict_fn : callable, optional
        ``predict_fn(net, data, **thresholds) -> (pan_ids, segments_info)``; default the
        network's own ``net.predict_panoptic(data, **thresholds)``.
    **thresholds
        Fusion thresholds of ``predict_panoptic``.

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
        if predict_fn is None:
            return network.predict_panoptic(data, **thresholds)
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
    """``--network``, ``--pretrained``, ``--model-kwargs``, ``--onnx``, ``--dtype`` and
    ``--config`` of eval / demo (checked by :func:`check_pretrained`, run by
    :func:`inference_model`)."""
    parser.add_argument('--network', default='resnet50_v1b', help='backbone: resnet{18,50,101}_v1b')
    parser.add_argument('--pretrained', required=True,
                        help='a .params file (a training run\'s args.json beside it supplies '
                             '--network/--dataset/--model-kwargs) or a model-zoo name whose '
                             'released weights are downloaded on first use')
    parser.add_argument('--model-kwargs', default=None,
                        help='JSON model options, on top of those the training run recorded in '
                             'its args.json (its recipe and conventions)')
    parser.add_argument('--onnx', default=None, metavar='FILE',
                        help='run this exported model (python -m gluonpan.export) with onnxruntime '
                             'on the CPU instead of the MXNet network; --pretrained still names '
                             'the training run (dataset, fusion thresholds)')
    parser.add_argument('--dtype', choices=DTYPES, default='float32',
                        help='inference precision (MXNet AMP, gluonpan.precision): bfloat16 on '
                             'the CPU (fast where it has avx512_bf16 or amx_bf16), float16 on '
                             'GPUs; the post-processing stays float32')
    parser.add_argument('--config', default=None,
                        help='the JSON recipe the model was trained with (train\'s --config): its '
                             'keys that are flags here are defaults; the command line wins, and '
                             'so does what the run\'s args.json records of the model and its '
                             'data; keys only training has (lr, epochs ...) are ignored')


def check_pretrained(parser, args, task=None):
    """``parser.error`` unless ``--pretrained`` is a file or a zoo name of ``task``'s architecture
    (a :mod:`~gluonpan.tasks` object; default Panoptic FPN's), ``--model-kwargs`` (when given) a
    JSON object and ``--onnx`` (when given) a file, without ``--dtype``."""
    from ..model_zoo import get_model_list
    if not os.path.isfile(args.pretrained) and args.pretrained not in get_model_list():
        parser.error('--pretrained {}: no such .params file{}'.format(
            args.pretrained, ' (it is a folder)' if os.path.isdir(args.pretrained) else
            ' nor model-zoo name'))
    if not os.path.isfile(args.pretrained):
        try:
            _task(task).check_model_name(args.pretrained)
        except UsageError as err:
            parser.error('--pretrained {}'.format(err))
    if args.model_kwargs is not None:
        try:
            json_kwargs(args.model_kwargs, '--model-kwargs')
        except UsageError as err:
            parser.error(str(err))
    onnx = getattr(args, 'onnx', None)  # eval / demo (add_model_args), not export
    if onnx is not None and not os.path.isfile(onnx):
        parser.error('--onnx {}: no such file'.format(onnx))
    if onnx is not None and args.dtype != 'float32':
        parser.error('--dtype {} is for the MXNet network; an --onnx model runs as exported '
                     '(float32)'.format(args.dtype))


def _task(task):
    """``task``, or Panoptic FPN's task object (the default of the panoptic scripts)."""
    from ..tasks import get_task
    return task if task is not None else get_task('panoptic_fpn')


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


def load_model(args, ctx, saved=None, categories=None, task=None):
    """The network named by ``--pretrained`` (zoo name or .params) with its weights, on ``ctx``.

    ``task`` (a :mod:`~gluonpan.tasks` object, default Panoptic FPN's) is the architecture the
    model must belong to.  ``saved`` is the training run's (or a converter's) :func:`run_args`:
    its ``model`` (else ``network`` with ``--dataset``) names the zoo model, its recorded
    ``model_kwargs`` (:meth:`~gluonpan.tasks.base.Task.recorded_kwargs`: the conventions the
    weights were made with) are updated with ``--model-kwargs``, and the task adds what the
    builder needs besides (:meth:`~gluonpan.tasks.base.Task.load_kwargs`: Panoptic FPN's anchor
    sizes and categories).  ``categories`` (a ``PanopticCategories``, a panoptic JSON path or its
    categories list) is required for COCO-format panoptic models, whose category ids come from
    the dataset; default: the run's.

    Raises
    ------
    UsageError
        ``--pretrained`` is neither a file nor a zoo name, or names (or its run record names) a
        model of another architecture.
    """
    from ..model_zoo import get_model, get_model_list
    task = _task(task)
    saved = saved or {}
    wanted = json_kwargs(args.model_kwargs, '--model-kwargs')
    extra = task.load_kwargs(saved, categories)
    if args.pretrained in get_model_list():
        task.check_model_name(args.pretrained)
        return get_model(args.pretrained, pretrained=True, ctx=ctx, **dict(wanted, **extra))
    if not os.path.isfile(args.pretrained):
        raise UsageError('--pretrained {!r} is neither a file nor a model-zoo name ({})'
                         .format(args.pretrained, ', '.join(get_model_list())))
    name = saved.get('model')
    if not name:
        dataset = saved.get('dataset') or args.dataset
        if dataset not in task.datasets:
            raise UsageError('--pretrained {}: its training run was on --dataset {}, not a {} '
                             'dataset ({})'.format(args.pretrained, dataset, task.title,
                                                   ', '.join(sorted(task.datasets))))
        name = task.model_name(saved.get('network', args.network), dataset)
    try:
        task.check_model_name(name)
    except UsageError as err:
        raise UsageError('--pretrained {} (model {} in the args.json beside it): {}'.format(
            args.pretrained, name, err)) from None
    kwargs = task.recorded_kwargs(saved)
    kwargs.update(wanted)
    return get_model(name, pretrained=args.pretrained, ctx=ctx, **dict(kwargs, **extra))


def inference_model(args, ctx, saved, categories, task):
    """What eval and demo run: the ``--onnx`` model (onnxruntime, CPU), else :func:`load_model`
    hybridized (``static_alloc``, unless ``--no-hybridize``) in ``--dtype``
    (:func:`gluonpan.precision.low_precision`, which hybridizes anyway)."""
    if args.onnx is not None:
        return onnx_model(args.onnx, task)
    net = load_model(args, ctx, saved, categories, task)
    if not getattr(args, 'no_hybridize', False):
        net.hybridize(static_alloc=True)
    return low_precision(net, args.dtype)


def onnx_model(path, task):
    """The exported model ``path`` run by onnxruntime; a usage error naming it when it is of
    another architecture than ``task``'s."""
    from ..export import OnnxPredictor
    net = OnnxPredictor(path)
    if net.arch != task.arch:
        raise UsageError('--onnx {} is a {} model, not a {} one'.format(path, net.arch, task.arch))
    logger.info('running %s with onnxruntime', path)
    return net


def json_kwargs(text, where):
    """A JSON object of model options (``None`` -> ``{}``, a dict as it is); a usage error
    naming ``where``."""
    try:
        kwargs = json.loads(text) if isinstance(text, str) else (text or {})
    except ValueError as err:
        raise UsageError('{} is not valid JSON ({}): {!r}'.format(where, err, text)) from None
    if not isinstance(kwargs, dict):
        raise UsageError('{} must be a JSON object, got {!r}'.format(where, text))
    return kwargs
