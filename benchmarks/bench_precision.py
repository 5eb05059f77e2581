"""bfloat16 against float32 inference, in one run: the PQ (or mIoU) of trained models on their
synthetic val split with both, and the time and peak RSS of the raw inference graph at full
size with both.

Accuracy: each ``--eval ARCH=PARAMS`` (a training run's ``.params``; its ``args.json`` names the
data) is evaluated twice by the eval program, ``--dtype float32`` and ``--dtype bfloat16``
(``gluonpan.precision``), and the difference logged.  Speed: ``bench_export.py``'s measurement
with the backends ``mxnet`` (float32) and ``bfloat16``: each (model, dtype) in its own process,
zoo defaults with random weights (the time does not depend on them), ``--warmup`` untimed calls
(the first converts the graph) then ``--steps`` timed ones.

Full size, on an otherwise idle machine (the trained models of the CPU recipes)::

    OMP_NUM_THREADS=2 python benchmarks/bench_precision.py \\
        --eval panoptic_fpn=runs/synthetic_long/panoptic_fpn_resnet18_v1b_citys-final.params \\
               semantic_fpn=runs/semantic_quick/semantic_fpn_resnet18_v1b_citys-final.params

Smoke check (R18 at 128x256, 1 + 1 calls)::

    OMP_NUM_THREADS=1 python benchmarks/bench_precision.py --quick --eval ...
"""
import logging

from bench_export import make_parser, resolve, run

logger = logging.getLogger(__name__)

#: the eval variants: float32 (the reference) and bfloat16
VARIANTS = [('float32', lambda arch, params, folder: []),
            ('bfloat16', lambda arch, params, folder: ['--dtype', 'bfloat16'])]


def parse_args(argv=None):
    """The command line (``bench_export.py``'s flags; the backends mxnet and bfloat16)."""
    parser = make_parser(__doc__.splitlines()[0], child=False)
    return resolve(parser.parse_args(argv), backends=['mxnet', 'bfloat16'])


def main():
    """Accuracy of the runs in both dtypes, then the timing."""
    args = parse_args()
    from gluonpan.precision import BF16_CPU_FLAGS, cpu_has_bfloat16
    from gluonpan.utils.logger import setup_logger
    setup_logger()  # the eval program installs the same console handler again, not a second
    logger.info('native bfloat16 (%s): %s', ' or '.join(BF16_CPU_FLAGS), cpu_has_bfloat16())
    run(args, VARIANTS)


if __name__ == '__main__':
    main()
