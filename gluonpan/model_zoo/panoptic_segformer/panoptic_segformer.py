"""Panoptic SegFormer (Li, Wang, Xie, Liu, Wang, Lu, Luo and Wang, CVPR 2022) as one Gluon
HybridBlock, computing what the authors' code computes (``zhiqi-li/Panoptic-SegFormer``;
``tools/reference/PANOPTIC_SEGFORMER_ARCH.md`` and ``..._LOSSES.md``).

ResNet C3..C5 -> ChannelMapper (4 levels, strides 8..64) -> deformable encoder -> location
decoder (object queries, iterative box refinement) -> thing mask decoder on selected queries and
stuff mask decoder on one query per stuff class, both attending to the memory of strides 8..32.

The network composes; the parts compute (:mod:`.neck`, :mod:`.encoder`, :mod:`.location_decoder`,
:mod:`.mask_heads`), the training step's matching runs in numpy between the forward and the
losses (:mod:`.matching`) and the panoptic merging in numpy after inference (:mod:`.inference`).
"""
import warnings
from collections import OrderedDict

from mxnet import autograd

from ..two_mode import TwoModeNet
from .encoder import DeformableEncoder
from .inference import DEFAULT_INFERENCE_OPTIONS
from .location_decoder import LocationDecoder
from .mask_heads import StuffMaskHead, ThingMaskHead, ZeroWeightThingBranches
from .matching import ThingQueries, match_layers, match_thing_masks
from .neck import ChannelMapper
from .targets import (TARGET_KEYS, BatchTargets, SegFormerSampleTargets, batch_counts,
                      loss_normalizers)

__all__ = ['LR_MULT', 'loss_names', 'default_loss_weights', 'select_things',
           'PanopticSegFormer', 'build_panoptic_segformer']

#: learning-rate multiplier of the backbone, the sampling offsets and the reference points (the
#: reference's ``paramwise_cfg``)
LR_MULT = 0.1
#: the reference's loss weights by name prefix (``configs/panformer/base.py``; the stuff class
#: loss is ``loss_cls * 2``)
_WEIGHTS = (('loss_cls_stuff', 4.), ('loss_cls', 2.), ('loss_bbox', 5.), ('loss_iou', 2.),
            ('loss_mask', 2.))


def loss_names(decoder_layers=6, thing_blocks=4, stuff_blocks=6):
    """The training losses' names (the reference's ``d{i}.loss_x`` are ``loss_x_d{i}``)."""
    location = ['{}{}'.format(name, suffix) for suffix in
                ['_d{}'.format(i) for i in range(decoder_layers - 1)] + ['']
                for name in ('loss_cls', 'loss_bbox', 'loss_iou')]
    things = ['loss_mask_things'] + ['loss_mask_things_d{}'.format(i)
                                     for i in range(thing_blocks)]
    stuff = ['loss_mask_stuff'] + ['loss_mask_stuff_d{}'.format(i) for i in range(stuff_blocks)]
    stuff += ['loss_cls_stuff_d{}'.format(i) for i in range(stuff_blocks)]
    return tuple(location + things + stuff)


def default_loss_weights(names):
    """The reference's weight of each loss name."""
    return OrderedDict((name, next(w for prefix, w in _WEIGHTS if name.startswith(prefix)))
                       for name in names)


def select_things(F, logits, k, num_classes):
    """The top ``k`` (query, class) pairs of the sigmoid scores (B, Q, T) -> ``(scores (B, k),
    labels (B, k), index (2, B, k))`` with ``index`` ``[image, query]`` for ``gather_nd``; a
    query may be taken with several classes (the reference's ``_get_bboxes_single``)."""
    probs = F.sigmoid(logits).reshape((0, -1))  # (B, Q * T), query-major
    scores, flat = F.topk(probs, axis=1, k=k, ret_typ='both')  # (B, k), flat = query * T + class
    query = F.floor(flat / num_classes)
    image = F.contrib.arange_like(scores, axis=0).reshape((-1, 1))  # (B, 1)
    image = F.broadcast_like(image, scores)  # (B, k)
    return scores, flat - query * num_classes, F.stack(image, query, axis=0)


class PanopticSegFormer(TwoModeNet):
    """Panoptic SegFormer.

    Modes (``autograd.is_training()`` selects the branch of the hybridized call)

    * **inference**: ``net.predict(data)`` with images (B, 3, H, W) of any size (no padding
      needed) returns ``thing_scores`` (B, K) and ``thing_labels`` (B, K) of the top K (query,
      class) pairs, their ``thing_masks`` (B, K, h0, w0), ``stuff_scores`` (B, S) and
      ``stuff_masks`` (B, S, h0, w0) (h0, w0 = ceil(H / 8), ceil(W / 8); masks are ReLU values).
      :meth:`predict_panoptic` turns them into a panoptic map.
    * **training**: :meth:`train_losses` (the engine's call): the hybridized training call
      ``net(data)`` returns the per-layer predictions, the matching runs in numpy, then the thing
      mask decoder runs (its own hybridized call) on the matched queries and the losses are
      computed; returns the named losses of :attr:`LOSS_NAMES`.

    Parameters
    ----------
    backbone : HybridBlock
        C2..C5 (``ResNetV1bFeatures``); C3..C5 are used.
    neck, encoder, location_decoder, thing_head, stuff_head : HybridBlock
        The parts (:func:`build_panoptic_segformer`).
    thing_branches : ZeroWeightThingBranches
        Parameters the reference has but does not use (never computed here).
    categories : gluonpan.data.PanopticCategories
        Thing classes T and stuff classes S of the heads.
    num_candidates : int
        Thing candidates K at inference (the reference's ``max_per_img`` 100).
    loss_weights : dict, optional
        Overrides of :func:`default_loss_weights`.
    inference_options : dict, optional
        Thresholds of :mod:`.inference` and ``test_size`` (short, max long side) or None.
    options : dict, optional
        The builder options (recorded with a training run).
    """

    #: the keys of a per-context training batch (:mod:`.targets`)
    TRAIN_INPUTS = ('data',) + TARGET_KEYS

    def __init__(self, backbone, neck, encoder, location_decoder, thing_head, stuff_head,
                 thing_branches, categories, num_candidates=100, loss_weights=None,
                 inference_options=None, options=None, **kwargs):
        super(PanopticSegFormer, self).__init__({}, **kwargs)
        names = loss_names(len(location_decoder.layers), len(thing_head.decoder.blocks),
                           len(stuff_head.decoder.blocks))
        unknown = set(loss_weights or {}) - set(names)
        if unknown:
            raise ValueError('unknown loss names {} in loss_weights; valid: {}'
                             .format(sorted(unknown), names))
        num_pairs = location_decoder.num_queries * location_decoder.num_classes
        if not 0 < num_candidates <= num_pairs:
            raise ValueError('num_candidates must be in [1, {}] (queries x thing classes), got '
                             '{}'.format(num_pairs, num_candidates))
        self.LOSS_NAMES = names
        self.loss_weights = OrderedDict(default_loss_weights(names), **(loss_weights or {}))
        self.categories = categories
        self.num_candidates = int(num_candidates)
        self.inference_options = dict(DEFAULT_INFERENCE_OPTIONS, **(inference_options or {}))
        self.options = dict(options or {})
        with self.name_scope():
            self.backbone, self.neck, self.encoder = backbone, neck, encoder
            self.location_decoder, self.thing_head = location_decoder, thing_head
            self.stuff_head, self.thing_branches = stuff_head, thing_branches
        for params in (backbone.collect_params(),
                       self.collect_params('.*sampling_offsets.*|.*reference_points.*')):
            params.setattr('lr_mult', LR_MULT)

    @property
    def fusion_defaults(self):
        """The eval / demo flags' defaults: the reference's thing quality threshold (score),
        thing overlap threshold, and no stuff area limit."""
        opts = self.inference_options
        return {'score_thresh': opts['quality_threshold_things'],
                'overlap_thresh': opts['overlap_threshold_things'],
                'stuff_area': opts['stuff_area_threshold']}

    def train_targets(self, categories):
        """The data workers' target maker (``PanopticTrainTransform(targets=...)``)."""
        return SegFormerSampleTargets(categories.num_stuff)

    def predict_panoptic(self, data, **thresholds):
        """:func:`~gluonpan.model_zoo.panoptic_segformer.inference.predict_panoptic` of this net."""
        from .inference import predict_panoptic
        return predict_panoptic(self, data, **thresholds)

    def predict(self, data):
        """Inference outputs (class docstring) of images (B, 3, H, W)."""
        with autograd.predict_mode():
            return self(data)

    def forward(self, x, *args):
        """:meth:`TwoModeNet.forward`; the hybridized graphs leave parameters unused on purpose
        (the thing decoder runs apart in training, the zero-weight branches never run, unused
        block masks are pruned at inference), so MXNet's warning about them is silenced."""
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Parameter .* is not used')
            return super(PanopticSegFormer, self).forward(x, *args)

    def _check_inputs(self, x, args, training):
        """Images (B, 3, H, W) of any size, in both modes."""
        if args or x.ndim != 4 or x.shape[1] != 3 or min(x.shape) == 0:
            raise ValueError('Panoptic SegFormer takes images (B, 3, H, W) and nothing else, got '
                             '{} and {} more inputs'.format(x.shape, len(args)))

    # pylint: disable=arguments-differ
    def hybrid_forward(self, F, x):
        """See the class docstring for the two modes."""
        feats = self.neck(*self.backbone(x)[1:])  # strides 8, 16, 32, 64
        memory, masks = self.encoder(feats)
        query, classes, boxes = self.location_decoder(memory, masks)
        memory, masks = memory[:3], masks[:3]  # the mask decoders read strides 8..32
        stuff = self.stuff_head(memory, masks)
        if autograd.is_training():
            return classes, boxes, query, memory, masks, stuff
        scores, labels, index = select_things(F, classes[-1], self.num_candidates,
                                              self.location_decoder.num_classes)
        thing_masks, _ = self.thing_head(query, index, memory, masks)
        stuff_masks, _, stuff_logits = stuff
        stuff_scores = F.sigmoid(stuff_logits[-1]).reshape((0, -1))  # (B, S, 1) -> (B, S)
        return scores, labels, thing_masks, stuff_scores, stuff_masks

    def batch_totals(self, batch):
        """Matched things, stuff segments and images of a batch (the engine sums them over
        contexts and workers and passes them to :meth:`train_losses`)."""
        return batch_counts(batch, self.location_decoder.num_queries)

    def train_losses(self, batch, totals=None):
        """Weighted losses of one per-context batch (``data`` and the :data:`TARGET_KEYS`).

        Parameters
        ----------
        batch : dict
            NDArrays on one context.
        totals : dict, optional
            :meth:`batch_totals` of the whole step (all contexts and workers); default this
            batch's (exact for one context).

        Returns
        -------
        collections.OrderedDict
            ``{name: (1,) NDArray}`` for :attr:`LOSS_NAMES`, times ``net.loss_weights``.
        """
        targets = BatchTargets(batch, self.categories.num_stuff)
        norm = loss_normalizers(targets.counts(self.location_decoder.num_queries), totals)
        with autograd.train_mode():
            classes, boxes, query, memory, masks, stuff = self(batch['data'])
            layer_results, layer_matches = match_layers(classes, boxes, targets)
            queries = ThingQueries.from_matches(layer_results[-1])
            things = self.thing_head(query, queries.as_ndarray(query.context), memory, masks)
        thing_match = match_thing_masks(classes[-1], boxes[-1], things[0], queries, targets)
        losses = self.location_decoder.losses(classes, boxes, layer_matches, targets, norm)
        losses.update(self.thing_head.losses(things, thing_match, targets, norm))
        losses.update(self.stuff_head.losses(stuff, targets, norm))
        return OrderedDict((k, losses[k] * self.loss_weights[k]) for k in self.LOSS_NAMES)


def build_panoptic_segformer(backbone, categories, embed_dims=256, num_heads=8, num_points=4,
                             feedforward_channels=1024, encoder_layers=6, decoder_layers=6,
                             num_queries=300, thing_blocks=4, stuff_blocks=6, dropout=0.1,
                             msda_method='gather', num_candidates=100, loss_weights=None,
                             test_size=None, **thresholds):
    """Assemble a :class:`PanopticSegFormer`; the defaults are the reference's R50 config
    (``configs/panformer/base.py``).

    Parameters
    ----------
    backbone : HybridBlock
        With ``out_channels`` (C2..C5), e.g. :class:`gluonpan.nn.ResNetV1bFeatures`.
    categories : gluonpan.data.PanopticCategories
        Thing and stuff classes.
    embed_dims, num_heads, num_points, feedforward_channels : int
        Transformer width C (256; a multiple of 32 for the neck's GroupNorm), heads (8),
        deformable sampling points (4), FFN width (1024).
    encoder_layers, decoder_layers, num_queries : int
        6, 6 and 300.
    thing_blocks, stuff_blocks : int
        Mask decoder blocks (4 and 6).
    dropout : float
        Of the deformable transformer (0.1; the mask decoders have none).
    msda_method : {'gather', 'bilinear'}
        Deformable attention sampling (fast, or a quarter of the memory).
    num_candidates : int
        Thing candidates at inference (``max_per_img`` 100).
    loss_weights : dict, optional
        Overrides by loss name.
    test_size : tuple of int, optional
        (short, max long side) the image is resized to at test time (COCO: (800, 1333)).
    **thresholds
        :data:`~gluonpan.model_zoo.panoptic_segformer.inference.DEFAULT_INFERENCE_OPTIONS`
        overrides.
    """
    unknown = set(thresholds) - set(DEFAULT_INFERENCE_OPTIONS)
    if unknown:
        raise ValueError('unknown options {}; thresholds: {}'.format(
            sorted(unknown), sorted(DEFAULT_INFERENCE_OPTIONS)))
    options = dict(embed_dims=embed_dims, num_heads=num_heads, num_points=num_points,
                   feedforward_channels=feedforward_channels, encoder_layers=encoder_layers,
                   decoder_layers=decoder_layers, num_queries=num_queries,
                   thing_blocks=thing_blocks, stuff_blocks=stuff_blocks, dropout=dropout,
                   msda_method=msda_method, num_candidates=num_candidates)
    transformer = dict(embed_dims=embed_dims, num_heads=num_heads, num_levels=4,
                       num_points=num_points, feedforward_channels=feedforward_channels,
                       dropout=dropout, method=msda_method)
    heads = dict(embed_dims=embed_dims, num_heads=num_heads, num_levels=3)
    neck = ChannelMapper(backbone.out_channels[1:], embed_dims, prefix='neck_')
    encoder = DeformableEncoder(encoder_layers, prefix='encoder_', **transformer)
    location_decoder = LocationDecoder(categories.num_things, num_queries, decoder_layers,
                                       prefix='location_decoder_', **transformer)
    thing_head = ThingMaskHead(thing_blocks, prefix='thing_head_', **heads)
    thing_branches = ZeroWeightThingBranches(categories.num_things, thing_blocks, embed_dims,
                                             prefix='thing_branches_')
    stuff_head = StuffMaskHead(categories.num_stuff, stuff_blocks, prefix='stuff_head_',
                               **heads)
    inference = dict(thresholds, test_size=tuple(test_size) if test_size else None)
    return PanopticSegFormer(backbone, neck, encoder, location_decoder, thing_head, stuff_head,
                             thing_branches, categories, num_candidates, loss_weights, inference,
                             options)
