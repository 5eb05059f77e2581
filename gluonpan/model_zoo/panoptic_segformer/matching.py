"""The training step's Hungarian matchings (numpy, between the network's forward and its losses),
as the reference runs them (``tools/reference/PANOPTIC_SEGFORMER_LOSSES.md`` section 2):

1. every location-decoder layer is matched on its own outputs (focal 2, L1 5, GIoU 2);
2. the queries matched at the last layer (ascending, one per ground truth: the reference's query
   filter as coded) are the thing queries of the mask decoder (:class:`ThingQueries`);
3. those queries are matched again with the thing decoder's final masks (focal 4, L1 5, GIoU 2,
   dice 2); the mask losses of every thing block follow that matching.

The results become index arrays (:func:`~gluonpan.nn.set_matching.encode_matches`) on the
outputs' context, the inputs of the losses.
"""
import collections

import mxnet as mx
import numpy as np

from ...nn.set_matching import encode_matches, location_matcher, mask_matcher

__all__ = ['as_ndarrays', 'match_layers', 'ThingQueries', 'match_thing_masks']


def as_ndarrays(encoded, ctx):
    """An :func:`encode_matches` dict with its arrays as NDArrays on ``ctx``: the gather
    indices int32, the class targets and validity float32 (the losses compare them with float
    class ranges)."""
    return {k: mx.nd.array(v, ctx=ctx, dtype='int32' if k == 'gather_index' else 'float32')
            if isinstance(v, np.ndarray) else v for k, v in encoded.items()}


def match_layers(classes, boxes, targets):
    """Match every location-decoder layer.

    Parameters
    ----------
    classes, boxes : list of NDArray
        Per layer (B, Q, T) logits and (B, Q, 4) boxes.
    targets : BatchTargets

    Returns
    -------
    results : list of list of MatchResult
        Per layer, per image.
    encoded : list of dict
        Per layer, the NDArray encodings (``cls_targets`` (B, Q), ``gather_index`` (2, B, G),
        ``match_valid`` (B, G)).
    """
    matcher = location_matcher()
    all_results, encoded = [], []
    for logits, pred in zip(classes, boxes):
        logits = logits.asnumpy()
        results = matcher.match_batch(logits, pred.asnumpy(), targets.classes, targets.boxes,
                                      targets.valid, targets.image_sizes)
        all_results.append(results)
        encoded.append(as_ndarrays(encode_matches(results, targets.classes, logits.shape[-1],
                                                  logits.shape[1]), pred.context))
    return all_results, encoded


class ThingQueries(collections.namedtuple('ThingQueries', 'index counts')):
    """The queries fed to the thing mask decoder in training: ``index`` (2, B, K) int32
    ``[image, query]`` for ``gather_nd`` (the matched queries of each image in ascending order,
    padded with query 0), ``counts`` (B,) the real ones; K = the largest count (at least 1)."""

    @classmethod
    def from_matches(cls, results):
        """From the last layer's :class:`~gluonpan.nn.set_matching.MatchResult` of each image."""
        counts = np.array([len(r.pred_index) for r in results], np.int64)
        index = np.zeros((2, len(results), max(1, int(counts.max(initial=0)))), np.int32)
        index[0] = np.arange(len(results))[:, None]
        for b, res in enumerate(results):
            index[1, b, :len(res.pred_index)] = np.sort(res.pred_index)
        return cls(index, counts)

    def as_ndarray(self, ctx):
        """``index`` as an int32 NDArray on ``ctx``."""
        return mx.nd.array(self.index, ctx=ctx, dtype='int32')


def match_thing_masks(logits, boxes, masks, queries, targets):
    """The mask decoder's matching (the reference's ``HungarianAssigner_multi_info``).

    Parameters
    ----------
    logits, boxes : NDArray
        The last location layer's (B, Q, T) logits and (B, Q, 4) boxes.
    masks : NDArray
        The thing decoder's final masks (B, K, h0, w0) of the ``queries``.
    queries : ThingQueries
    targets : BatchTargets
        ``cost_masks`` (B, G, h0, w0): the ground truth already at the masks' size.

    Returns
    -------
    dict
        NDArray encoding over the K thing slots: ``gather_index`` (2, B, G) ``[image, slot]``
        of each ground truth, ``match_valid`` (B, G), ``num_pos``.
    """
    image, query = queries.index  # (B, K) each
    logits = logits.asnumpy()
    results = mask_matcher().match_batch(
        logits[image, query], boxes.asnumpy()[image, query], targets.classes, targets.boxes,
        targets.valid, targets.image_sizes, masks=masks.asnumpy(), gt_masks=targets.cost_masks,
        query_counts=queries.counts)
    encoded = encode_matches(results, targets.classes, logits.shape[-1], image.shape[1])
    return as_ndarrays(encoded, masks.context)
