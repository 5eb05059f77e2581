"""CPU time of multi-scale deformable attention (MSDA) next to dense multi-head attention of the
same size, for Panoptic SegFormer's encoder and decoder.

The defaults are ``panoptic_segformer_resnet50_v1b_citys`` (the reference's R50 architecture) on
a 1024x2048 Cityscapes image, which the model sees unresized and unpadded (``test_size`` None):
4 levels -- ResNet C3..C5 and the neck's extra level -- at strides 8, 16, 32 and 64, i.e.
128x256, 64x128, 32x64 and 16x32 (43520 tokens; the sizes round up, as the ResNet and the neck
do), 256 channels, 8 heads, 4 points per head and level, 300 decoder queries; the embed dims,
heads, points, queries and MSDA method are read from
:func:`~gluonpan.model_zoo.panoptic_segformer.build_panoptic_segformer`'s defaults (those of the
R50 models), so they follow the model.

Both are hybridized gluon blocks with random weights, embed dims ``--dims`` and ``--heads`` heads:

* ``msda-gather`` / ``msda-bilinear``: :class:`gluonpan.nn.MultiScaleDeformableAttention`
  with ``method='gather'`` (the model's default) / ``'bilinear'`` (``--methods``; ``--points``
  points, one level per stride of ``--strides``), as the encoder calls it (one query group per
  level, queries = the level tokens, reference points at the pixel centres: the attention of one
  of the 6 encoder layers) or as the location decoder's cross-attention does (``--queries``
  object queries over the 4 levels, random 2-d reference points; the model's layers after the
  first refer to boxes, which scale the offsets but sample as many points), value and output
  projections included;
* ``dense``: softmax attention of the same queries over *all* tokens of all levels as keys, with
  query, key/value and output projections, through MXNet's fused
  ``contrib.interleaved_matmul_encdec_qk / valatt``; the queries go in chunks of at most
  ``--dense-chunk-mb`` MiB of attention matrix (the encoder's full one, 43520^2 per head at
  1024x2048, would not fit in memory); the key/value projection is done once per step.

Every (stage, attention) runs in its own subprocess (``--child``) so its peak RSS is its own;
``--warmup`` untimed forward passes, then ``--iters`` timed ones (``--backward``: forward and
backward; dense's recorded chunks then keep every attention matrix: small sizes only).  The table
gives the mean and spread of the time per pass, the peak RSS, and the ratios MSDA / dense.

Full size (the defaults: Panoptic SegFormer R50 on a 1024x2048 image, 43520 encoder tokens, 300
decoder queries), on an otherwise idle machine with a few GB free (dense's encoder pass is ~2
TFLOP of matrix products; msda-gather's holds up to 2.7 GiB of gathered corners), with the
threads of ``bench_model.py``'s full-size run::

    OMP_NUM_THREADS=2 python benchmarks/bench_deformable_attention.py --size 1024x2048 \\
        --warmup 1 --iters 3

Smoke check (128x256: 680 tokens; 300 decoder queries)::

    OMP_NUM_THREADS=1 python benchmarks/bench_deformable_attention.py --small
"""
import argparse
import inspect
import json
import logging
import os
import resource
import subprocess
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from _bench import time_steps  # noqa: E402
from gluonpan.model_zoo.panoptic_segformer import build_panoptic_segformer  # noqa: E402
from gluonpan.nn.deformable_attention import MultiScaleDeformableAttention  # noqa: E402

logger = logging.getLogger(__name__)

#: Panoptic SegFormer R50's options (its builder's defaults): embed dims, heads, points, queries,
#: MSDA method
R50 = {name: p.default for name, p in inspect.signature(build_panoptic_segformer).parameters.items()
       if p.default is not inspect.Parameter.empty}
#: the strides of its encoder levels: ResNet C3..C5 and the neck's extra level
STRIDES = (8, 16, 32, 64)


class DenseAttention(nn.HybridBlock):
    """Multi-head attention of queries (Q, N, C) over projected keys/values (K, N, 2C)
    (interleaved per head, as the ``interleaved_matmul_encdec`` operators want) -> (Q, N, C)."""

    def __init__(self, dims, heads, **kwargs):
        super(DenseAttention, self).__init__(**kwargs)
        self.heads = heads
        with self.name_scope():
            self.q_proj = nn.Dense(dims, flatten=False, in_units=dims, prefix='q_')
            self.out_proj = nn.Dense(dims, flatten=False, in_units=dims, prefix='out_')

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, query, keys_values):
        q = self.q_proj(query)  # (Q, N, C)
        att = F.contrib.interleaved_matmul_encdec_qk(q, keys_values, heads=self.heads)  # (N*M,Q,K)
        att = F.softmax(att, axis=-1)  # (N*M, Q, K)
        out = F.contrib.interleaved_matmul_encdec_valatt(keys_values, att, heads=self.heads)
        return self.out_proj(out) + query  # (Q, N, C)


def level_shapes(height, width, strides):
    """(h, w) of each level: ceil of the image size over the stride."""
    return [(-(-height // s), -(-width // s)) for s in strides]


def encoder_reference_points(shapes, batch):
    """Per level (N, h*w, L, 2): the pixel centres, the same on every level (no padding)."""
    refs = []
    for h, w in shapes:
        ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing='ij')
        xy = np.stack([xs.ravel(), ys.ravel()], axis=-1)  # (h*w, 2)
        refs.append(np.broadcast_to(xy[None, :, None], (batch, h * w, len(shapes), 2)))
    return refs


def msda_step(args, shapes, rng):
    """A function running one MSDA pass of the stage (and its backward with ``--backward``)."""
    n, c = args.batch, args.dims
    net = MultiScaleDeformableAttention(c, args.heads, len(shapes), args.points,
                                        method=args.attention.split('-')[1])
    net.initialize()
    net.hybridize(static_alloc=True)
    tokens = [mx.nd.array(rng.normal(size=(n, h * w, c))) for h, w in shapes]
    masks = [mx.nd.zeros((n, h, w)) for h, w in shapes]
    if args.stage == 'encoder':
        pos = [mx.nd.array(rng.normal(size=t.shape)) for t in tokens]
        refs = [mx.nd.array(r) for r in encoder_reference_points(shapes, n)]
        call = (tokens, None, masks, refs, pos)
    else:
        query = mx.nd.array(rng.normal(size=(n, args.queries, c)))
        ref = mx.nd.array(rng.uniform(size=(n, args.queries, len(shapes), 2)))
        call = (query, tokens, masks, ref, mx.nd.array(rng.normal(size=query.shape)))
    return lambda: run(net, call, args.backward)


def dense_step(args, shapes, rng):
    """A function running one dense-attention pass of the stage, queries in chunks."""
    n, c = args.batch, args.dims
    keys = sum(h * w for h, w in shapes)
    num_queries = keys if args.stage == 'encoder' else args.queries
    chunk = max(1, int(args.dense_chunk_mb * 2 ** 20 // (4 * n * args.heads * keys)))
    net = DenseAttention(c, args.heads)
    kv_proj = nn.Dense(2 * c, flatten=False, in_units=c)
    for block in (net, kv_proj):
        block.initialize()
        block.hybridize(static_alloc=True)
    memory = mx.nd.array(rng.normal(size=(keys, n, c)))  # (K, N, C)
    query = memory if args.stage == 'encoder' else mx.nd.array(
        rng.normal(size=(num_queries, n, c)))  # (Q, N, C)
    chunks = [query[i:i + chunk] for i in range(0, num_queries, chunk)]

    def forward():
        kv = kv_proj(memory)  # (K, N, 2C)
        return mx.nd.concat(*[net(q, kv) for q in chunks], dim=0)  # (Q, N, C)
    logger.info('dense: %d queries in %d chunks of <= %d', num_queries, len(chunks), chunk)
    return lambda: run(forward, (), args.backward)


def run(fn, call, backward):
    """One pass of ``fn(*call)``, forward only or forward and backward (into the parameters'
    gradients), finished."""
    if not backward:
        outs = fn(*call)
    else:
        with autograd.record():
            outs = fn(*call)
            outs = outs if isinstance(outs, list) else [outs]
            loss = mx.nd.add_n(*[o.sum() for o in outs])
        loss.backward()
    mx.nd.waitall()
    return outs


def child(args):
    """Measure one (stage, attention) in this process; write its result to stdout as JSON."""
    shapes = level_shapes(args.height, args.width, args.strides)
    rng = np.random.RandomState(0)
    step = (dense_step if args.attention == 'dense' else msda_step)(args, shapes, rng)
    times = time_steps(step, args.warmup, args.iters)
    keys = sum(h * w for h, w in shapes)
    sys.stdout.write(json.dumps(dict(
        stage=args.stage, attention=args.attention, keys=keys,
        queries=keys if args.stage == 'encoder' else args.queries,
        mean_ms=1e3 * float(np.mean(times)), std_ms=1e3 * float(np.std(times)),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.)) + '\n')


def parse_args(argv=None):
    """The command line; ``args.height``, ``args.width`` (``--size``, or 128x256 with
    ``--small``) and ``args.strides`` (a list) parsed.  The defaults are Panoptic SegFormer R50's
    (:data:`R50`, :data:`STRIDES`) on a 1024x2048 image."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='1024x2048', help='image HxW')
    parser.add_argument('--small', action='store_true', help='128x256 image (smoke check)')
    parser.add_argument('--strides', default=','.join(str(s) for s in STRIDES),
                        help='one level per stride (R50: C3..C5 and the extra level)')
    parser.add_argument('--dims', type=int, default=R50['embed_dims'])
    parser.add_argument('--heads', type=int, default=R50['num_heads'])
    parser.add_argument('--points', type=int, default=R50['num_points'])
    parser.add_argument('--queries', type=int, default=R50['num_queries'], help='decoder queries')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--stages', default='encoder,decoder')
    parser.add_argument('--methods', default='gather,bilinear',
                        help='MSDA methods to time (the model\'s: {})'.format(R50['msda_method']))
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--dense-chunk-mb', type=float, default=256.)
    parser.add_argument('--backward', action='store_true', help='time forward + backward')
    parser.add_argument('--child', nargs=2, metavar=('STAGE', 'ATTENTION'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.height, args.width = (128, 256) if args.small else map(int, args.size.split('x'))
    args.strides = [int(s) for s in args.strides.split(',')]
    return args


def main():
    """Run every (stage, attention) in its own process, then log the table and the ratios.

    Returns
    -------
    int
        0 when every measurement succeeded, else 1.
    """
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    args = parse_args()
    if args.child:
        args.stage, args.attention = args.child
        child(args)
        return 0
    shapes = level_shapes(args.height, args.width, args.strides)
    logger.info('image %dx%d, levels %s, dims %d, heads %d, points %d, batch %d, '
                'OMP_NUM_THREADS=%s%s', args.height, args.width, shapes, args.dims, args.heads,
                args.points, args.batch, os.environ.get('OMP_NUM_THREADS', 'unset'),
                ', forward + backward' if args.backward else ', forward only')
    results = {}
    attentions = ['msda-' + m for m in args.methods.split(',')] + ['dense']
    for stage in args.stages.split(','):
        for attention in attentions:
            cmd = [sys.executable, os.path.abspath(__file__), '--child', stage, attention] + \
                sys.argv[1:]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                logger.error('%s %s failed:\n%s', stage, attention, proc.stderr[-3000:])
                continue
            results[stage, attention] = json.loads(proc.stdout.strip().splitlines()[-1])
    logger.info('%-8s %-14s %8s %8s %20s %14s', 'stage', 'attention', 'queries', 'keys',
                'time (ms)', 'peak RSS (MiB)')
    for r in results.values():
        logger.info('{stage:<8} {attention:<14} {queries:>8} {keys:>8} {mean_ms:>11.1f} +- '
                    '{std_ms:<6.1f} {peak_rss_mib:>14.0f}'.format(**r))
    for (stage, attention), r in results.items():
        if attention != 'dense' and (stage, 'dense') in results:
            logger.info('%s %s: time / dense = %.3f', stage, attention,
                        r['mean_ms'] / results[stage, 'dense']['mean_ms'])
    return 0 if len(results) == len(attentions) * len(args.stages.split(',')) else 1

if __name__ == '__main__':
    sys.exit(main())
