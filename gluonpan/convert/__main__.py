"""Convert another framework's weights into a gluonpan model folder (``.params`` + ``args.json``).

::

    python -m gluonpan.convert detectron2 model_final_cafdb1.pkl --out converted/d2_r50_3x
    python -m gluonpan.convert torchvision maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth --out DIR
    python -m gluonpan.convert panopticfcn panoptic_fcn_r50_3x.pth --out converted/pfcn_r50_3x

* ``detectron2``: a COCO Panoptic FPN R50 / R101 (``model_final_*.pkl``, or a ``.pth`` a
  detectron2 training wrote) -> ``panoptic_fpn_resnet{50,101}_msra_coco`` with every weight,
  semantic head included, run with ``preset='detectron2'``;
* ``torchvision``: ``maskrcnn_resnet50_fpn`` (COCO: its 91 class slots are mapped to our 80 thing
  classes by category id) -> ``panoptic_fpn_resnet50_v1b_coco``, the instance branch only (the
  semantic head is freshly initialised), run with ``preset='torchvision'``;
* ``panopticfcn``: the authors' PanopticFCN R50 / R101 (``yanwei-li/PanopticFCN``, a detectron2
  ``.pth``; with or without the deformable position head) ->
  ``panoptic_fcn_resnet{50,101}_msra_coco`` with every weight.  Its input format is folded into
  the stem: ``--input-format`` (default ``BGR``, detectron2's) and ``--pixel-mean`` /
  ``--pixel-std`` (default the authors' configs' ``123.675 116.28 103.53`` / ``1 1 1``, in the
  order of the input channels); their mean leaves a constant offset that folds exactly only away
  from the image border (see :mod:`gluonpan.convert.panopticfcn`; logged).
  ``--input-format normalized``: the checkpoint's network was fed gluonpan's normalised input as
  it is (nothing to fold).

``--categories-json``: a panoptic JSON whose ``categories`` the checkpoint was trained with
(default: COCO panoptic's 133, ``gluonpan/data/coco_panoptic_categories.json``).  The output
folder is what ``scripts/panoptic/eval_panoptic_fpn.py --pretrained DIR/<name>.params`` and
``get_model(name, pretrained=...)`` take.  Bad input is one line naming the file and what does not
match (exit status 1; 2 for a wrong flag).
"""
import logging
import os

from ..errors import ArgumentParser, UsageError, run_cli
from .panopticfcn import INPUT_FORMATS

SOURCES = ('detectron2', 'torchvision', 'panopticfcn')
#: the flags of the panopticfcn source only
INPUT_FLAGS = ('input_format', 'pixel_mean', 'pixel_std')


def parse_args(argv):
    """The command line."""
    parser = ArgumentParser(prog='python -m gluonpan.convert',
                            description=__doc__.split('\n')[0])
    parser.add_argument('source', choices=SOURCES, help='the framework that wrote FILE')
    parser.add_argument('file', metavar='FILE', help='the checkpoint to convert')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='output folder (gets <model name>.params and args.json)')
    parser.add_argument('--categories-json', metavar='J',
                        help="panoptic JSON with the checkpoint's categories (default: COCO "
                             "panoptic's 133)")
    parser.add_argument('--input-format', choices=INPUT_FORMATS,
                        help="panopticfcn: the checkpoint's INPUT.FORMAT (default BGR), or "
                             "'normalized' (it was fed gluonpan's input as it is)")
    parser.add_argument('--pixel-mean', type=float, nargs=3, metavar='M',
                        help="panopticfcn: its MODEL.PIXEL_MEAN in the order of its input "
                             "channels (default the authors' 123.675 116.28 103.53)")
    parser.add_argument('--pixel-std', type=float, nargs=3, metavar='S',
                        help='panopticfcn: its MODEL.PIXEL_STD (default 1 1 1)')
    args = parser.parse_args(argv)
    given = ['--' + k.replace('_', '-') for k in INPUT_FLAGS if getattr(args, k) is not None]
    if given and args.source != 'panopticfcn':
        parser.error('{} only apply to the panopticfcn source'.format(', '.join(given)))
    return args


def main(argv=None):
    """Convert ``FILE``; returns the written ``.params`` path."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    if not os.path.isfile(args.file):
        raise UsageError('FILE {} does not exist'.format(args.file))
    if os.path.isdir(args.out) and os.listdir(args.out):
        raise UsageError('--out {} is not empty'.format(args.out))
    categories = None
    if args.categories_json:
        from ..data.categories import coco_categories_from_json
        if not os.path.isfile(args.categories_json):
            raise UsageError('--categories-json {} does not exist'.format(args.categories_json))
        categories = coco_categories_from_json(args.categories_json)
    if args.source == 'panopticfcn':
        from .panopticfcn import convert_file
        return convert_file(args.file, args.out, categories, args.input_format or 'BGR',
                            args.pixel_mean, args.pixel_std)
    if args.source == 'detectron2':
        from .detectron2 import convert_file
    else:
        from .torchvision import convert_file
    return convert_file(args.file, args.out, categories)


if __name__ == '__main__':
    run_cli(main)
