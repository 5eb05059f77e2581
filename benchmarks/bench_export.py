"""CPU inference time and peak memory of the exported ONNX graphs run by onnxruntime, next to
MXNet running the same networks, in one run.

For every model (Semantic FPN, PanopticFCN and Panoptic FPN R50 by default; zoo defaults,
random weights) and backend, one subprocess (so that its peak RSS is its own, see ``_bench.py``)
times ``--warmup`` untimed then ``--steps`` timed calls of the raw inference graph on one
synthetic normalised image: ``net.predict(data)`` of the hybridized (``static_alloc``) network
(``mxnet``), or ``OnnxPredictor.predict(data)`` of the network exported in that process by
``gluonpan.export.export_onnx`` (``onnxruntime``, export time in the note; the outputs come back
as NDArrays, as the post-processing takes them).  Both use ``$OMP_NUM_THREADS`` threads.  The
post-processing is the same numpy code for both and is not timed.

Full size, on an otherwise idle machine::

    OMP_NUM_THREADS=2 python benchmarks/bench_export.py --size 1024x2048 --warmup 1 --steps 3

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

from _bench import build, log_ratios, log_table, measurement, run_in_child, time_steps
from bench_semantic_fpn import parse_size

logger = logging.getLogger(__name__)

MODELS = ('semantic_fpn_resnet50_v1b_citys', 'panoptic_fcn_resnet50_v1b_citys',
          'panoptic_fpn_resnet50_v1b_citys')
QUICK_MODELS = tuple(m.replace('resnet50', 'resnet18') for m in MODELS)
BACKENDS = ('mxnet', 'onnxruntime')
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


def parse_args(argv=None):
    """The command line, with ``--quick`` resolved into models, size and step counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=None,
                        help='zoo names (default the R50 models; --quick: the R18 ones)')
    parser.add_argument('--size', type=parse_size, default=None,
                        help='image HxW (default {}x{})'.format(*SIZE))
    parser.add_argument('--warmup', type=_at_least(0), default=1, help='untimed calls first')
    parser.add_argument('--steps', type=_at_least(1), default=3, help='timed calls')
    parser.add_argument('--quick', action='store_true',
                        help='smoke check: the R18 models at {}x{}, 1 + 1 steps'.format(
                            *QUICK_SIZE))
    parser.add_argument('--child', nargs=2, metavar=('MODEL', 'BACKEND'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = args.models or (QUICK_MODELS if args.quick else MODELS)
    args.size = args.size or (QUICK_SIZE if args.quick else SIZE)
    if args.quick:
        args.warmup, args.steps = 1, 1
    return args


def main():
    """Run every (model, backend) in its own process, then log the table and the ratios."""
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if args.child:
        result = run_child(*args.child, args.size, args.warmup, args.steps)
        sys.stdout.write(json.dumps(result) + '\n')
        return
    logger.info('OMP_NUM_THREADS=%s, %d warm-up + %d timed calls, %dx%d',
                os.environ.get('OMP_NUM_THREADS', '(unset)'), args.warmup, args.steps,
                *args.size)
    argv = ['--size', '{}x{}'.format(*args.size), '--warmup', str(args.warmup), '--steps',
            str(args.steps)]
    results = {(model, backend): run_in_child(__file__, model, backend, argv)
               for model in args.models for backend in BACKENDS}
    log_table([r for r in results.values() if r is not None])
    log_ratios('onnxruntime / mxnet, this run:', [
        (model, results[model, 'onnxruntime'], results[model, 'mxnet'], None)
        for model in args.models])


if __name__ == '__main__':
    main()
