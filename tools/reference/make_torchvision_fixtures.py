"""Reference outputs of torchvision's Mask R-CNN R50-FPN for ``tests/test_reference_torchvision.py``.

Runs with the PyTorch venv, never with gluonpan's (and no test imports it)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_torchvision_fixtures.py \
        [--out tests/fixtures/torchvision_maskrcnn.npz] [--seed 14] \
        [--pth-out tests/fixtures/tiny_checkpoint.pth]

What it does:

1. builds ``torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
   num_classes=9)`` (Cityscapes: 8 thing classes + background), in eval mode, with its transform
   set to leave the input alone: ``min_size=128, max_size=160`` (scale 1 for 128x160 images),
   ``image_mean=0, image_std=1`` (the input is already normalised);
2. fills *every* array of its state dict, batch-norm statistics included, with
   :func:`gluonpan.convert.seeded.seeded_weights` (pure numpy, seed ``--seed``, gains
   :data:`GAINS`), which the test regenerates identically with numpy alone;
3. runs two images :func:`gluonpan.convert.seeded.seeded_images` (seed, 2, 128, 160) through the
   model, stage by stage with torchvision's own modules (transform, backbone, RPN, RoI heads,
   postprocess; the stage-wise result is checked against ``model(images)``);
4. stores in the ``.npz``: a JSON ``meta`` (seed, versions, input recipe, this command, a
   fingerprint of the weights and images), the anchors of the first location of each level
   ``anchors_base`` (5, 3, 4), and per image ``i``: FPN level statistics
   ``feat{l}_stats_{i}`` (mean, std, max |x|) and a float32 slice ``feat{l}_slice_{i}`` (every
   32nd channel), the proposals ``proposals_{i}`` (float32, best first) and their objectness
   ``proposal_scores_{i}``, the detections ``boxes_{i}`` (float32), ``scores_{i}``,
   ``labels_{i}`` (1..8), the 28x28 mask probabilities ``mask_probs_{i}`` (float32) and the pasted
   masks at probability > 0.5, bit-packed (``masks_pasted_{i}``, unpack with
   ``np.unpackbits(..., count=D * H * W)``);
5. writes a tiny ``torch.save`` checkpoint, ``tests/fixtures/tiny_checkpoint.pth`` (``--pth-out``),
   for the test of :mod:`gluonpan.convert.pth` (see :func:`write_tiny_pth`).
"""
import argparse
import collections
import logging
import os
import platform
import sys

import numpy as np
import torch
import torchvision
from torchvision.models.detection import maskrcnn_resnet50_fpn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from gluonpan.convert.seeded import (fingerprint, seeded_images, seeded_weights,  # noqa: E402
                                     uniform)
from gluonpan.convert.torchvision import maskrcnn_resnet_fpn_spec  # noqa: E402
from fixture_io import add_feature_summary, write_fixture  # noqa: E402

NUM_CLASSES = 9  # torchvision counts the background: 8 Cityscapes thing classes + 1
HEIGHT, WIDTH, NUM_IMAGES = 128, 160, 2
#: weight std = gain / sqrt(fan_in) by name pattern (default sqrt(2)): the last conv of each
#: residual branch is damped so activations stay O(1) through 16 blocks, the linear FPN convs keep
#: the variance, the predictors give varied objectness / class scores / masks and moderate deltas
GAINS = {r'conv3\.weight$': 0.3, r'^backbone\.fpn\.': 1.0, r'rpn\.head\.cls_logits': 0.25,
         r'rpn\.head\.bbox_pred': 0.03, r'box_predictor\.cls_score': 0.08,
         r'box_predictor\.bbox_pred': 0.1, r'mask_fcn_logits': 1.0}
COMMAND = ('OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_torchvision_fixtures.py')


def build_model(seed):
    """torchvision's Mask R-CNN with seeded weights, transform as an identity, eval mode."""
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=NUM_CLASSES,
                                  min_size=HEIGHT, max_size=WIDTH, image_mean=[0., 0., 0.],
                                  image_std=[1., 1., 1.])
    spec = maskrcnn_resnet_fpn_spec(NUM_CLASSES)
    state = model.state_dict()
    real = {k: tuple(v.shape) for k, v in state.items() if not k.endswith('num_batches_tracked')}
    if real != dict(spec):
        raise SystemExit('maskrcnn_resnet_fpn_spec differs from torchvision {}: {}'.format(
            torchvision.__version__, sorted(set(real.items()) ^ set(spec.items()))[:10]))
    weights = seeded_weights(spec, seed, GAINS)
    state.update({k: torch.from_numpy(v) for k, v in weights.items()})
    model.load_state_dict(state)
    return model.eval(), weights


def run_stages(model, images):
    """Stage-wise outputs with torchvision's own modules (what GeneralizedRCNN.forward does)."""
    captured = {}
    filter_proposals = model.rpn.filter_proposals

    def capture(*args, **kwargs):
        boxes, scores = filter_proposals(*args, **kwargs)
        captured['proposal_scores'] = scores
        return boxes, scores

    model.rpn.filter_proposals = capture
    inputs = [torch.from_numpy(im) for im in images]
    with torch.no_grad():
        image_list, _ = model.transform(inputs)
        if not torch.equal(image_list.tensors, torch.from_numpy(images)):
            raise SystemExit('the transform changed the input: check min_size/max_size/mean/std')
        features = model.backbone(image_list.tensors)
        proposals, _ = model.rpn(image_list, features)
        detections, _ = model.roi_heads(features, proposals, image_list.image_sizes)
        mask_probs = [d['masks'][:, 0].clone() for d in detections]
        pasted = model.transform.postprocess(detections, image_list.image_sizes,
                                             [(HEIGHT, WIDTH)] * len(inputs))
        end_to_end = model(inputs)
    del model.rpn.filter_proposals
    for a, b in zip(pasted, end_to_end):
        for key in ('boxes', 'scores', 'labels', 'masks'):
            if not torch.equal(a[key], b[key]):
                raise SystemExit('stage-wise {} differ from model(images)'.format(key))
    return features, proposals, captured['proposal_scores'], pasted, mask_probs


def write_tiny_pth(path, seed):
    """A small ``torch.save`` checkpoint for the torch-free ``.pth`` reader's test.

    ``{'model': OrderedDict(...), 'epoch': 3}`` with float32 / float64 / float16 / int64 / bool
    tensors, an ``nn.Parameter``, a 0-d counter and a transposed slice sharing the storage of
    another tensor; values from :func:`gluonpan.convert.seeded.uniform` (seed, name, shape).
    """
    big = torch.from_numpy(uniform(seed, 'big', (4, 6)).astype(np.float64))
    model = collections.OrderedDict([
        ('conv.weight', torch.from_numpy(uniform(seed, 'conv.weight', (4, 3, 3, 3)))),
        ('bn.num_batches_tracked', torch.tensor(7)),
        ('half', torch.from_numpy(uniform(seed, 'half', (5,))).half()),
        ('big', big),
        ('view', big.t()[1:3]),  # (2, 4) non-contiguous, shares big's storage
        ('param', torch.nn.Parameter(torch.from_numpy(uniform(seed, 'param', (3, 2))))),
        ('flag', torch.tensor([True, False, True]))])
    torch.save({'model': model, 'epoch': 3}, path)
    logging.info('wrote %s (%d bytes)', path, os.path.getsize(path))


def main(argv=None):
    """Write the fixture ``.npz``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'tests', 'fixtures',
                                                      'torchvision_maskrcnn.npz'))
    parser.add_argument('--seed', type=int, default=14)
    parser.add_argument('--pth-out', default=os.path.join(ROOT, 'tests', 'fixtures',
                                                          'tiny_checkpoint.pth'))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    write_tiny_pth(args.pth_out, args.seed)
    model, weights = build_model(args.seed)
    images = seeded_images(args.seed, NUM_IMAGES, HEIGHT, WIDTH)
    features, proposals, proposal_scores, dets, mask_probs = run_stages(model, images)
    out = {'anchors_base': np.stack([a.numpy() for a in model.rpn.anchor_generator.cell_anchors])}
    for level, feat in enumerate(features.values()):
        feat = feat.numpy()
        for i in range(NUM_IMAGES):
            add_feature_summary(out, level, i, feat[i])
    for i in range(NUM_IMAGES):
        out['proposals_{}'.format(i)] = proposals[i].numpy().astype(np.float32)
        out['proposal_scores_{}'.format(i)] = proposal_scores[i].numpy().astype(np.float32)
        out['boxes_{}'.format(i)] = dets[i]['boxes'].numpy().astype(np.float32)
        out['scores_{}'.format(i)] = dets[i]['scores'].numpy().astype(np.float32)
        out['labels_{}'.format(i)] = dets[i]['labels'].numpy().astype(np.int16)
        out['mask_probs_{}'.format(i)] = mask_probs[i].numpy().astype(np.float32)
        out['masks_pasted_{}'.format(i)] = np.packbits(dets[i]['masks'][:, 0].numpy() > 0.5)
        logging.info('image %d: %d proposals, %d detections, scores %.3f..%.3f, labels %s', i,
                     len(proposals[i]), len(dets[i]['boxes']), dets[i]['scores'].min(),
                     dets[i]['scores'].max(), np.bincount(dets[i]['labels'].numpy()))
    meta = dict(seed=args.seed, num_classes=NUM_CLASSES, height=HEIGHT, width=WIDTH,
                num_images=NUM_IMAGES, gains=GAINS, command=COMMAND,
                input='gluonpan.convert.seeded.seeded_images(seed, 2, 128, 160), already '
                      'normalised; transform min_size=128 max_size=160 mean=0 std=1',
                versions=dict(torch=torch.__version__, torchvision=torchvision.__version__,
                              numpy=np.__version__, python=platform.python_version()),
                weights_fingerprint=fingerprint(weights),
                images_fingerprint=fingerprint({'images': images})['images'])
    write_fixture(args.out, out, meta)


if __name__ == '__main__':
    main()
