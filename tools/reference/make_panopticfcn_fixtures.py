"""Reference outputs of the authors' PanopticFCN (Li et al., CVPR 2021) for gluonpan's port.

Runs with the PyTorch venv that has detectron2 built from source (never with gluonpan's, and no
test imports it), on the authors' code extracted unmodified from their repository
(``yanwei-li/PanopticFCN``, commit ecb2c09) to ``/work/refsrc/PanopticFCN`` (``--src``)::

    OMP_NUM_THREADS=1 /work/refenv/bin/python tools/reference/make_panopticfcn_fixtures.py \
        [--out tests/fixtures/panopticfcn_reference.npz] [--seed 12]

What it does:

1. builds the authors' ``PanopticFCN`` from their ``configs/PanopticFCN-R50-1x.yaml`` (MSRA
   ResNet-50 with ``STRIDE_IN_1X1``, FrozenBN; FPN 256 with P6/P7 from P5), ``MODEL.DEVICE cpu``,
   ``MODEL.POSITION_HEAD.DEFORM False`` (detectron2 has no CPU deformable conv), a
   Cityscapes-sized head (``POSITION_HEAD.THING.NUM_CLASSES`` 8, ``POSITION_HEAD.STUFF.
   NUM_CLASSES`` and ``SEM_SEG_HEAD.NUM_CLASSES`` 12 = "things" + 11 stuff, ``WITH_THING``
   True), every other PanopticFCN option at its default, and ``MODEL.PIXEL_MEAN`` [0, 0, 0],
   ``PIXEL_STD`` [1, 1, 1]: the model's ``normalizer`` is then the identity and it sees exactly
   our ImageNet-normalised RGB (3, H, W), padded with zeros to a multiple of 32 (the authors' own
   config subtracts an RGB-ordered mean from detectron2's BGR input: see PANOPTICFCN_NOTES.md);
2. fills *every* array of its state dict (names and shapes: ``meta['spec']``, in state-dict
   order) with :func:`gluonpan.convert.seeded.seeded_weights` (pure numpy, seed ``--seed``,
   gains :data:`GAINS`, zero-mean rows :data:`ZERO_MEAN`), which the test regenerates
   identically with numpy alone;
3. runs in eval mode, one image at a time (the authors' ``inference`` mis-indexes batches of
   more than one image), three seeded images (:func:`images`, ``seeded_images(seed + i, 1, H,
   W)``): 256x512, 224x320 with ``height``/``width`` 336x480 (the final resize to the original
   size), and 200x300 (padded to 224x320), recording with hooks and wrappers around the
   authors' own modules and methods (nothing of theirs is re-implemented; the few derived
   orders below are checked against what their code produced);
4. runs in train mode one batch of the first two images (padded to 256x512) with hand-made
   ground truth (:func:`ground_truth`) and records ``GenerateGT.generate``,
   ``loss_single_level`` and the four losses;
5. stores in the ``.npz`` (float32 unless noted; image ``i``, level ``l`` = 0..4 for P3..P7):

   * inference: FPN P2..P7 ``feat{k}_stats_{i}`` / ``feat{k}_slice_{i}`` (k = 0..5,
     ``fixture_io.add_feature_summary``: mean, std, max |x| and every 32nd channel);
     centre logits ``center_logits_{l}_{i}`` (T, h, w) and region logits
     ``region_logits_{l}_{i}`` (S, h, w) in full; the kernel maps (``kernel_head`` output)
     ``kernel_{l}_stats_{i}`` and every 32nd channel ``kernel_{l}_slice_{i}`` (8, h, w); the
     encoded feature (``feature_encoder`` output, stride 4 of the padded input)
     ``encode_feat_stats_{i}`` and every 16th channel ``encode_feat_slice_{i}`` (4, h4, w4);
   * thing candidates before fusion, in the reference's score-sorted order:
     ``thing_cand_scores_{i}``, ``thing_cand_classes_{i}`` (int16), ``thing_cand_levels_{i}``
     (int8, 0..4), ``thing_cand_index_{i}`` (int32 y * w + x on their level) and their
     kernels after ``embed_extractor`` ``thing_cand_kernels_{i}`` (N, 64); after
     ``kernel_fusion``: ``thing_kernels_{i}`` (M, 64), ``thing_classes_{i}``,
     ``thing_scores_{i}``, ``thing_keep_{i}`` (int16: which candidate each kept kernel is)
     and ``thing_merged_{i}`` (int16 (K, 2) pairs (row of ``thing_kernels_{i}``, candidate)
     of the candidates averaged into each kept kernel, itself included; a candidate in no pair
     was dropped: see PANOPTICFCN_NOTES.md);
   * stuff candidates before fusion, in level order: ``stuff_cand_levels_{i}`` (int8),
     ``stuff_cand_classes_{i}`` (int16, FCN order 0 = things), ``stuff_cand_scores_{i}``,
     ``stuff_cand_kernels_{i}`` (after ``embed_extractor``); after fusion
     ``stuff_kernels_{i}``, ``stuff_classes_{i}`` (int16, ascending), ``stuff_scores_{i}``;
   * mask logits at stride 4 (``generator(...)`` outputs, before sigmoid):
     ``thing_logits_stats_{i}`` / ``stuff_logits_stats_{i}`` and every 4th pixel of the stuff
     logits ``stuff_logits_{i}`` (M_st, h4 / 4, w4 / 4) and of the first 8 thing logits
     ``thing_logits_{i}``;
   * ``process_inst``: the fused scores after rescoring, in fusion order
     ``inst_rescored_{i}``; the kept instances' order ``inst_order_{i}`` (int16 indices into
     the fused kernels), ``inst_scores_{i}``, ``inst_classes_{i}`` (int16) and their masks at
     the output size (``height`` x ``width``), bit-packed ``inst_masks_{i}``
     (``np.unpackbits(..., count=K * H * W)``);
   * ``sem_argmax_{i}`` (uint8, argmax of ``pred_sem_seg``, FCN order 0 = things, output
     size) and the panoptic map ``panoptic_{i}`` (uint8 or uint16 segment ids of
     ``meta['segments_info'][i]``, 0 void);
   * training (batch ``b`` = 0, 1): the ground truth ``train_gt_masks_{b}`` (bit-packed
     (N, H, W)), ``train_gt_classes_{b}`` (int16), ``train_gt_boxes_{b}`` (x1, y1, x2, y2,
     exclusive), ``train_sem_seg_{b}`` (uint8, 0 = things, 1..11 stuff, 255 ignore); from
     ``GenerateGT``: the stride-4 masks ``train_gt_mask4_{b}`` (N, h4, w4 of the unpadded
     image, bilinear) and their mass centres ``train_gt_centers_{b}`` (x, y at stride 4), the
     stride-4 semantic one-hot ``train_gt_sem4_{b}`` (S, h4, w4 padded); per level
     ``gt_center_{l}`` (B, T, h, w), ``gt_num_{l}`` (B,) int16 (``index_mask`` sums),
     ``gt_assigned_{l}_{b}`` (int16: which ground-truth instances fill the slots),
     ``gt_index_{l}_{b}`` (int32), ``gt_class_{l}_{b}`` (int16), ``gt_inst_{l}_{b}`` (the
     assigned slots of ``gt_dict['inst']``: (n, h4, w4 padded)), ``gt_sem_scores_{l}``
     (B, S, h, w), ``gt_sem_present_{l}`` (B, S) uint8; from ``loss_single_level``
     ``guided_index_{l}`` (B, thing_num, 7) int32 (-1 where the weighted value is 0: those
     indices are topk's tie order among zeros and do not change the loss) and
     ``weighted_values_{l}`` (B, thing_num, 7); ``train_losses`` (loss_pos_th, loss_pos_st,
     loss_seg_th, loss_seg_st) as float32 (also float64 in ``meta['losses']``);
   * a JSON ``meta``: seed, versions, config, overrides, gains, image sizes, the state-dict
     spec, class-order conventions, per-image counts and ``segments_info``, the facts checked
     for PANOPTICFCN_NOTES.md (parameter counts, padding, CoordConv), this command, and the
     fingerprints of the weights and images.
"""
import argparse
import contextlib
import importlib
import json
import logging
import os
import platform
import sys
import types

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = '/work/refsrc/PanopticFCN'
NUM_THINGS, NUM_STUFF = 8, 12
#: input sizes (H, W) and the ``height``/``width`` given with them (the output size)
SIZES = ((256, 512), (224, 320), (200, 300))
OUT_SIZES = ((256, 512), (336, 480), (200, 300))
CONFIG = 'configs/PanopticFCN-R50-1x.yaml'
OVERRIDES = ['MODEL.DEVICE', 'cpu', 'MODEL.WEIGHTS', '',
             'MODEL.POSITION_HEAD.DEFORM', 'False',
             'MODEL.POSITION_HEAD.THING.NUM_CLASSES', str(NUM_THINGS),
             'MODEL.POSITION_HEAD.STUFF.NUM_CLASSES', str(NUM_STUFF),
             'MODEL.SEM_SEG_HEAD.NUM_CLASSES', str(NUM_STUFF),
             'MODEL.PIXEL_MEAN', '[0.0, 0.0, 0.0]', 'MODEL.PIXEL_STD', '[1.0, 1.0, 1.0]']
#: weight std = gain / sqrt(fan_in) by name pattern (first match; default sqrt(2)); GroupNorm
#: scales (rank 1, "fan-in" 1) get std GAINS['\.norm\.weight$'] around 0
GAINS = {r'conv3\.weight$': 0.3, r'^backbone\.fpn_': 0.15, r'^backbone\.top_block\.': 1.0,
         r'out_inst\.weight$': 4.0, r'out_sem\.weight$': 4.0, r'out_conv\.weight$': 1.0,
         r'embed_extractor\.weight$': 10.0, r'\.norm\.weight$': 0.5}
#: weights whose rows are made zero-mean (see seeded_weights)
ZERO_MEAN = (r'out_sem\.weight$', r'out_conv\.weight$', r'embed_extractor\.weight$',
             r'encode_head_head_\d\.weight$')
COMMAND = 'OMP_NUM_THREADS=1 /work/refenv/bin/python tools/reference/make_panopticfcn_fixtures.py'
LEVELS = ('p3', 'p4', 'p5', 'p6', 'p7')


def _imports(src):
    """detectron2, the authors' package and gluonpan's numpy helpers."""
    sys.path.insert(0, src)
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # detectron2 first: it reads cv2.__version__ on import, the stub below has none
    importlib.import_module('detectron2')
    # gluonpan.data.transforms imports OpenCV at the top but uses it only in functions not
    # called here; this venv has no OpenCV
    sys.modules.setdefault('cv2', types.ModuleType('cv2'))


def images(seed):
    """The test images in our input format: ImageNet-normalised RGB float32 (3, H, W)."""
    from gluonpan.convert.seeded import seeded_images
    return [seeded_images(seed + i, 1, h, w)[0] for i, (h, w) in enumerate(SIZES)]


def make_cfg(src, num_things=NUM_THINGS, num_stuff=NUM_STUFF, deform=False, overrides=None):
    """The authors' R50 1x config with our overrides."""
    from detectron2.config import get_cfg
    from panopticfcn import add_panopticfcn_config
    cfg = get_cfg()
    add_panopticfcn_config(cfg)
    cfg.merge_from_file(os.path.join(src, CONFIG))
    cfg.merge_from_list(list(overrides if overrides is not None else OVERRIDES) + [
        'MODEL.POSITION_HEAD.DEFORM', str(deform),
        'MODEL.POSITION_HEAD.THING.NUM_CLASSES', str(num_things),
        'MODEL.POSITION_HEAD.STUFF.NUM_CLASSES', str(num_stuff),
        'MODEL.SEM_SEG_HEAD.NUM_CLASSES', str(num_stuff)])
    cfg.freeze()
    return cfg


def build(src, seed):
    """The authors' PanopticFCN with seeded weights (eval mode), the weights, spec and cfg."""
    from detectron2.modeling import build_model
    from gluonpan.convert.seeded import seeded_weights
    cfg = make_cfg(src)
    model = build_model(cfg)
    spec = spec_of(model)
    weights = seeded_weights(dict(spec), seed, GAINS, ZERO_MEAN)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return model.eval(), weights, spec, cfg


def _np(t):
    return t.detach().cpu().numpy()


def _stats(a):
    return np.array([a.mean(), a.std(), np.abs(a).max()], np.float32)


@contextlib.contextmanager
def patched(obj, name, wrapper):
    """Set ``obj.name`` to ``wrapper(original)`` for the duration."""
    raw = vars(obj).get(name)  # e.g. a staticmethod object of a class
    setattr(obj, name, wrapper(getattr(obj, name)))
    try:
        yield
    finally:
        if raw is not None:
            setattr(obj, name, raw)
        else:
            delattr(obj, name)


@contextlib.contextmanager
def hooks(*pairs):
    """Forward hooks ``(module, fn(module, inputs, output))`` for the duration."""
    handles = [m.register_forward_hook(fn) for m, fn in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------------------------
# inference


def record_inference(model, image, out_size):
    """Run ``model`` on one image and record its internals (see the module docstring)."""
    from panopticfcn import panoptic_seg as pfcn
    rec = dict(heads=[], kernels=[], levels=[], topk=[], embeds={}, calls=[])

    def topk_wrapper(orig):
        def f(scores, K=40, score_shape=None):
            out = orig(scores, K=K, score_shape=score_shape)
            rec['topk'].append([t.clone() for t in out])
            return out
        return f

    def level_wrapper(orig):
        def f(*args):
            out = orig(*args)
            _, class_th, score_th, thing_num, _, score_st, class_st, stuff_num = out
            sub_score, sub_index, sub_class = rec['topk'][-1][:3]
            keep = sub_score > model.center_thres
            assert torch.equal(sub_score[keep], score_th if len(score_th) else sub_score[keep])
            rec['levels'].append(dict(
                score_th=sub_score[keep].clone(), class_th=sub_class[keep].clone(),
                index_th=sub_index[keep].clone(), score_st=score_st.clone(),
                class_st=class_st.clone()))
            return out
        return f

    def fusion_wrapper(kind):
        def wrap(orig):
            def f(meta_weight, pred_cate, pred_score):
                inputs = (meta_weight.clone(), pred_cate.clone(), pred_score.clone())
                out = orig(meta_weight, pred_cate, pred_score)
                rec[kind] = dict(inputs=inputs, outputs=tuple(t.clone() for t in out))
                return out
            return f
        return wrap

    def process_wrapper(orig):
        def f(classes, scores, pred_inst, img_shape, ori_shape):
            before = (classes.clone(), scores.clone())
            out = orig(classes, scores, pred_inst, img_shape, ori_shape)
            rec['process'] = dict(classes=before[0], scores=before[1],
                                  rescored=scores.clone(), logits=pred_inst.clone(),
                                  img_shape=tuple(img_shape), out=out)
            return out
        return f

    def combine_wrapper(orig):
        def f(thing_results, stuff_results, *args):
            out = orig(thing_results, stuff_results, *args)
            rec['combine'] = dict(stuff=stuff_results.clone(), out=out)
            return out
        return f

    def keep(key):
        return lambda m, i, o: rec.__setitem__(key, o)

    h, w = image.shape[1:]
    inputs = [{'image': torch.from_numpy(image), 'height': out_size[0], 'width': out_size[1]}]
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(pfcn, 'topk_score', topk_wrapper))
        stack.enter_context(patched(model, 'inference_single_level', level_wrapper))
        stack.enter_context(patched(model.thing_generator, 'kernel_fusion',
                                    fusion_wrapper('thing_fusion')))
        stack.enter_context(patched(model.stuff_generator, 'kernel_fusion',
                                    fusion_wrapper('stuff_fusion')))
        stack.enter_context(patched(model, 'process_inst', process_wrapper))
        stack.enter_context(patched(model, 'combine_thing_and_stuff', combine_wrapper))
        stack.enter_context(hooks(
            (model.backbone, keep('features')),
            (model.position_head, lambda m, i, o: rec['heads'].append(o)),
            (model.kernel_head, lambda m, i, o: rec['kernels'].append(o)),
            (model.feature_encoder, keep('encode')),
            (model.thing_generator.embed_extractor, keep('thing_embed')),
            (model.stuff_generator.embed_extractor, keep('stuff_embed')),
            (model.thing_generator, keep('thing_pred')),
            (model.stuff_generator, keep('stuff_pred'))))
        with torch.no_grad():
            result = model(inputs)[0]
    rec['result'] = result
    rec['padded'] = tuple(rec['features']['p2'].shape[-2:] * np.array([4, 4]))
    assert len(rec['levels']) == 5 and len(rec['heads']) == 5
    return rec


def thing_fusion_groups(sim_thres, meta_weight, cate):
    """(keep, pairs) of ``ThingGenerator.kernel_fusion``: the kept candidates and the
    (kept row, candidate) pairs averaged into each, derived from the authors' label matrices."""
    from panopticfcn.head import ThingGenerator
    sim = ThingGenerator.cal_similarity(None, meta_weight, meta_weight, 'cosine')
    label = (sim.triu(diagonal=0) >= sim_thres) & (cate.unsqueeze(-1) == cate.unsqueeze(0))
    cum = torch.cumsum(label.float(), dim=0) < 2
    keep = cum.diagonal(0)
    rows = label[keep] & cum[keep]
    pairs = torch.nonzero(rows, as_tuple=False)
    return torch.nonzero(keep, as_tuple=False)[:, 0], pairs, sim


def store_inference(out, i, model, rec, out_size):
    """Add the arrays of image ``i``; returns its counts and segments_info."""
    from fixture_io import add_feature_summary
    for k, name in enumerate(('p2', 'p3', 'p4', 'p5', 'p6', 'p7')):
        add_feature_summary(out, k, i, _np(rec['features'][name][0]))
    for l, ((center, region), kernel) in enumerate(zip(rec['heads'], rec['kernels'])):
        out['center_logits_{}_{}'.format(l, i)] = _np(center[0]).astype(np.float32)
        out['region_logits_{}_{}'.format(l, i)] = _np(region[0]).astype(np.float32)
        kernel = _np(kernel[0])
        out['kernel_{}_stats_{}'.format(l, i)] = _stats(kernel)
        out['kernel_{}_slice_{}'.format(l, i)] = kernel[::32].astype(np.float32)
    encode = _np(rec['encode'][0])
    out['encode_feat_stats_{}'.format(i)] = _stats(encode)
    out['encode_feat_slice_{}'.format(i)] = encode[::16].astype(np.float32)

    # thing candidates in the reference's order: per level in topk order, then sorted by score
    # with the very call (torch.argsort descending) the authors' inference makes
    lv = rec['levels']
    scores = torch.cat([d['score_th'] for d in lv])
    classes = torch.cat([d['class_th'] for d in lv])
    index = torch.cat([d['index_th'] for d in lv])
    levels = torch.cat([torch.full((len(d['score_th']),), l, dtype=torch.int64)
                        for l, d in enumerate(lv)])
    order = torch.argsort(scores, descending=True)
    meta_in, cate_in, score_in = rec['thing_fusion']['inputs']
    assert torch.equal(scores[order], score_in) and torch.equal(classes[order], cate_in)
    embed = rec['thing_embed'][0, :, :, 0].t()  # (N, 64)
    assert torch.equal(embed, meta_in[0])
    out['thing_cand_scores_{}'.format(i)] = _np(score_in).astype(np.float32)
    out['thing_cand_classes_{}'.format(i)] = _np(cate_in).astype(np.int16)
    out['thing_cand_levels_{}'.format(i)] = _np(levels[order]).astype(np.int8)
    out['thing_cand_index_{}'.format(i)] = _np(index[order]).astype(np.int32)
    out['thing_cand_kernels_{}'.format(i)] = _np(embed).astype(np.float32)
    fused_w, fused_c, fused_s = rec['thing_fusion']['outputs']
    keep, pairs, sim = thing_fusion_groups(model.thing_generator.sim_thres, meta_in[0], cate_in)
    assert torch.equal(cate_in[keep], fused_c) and torch.equal(score_in[keep], fused_s)
    rows = torch.zeros(len(keep), len(score_in))
    rows[pairs[:, 0], pairs[:, 1]] = 1.
    assert torch.allclose(torch.mm(rows, meta_in[0]) / rows.sum(dim=1, keepdim=True), fused_w,
                          rtol=0, atol=1e-5)
    out['thing_kernels_{}'.format(i)] = _np(fused_w).astype(np.float32)
    out['thing_classes_{}'.format(i)] = _np(fused_c).astype(np.int16)
    out['thing_scores_{}'.format(i)] = _np(fused_s).astype(np.float32)
    out['thing_keep_{}'.format(i)] = _np(keep).astype(np.int16)
    out['thing_merged_{}'.format(i)] = _np(pairs).astype(np.int16)
    # candidates that are similar (>= thres, same class) to an earlier one but not averaged
    # into a kept kernel: the earlier one was itself suppressed
    merged = set(_np(pairs[:, 1]).tolist())
    dropped = sorted(set(range(len(score_in))) - merged)

    # stuff candidates in level order (the order the authors concatenate them)
    st_levels = torch.cat([torch.full((len(d['class_st']),), l, dtype=torch.int64)
                           for l, d in enumerate(lv)])
    st_classes = torch.cat([d['class_st'] for d in lv])
    st_scores = torch.cat([d['score_st'] for d in lv])
    st_in, st_cate_in, st_score_in = rec['stuff_fusion']['inputs']
    assert torch.equal(st_classes, st_cate_in) and torch.equal(st_scores, st_score_in)
    st_embed = rec['stuff_embed'][:, :, 0, 0]  # (N_st, 64)
    assert torch.equal(st_embed, st_in[0])
    out['stuff_cand_levels_{}'.format(i)] = _np(st_levels).astype(np.int8)
    out['stuff_cand_classes_{}'.format(i)] = _np(st_classes).astype(np.int16)
    out['stuff_cand_scores_{}'.format(i)] = _np(st_scores).astype(np.float32)
    out['stuff_cand_kernels_{}'.format(i)] = _np(st_embed).astype(np.float32)
    st_w, st_c, st_s = rec['stuff_fusion']['outputs']
    out['stuff_kernels_{}'.format(i)] = _np(st_w).astype(np.float32)
    out['stuff_classes_{}'.format(i)] = _np(st_c).astype(np.int16)
    out['stuff_scores_{}'.format(i)] = _np(st_s).astype(np.float32)

    thing_logits = _np(rec['thing_pred'][0][0])
    stuff_logits = _np(rec['stuff_pred'][0][0])
    out['thing_logits_stats_{}'.format(i)] = _stats(thing_logits)
    out['stuff_logits_stats_{}'.format(i)] = _stats(stuff_logits)
    out['thing_logits_{}'.format(i)] = thing_logits[:8, ::4, ::4].astype(np.float32)
    out['stuff_logits_{}'.format(i)] = stuff_logits[:, ::4, ::4].astype(np.float32)

    # process_inst: the rescored fused scores and the kept order, re-derived with the
    # authors' calls and checked against what process_inst returned
    proc = rec['process']
    _, masks, inst_classes, inst_scores = proc['out']
    rescored = proc['rescored']
    first = torch.argsort(rescored, descending=True)
    kept = first[rescored[first] >= 0.05]
    inst_order = kept[torch.argsort(rescored[kept], descending=True)][:model.center_top_num]
    assert torch.equal(rescored[inst_order], inst_scores)
    assert torch.equal(proc['classes'][inst_order].to(torch.int32), inst_classes)
    assert tuple(masks.shape[-2:]) == tuple(out_size)
    out['inst_rescored_{}'.format(i)] = _np(rescored).astype(np.float32)
    out['inst_order_{}'.format(i)] = _np(inst_order).astype(np.int16)
    out['inst_scores_{}'.format(i)] = _np(inst_scores).astype(np.float32)
    out['inst_classes_{}'.format(i)] = _np(inst_classes).astype(np.int16)
    out['inst_masks_{}'.format(i)] = np.packbits(_np(masks).astype(bool))

    sem = rec['result']['sem_seg']
    argmax = sem.argmax(dim=0)
    assert torch.equal(argmax, rec['combine']['stuff'])
    out['sem_argmax_{}'.format(i)] = _np(argmax).astype(np.uint8)
    panoptic, segments = rec['result']['panoptic_seg']
    assert rec['combine']['out'][0] is panoptic
    dtype = np.uint8 if int(panoptic.max()) <= 255 else np.uint16
    out['panoptic_{}'.format(i)] = _np(panoptic).astype(dtype)
    segments = [{k: (v.item() if hasattr(v, 'item') else v) for k, v in s.items()}
                for s in segments]
    counts = dict(
        padded=[int(s) for s in rec['padded']],
        thing_candidates_per_level=[len(d['score_th']) for d in lv],
        thing_candidates=len(score_in), thing_fused=len(fused_s),
        thing_merges=int(len(pairs) - len(keep)), thing_dropped_unmerged=len(dropped),
        stuff_candidates=len(st_scores), stuff_candidates_per_level=[len(d['class_st'])
                                                                     for d in lv],
        stuff_fused=len(st_s), stuff_classes=_np(st_c).tolist(),
        instances=len(inst_scores),
        instances_above_combine=int((inst_scores >= model.panoptic_inst_thrs).sum()),
        segments=len(segments), thing_segments=sum(s['isthing'] for s in segments),
        stuff_segments=sum(not s['isthing'] for s in segments),
        max_peak_per_level=[float(d['score_th'].max()) if len(d['score_th']) else 0.
                            for d in lv],
        # how close float rounding would have to come to change a decision
        fusion_margin=float((sim - model.thing_generator.sim_thres)[
            torch.triu(cate_in.unsqueeze(-1) == cate_in.unsqueeze(0), diagonal=1)].abs().min()),
        inst_margin=float(torch.cat([(rescored - t).abs() for t in (
            0.05, model.panoptic_inst_thrs)]).min()))
    logging.info('image %d: %s', i, json.dumps(counts))
    return counts, segments


# ----------------------------------------------------------------------------------------------
# training


def _ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.


def _rect(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def ground_truth():
    """Hand-made ground truth of the two training images: per image (masks (N, H, W) bool,
    classes (N,) int64 0..7, sem_seg (H, W) uint8: 0 things, 1..11 stuff, 255 ignore).

    sqrt(box area) spans every interval of INSTANCE_SCALES ((1, 64), (32, 128), (64, 256),
    (128, 512), (256, 2048)): tiny ones (P3 only; one 6x6), one of exactly 64 (P3, P4 and P5:
    both ends inclusive), the others in two intervals; a large one occluded by (with holes for)
    the instances drawn over it, an L-shaped one whose mass centre lies outside it, instances
    touching the border; a small stuff patch absent on coarse levels, and ignore regions.
    """
    h, w = SIZES[0]
    small0 = [(_rect(h, w, 10, 30, 22, 50), 0),                   # 12x20: 15.5
              (_rect(h, w, 100, 200, 106, 206), 1),               # 6x6: 6
              (_ellipse(h, w, 60, 120, 20, 25), 2),               # 41x51: 45.7
              (_rect(h, w, 150, 40, 214, 104), 3),                # 64x64: 64
              (_ellipse(h, w, 180, 250, 45, 55), 4),              # 91x111: 100.5
              (_ellipse(h, w, 128, 440, 100, 90), 5),             # right border: 180
              (_ellipse(h, w, 60, 260, 30, 40), 4)]               # 61x81: 70.3
    big = _ellipse(h, w, 150, 280, 105, 200)                      # occluded: 211x371
    for m, _ in small0:
        big &= ~m
    masks0 = [m for m, _ in small0] + [big]
    classes0 = [c for _, c in small0] + [6]
    sem0 = np.full((h, w), 1, np.uint8)
    sem0[80:160, :256] = 2
    sem0[80:160, 256:] = 3
    sem0[160:, :] = 4
    sem0[_ellipse(h, w, 20, 400, 20, 60)] = 5
    sem0[120:130, 20:32] = 11                                     # 10x12 patch
    sem0[230:, 400:] = 6
    h, w = SIZES[1]
    masks1 = [_rect(h, w, 8, 60, 28, 88),                         # 20x28: 23.7
              _ellipse(h, w, 50, 120, 22, 18),                    # 45x37: 40.8
              _rect(h, w, 80, 60, 150, 140),                      # 70x80: 74.8
              _ellipse(h, w, 98, 250, 70, 69),                    # right border: 140
              _rect(h, w, 0, 0, 224, 48) | _rect(h, w, 170, 0, 224, 300),  # L 224x300: 259
              _rect(h, w, 150, 150, 160, 164),                    # 10x14: 11.8
              _ellipse(h, w, 20, 200, 14, 26)]                    # 29x53: 39.2
    classes1 = [6, 7, 2, 1, 3, 5, 0]
    sem1 = np.full((h, w), 7, np.uint8)
    sem1[60:, :160] = 8
    sem1[60:, 160:] = 9
    sem1[160:, :] = 10
    sem1[40:50, 160:172] = 11                                     # 10x12 patch
    sem1[100:140, 150:200] = 1
    out = []
    for masks, classes, sem in ((masks0, classes0, sem0), (masks1, classes1, sem1)):
        masks = np.stack(masks)
        sem[masks.any(axis=0)] = 0
        out.append((masks, np.array(classes, np.int64), sem))
    out[0][2][200:216, 100:180] = 255                             # ignore
    out[0][2][:40, 496:] = 255
    out[1][2][100:112, 200:240] = 255
    return out


def boxes_of(masks):
    """(N, 4) x1, y1, x2, y2 of bool masks (N, H, W), exclusive x2 / y2."""
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.array(boxes, np.float32)


def record_training(model, ims, gts):
    """Run the authors' training forward on one batch; returns the records."""
    from detectron2.structures import BitMasks, Boxes, Instances
    from panopticfcn.gt_generate import GenerateGT
    rec = dict(sem4=[], decode=[], single=[], topk=[])
    batched = []
    for image, (masks, classes, sem) in zip(ims, gts):
        inst = Instances(image.shape[1:])
        inst.gt_boxes = Boxes(torch.from_numpy(boxes_of(masks)))
        inst.gt_classes = torch.from_numpy(classes)
        inst.gt_masks = BitMasks(torch.from_numpy(masks))
        # GenerateGT overwrites 255 in sem_seg in place: give it a copy
        batched.append({'image': torch.from_numpy(image), 'instances': inst,
                        'sem_seg': torch.from_numpy(sem.astype(np.int64)),
                        'height': image.shape[1], 'width': image.shape[2]})

    def generate_wrapper(orig):
        def f(batched_input, images_, features, inst_feat, test_only=False):
            gt = orig(batched_input, images_, features, inst_feat, test_only)
            rec['gt'] = gt
            rec['padded'] = tuple(images_.tensor.shape[-2:])
            return gt
        return f

    def sem_wrapper(orig):
        def f(gt_semantic, feat_shape):
            rec['sem4'].append(gt_semantic.clone())
            return orig(gt_semantic, feat_shape)
        return f

    def decode_wrapper(orig):
        def f(common_stride, gt_masks, device, use_mass=False):
            out = orig(common_stride=common_stride, gt_masks=gt_masks, device=device,
                       use_mass=use_mass)
            rec['decode'].append((out[0].clone(), out[1].clone()))
            return out
        return staticmethod(f)

    def single_wrapper(orig):
        def f(*args):
            real_topk = torch.topk

            def topk(*a, **k):
                res = real_topk(*a, **k)
                rec['topk'].append(res)
                return res
            torch.topk = topk
            try:
                res = orig(*args)
            finally:
                torch.topk = real_topk
            rec['single'].append((rec['topk'][-1], res[5], res[6]))
            return res
        return f

    gen = model.get_ground_truth
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(gen, 'generate', generate_wrapper))
        stack.enter_context(patched(gen, '_sem_assign', sem_wrapper))
        stack.enter_context(patched(GenerateGT, 'decode_bitwise_mask',
                                    lambda orig: decode_wrapper(orig)))
        stack.enter_context(patched(model, 'loss_single_level', single_wrapper))
        model.train()
        try:
            with torch.no_grad():
                rec['losses'] = model(batched)
        finally:
            model.eval()
    rec['sem_seg_changed_in_place'] = [not np.array_equal(x['sem_seg'].numpy(), sem)
                                       for x, (_, _, sem) in zip(batched, gts)]
    return rec


def store_training(out, model, rec, gts):
    """Add the training arrays; returns the losses (float64) and per-level counts."""
    gt = rec['gt']
    for b, (masks, classes, sem) in enumerate(gts):
        out['train_gt_masks_{}'.format(b)] = np.packbits(masks)
        out['train_gt_classes_{}'.format(b)] = classes.astype(np.int16)
        out['train_gt_boxes_{}'.format(b)] = boxes_of(masks)
        out['train_sem_seg_{}'.format(b)] = sem.astype(np.uint8)
        mask4, centers = rec['decode'][b]
        out['train_gt_mask4_{}'.format(b)] = _np(mask4).astype(np.float32)
        out['train_gt_centers_{}'.format(b)] = _np(centers).astype(np.float32)
        sem4 = rec['sem4'][b * len(LEVELS)]
        assert all(torch.equal(sem4, s) for s in rec['sem4'][b * 5:b * 5 + 5])
        out['train_gt_sem4_{}'.format(b)] = _np(sem4).astype(np.float32)
    scales = model.inst_scale
    counts = []
    for l in range(len(LEVELS)):
        out['gt_center_{}'.format(l)] = _np(gt['center'][l]).astype(np.float32)
        nums = _np(gt['index_mask'][l].sum(dim=1)).astype(np.int16)
        out['gt_num_{}'.format(l)] = nums
        for b, (masks, classes, _) in enumerate(gts):
            n = int(nums[b])
            area = np.sqrt(np.prod(boxes_of(masks)[:, 2:] - boxes_of(masks)[:, :2], axis=1))
            assigned = np.nonzero((area >= scales[l][0]) & (area <= scales[l][1]))[0]
            assert len(assigned) == n
            assert np.array_equal(_np(gt['class'][l][b, :n]), classes[assigned])
            inst = gt['inst'][l][b, :n]
            mask4 = rec['decode'][b][0][assigned]
            assert torch.equal(inst[:, :mask4.shape[1], :mask4.shape[2]], mask4)
            out['gt_assigned_{}_{}'.format(l, b)] = assigned.astype(np.int16)
            out['gt_index_{}_{}'.format(l, b)] = _np(gt['index'][l][b, :n]).astype(np.int32)
            out['gt_class_{}_{}'.format(l, b)] = classes[assigned].astype(np.int16)
            out['gt_inst_{}_{}'.format(l, b)] = _np(inst).astype(np.float32)
        out['gt_sem_scores_{}'.format(l)] = _np(gt['sem_scores'][l]).astype(np.float32)
        out['gt_sem_present_{}'.format(l)] = _np(gt['sem_index'][l]).astype(np.uint8)
        (values, index), thing_num, _ = rec['single'][l]
        values, index = values[:, :thing_num], index[:, :thing_num]
        index = torch.where(values > 0, index, torch.full_like(index, -1))
        out['guided_index_{}'.format(l)] = _np(index).astype(np.int32)
        out['weighted_values_{}'.format(l)] = _np(values).astype(np.float32)
        counts.append(dict(gt_num=nums.tolist(), thing_num=int(thing_num),
                           stuff_present=_np(gt['sem_index'][l].sum(dim=1)).astype(int).tolist(),
                           zero_weighted=int((values == 0).sum())))
    names = ('loss_pos_th', 'loss_pos_st', 'loss_seg_th', 'loss_seg_st')
    losses = {k: float(rec['losses'][k]) for k in names}
    out['train_losses'] = np.array([losses[k] for k in names], np.float32)
    logging.info('training: padded %s, losses %s, per level %s', rec['padded'],
                 json.dumps(losses), json.dumps(counts))
    return losses, counts


# ----------------------------------------------------------------------------------------------
# facts for PANOPTICFCN_NOTES.md


def spec_of(model):
    """[(name, shape)] of a model's state dict, in its order."""
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def facts(src, model):
    """Facts the notes state, computed here: parameter counts, padding, CoordConv order."""
    from detectron2.modeling import build_model
    from detectron2.structures import ImageList
    from panopticfcn.head import SingleHead
    out = {}
    for name, (t, s) in (('cityscapes_T8_S12', (8, 12)), ('coco_T80_S54', (80, 54))):
        for deform in (False, True):
            try:
                m = build_model(make_cfg(src, t, s, deform))
            except Exception as e:  # noqa: BLE001 - recorded as a fact
                out['{}_deform{}'.format(name, deform)] = 'does not construct: {!r}'.format(e)
                continue
            out['{}_deform{}'.format(name, deform)] = dict(
                parameters=sum(p.numel() for p in m.parameters()),
                state_dict_numel=sum(v.numel() for v in m.state_dict().values()),
                state_dict_arrays=len(m.state_dict()))
            if deform and name.startswith('cityscapes'):
                base = dict(spec_of(model))
                out['deform_spec_extra'] = [[k, list(v.shape)] for k, v in
                                            m.state_dict().items() if k not in base]
    out['size_divisibility'] = model.backbone.size_divisibility
    out['padded_200x300'] = list(ImageList.from_tensors(
        [torch.zeros(3, 200, 300)], model.backbone.size_divisibility).tensor.shape[-2:])
    pair = [{'image': torch.zeros(3, 64, 64), 'height': 64, 'width': 64} for _ in range(2)]
    try:
        with torch.no_grad():
            model(pair)
        out['eval_batch_of_2'] = 'runs'
    except Exception as e:  # noqa: BLE001 - recorded as a fact
        out['eval_batch_of_2'] = 'fails: {!r}'.format(e)
    grid = SingleHead.coord_conv(None, torch.zeros(1, 0, 3, 5))[0]
    out['coord_channel_0'] = grid[0].tolist()
    out['coord_channel_1'] = grid[1].tolist()
    return out


def main(argv=None):
    """Write the fixture ``.npz``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.path.join(ROOT, 'tests', 'fixtures',
                                                      'panopticfcn_reference.npz'))
    parser.add_argument('--seed', type=int, default=12)
    parser.add_argument('--src', default=SRC, help="the authors' repository, extracted")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    _imports(args.src)
    import detectron2
    from gluonpan.convert.seeded import fingerprint
    from fixture_io import write_fixture

    model, weights, spec, cfg = build(args.src, args.seed)
    ims = images(args.seed)
    out, counts, segments = {}, [], []
    for i, (image, out_size) in enumerate(zip(ims, OUT_SIZES)):
        c, s = store_inference(out, i, model, record_inference(model, image, out_size),
                               out_size)
        counts.append(c)
        segments.append(s)
    gts = ground_truth()
    train = record_training(model, ims[:2], gts)
    losses, train_counts = store_training(out, model, train, gts)
    checked = facts(args.src, model)
    checked['sem_seg_changed_in_place'] = train['sem_seg_changed_in_place']
    head = cfg.MODEL
    meta = dict(
        seed=args.seed, num_things=NUM_THINGS, num_stuff=NUM_STUFF, sizes=SIZES,
        out_sizes=OUT_SIZES, gains=GAINS, zero_mean=ZERO_MEAN, command=COMMAND, config=CONFIG,
        overrides=OVERRIDES, spec=[[k, list(s)] for k, s in spec],
        classes=dict(
            thing='center logits / thing classes 0..T-1 (Cityscapes-sized: 8)',
            stuff='region logits, stuff kernels, pred_sem_seg, sem_argmax, train_sem_seg: FCN '
                  'order with WITH_THING True: 0 = "things", 1..S-1 stuff (S = 12)',
            panoptic='segments_info category_id: thing class 0..T-1 for isthing, the FCN '
                     'stuff index 1..S-1 otherwise'),
        options=dict(
            thing_thres=head.POSITION_HEAD.THING.THRES, stuff_thres=head.POSITION_HEAD.STUFF.THRES,
            top_num=head.POSITION_HEAD.THING.TOP_NUM, pos_num=head.POSITION_HEAD.THING.POS_NUM,
            inst_thres=head.INFERENCE.INST_THRES, similar_thres=head.INFERENCE.SIMILAR_THRES,
            combine_overlap=head.INFERENCE.COMBINE.OVERLAP_THRESH,
            combine_stuff_area=head.INFERENCE.COMBINE.STUFF_AREA_LIMIT,
            combine_inst_thresh=head.INFERENCE.COMBINE.INST_THRESH,
            instance_scales=[list(s) for s in head.KERNEL_HEAD.INSTANCE_SCALES],
            pool_sizes=[3, 3, 3, 5, 5]),
        counts=counts, segments_info=segments, losses=losses, train_counts=train_counts,
        facts=checked,
        input='tools/reference/make_panopticfcn_fixtures.images(seed): seeded_images(seed + i, '
              '1, H, W), ImageNet-normalised RGB, given unchanged as "image" (PIXEL_MEAN 0, '
              'PIXEL_STD 1); "height"/"width" = out_sizes',
        train_input='the first two images, ground truth of ground_truth(): batch padded to '
                    '256x512',
        versions=dict(torch=torch.__version__, detectron2=detectron2.__version__,
                      detectron2_commit='02b5c4e', panopticfcn_commit='ecb2c09',
                      numpy=np.__version__, python=platform.python_version()),
        weights_fingerprint=fingerprint(weights),
        images_fingerprint=fingerprint({str(i): im for i, im in enumerate(ims)}))
    write_fixture(args.out, out, meta)
    sizes = sorted(((v.nbytes, k) for k, v in out.items()), reverse=True)[:8]
    logging.info('largest arrays (raw bytes): %s', sizes)


if __name__ == '__main__':
    main()
