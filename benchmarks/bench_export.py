"""CPU inference time and peak memory of the exported ONNX graphs run by onnxruntime (and of the
bfloat16 graphs run by MXNet), next to MXNet running the same networks in float32, in one run.

For every model (Semantic FPN, PanopticFCN and Panoptic FPN R50 by default; zoo defaults,
random weights) and backend, one subprocess (so that its peak RSS is its own, see ``_bench.py``)
times ``--warmup`` untimed then ``--steps`` timed calls of the raw inference graph on one
synthetic normalised image: ``net.predict(data)`` of the hybridized (``static_alloc``) network
(``mxnet``), or ``OnnxPredictor.predict(data)`` of the network exported in that process by
``gluonpan.export.export_onnx`` (``onnxruntime``, export time in the note; the outputs come back
as NDArrays, as the post-processing takes them), or ``LowPrecisionNet.predict(data)`` of the
network converted in that process by ``gluonpan.precision.low_precision(net, 'bfloat16')``
(``bfloat16``, with ``--backends mxnet bfloat16``; ``bench_precision.py`` runs it with the PQ
difference).  All use ``$OMP_NUM_THREADS`` threads.  The post-processing is the same numpy code
for all and is not timed.

Accuracy: each ``--eval ARCH=PARAMS`` (a training run's ``.params``; its ``args.json`` names the
model and the data) is exported (``python -m gluonpan.export``) and evaluated on its val split by
the eval program twice, with the MXNet network and with ``--onnx``; the scores and their
difference are logged (``_accuracy.py``).

Full size, on an otherwise idle machine (with the trained models of the CPU recipes)::

    OMP_NUM_THREADS=2 python benchmarks/bench_export.py --size 1024x2048 --warmup 1 --steps 3 \
        --eval panoptic_fpn=runs/synthetic_long/panoptic_fpn_resnet18_v1b_citys-final.params

Smoke check (the ResNet-18 models at 128x256, 1 warm-up + 1 timed step)::

    OMP_NUM_THREADS=1 python benchmarks/bench_export.py --quick
"""
import argparse
import json
import logging
import os
import sys
import tempfile
import time

import mxnet as mx
import numpy as np

from _accuracy import compare_accuracy, parse_run
from _bench import build, log_ratios, log_table, measurement, run_in_child, time_steps
from bench_semantic_fpn import parse_size

logger = logging.getLogger(__name__)

MODELS = ('semantic_fpn_resnet50_v1b_citys', 'panoptic_fcn_resnet50_v1b_citys',
          'panoptic_fpn_resnet50_v1b_citys')
QUICK_MODELS = tuple(m.replace('resnet50', 'resnet18') for m in MODELS)
BACKENDS = ('mxnet', 'onnxruntime', 'bfloat16')
SIZE, QUICK_SIZE = (1024, 2048), (128, 256)


def run_child(model, backend, size, warmup, iters):
    """Time ``warmup + iters`` raw predictions of one model with one backend (a fresh process).

    Returns
    -------
    dict
        ``_bench.measurement``'s result.
    """
    from gluonpan.export import OnnxPredictor, export_onnx
    net, _ = build(model, frozen=None)
    data = mx.nd.array(np.random.RandomState(0).normal(size=(1, 3) + tuple(size)))
    note = ''
    if backend == 'onnxruntime':
        with tempfile.TemporaryDirectory() as tmp:
            tic = time.time()
            runner = OnnxPredictor(export_onnx(net, os.path.join(tmp, 'model.onnx'), model))
            note = 'export {:.1f} s'.format(time.time() - tic)
    elif backend == 'bfloat16':
        from gluonpan.precision import low_precision
        runner = low_precision(net, 'bfloat16')  # converted on its first call (a warm-up)
    else:
        runner = net

    def step():
        outputs = runner.predict(data)
        for output in (outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            output.wait_to_read()
    return measurement(model, backend, size, time_steps(step, warmup, iters), note)


def _at_least(minimum):
    """An argparse type: an int ``>= minimum``."""
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError('{} is below {}'.format(value, minimum))
        return value
    return parse


def make_parser(description, child=True):
    """The flags of the inference benchmarks: models, size, calls, ``--quick``, ``--eval`` runs
    (``_accuracy.py``), ``--no-timing``; ``child``: also this script's ``--backends`` and its
    hidden ``--child``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--models', nargs='+', default=None,
                        help='zoo names timed (default the R50 models; --quick: the R18 ones)')
    parser.add_argument('--size', type=parse_size, default=None,
                        help='image HxW (default {}x{})'.format(*SIZE))
    parser.add_argument('--warmup', type=_at_least(0), default=1, help='untimed calls first')
    parser.add_argument('--steps', type=_at_least(1), default=3, help='timed calls')
    parser.add_argument('--quick', action='store_true',
                        help='smoke check: the R18 models at {}x{}, 1 + 1 steps'.format(
                            *QUICK_SIZE))
    parser.add_argument('--eval', nargs='*', type=parse_run, default=[], metavar='ARCH=PARAMS',
                        help="trained runs (.params beside their args.json) evaluated on their "
                             "val split in each variant")
    parser.add_argument('--no-timing', action='store_true', help='accuracy (--eval) only')
    if child:
        parser.add_argument('--backends', nargs='+', choices=BACKENDS,
                            default=list(BACKENDS[:2]),
                            help='what runs the networks (default mxnet onnxruntime); ratios '
                                 'are against mxnet (float32), which always runs')
        parser.add_argument('--child', nargs=2, metavar=('MODEL', 'BACKEND'),
                            help=argparse.SUPPRESS)
    return parser


def resolve(args, backends=None):
    """``args`` with ``--quick`` resolved into models, size and calls, and the backends (mxnet
    first)."""
    args.backends = ['mxnet'] + [b for b in (backends or args.backends) if b != 'mxnet']
    args.models = args.models or (QUICK_MODELS if args.quick else MODELS)
    args.size = args.size or (QUICK_SIZE if args.quick else SIZE)
    if args.quick:
        args.warmup, args.steps = 1, 1
    return args


def parse_args(argv=None):
    """The command line, resolved (:func:`resolve`)."""
    return resolve(make_parser(__doc__.splitlines()[0]).parse_args(argv))


def onnx_flags(arch, params, folder):
    """``--onnx FILE`` of the run ``params`` exported into ``folder`` (an ``_accuracy`` variant)."""
    import json
    from gluonpan.export.__main__ import main as export_main
    record = json.load(open(os.path.join(os.path.dirname(params), 'args.json')))
    onnx_file, = export_main(['--network', record['model'], '--pretrained', params, '--out',
                              folder])
    return ['--onnx', onnx_file]


#: the eval variants of ``--eval``: MXNet (the reference) and onnxruntime
VARIANTS = [('mxnet', lambda arch, params, folder: []), ('onnxruntime', onnx_flags)]


def measure(args):
    """Every (model, backend) of ``args`` in its own process; logs the table and the ratios
    against float32 MXNet, returns ``{(model, backend): measurement or None}``."""
    logger.info('OMP_NUM_THREADS=%s, %d warm-up + %d timed calls, %dx%d',
                os.environ.get('OMP_NUM_THREADS', '(unset)'), args.warmup, args.steps,
                *args.size)
    argv = ['--size', '{}x{}'.format(*args.size), '--warmup', str(args.warmup), '--steps',
            str(args.steps)]
    results = {(model, backend): run_in_child(__file__, model, backend, argv)
               for model in args.models for backend in args.backends}
    log_table([r for r in results.values() if r is not None])
    for backend in args.backends[1:]:
        log_ratios('{} / mxnet (float32), this run:'.format(backend), [
            (model, results[model, backend], results[model, 'mxnet'], None)
            for model in args.models])
    return results


def run(args, variants):
    """``--eval``: the runs' accuracy in ``variants`` (:func:`_accuracy.compare_accuracy`); then,
    unless ``--no-timing``, :func:`measure`."""
    from gluonpan.utils.logger import setup_logger
    if args.eval:
        compare_accuracy(args.eval, variants)
    if not args.no_timing:
        setup_logger()  # without the last evaluation's log file
        measure(args)


def main():
    """Run every (model, backend) in its own process, then log the table and the ratios."""
    args = parse_args()
    from gluonpan.utils.logger import setup_logger
    setup_logger()  # the eval program (--eval) installs the same handler again, not a second
    if args.child:
        result = run_child(*args.child, args.size, args.warmup, args.steps)
        sys.stdout.write(json.dumps(result) + '\n')
        return
    run(args, VARIANTS)


if __name__ == '__main__':
    main()
