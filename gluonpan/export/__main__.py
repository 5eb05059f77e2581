"""Export a trained model's inference graph for another runtime.

::

    python -m gluonpan.export --network semantic_fpn_resnet18_v1b_citys \\
        --pretrained runs/semantic_quick/semantic_fpn_resnet18_v1b_citys-final.params \\
        --format onnx --out exported/

* ``--format onnx``: ``DIR/<network>.onnx``, one ONNX graph (opset 16) of ``net.predict`` with
  dynamic input sizes (``--static``: only ``--input-size``), run by onnxruntime:
  ``gluonpan.predict(..., backend='onnxruntime')``, the demos' ``--onnx FILE``,
  :class:`gluonpan.export.OnnxPredictor`;
* ``--format mxnet``: ``DIR/<network>-symbol.json`` + ``DIR/<network>-0000.params`` (``net.export``,
  for MXNet's C++ / Scala predictors) and ``DIR/<network>-gluonpan.json``, the model record the
  post-processing needs (inputs, outputs, categories, thresholds; ``symbol_inputs``: the
  symbol's input names, ``data`` or, for Panoptic FPN, ``data0`` and the window ``data1``).

Every architecture of the zoo exports: Semantic FPN, Panoptic FCN, Panoptic FPN and Panoptic
SegFormer (:mod:`gluonpan.export.architectures`).

``--network`` is the zoo name; the ``args.json`` of a training run beside ``--pretrained``
supplies its recorded model options (as for eval and demo), ``--model-kwargs`` overrides them.
Bad input is one line naming the flag or file (exit status 2; 1 for a broken weights file).
"""
import logging
import os

import mxnet as mx

from ..errors import ArgumentParser, UsageError, run_cli
from ..utils.checkpoint import atomic_write_json

FORMATS = ('onnx', 'mxnet')


def parse_args(argv):
    """The command line, checked: known network, existing ``--pretrained``."""
    from ..model_zoo import get_model_list
    from ..tasks import ARCHITECTURES, get_task
    from ..utils.cli import check_pretrained
    parser = ArgumentParser(prog='python -m gluonpan.export',
                            description=__doc__.split('\n')[0])
    parser.add_argument('--network', required=True, metavar='NAME',
                        help='zoo model name, e.g. semantic_fpn_resnet18_v1b_citys')
    parser.add_argument('--pretrained', required=True, metavar='FILE',
                        help='its .params file (a training run\'s args.json beside it supplies '
                             'the model options), or the zoo name for the released weights')
    parser.add_argument('--format', choices=FORMATS, default='onnx')
    parser.add_argument('--out', required=True, metavar='DIR', help='output folder')
    parser.add_argument('--model-kwargs', default=None,
                        help='JSON model options on top of the training run\'s')
    parser.add_argument('--categories-json', default=None, metavar='J',
                        help='COCO-format panoptic models: a panoptic JSON with their '
                             'categories (default: the training run\'s)')
    parser.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='the size the graph is built on (default 64x64, Panoptic FPN '
                             '128x128); with --static the only size it takes')
    parser.add_argument('--static', action='store_true',
                        help='onnx: a fixed input size (--input-size) instead of dynamic sizes')
    args = parser.parse_args(argv)
    names = get_model_list()
    arch = next((a for a in ARCHITECTURES if args.network.startswith(a + '_')), None)
    if args.network not in names or arch is None:
        parser.error('--network {}: unknown model; valid: {}'.format(args.network,
                                                                     ', '.join(names)))
    args.task = get_task(arch)
    check_pretrained(parser, args, args.task)
    if args.pretrained in names and args.pretrained != args.network:
        parser.error('--pretrained {} is another model than --network {}'.format(
            args.pretrained, args.network))
    if args.categories_json is not None and not os.path.isfile(args.categories_json):
        parser.error('--categories-json {}: no such file'.format(args.categories_json))
    if args.static and not args.input_size:
        parser.error('--static needs --input-size H W')
    if args.static and args.format != 'onnx':
        parser.error('--static applies to --format onnx only')
    return args


def load_network(args):
    """The network of ``--network`` with the weights of ``--pretrained`` (and the model options
    its training run recorded), on the CPU."""
    from ..utils.cli import load_model, run_args
    saved = run_args(args.pretrained)
    recorded = saved.get('model')
    if recorded and recorded != args.network:
        raise UsageError('--network {} but the training run beside --pretrained {} trained {}'
                         .format(args.network, args.pretrained, recorded))
    saved = dict(saved, model=args.network)
    return load_model(args, [mx.cpu()], saved, args.categories_json, args.task)


def main(argv=None):
    """Export; returns the written files."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    from ._deps import require
    from .architectures import describe
    from .onnx_export import export_mxnet, export_onnx
    if args.format == 'onnx':
        require('onnx')  # before the weights are loaded
    net = load_network(args)
    os.makedirs(args.out, exist_ok=True)
    prefix = os.path.join(args.out, args.network)
    if args.format == 'onnx':
        return [export_onnx(net, prefix + '.onnx', args.network, args.input_size,
                            dynamic=not args.static)]
    files = list(export_mxnet(net, prefix, args.input_size))
    params = set(k.split(':', 1)[1] for k in mx.nd.load(files[1]))
    record = dict(describe(net, args.network), symbol_inputs=[
        n for n in mx.sym.load(files[0]).list_inputs() if n not in params])
    atomic_write_json(prefix + '-gluonpan.json', record, indent=1)
    logging.info('exported %s to %s', args.network, ', '.join(files + [prefix + '-gluonpan.json']))
    return files + [prefix + '-gluonpan.json']


if __name__ == '__main__':
    run_cli(main)
