"""What the inference benchmarks share for accuracy: trained runs evaluated on their val split by
the eval program in several variants (float32 MXNet, bfloat16, onnxruntime), the scores logged
side by side with their differences.

Used by ``bench_precision.py`` (``--dtype bfloat16``) and ``bench_export.py`` (``--onnx``).
"""
import argparse
import logging
import os
import tempfile

__all__ = ['parse_run', 'compare_accuracy']

logger = logging.getLogger(__name__)


def parse_run(text):
    """An argparse type: ``ARCH=PARAMS`` (a training run's ``.params``) -> ``(arch, params)``."""
    arch, sep, params = text.partition('=')
    if not sep or not os.path.isfile(params):
        raise argparse.ArgumentTypeError('{!r}: give ARCH=PARAMS with an existing .params file'
                                         .format(text))
    return arch, params


def _evaluate(arch, params, extra, save_dir):
    """The eval program of ``arch`` on the run's val split (its ``args.json`` names the data)."""
    from gluonpan.tools.evaluate import main as eval_main
    return eval_main(arch, ['--pretrained', params, '--gpus', '', '--num-workers', '0',
                            '--overlays', '0', '--save-dir', save_dir] + list(extra))


def _scores(results):
    """``{name: value in %}`` of an eval result: PQ, PQ_th, PQ_st, mIoU (those it has)."""
    out = {}
    for name, key in (('PQ', 'All'), ('PQ_th', 'Things'), ('PQ_st', 'Stuff')):
        if key in results:
            out[name] = 100 * results[key]['pq']
    if results.get('mIoU') is not None:
        out['mIoU'] = 100 * results['mIoU']
    return out


def compare_accuracy(runs, variants):
    """Evaluate every run in every variant; log a line per run and score.

    Parameters
    ----------
    runs : list of (str, str)
        ``(arch, params)`` from :func:`parse_run`.
    variants : list of (str, callable)
        ``(label, extra_flags)``: ``extra_flags(arch, params, folder)`` returns the eval flags of
        the variant (it may write files into ``folder``, e.g. an exported model).  The first is
        the reference the differences are taken against.

    Returns
    -------
    list of (str, str, dict)
        ``(arch, params, {label: scores})``.
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (arch, params) in enumerate(runs):
            got = {}
            for label, extra_flags in variants:
                folder = os.path.join(tmp, '{}_{}'.format(index, label))
                os.makedirs(folder)
                flags = extra_flags(arch, params, folder)
                got[label] = _scores(_evaluate(arch, params, flags, os.path.join(folder, 'eval')))
            rows.append((arch, params, got))
    labels = [label for label, _ in variants]
    logger.info('accuracy on the val split: %s (difference in points against %s):',
                ' / '.join(labels), labels[0])
    for arch, params, got in rows:
        for name, value in got[labels[0]].items():
            others = ['{:6.2f} ({:+.2f})'.format(got[l][name], got[l][name] - value)
                      for l in labels[1:]]
            logger.info('  %-18s %-6s %6.2f  %s   %s', arch, name, value, '  '.join(others),
                        params)
    return rows
