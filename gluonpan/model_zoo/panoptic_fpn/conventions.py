"""Named conventions of the Mask R-CNN branch, and presets that reproduce a reference's choices.

Layer for layer the instance branch computes what torchvision's and detectron2's do; end to end
the results differ by a handful of conventions.  Each is a keyword option of
:func:`~gluonpan.model_zoo.panoptic_fpn.build_panoptic_fpn` (so ``get_model(name, **options)`` and
``--model-kwargs`` take them), and ``preset=`` sets them all at once; an option given explicitly
wins over the preset.  The resolved values are ``net.conventions`` (plain JSON values: store them
with converted weights so the model always runs with its source's semantics).

Options
-------
anchor_style : str
    ``'detectron1'``: boxes of Detectron1 / gluoncv, centred at ``(stride - 1) / 2`` with integer
    inclusive sides (sizes 31/63/..., ratio boxes not mirror images of each other);
    ``'torchvision'``: centred at 0 (the top-left corner of the location), half-sides
    ``round(size / sqrt(r) / 2)``, ``round(size * sqrt(r) / 2)``; ``'detectron2'``: centred at 0,
    the same sides unrounded.  Data workers get the same anchors (``net.anchors``).
rpn_topk_per_level : bool
    False: the ``pre_nms`` best proposals over all levels enter one NMS (gluoncv); True: the
    ``pre_nms`` best *of each level* (by objectness logit) enter an NMS per level, and the
    ``post_nms`` best survivors over all levels are kept (torchvision, detectron2, Detectron1 FPN).
rpn_train_pre_nms, rpn_train_post_nms, rpn_test_pre_nms, rpn_test_post_nms : int
    Proposals per image before NMS (in total, or per level: see ``rpn_topk_per_level``) and after.
rpn_min_size : float
    Proposal side threshold, in input pixels.  Global selection: a proposal with ``side + 1 <
    rpn_min_size`` is dropped before the top-k (gluoncv).  Per-level selection: one with ``side <
    rpn_min_size`` is dropped after the per-level top-k (torchvision, 1e-3).
rpn_min_size_strict : bool
    Per-level selection only: keep a proposal whose sides are ``> rpn_min_size`` (True,
    detectron2's ``Boxes.nonempty(threshold=0)``, which drops boxes clipped to zero width) instead
    of ``>= rpn_min_size`` (False, torchvision's ``remove_small_boxes``).
roi_level_style : str
    The FPN level of a RoI, ``floor(4 + log2(s / 224))`` clipped to P2..P5, with ``s`` =
    ``sqrt((w + 1) * (h + 1))`` and ``log2(s / 224 + 1e-6)`` for ``'detectron1'`` (gluoncv);
    ``sqrt(w * h)`` and ``log2(s / 224) + 1e-6`` for ``'torchvision'``; ``sqrt(w * h)`` and
    ``log2(s / 224 + 1e-8)`` for ``'detectron2'``.
roi_align_aligned, roi_align_sampling_ratio : bool, int
    RoIAlign with the half-pixel shift (detectron2's ROIAlignV2) or without (torchvision's
    ``MultiScaleRoIAlign``: False, 2); ``sampling_ratio <= 0`` is adaptive (``ceil(bin size)``).
test_score_thresh, test_nms_thresh, test_max_dets : float, float, int
    Detection post-processing: minimal class score, class-aware NMS IoU, detections per image.
test_min_box_size : float
    Detections with a side ``< test_min_box_size`` pixels are dropped before the NMS
    (torchvision: 1e-2; 0 keeps all).
mask_paste : str
    How :func:`~gluonpan.model_zoo.panoptic_fpn.predict_panoptic` pastes the 28x28 mask
    probabilities into the image.  Both pad the 28x28 mask to 30x30 and scale the box by 30/28
    about its centre; ``'gluoncv'`` (gluoncv's ``fill``) clips the box to the image first, rounds
    it to integers and resizes with PIL's bilinear filter; ``'torchvision'``
    (``paste_masks_in_image``) clips it to ``[0, W] x [0, H]``, truncates it to integers and
    resizes with half-pixel bilinear interpolation.  Pixels with probability > 0.5 are the mask.
    ``'detectron2'`` (its ``paste_masks_in_image``) neither pads nor scales: each image pixel
    centre is mapped into the unrounded box and the 28x28 probabilities are sampled bilinearly
    there (zero outside the mask), within the box's integer bounds +- 1 pixel; pixels with
    probability >= 0.5 are the mask.

The input format of a reference (detectron2: BGR, 0..255 minus its pixel mean, std 1) is not a
convention of the network: our data pipeline feeds RGB normalised with the ImageNet mean and std,
and detectron2's pixel mean is the ImageNet mean times 255, so its normalised input is ours with
channels reversed and scaled by ``255 * std``, a linear map without offset.  The converters fold
it into the first convolution (:mod:`gluonpan.convert.detectron2`): exact, zero padding
included, and free at run time.  detectron2's semantic head puts its "things" class first; the
converter moves that row last (our ``'separated'`` order), which changes no argmax.

clip_to_image : bool
    Inference on a padded input: proposals and detections are clipped to the image inside it
    (True: torchvision, detectron2, which know each image's size;
    :func:`~gluonpan.model_zoo.panoptic_fpn.predict_panoptic` passes it) or to the padded input
    (False: gluoncv).
rpn_box_loss_beta, rcnn_box_loss_beta : float
    Training: transition point of the smooth-L1 box losses of the RPN and of the box head
    (gluoncv: 1/9 and 1; torchvision: 1/9 and 1/9; detectron2: 0 and 0, i.e. plain L1).
rpn_target_style : str
    Training: how anchors become RPN targets (:class:`gluonpan.data.presets.RPNTargets`; IoU
    >= 0.7 positive, < 0.3 negative, 256 samples, at most half positive in every style).
    ``'gluoncv'`` (its ``RPNTargetGenerator``): anchors crossing the image border are ignored,
    and an anchor that is the best one of a box but has IoU < 0.3 with it is a negative.
    ``'detectron2'`` (detectron2's ``Matcher`` with ``allow_low_quality_matches``, RPN
    ``BOUNDARY_THRESH -1``; torchvision's RPN does the same): every anchor takes part, and the
    best anchors of each box (every anchor with the box's highest IoU) are positives whatever
    their IoU.

Box-coder weights (RPN 1, 1, 1, 1; heads 10, 10, 5, 5), the delta clip ``log(1000 / 16)``, the RPN
NMS IoU 0.7 and the clipping of boxes to ``[0, W] x [0, H]`` are the same in every reference and
are not options.
"""
import copy

from ...errors import UsageError

__all__ = ['DEFAULT_PRESET', 'LEGACY_PRESET', 'PRESETS', 'CONVENTION_NAMES',
           'resolve_conventions', 'recorded_conventions']

#: the conventions a model gets unless told otherwise (those of detectron2, the reference of
#: Panoptic FPN).  Up to commit b63c07b it was ``'gluoncv'``: a training run or converted model
#: records its conventions, and a run recorded before they were recorded ran with
#: ``LEGACY_PRESET`` (see :func:`recorded_conventions`).
DEFAULT_PRESET = 'detectron2'

#: the preset of runs recorded before conventions were (gluoncv's Mask R-CNN, Detectron1 anchors)
LEGACY_PRESET = 'gluoncv'

PRESETS = {
    'gluoncv': dict(
        anchor_style='detectron1', rpn_topk_per_level=False, rpn_train_pre_nms=12000,
        rpn_train_post_nms=2000, rpn_test_pre_nms=6000, rpn_test_post_nms=1000, rpn_min_size=1.,
        roi_level_style='detectron1', roi_align_aligned=False, roi_align_sampling_ratio=2,
        test_score_thresh=0.05, test_nms_thresh=0.5, test_max_dets=100, test_min_box_size=0.,
        mask_paste='gluoncv', rpn_min_size_strict=False, rpn_box_loss_beta=1. / 9,
        rcnn_box_loss_beta=1., clip_to_image=False, rpn_target_style='gluoncv'),
    # torchvision.models.detection.maskrcnn_resnet50_fpn (torchvision 0.29 defaults)
    'torchvision': dict(
        anchor_style='torchvision', rpn_topk_per_level=True, rpn_train_pre_nms=2000,
        rpn_train_post_nms=2000, rpn_test_pre_nms=1000, rpn_test_post_nms=1000,
        rpn_min_size=1e-3, rpn_min_size_strict=False, roi_level_style='torchvision',
        roi_align_aligned=False, roi_align_sampling_ratio=2, test_score_thresh=0.05,
        test_nms_thresh=0.5, test_max_dets=100, test_min_box_size=1e-2, mask_paste='torchvision',
        rpn_box_loss_beta=1. / 9, rcnn_box_loss_beta=1. / 9, clip_to_image=True,
        rpn_target_style='detectron2'),
    # detectron2 (commit 02b5c4e) Base-RCNN-FPN / Base-Panoptic-FPN defaults: per-level top
    # 2000 / 1000 (train / test) -> 1000 per image, PROPOSAL_GENERATOR.MIN_SIZE 0 (keep sides
    # > 0), ROIAlignV2 (aligned, POOLER_SAMPLING_RATIO 0), SCORE_THRESH_TEST 0.05,
    # NMS_THRESH_TEST 0.5, DETECTIONS_PER_IMAGE 100, no minimal detection size, L1 box losses
    # (RPN.SMOOTH_L1_BETA and ROI_BOX_HEAD.SMOOTH_L1_BETA 0)
    'detectron2': dict(
        anchor_style='detectron2', rpn_topk_per_level=True, rpn_train_pre_nms=2000,
        rpn_train_post_nms=1000, rpn_test_pre_nms=1000, rpn_test_post_nms=1000,
        rpn_min_size=0., rpn_min_size_strict=True, roi_level_style='detectron2',
        roi_align_aligned=True, roi_align_sampling_ratio=0, test_score_thresh=0.05,
        test_nms_thresh=0.5, test_max_dets=100, test_min_box_size=0., mask_paste='detectron2',
        rpn_box_loss_beta=0., rcnn_box_loss_beta=0., clip_to_image=True,
        rpn_target_style='detectron2'),
}

#: every option a preset sets
CONVENTION_NAMES = tuple(sorted(PRESETS[DEFAULT_PRESET]))

_CHOICES = dict(anchor_style=('detectron1', 'torchvision', 'detectron2'),
                roi_level_style=('detectron1', 'torchvision', 'detectron2'),
                mask_paste=('gluoncv', 'torchvision', 'detectron2'),
                rpn_target_style=('gluoncv', 'detectron2'))


def resolve_conventions(preset=None, **options):
    """The conventions of a model: ``preset``'s values, overridden by the options not ``None``.

    Parameters
    ----------
    preset : str, optional
        A key of :data:`PRESETS`; default :data:`DEFAULT_PRESET`.
    **options
        Any of :data:`CONVENTION_NAMES`; ``None`` means "the preset's value".

    Returns
    -------
    dict
        Every name of :data:`CONVENTION_NAMES` plus ``'preset'``, JSON-serialisable.

    Raises
    ------
    gluonpan.errors.UsageError
        For an unknown preset, option name or choice (a ``ValueError``).
    """
    name = DEFAULT_PRESET if preset is None else preset
    if name not in PRESETS:
        raise UsageError('unknown preset {!r}; valid presets: {}'.format(name, sorted(PRESETS)))
    unknown = sorted(set(options) - set(CONVENTION_NAMES))
    if unknown:
        raise UsageError('unknown convention option(s) {}; valid: {}'.format(unknown,
                                                                            CONVENTION_NAMES))
    out = copy.deepcopy(PRESETS[name])
    out.update({k: v for k, v in options.items() if v is not None})
    for key, choices in _CHOICES.items():
        if out[key] not in choices:
            raise UsageError('{}={!r}: valid values are {}'.format(key, out[key], choices))
    negative = [k for k in ('rpn_min_size', 'test_min_box_size', 'rpn_box_loss_beta',
                            'rcnn_box_loss_beta') if out[k] < 0]
    if negative:
        raise UsageError('{} must be >= 0, got {}'.format(
            ', '.join(negative), ', '.join(str(out[k]) for k in negative)))
    out['rpn_topk_per_level'] = bool(out['rpn_topk_per_level'])
    out['roi_align_aligned'] = bool(out['roi_align_aligned'])
    out['rpn_min_size_strict'] = bool(out['rpn_min_size_strict'])
    out['clip_to_image'] = bool(out['clip_to_image'])
    out['preset'] = name
    return out


def recorded_conventions(model_kwargs):
    """The conventions recorded in a run's or converter's ``model_kwargs`` (a dict).

    Records carry ``preset`` and every option they were made with; an option added since is
    filled in from the recorded preset by :func:`resolve_conventions`.  A record without
    ``preset`` was written before conventions were recorded: it ran with :data:`LEGACY_PRESET`.

    Returns
    -------
    dict
        ``preset`` and the recorded options of :data:`CONVENTION_NAMES`.
    """
    out = {k: v for k, v in model_kwargs.items() if k in CONVENTION_NAMES}
    out['preset'] = model_kwargs.get('preset', LEGACY_PRESET)
    return out
