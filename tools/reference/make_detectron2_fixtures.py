"""Reference outputs of detectron2's Panoptic FPN for ``tests/test_reference_detectron2.py``.

Runs with the PyTorch venv that has detectron2 built from source (never with gluonpan's, and no
test imports it)::

    OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_detectron2_fixtures.py \
        [--out tests/fixtures/detectron2_panoptic_fpn.npz] [--seed 14]

What it does:

1. builds detectron2's ``PanopticFPN`` from its own config
   ``COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml`` (Base-Panoptic-FPN + R50, MSRA
   ResNet with ``STRIDE_IN_1X1``, FrozenBN), ``MODEL.DEVICE cpu``, with a Cityscapes-sized head
   (``ROI_HEADS.NUM_CLASSES`` 8, ``SEM_SEG_HEAD.NUM_CLASSES`` 12 = "things" + 11 stuff) so the
   fixture stays small and detections reach the fusion's 0.5 score (the converter's name and
   shape mapping for COCO's real 80 / 54 is tested on a synthetic full-size state dict);
2. checks its state dict against :func:`gluonpan.convert.detectron2.panoptic_fpn_spec` and fills
   *every* array with :func:`gluonpan.convert.seeded.seeded_weights` (pure numpy, seed ``--seed``,
   gains :data:`GAINS`, classifier rows made zero-mean: :data:`ZERO_MEAN`), which the test
   regenerates identically with numpy alone;
3. runs in eval mode three seeded images (:func:`images`: ``seeded_images`` in our ImageNet-
   normalised RGB, 128x160, 160x224 and 120x150, which detectron2 pads to 128x160 and clips
   proposals and detections to), given to detectron2 in its own format (BGR 0..255,
   ``x * 255 * std + 255 * mean``, channels reversed) with ``height``/``width`` equal to the
   input size (no resize); stage by stage with its own
   modules (``preprocess_image``, backbone, semantic head, RPN, RoI heads), each stage checked
   against ``model(batched_inputs)``;
4. stores in the ``.npz``: a JSON ``meta`` (seed, versions, the config and overrides, this
   command, fingerprints of the weights and images, per image the ``segments_info`` of
   ``panoptic_seg``), and per image ``i``: FPN statistics ``feat{l}_stats_{i}`` (mean, std,
   max |x| of P2..P6) and every 32nd channel ``feat{l}_slice_{i}``, the proposals
   ``proposals_{i}`` and their objectness logits ``proposal_logits_{i}`` (best first), the
   detections ``boxes_{i}``, ``scores_{i}``, ``classes_{i}`` (0..7), their 28x28 mask
   probabilities ``mask_probs_{i}``, the pasted masks (``>= 0.5``, bit-packed:
   ``masks_pasted_{i}``, ``np.unpackbits(..., count=D * H * W)``), the semantic logits every 4th
   pixel ``sem_logits_{i}`` (float32, detectron2's class order: "things" first; at the padded
   size) and their full argmax ``sem_argmax_{i}`` (uint8), and the panoptic map
   ``panoptic_{i}`` (uint8 segment ids 1, 2, ... of ``segments_info``, 0 void).
"""
import argparse
import logging
import os
import platform
import sys
import types

import numpy as np
import torch
import detectron2
from detectron2.config import get_cfg
from detectron2.modeling import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
# gluonpan.data.transforms imports OpenCV at the top but uses it only in functions not called
# here; this venv has no OpenCV
sys.modules.setdefault('cv2', types.ModuleType('cv2'))
from gluonpan.convert.detectron2 import PIXEL_MEAN, panoptic_fpn_spec  # noqa: E402
from gluonpan.convert.seeded import fingerprint, seeded_images, seeded_weights  # noqa: E402
from gluonpan.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from fixture_io import add_feature_summary, write_fixture  # noqa: E402

NUM_THINGS, NUM_SEMANTIC = 8, 12
SIZES = ((128, 160), (160, 224), (120, 150))
CONFIG = 'COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml'
OVERRIDES = ['MODEL.DEVICE', 'cpu', 'MODEL.WEIGHTS', '',
             'MODEL.ROI_HEADS.NUM_CLASSES', str(NUM_THINGS),
             'MODEL.SEM_SEG_HEAD.NUM_CLASSES', str(NUM_SEMANTIC)]
#: weight std = gain / sqrt(fan_in) by name pattern (default sqrt(2)): the stem conv sees
#: detectron2's 0..255-scale input (x 255 * std ~ 58 times ours), the last conv of each residual
#: branch is damped, the FPN keeps the variance, the predictors give varied objectness, class
#: scores (some above the fusion's 0.5), masks and semantic classes, and moderate box deltas;
#: GroupNorm scales (rank 1, "fan-in" 1) get std 0.5
GAINS = {r'stem\.conv1\.weight$': 0.025, r'conv3\.weight$': 0.3, r'^backbone\.fpn_': 1.0,
         r'objectness_logits': 0.25, r'anchor_deltas': 0.03, r'cls_score': 0.4,
         r'bbox_pred': 0.1, r'mask_head\.predictor': 1.0, r'sem_seg_head\.predictor': 1.0,
         r'\.norm\.weight$': 0.5}
#: weights whose rows are made zero-mean (see seeded_weights): the classifiers after a ReLU
ZERO_MEAN = (r'cls_score\.weight$', r'mask_head\.predictor\.weight$',
             r'sem_seg_head\.predictor\.weight$')
COMMAND = 'OMP_NUM_THREADS=2 /work/refenv/bin/python tools/reference/make_detectron2_fixtures.py'


def images(seed):
    """The two test images in our input format: ImageNet-normalised RGB float32 (3, H, W)."""
    return [seeded_images(seed + i, 1, h, w)[0] for i, (h, w) in enumerate(SIZES)]


def to_detectron2_input(image):
    """Our normalised RGB (3, H, W) -> detectron2's BGR 0..255 (3, H, W) float32."""
    mean = 255. * np.asarray(IMAGENET_MEAN, np.float64).reshape((3, 1, 1))  # (3, 1, 1)
    std = 255. * np.asarray(IMAGENET_STD, np.float64).reshape((3, 1, 1))  # (3, 1, 1)
    return np.ascontiguousarray((image * std + mean)[::-1]).astype(np.float32)  # (3, H, W)


def build(seed):
    """detectron2's Panoptic FPN with seeded weights, eval mode, and the weights."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(os.path.dirname(os.path.dirname(detectron2.__file__)),
                                     'configs', CONFIG))
    cfg.merge_from_list(OVERRIDES)
    cfg.freeze()
    model = build_model(cfg)
    if tuple(cfg.MODEL.PIXEL_MEAN) != PIXEL_MEAN or tuple(cfg.MODEL.PIXEL_STD) != (1., 1., 1.):
        raise SystemExit('unexpected pixel mean / std {} {}'.format(cfg.MODEL.PIXEL_MEAN,
                                                                    cfg.MODEL.PIXEL_STD))
    spec = panoptic_fpn_spec(NUM_THINGS, NUM_SEMANTIC, 50)
    state = model.state_dict()
    real = {k: tuple(v.shape) for k, v in state.items()}
    if real != dict(spec):
        raise SystemExit('panoptic_fpn_spec differs from detectron2 {}: {}'.format(
            detectron2.__version__, sorted(set(real.items()) ^ set(spec.items()))[:10]))
    weights = seeded_weights(spec, seed, GAINS, ZERO_MEAN)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model.eval(), weights, cfg


def run_stages(model, image):
    """Stage-wise outputs of one image with detectron2's own modules, checked end to end."""
    h, w = image.shape[1:]
    inputs = [{'image': torch.from_numpy(to_detectron2_input(image)), 'height': h, 'width': w}]
    with torch.no_grad():
        images_ = model.preprocess_image(inputs)
        features = model.backbone(images_.tensor)
        sem_logits, _ = model.sem_seg_head(features, None)
        proposals, _ = model.proposal_generator(images_, features, None)
        detections, _ = model.roi_heads(images_, features, proposals, None)
        end_to_end = model(inputs)[0]
        raw_dets, raw_sem = model.inference(inputs, do_postprocess=False)
    final = end_to_end['instances']
    for name, a, b in (('boxes', detections[0].pred_boxes.tensor, final.pred_boxes.tensor),
                       ('scores', detections[0].scores, final.scores),
                       ('sem_seg', sem_logits[0], raw_sem[0]),
                       ('raw boxes', detections[0].pred_boxes.tensor,
                        raw_dets[0].pred_boxes.tensor)):
        if not torch.equal(a, b):
            raise SystemExit('stage-wise {} differ from model(inputs)'.format(name))
    return dict(features=features, proposals=proposals[0], detections=detections[0],
                sem_logits=sem_logits[0], final=final, panoptic=end_to_end['panoptic_seg'])


def store(out, i, stages):
    """Add the arrays of image ``i`` to ``out``; returns its segments_info."""
    for level, name in enumerate(('p2', 'p3', 'p4', 'p5', 'p6')):
        add_feature_summary(out, level, i, stages['features'][name][0].numpy())
    props, dets, final = stages['proposals'], stages['detections'], stages['final']
    out['proposals_{}'.format(i)] = props.proposal_boxes.tensor.numpy().astype(np.float32)
    out['proposal_logits_{}'.format(i)] = props.objectness_logits.numpy().astype(np.float32)
    out['boxes_{}'.format(i)] = dets.pred_boxes.tensor.numpy().astype(np.float32)
    out['scores_{}'.format(i)] = dets.scores.numpy().astype(np.float32)
    out['classes_{}'.format(i)] = dets.pred_classes.numpy().astype(np.int16)
    out['mask_probs_{}'.format(i)] = dets.pred_masks[:, 0].numpy().astype(np.float32)
    if len(final) != len(dets):
        raise SystemExit('detector_postprocess dropped empty boxes: extend the fixture')
    out['masks_pasted_{}'.format(i)] = np.packbits(final.pred_masks.numpy().astype(bool))
    sem = stages['sem_logits'].numpy()
    out['sem_logits_{}'.format(i)] = sem[:, ::4, ::4].astype(np.float32)
    out['sem_argmax_{}'.format(i)] = sem.argmax(axis=0).astype(np.uint8)
    panoptic, segments = stages['panoptic']
    if int(panoptic.max()) > 255:
        raise SystemExit('more than 255 segments')
    out['panoptic_{}'.format(i)] = panoptic.numpy().astype(np.uint8)
    logging.info('image %d: %d proposals, %d detections (scores %.3f..%.3f), %d segments: %s', i,
                 len(props), len(dets), dets.scores.min(), dets.scores.max(), len(segments),
                 [(s['category_id'], s['isthing']) for s in segments])
    return [{k: (v.item() if hasattr(v, 'item') else v) for k, v in s.items()} for s in segments]


def main(argv=None):
    """Write the fixture ``.npz``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'tests', 'fixtures',
                                                      'detectron2_panoptic_fpn.npz'))
    parser.add_argument('--seed', type=int, default=14)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    model, weights, cfg = build(args.seed)
    ims = images(args.seed)
    out, segments = {}, []
    for i, image in enumerate(ims):
        segments.append(store(out, i, run_stages(model, image)))
    out['anchors_base'] = np.stack(
        [a.numpy() for a in model.proposal_generator.anchor_generator.cell_anchors])
    combine = cfg.MODEL.PANOPTIC_FPN.COMBINE
    meta = dict(seed=args.seed, num_things=NUM_THINGS, num_semantic=NUM_SEMANTIC,
                sizes=SIZES, gains=GAINS, zero_mean=ZERO_MEAN, command=COMMAND, config=CONFIG,
                overrides=OVERRIDES,
                combine=dict(overlap=combine.OVERLAP_THRESH, stuff_area=combine.STUFF_AREA_LIMIT,
                             score=combine.INSTANCES_CONFIDENCE_THRESH),
                segments_info=segments,
                input='tools/reference/make_detectron2_fixtures.images(seed): '
                      'seeded_images(seed + i, 1, H, W), ImageNet-normalised RGB; detectron2 got '
                      'to_detectron2_input(image) (BGR 0..255)',
                versions=dict(torch=torch.__version__, detectron2=detectron2.__version__,
                              detectron2_commit='02b5c4e', numpy=np.__version__,
                              python=platform.python_version()),
                weights_fingerprint=fingerprint(weights),
                images_fingerprint=fingerprint({str(i): im for i, im in enumerate(ims)}))
    write_fixture(args.out, out, meta)


if __name__ == '__main__':
    main()
