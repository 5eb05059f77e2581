"""Our PanopticFCN against the authors' own code, stage by stage.

The fixture ``tests/fixtures/panopticfcn_reference.npz`` holds what the authors' PanopticFCN
(``yanwei-li/PanopticFCN`` ecb2c09, detectron2 02b5c4e, CPU) computes with its
``configs/PanopticFCN-R50-1x.yaml`` (MSRA ResNet-50, FrozenBN, FPN P2..P7) made Cityscapes-sized
(8 thing / 12 region classes, "things" first), ``POSITION_HEAD.DEFORM False`` (detectron2 has no
CPU deformable convolution), every weight drawn by :func:`gluonpan.convert.seeded.seeded_weights`,
on three seeded images (256x512; 224x320 with output size 336x480; 200x300, padded to 224x320),
fed as our ImageNet-normalised RGB (``PIXEL_MEAN 0``, ``PIXEL_STD 1``), and a training batch of
the first two with hand-made ground truth.  Facts: ``tools/reference/PANOPTICFCN_NOTES.md``.

Here numpy alone regenerates the weights (fingerprints checked), they are written as a
checkpoint and converted by :mod:`gluonpan.convert.panopticfcn` with ``input_format='normalized'``
(nothing to fold: the fixture's network saw our input; once through ``python -m gluonpan.convert
panopticfcn``), and our hybridized ``panoptic_fcn_resnet50_msra_coco`` with Cityscapes
categories and ``deform=False`` must give:

* FPN P2..P7, the centre and region logits of P3..P7 (in full), the kernel maps and the encoded
  feature (slices and statistics), the embedded thing / stuff kernels and the stride-4 mask
  logits (|logit| up to ~55) within ``MAP_TOL = 2e-5`` of each array's largest value: float32
  convolutions summed in another order differ by ~1e-7 relative per layer; measured at most
  6.2e-6 after the ~60 layers to the encoder;
* thing candidates: the same levels, positions and classes in the same order (the closest two
  candidate scores are 1.5e-5 apart), scores within ``SCORE_TOL = 2e-5`` (measured 1.3e-6: a
  peak score is ``(sigmoid + its mean) / 2``, slope <= 1/4, of logits ~4e-5 off);
* kernel fusion run on the fixture's own candidate kernels: the same kept candidates, scores bit
  for bit, kernels to 1e-6 (measured 7e-8: float32 averages); end to end the same kept
  candidates (the closest same-class cosine is 1.6e-5 from the 0.9 threshold in image 2; our
  cosines are within 1.7e-6 of theirs);
* stuff candidates (same levels and classes; scores within ``SCORE_TOL``, measured 1e-6) and
  their fusion per class;
* the rescored instance scores (the fused score times the mean mask probability) within
  ``INSTANCE_TOL = 5e-5`` (measured 1.5e-5: probabilities of logits up to ~55, each ~2e-4 off,
  averaged; the closest score to a threshold is 3.7e-4 away), the same kept instances in the
  same order, classes and scores;
* the pasted instance masks at the output size but for pixels whose probability is within float
  error of the 0.4 threshold (``assert_pasted``: at most 1e-4 of the mask pixels; measured 1 to
  5 pixels of ~3.5e5), the semantic argmax and the panoptic map but for 1e-4 of the pixels
  (measured at most 1 and 2: classes whose upsampled probabilities tie within float error),
  the same segments (categories, order, scores within ``INSTANCE_TOL``) -- image 1 (224x320
  shown at 336x480) through ``panoptic_from_outputs`` with that output size;
* training: :class:`gluonpan.data.fcn_targets.FCNTargets` on the ground truth (padded to the
  batch's 256x512 as the reference pads) gives ``GenerateGT``'s centre heatmaps, slots
  (assigned instances, classes, centre positions, stride-4 masks), stuff score maps and
  presence to 1e-6 (measured: equal), the top-7 guided weights of ``loss_single_level`` within
  1e-5 (sigmoids of our logits; measured 2.7e-6) and ``net.train_losses`` the four weighted
  losses within ``LOSS_TOL = 1e-5`` relative (measured 8e-8; topk's order among zero weights
  does not change them).

Also: the converter's spec is the authors' state dict (with and without DCNv2), the parameter
counts relate exactly to the authors' (:func:`test_parameter_counts`), the CLI's model runs as
the converted one, and the input-format fold is exact away from the image border.

The weights are random: the authors' layers, not their training, are what is checked.
Regenerate the fixture (PyTorch + detectron2 venv; see the script's docstring)::

    OMP_NUM_THREADS=1 /work/refenv/bin/python tools/reference/make_panopticfcn_fixtures.py
"""
import argparse
import json
import os
import pickle
import re

import mxnet as mx
import numpy as np
import pytest

from gluonpan.convert.detectron2 import load_checkpoint
from gluonpan.convert.panopticfcn import (PIXEL_MEAN, architecture_of, panoptic_fcn_spec,
                                          panopticfcn_to_gluonpan)
from gluonpan.convert.seeded import fingerprint, seeded_weights
from gluonpan.data.batchify import split_and_load, train_batchify
from gluonpan.data.categories import cityscapes_categories
from gluonpan.data.fcn_targets import FCNTargets
from gluonpan.model_zoo import count_parameters, get_model
from gluonpan.model_zoo.panoptic_fcn import TRAIN_INPUTS
from gluonpan.model_zoo.panoptic_fcn.inference import (
    fuse_stuff_kernels, fuse_thing_kernels, inference_options, kernel_probabilities,
    level_offsets, mask_quality, panoptic_from_outputs, rescore_things, select_level_peaks,
    sigmoid, stuff_candidates, stuff_semantic, thing_candidates, thing_masks)
from gluonpan.model_zoo.panoptic_fpn import pad_input
from gluonpan.tasks import get_task

from _reference import assert_fpn_features, assert_pasted, assert_weights_regenerated, \
    load_fixture
# the fixture's images (make_panopticfcn_fixtures.images draws them the same way), and
# the reference's panoptic map in our ids (segments_info has detectron2's conventions)
from test_reference_detectron2 import _ours_from_detectron2, images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'panopticfcn_reference.npz')
MODEL = 'panoptic_fcn_resnet50_msra_coco'
#: largest error of a map relative to its largest value (see the module docstring)
MAP_TOL = 2e-5
#: of the centre (peak) and stuff scores
SCORE_TOL = 2e-5
#: of the rescored instance scores
INSTANCE_TOL = 5e-5
#: of the losses, relative
LOSS_TOL = 1e-5


@pytest.fixture(scope='module')
def reference():
    return load_fixture(FIXTURE)


def spec_of(meta):
    return {k: tuple(s) for k, s in meta['spec']}


@pytest.fixture(scope='module')
def weights(reference):
    meta = reference['meta']
    return seeded_weights(spec_of(meta), meta['seed'], meta['gains'], meta['zero_mean'])


@pytest.fixture(scope='module')
def checkpoint(weights, tmp_path_factory):
    """The weights as a detectron2 checkpoint holds them (``{'model': state dict, ...}``)."""
    path = str(tmp_path_factory.mktemp('pfcn') / 'panoptic_fcn_seeded.pkl')
    with open(path, 'wb') as f:
        pickle.dump({'model': dict(weights, **{
            'backbone.bottom_up.res2.0.conv1.norm.num_batches_tracked': np.array(0)}),
            'iteration': 0}, f, protocol=2)
    return path


def citys_net(**options):
    """The R50 MSRA model with the fixture's classes, tested at the image's own size."""
    return get_model(MODEL, categories=cityscapes_categories(), test_size=None, **options)


@pytest.fixture(scope='module')
def net(checkpoint):
    net = citys_net(deform=False)
    assert panopticfcn_to_gluonpan(load_checkpoint(checkpoint), net, checkpoint,
                                   input_format='normalized') == []
    net.hybridize(static_alloc=True)
    return net


def run(net, image):
    """Stage-wise outputs of our net on one image (numpy)."""
    x = pad_input(mx.nd.array(image[None]))  # the reference pads to multiples of 32 as well
    feats = net.fpn(*net.backbone(x))
    heads = [net.position_head(p) for p in feats[1:]]
    outputs = [o.asnumpy() for o in net.predict(x)]
    return dict(feats=[f[0].asnumpy() for f in feats], outputs=outputs,
                centers=[c[0].asnumpy() for c, _ in heads],
                regions=[r[0].asnumpy() for _, r in heads],
                kernels=[net.kernel_head(p)[0].asnumpy() for p in feats[1:]],
                level_shapes=net.level_shapes(*x.shape[2:]), image_size=image.shape[1:])


@pytest.fixture(scope='module')
def ours(net, reference):
    return [run(net, image) for image in images(reference['meta'])]


def relative_error(ours_, ref):
    return np.abs(np.asarray(ours_, np.float64) - ref).max() / np.abs(ref).max()


def assert_map(ours_, ref, where, tol=MAP_TOL):
    assert ours_.shape == ref.shape, '{}: shape {}, the reference {}'.format(
        where, ours_.shape, ref.shape)
    err = relative_error(ours_, ref)
    assert err < tol, '{}: max error {:.2e} of max |x|'.format(where, err)


def assert_stats(ours_, ref, where, tol=MAP_TOL):
    stats = np.array([ours_.mean(), ours_.std(), np.abs(ours_).max()])
    np.testing.assert_allclose(stats, ref, rtol=0, atol=tol * ref[2], err_msg=where)


# ----------------------------------------------------------------------------------------------
# the network


def test_seeded_weights_and_images_are_regenerated_exactly(reference, weights):
    meta = reference['meta']
    assert_weights_regenerated(weights, meta)
    assert fingerprint({str(i): im for i, im in enumerate(images(meta))}) == \
        meta['images_fingerprint']


def test_spec_is_the_authors_state_dict(reference, weights):
    """The converter's layout is the one the authors' model had, with and without DCNv2."""
    meta = reference['meta']
    spec = spec_of(meta)
    assert dict(panoptic_fcn_spec(8, 12)) == spec
    deform = {k: v for k, v in spec.items() if not re.match(
        r'position_head\.position_head\.position_head_head_\d\.(weight|norm\.)', k)}
    deform.update((k, tuple(s)) for k, s in meta['facts']['deform_spec_extra'])
    assert dict(panoptic_fcn_spec(8, 12, deform=True)) == deform
    assert len(deform) == meta['facts']['cityscapes_T8_S12_deformTrue']['state_dict_arrays']
    assert architecture_of(weights) == (50, 8, 12, False)


def test_fpn_features(reference, ours):
    assert_fpn_features(reference, ours, tol=MAP_TOL)


def test_position_and_kernel_heads_and_encoder(reference, ours):
    for i, out in enumerate(ours):
        for l in range(5):
            where = 'image {} P{}'.format(i, l + 3)
            assert_map(out['centers'][l], reference['center_logits_{}_{}'.format(l, i)],
                       where + ' centre logits')
            assert_map(out['regions'][l], reference['region_logits_{}_{}'.format(l, i)],
                       where + ' region logits')
            kernel = out['kernels'][l]
            assert_map(kernel[::32], reference['kernel_{}_slice_{}'.format(l, i)],
                       where + ' kernel map')
            assert_stats(kernel, reference['kernel_{}_stats_{}'.format(l, i)], where)
        encoded = out['outputs'][5][0]
        assert_map(encoded[::16], reference['encode_feat_slice_{}'.format(i)],
                   'image {} encoded'.format(i))
        assert_stats(encoded, reference['encode_feat_stats_{}'.format(i)], 'encoded')


def test_msra_backbone_matters(reference, weights):
    """The same weights in a ResNetV1b (stride in the 3x3 conv) give other features."""
    net = get_model('panoptic_fcn_resnet50_v1b_citys', deform=False)
    panopticfcn_to_gluonpan(weights, net, input_format='normalized')
    p2 = net.fpn(*net.backbone(mx.nd.array(images(reference['meta'])[0][None])))[0]
    assert relative_error(p2[0].asnumpy()[::32], reference['feat0_slice_0']) > 0.1


# ----------------------------------------------------------------------------------------------
# inference, stage by stage


def candidates(out):
    """Thing candidates of our outputs with their levels and positions: the per-level selection
    of :func:`thing_candidates`, kept apart so the levels can be compared."""
    centers, thing_kernels = out['outputs'][0][0], out['outputs'][2][0]
    offsets = level_offsets(out['level_shapes'])
    found = []
    for level, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        scores, classes, positions = select_level_peaks(centers[:, start:stop],
                                                        min(stop - start, 50), 0.05)
        found.append((scores, classes, positions, np.full(len(scores), level)))
    scores, classes, positions, levels = (np.concatenate(a) for a in zip(*found))
    order = np.argsort(-scores, kind='stable')
    kernels = thing_kernels[offsets[levels] + positions]
    kernels_, scores_, classes_ = thing_candidates(centers, thing_kernels, out['level_shapes'])
    np.testing.assert_array_equal(kernels_, kernels[order])
    np.testing.assert_array_equal(scores_, scores[order])
    return dict(kernels=kernels[order], scores=scores[order], classes=classes[order],
                levels=levels[order], positions=positions[order])


def test_thing_candidates(reference, ours):
    for i, out in enumerate(ours):
        found = candidates(out)
        ref = {k: reference['thing_cand_{}_{}'.format(k, i)] for k in
               ('levels', 'index', 'classes', 'scores', 'kernels')}
        np.testing.assert_array_equal(found['levels'], ref['levels'])
        np.testing.assert_array_equal(found['positions'], ref['index'])
        np.testing.assert_array_equal(found['classes'], ref['classes'])
        np.testing.assert_allclose(found['scores'], ref['scores'], rtol=0, atol=SCORE_TOL)
        assert_map(found['kernels'], ref['kernels'], 'image {} thing candidates'.format(i),
                   MAP_TOL)


def assert_fused(fused, reference, i, tol):
    kernels, scores, classes = fused
    np.testing.assert_array_equal(classes, reference['thing_classes_{}'.format(i)])
    np.testing.assert_allclose(scores, reference['thing_scores_{}'.format(i)], rtol=0,
                               atol=SCORE_TOL)
    assert_map(kernels, reference['thing_kernels_{}'.format(i)],
               'image {} fused thing kernels'.format(i), tol)


def test_thing_fusion_on_the_references_candidates(reference):
    """Their candidate kernels through our fusion: the same kept candidates (scores equal bit
    for bit), kernels averaged over the same groups (the candidates their fusion dropped
    unmerged -- similar only to a suppressed one -- are dropped here too)."""
    for i in range(3):
        fused = fuse_thing_kernels(reference['thing_cand_kernels_{}'.format(i)],
                                   reference['thing_cand_scores_{}'.format(i)],
                                   reference['thing_cand_classes_{}'.format(i)])
        np.testing.assert_array_equal(fused[1], reference['thing_scores_{}'.format(i)])
        assert_fused(fused, reference, i, 1e-6)


def test_thing_fusion_end_to_end(reference, ours):
    for i, out in enumerate(ours):
        found = candidates(out)
        assert_fused(fuse_thing_kernels(found['kernels'], found['scores'], found['classes']),
                     reference, i, MAP_TOL)


def stuff(out):
    """Our stuff candidates (kernels, scores, classes, levels) and their fusion."""
    stuff_kernels, stats = out['outputs'][3][0], out['outputs'][4][0]  # rows level * S + class
    kernels, scores, classes = stuff_candidates(stuff_kernels, stats, 5)
    rows = np.flatnonzero(stats[:, 0] > 0)  # which rows it kept, for their levels
    rows = rows[stats[rows, 1] / stats[rows, 0] > np.float32(0.05)]
    np.testing.assert_array_equal(kernels, stuff_kernels[rows])
    levels = rows // (len(stats) // 5)
    return (kernels, scores, classes, levels), fuse_stuff_kernels(kernels, scores, classes)


def test_stuff_candidates_and_fusion(reference, ours):
    for i, out in enumerate(ours):
        (kernels, scores, classes, levels), fused = stuff(out)
        np.testing.assert_array_equal(levels, reference['stuff_cand_levels_{}'.format(i)])
        np.testing.assert_array_equal(classes, reference['stuff_cand_classes_{}'.format(i)])
        np.testing.assert_allclose(scores, reference['stuff_cand_scores_{}'.format(i)], rtol=0,
                                   atol=SCORE_TOL)
        assert_map(kernels, reference['stuff_cand_kernels_{}'.format(i)],
                   'image {} stuff candidates'.format(i), MAP_TOL)
        np.testing.assert_array_equal(fused[2], reference['stuff_classes_{}'.format(i)])
        np.testing.assert_allclose(fused[1], reference['stuff_scores_{}'.format(i)], rtol=0,
                                   atol=SCORE_TOL)
        assert_map(fused[0], reference['stuff_kernels_{}'.format(i)],
                   'image {} fused stuff kernels'.format(i), MAP_TOL)


def instances(out):
    """Our fused thing kernels, and what ``rescore_things`` keeps of them."""
    found = candidates(out)
    fused = fuse_thing_kernels(found['kernels'], found['scores'], found['classes'])
    return fused, rescore_things(*fused, encoded=out['outputs'][5][0])


def test_mask_logits(reference, ours):
    for i, out in enumerate(ours):
        encoded = out['outputs'][5][0]
        E, h, w = encoded.shape
        (kernels, _, _), _ = instances(out)
        stuff_kernels = stuff(out)[1][0]
        for name, k in (('thing', kernels[:8]), ('stuff', stuff_kernels)):
            logits = k.dot(encoded.reshape(E, h * w)).reshape(-1, h, w)  # (N, h, w)
            assert_map(logits[:, ::4, ::4], reference['{}_logits_{}'.format(name, i)],
                       'image {} {} mask logits'.format(i, name), MAP_TOL)


def test_rescored_instances(reference, ours):
    for i, out in enumerate(ours):
        encoded = out['outputs'][5][0]
        (kernels, scores, _), (kept, kept_scores, kept_classes) = instances(out)
        rescored = scores * mask_quality(kernel_probabilities(kernels, encoded))
        np.testing.assert_allclose(rescored, reference['inst_rescored_{}'.format(i)], rtol=0,
                                   atol=INSTANCE_TOL)
        order = reference['inst_order_{}'.format(i)]
        np.testing.assert_array_equal(kept, kernels[order])
        np.testing.assert_array_equal(kept_classes, reference['inst_classes_{}'.format(i)])
        np.testing.assert_allclose(kept_scores, reference['inst_scores_{}'.format(i)], rtol=0,
                                   atol=INSTANCE_TOL)


def test_pasted_masks_and_semantic_argmax(reference, ours):
    meta = reference['meta']
    for i, out in enumerate(ours):
        encoded = out['outputs'][5][0]
        size = tuple(meta['out_sizes'][i])
        kept = instances(out)[1][0]
        masks = thing_masks(kept, encoded, out['image_size'], size)  # (100, H, W)
        assert_pasted({'masks_pasted_{}'.format(i): reference['inst_masks_{}'.format(i)]}, i,
                      masks)
        kernels, _, classes = stuff(out)[1]
        semantic = stuff_semantic(kernels, classes, encoded, out['image_size'], size)
        differ = int((semantic != reference['sem_argmax_{}'.format(i)]).sum())
        assert differ <= 1e-4 * semantic.size, 'image {}: {} semantic labels differ'.format(
            i, differ)


def test_panoptic(reference, ours, net):
    """``net.predict_panoptic`` where the output size is the input's; image 1 (224x320 shown at
    336x480) through ``panoptic_from_outputs`` with the output size."""
    meta = reference['meta']
    categories = net.categories
    for i, (image, out) in enumerate(zip(images(meta), ours)):
        size = tuple(meta['out_sizes'][i])
        if size == tuple(image.shape[1:]):
            pan_ids, segments = net.predict_panoptic(mx.nd.array(image[None]))
        else:
            pan_ids, segments = panoptic_from_outputs(
                out['outputs'], out['level_shapes'], out['image_size'], size, categories,
                **inference_options(net))
        theirs = meta['segments_info'][i]
        assert [(s['isthing'], s['category_id']) for s in segments] == [
            (bool(s['isthing']), categories.thing_ids[s['category_id']] if s['isthing'] else
             categories.stuff_ids[s['category_id'] - 1]) for s in theirs]
        np.testing.assert_allclose([s['score'] for s in segments if s['isthing']],
                                   [s['score'] for s in theirs if s['isthing']], rtol=0,
                                   atol=INSTANCE_TOL)
        ref = _ours_from_detectron2(reference['panoptic_{}'.format(i)], theirs, categories)
        differ = int((pan_ids != ref).sum())
        assert differ <= 1e-4 * ref.size, 'image {}: {} panoptic pixels differ'.format(i, differ)


# ----------------------------------------------------------------------------------------------
# training


def ground_truth(reference, b, size):
    """Training image ``b``'s (sem_seg, masks, classes), padded to ``size`` (the batch's) as
    the reference pads: 255 (ignore) and empty masks."""
    sem = reference['train_sem_seg_{}'.format(b)]
    classes = reference['train_gt_classes_{}'.format(b)].astype(np.int64)
    shape = (len(classes),) + sem.shape
    masks = np.unpackbits(reference['train_gt_masks_{}'.format(b)],
                          count=int(np.prod(shape))).reshape(shape)  # (N, H, W)
    padded_sem = np.full(size, 255, np.uint8)
    padded_sem[:sem.shape[0], :sem.shape[1]] = sem
    padded_masks = np.zeros((len(masks),) + tuple(size), np.uint8)
    padded_masks[:, :sem.shape[0], :sem.shape[1]] = masks
    return padded_sem, padded_masks, classes


@pytest.fixture(scope='module')
def batch(reference):
    """The reference's training batch: images padded to 256x512, with our targets."""
    meta = reference['meta']
    size = tuple(meta['sizes'][0])
    maker = FCNTargets(meta['num_things'], meta['num_stuff'])
    samples = []
    for b, image in enumerate(images(meta)[:2]):
        data = np.zeros((3,) + size, np.float32)
        data[:, :image.shape[1], :image.shape[2]] = image  # zeros after normalisation
        targets = maker(*ground_truth(reference, b, size))
        samples.append(dict(targets, data=data, image_id=b))
    return samples, maker.level_offsets(*size)


def test_targets_are_generate_gt(reference, batch):
    samples, offsets = batch
    for b, targets in enumerate(samples):
        np.testing.assert_allclose(targets['stuff_masks'],
                                   reference['train_gt_sem4_{}'.format(b)], rtol=0, atol=1e-6)
        mask4 = reference['train_gt_mask4_{}'.format(b)]
        h4, w4 = mask4.shape[1:]
        for l, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
            where = 'image {} P{}'.format(b, l + 3)
            shape = reference['gt_center_{}'.format(l)].shape[2:]
            centers = targets['center_targets'][:, start:stop].reshape((-1,) + shape)  # (T, h, w)
            np.testing.assert_allclose(centers, reference['gt_center_{}'.format(l)][b], rtol=0,
                                       atol=1e-6, err_msg=where)
            scores = targets['stuff_targets'][:, start:stop].reshape((-1,) + shape)  # (S, h, w)
            np.testing.assert_allclose(scores, reference['gt_sem_scores_{}'.format(l)][b],
                                       rtol=0, atol=1e-6, err_msg=where)
            # the reference packs its present classes first: its index mask is a prefix of 1s
            present = int((scores > 0).any(axis=(1, 2)).sum())
            np.testing.assert_array_equal(reference['gt_sem_present_{}'.format(l)][b],
                                          np.arange(scores.shape[0]) < present)
            slots = targets['inst_levels'] == l
            assert slots.sum() == reference['gt_num_{}'.format(l)][b], where
            assigned = reference['gt_assigned_{}_{}'.format(l, b)]
            np.testing.assert_array_equal(targets['inst_classes'][slots],
                                          reference['gt_class_{}_{}'.format(l, b)])
            np.testing.assert_array_equal(targets['inst_centers'][slots] - start,
                                          reference['gt_index_{}_{}'.format(l, b)])
            np.testing.assert_allclose(targets['inst_masks'][slots],
                                       reference['gt_inst_{}_{}'.format(l, b)], rtol=0,
                                       atol=1e-6, err_msg=where)
            np.testing.assert_allclose(targets['inst_masks'][slots][:, :h4, :w4],
                                       mask4[assigned], rtol=0, atol=1e-6, err_msg=where)


def test_guided_positions(reference, batch, net):
    """The top-7 centre scores inside each slot's guide: ``loss_single_level``'s
    ``weighted_values`` and (where the weight is not 0) ``guided_index``."""
    samples, offsets = batch
    x = mx.nd.array(np.stack([s['data'] for s in samples]))
    feats = net.fpn(*net.backbone(x))
    for l, (start, stop) in enumerate(zip(offsets[:-1], offsets[1:])):
        centers = sigmoid(net.position_head(feats[l + 1])[0].asnumpy())  # (B, T, h, w)
        for b, targets in enumerate(samples):
            slots = np.flatnonzero(targets['inst_levels'] == l)
            classes = targets['inst_classes'][slots].astype(np.int64)
            scores = centers[b, classes].reshape(len(slots), -1)  # (n, h * w)
            scores = scores * targets['inst_guide'][slots, start:stop]
            top = np.argsort(-scores, axis=1, kind='stable')[:, :7]  # (n, 7)
            values = np.take_along_axis(scores, top, axis=1)  # (n, 7)
            ref = reference['weighted_values_{}'.format(l)][b, :len(slots)]
            np.testing.assert_allclose(values, ref, rtol=0, atol=1e-5)
            index = reference['guided_index_{}'.format(l)][b, :len(slots)]
            np.testing.assert_array_equal(np.where(ref > 0, top, -1), index)


def test_training_losses(reference, batch, net):
    samples, _ = batch
    keys = TRAIN_INPUTS[1:]
    stacked = train_batchify([dict({k: s[k] for k in keys}, data=s['data'],
                                   image_id=s['image_id']) for s in samples])
    losses = net.train_losses(split_and_load(stacked, [mx.cpu()])[0])
    got = {k: float(v.asscalar()) for k, v in losses.items()}
    want = reference['meta']['losses']
    assert sorted(got) == sorted(want)
    for name in want:
        assert abs(got[name] - want[name]) <= LOSS_TOL * abs(want[name]), (name, got, want)


# ----------------------------------------------------------------------------------------------
# the converter and the zoo


def test_cli_writes_a_model_that_runs_like_the_reference(checkpoint, reference, ours, tmp_path):
    from gluonpan.convert.__main__ import main
    from gluonpan.utils.cli import load_model, run_args
    categories = str(tmp_path / 'citys_categories.json')
    with open(categories, 'w') as f:
        json.dump({'categories': cityscapes_categories().to_json()}, f)
    params = main(['panopticfcn', checkpoint, '--out', str(tmp_path / 'out'),
                   '--categories-json', categories, '--input-format', 'normalized'])
    assert os.path.basename(params) == MODEL + '.params'
    saved = run_args(params)
    assert saved['network'] == 'resnet50_msra' and saved['dataset'] == 'coco'
    assert json.loads(saved['model_kwargs'])['deform'] is False
    args = argparse.Namespace(pretrained=params, network='resnet18_v1b', dataset='coco',
                              model_kwargs='{"test_size": null}')
    loaded = load_model(args, mx.cpu(), saved=saved, task=get_task('panoptic_fcn'))
    assert loaded.categories.thing_ids == cityscapes_categories().thing_ids
    x = pad_input(mx.nd.array(images(reference['meta'])[0][None]))
    for got, want in zip(loaded.predict(x), ours[0]['outputs']):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=0, atol=1e-6)


def test_input_format_fold(weights, caplog):
    """The authors' yaml (RGB-ordered mean on BGR input) leaves a constant offset, folded into
    ``bn1``: the stem output is theirs where the 7x7 window is inside the image and differs only
    within 3 px of the border; detectron2's own BGR mean folds exactly everywhere."""
    from gluonpan.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    rng = np.random.RandomState(0)
    h, w = 64, 96
    pixels = rng.uniform(0, 255, (3, h, w))  # RGB 0..255
    imagenet = [np.reshape(v, (3, 1, 1)) for v in (IMAGENET_MEAN, IMAGENET_STD)]  # (3, 1, 1)
    ours_x = (pixels / 255 - imagenet[0]) / imagenet[1]
    stem = 'backbone.bottom_up.stem.conv1.'

    def their_stem(mean):
        x = pixels[::-1] - np.reshape(mean, (3, 1, 1))  # (3, h, w): BGR 0..255 - PIXEL_MEAN
        z = mx.nd.Convolution(mx.nd.array(x[None]), mx.nd.array(weights[stem + 'weight']),
                              kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=64,
                              no_bias=True)
        bn = {k: weights[stem + 'norm.' + k].reshape((1, -1, 1, 1)) for k in  # (1, 64, 1, 1)
              ('weight', 'bias', 'running_mean', 'running_var')}
        z = (z.asnumpy() - bn['running_mean']) / np.sqrt(bn['running_var'] + 1e-5)
        return z * bn['weight'] + bn['bias']  # (1, 64, h / 2, w / 2)

    net = citys_net(deform=False)
    for mean, exact in ((PIXEL_MEAN, False), ((103.53, 116.28, 123.675), True)):
        panopticfcn_to_gluonpan(weights, net, pixel_mean=mean)
        got = net.backbone.bn1(net.backbone.conv1(mx.nd.array(ours_x[None]))).asnumpy()
        want = their_stem(mean)
        scale = np.abs(want).max()
        inside = (slice(None), slice(None), slice(2, (h - 4) // 2 + 1), slice(2, (w - 4) // 2 + 1))
        assert np.abs(got - want)[inside].max() < 1e-5 * scale
        border = np.abs(got - want).max()
        assert (border < 1e-5 * scale) == exact, (mean, border / scale)
        folded = [r.getMessage() for r in caplog.records if 'bn1.running_mean' in r.getMessage()]
        assert bool(folded) != exact and all('within 3 px of the image border' in m
                                             for m in folded)
        caplog.clear()


#: channels of the MSRA ResNet-50's FrozenBN layers (stem 64 + res2 1408 + res3 3584 + res4 10240
#: + res5 11264): the authors' FrozenBatchNorm2d keeps weight, bias, running mean and variance as
#: buffers, so none of them counts among their nn.Parameters
FROZEN_BN_CHANNELS = 26560


@pytest.mark.parametrize('name, options, fact', [
    (MODEL, {}, 'coco_T80_S54_deformTrue'),
    (MODEL, {'deform': False}, 'coco_T80_S54_deformFalse'),
    ('panoptic_fcn_resnet50_v1b_citys', {}, 'cityscapes_T8_S12_deformTrue'),
    ('panoptic_fcn_resnet50_v1b_citys', {'deform': False}, 'cityscapes_T8_S12_deformFalse')])
def test_parameter_counts(reference, name, options, fact):
    """The authors' counts (``meta['facts']``, PANOPTICFCN_NOTES.md): their ``nn.Parameters``
    leave out every FrozenBN array; ``count_parameters`` counts the batch norms' gamma and beta
    (frozen or not) but not their running statistics, so ours = theirs + 2 x 26,560; all our
    arrays, running statistics included, are exactly their state dict (same number of arrays,
    same elements)."""
    theirs = reference['meta']['facts'][fact]
    net = get_model(name, **options)
    arrays = net._collect_params_with_prefix()  # pylint: disable=protected-access
    frozen = sum(p.shape[0] for k, p in arrays.items() if k.endswith('running_mean'))
    assert frozen == FROZEN_BN_CHANNELS
    assert theirs['state_dict_numel'] - theirs['parameters'] == 4 * FROZEN_BN_CHANNELS
    assert count_parameters(net) == theirs['parameters'] + 2 * FROZEN_BN_CHANNELS
    assert sum(int(np.prod(p.shape)) for p in arrays.values()) == theirs['state_dict_numel']
    assert len(arrays) == theirs['state_dict_arrays']


def test_bad_checkpoints_are_one_line(weights, net, tmp_path, capsys):
    """Another model, layout, class count or ``deform`` than the net's: a DataError naming it,
    and the net unchanged."""
    from gluonpan.convert.__main__ import main
    from gluonpan.errors import DataError, UsageError, run_cli
    before = net.thing_embed.weight.data().asnumpy()
    zeros = {k: np.broadcast_to(np.float32(0), s) for k, s in  # no memory: shapes only
             panoptic_fcn_spec(8, 12, deform=True).items()}
    wrong = dict(weights, **{'kernel_head.kernel_head.kernel_head_head_1.weight':
                             np.zeros((256, 256, 3, 3), np.float32)})
    for state, match in (
            ({'sem_seg_head.predictor.weight': np.zeros((54, 128, 1, 1))},
             'a detectron2 Panoptic FPN checkpoint'),
            (wrong, r'kernel_head_head_1.weight has shape \(256, 256, 3, 3\), a PanopticFCN R50 '
                    r'with 8 thing / 12 stuff classes has \(256, 258, 3, 3\)'),
            (dict(weights, extra=np.zeros(3)), r"1 unexpected \['extra'\]"),
            (zeros, 'a checkpoint with deform=True .* the net has deform=False'),
            ({k: np.broadcast_to(np.float32(0), v) for k, v in panoptic_fcn_spec(80, 54).items()},
             r'80 thing / 54 stuff classes \("things" \+ 53 stuff\); the net has 8 / 12')):
        with pytest.raises(DataError, match=match) as err:
            panopticfcn_to_gluonpan(state, net, input_format='normalized')
        assert '\n' not in str(err.value)
    with pytest.raises(UsageError, match="'normalized' .* takes no pixel mean"):
        panopticfcn_to_gluonpan(weights, net, input_format='normalized', pixel_mean=(0, 0, 0))
    np.testing.assert_array_equal(net.thing_embed.weight.data().asnumpy(), before)
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ['detectron2', __file__, '--out', str(tmp_path), '--pixel-mean', '1', '2',
                       '3'])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and '--pixel-mean only apply to the panopticfcn source' in err


def test_deformable_offsets_are_in_dcnv2_order():
    """``offset_mask_conv`` channels 0..17 go to MXNet unchanged: like detectron2's kernel
    (``deform_conv_cuda_kernel.cu``: tap (i, j) reads its row offset from channel 2 (3 i + j),
    its column offset from the next; source only, it has no CPU kernel), MXNet's reads channel
    0 as the row offset of the top-left tap."""
    x = np.arange(25, dtype=np.float32).reshape((1, 1, 5, 5))  # (1, 1, 5, 5)
    weight = np.zeros((1, 1, 3, 3), np.float32)
    weight[0, 0, 0, 0] = 1  # the top-left tap only: out[y, x] = in[y - 1 + dy, x - 1 + dx]
    offset = np.zeros((1, 18, 5, 5), np.float32)
    offset[0, 0] = 1  # dy of the top-left tap
    out = mx.nd.contrib.ModulatedDeformableConvolution(
        mx.nd.array(x), mx.nd.array(offset), mx.nd.ones((1, 9, 5, 5)), mx.nd.array(weight),
        kernel=(3, 3), pad=(1, 1), num_filter=1, no_bias=True).asnumpy()
    np.testing.assert_array_equal(out[0, 0, :, 1:], x[0, 0, :, :-1])  # in[y, x - 1]
