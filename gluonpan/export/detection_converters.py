"""ONNX converters of the detection operators of Panoptic FPN: ``_contrib_box_nms`` and
``_contrib_ROIAlign``, with MXNet's semantics (mx2onnx's own converters differ, see each).

``box_nms``: MXNet keeps the boxes whose score is ``> valid_thresh``, takes the ``topk`` best of
them (stable sort by score), suppresses greedily (IoU ``> overlap_thresh``, within a class unless
``force_suppress``) and returns an array of the input's shape: the kept rows by decreasing score,
then rows of -1.  mx2onnx's converter ignores the classes and returns the kept rows in
suppression order.  Ours selects with ``NonMaxSuppression`` (one score row per class, so classes
never suppress each other; the same IoU and greedy order, ties by index as MXNet's stable sort),
then sorts with ``TopK`` (ties by index too).  ``overlap_thresh >= 1`` suppresses nothing: the
NMS is skipped (Panoptic FPN's per-level top-k sorts all anchors of a level that way).

``ROIAlign``: ONNX ``RoiAlign`` (opset 16) is the same Detectron algorithm (bilinear samples on
a ``sample_ratio`` grid, adaptive when <= 0, averaged); ``aligned=True`` is its
``half_pixel`` mode, ``aligned=False`` its ``output_half_pixel`` mode (RoIs at least one pixel),
which mx2onnx's converter cannot express at opset 16.  MXNet skips a RoI n of batch index < 0
(our pyramid RoIAlign sends the RoIs of other levels there and masks their rows out), leaving
its rows unwritten and writing a zero to *element* n of the output (a bug that
``pyramid_roi_align``'s leading dummy RoI absorbs): ours clamps the index for RoiAlign and
zeroes that RoI's rows, which equals MXNet on every row of a RoI of index >= 0 past the first.
"""
import numpy as np

from ._nodes import const, inputs, int64, ints, flag, node, tensor_type

__all__ = ['convert_box_nms', 'convert_roi_align']

_LOWEST = np.finfo(np.float32).min


def _column(nodes, kwargs, data, index, out):
    """``out`` = ``data[:, :, index]`` of a (B, N, W) tensor, (B, N)."""
    nodes.append(node('Gather', [data, int64(kwargs, out + '_i', index)], [out], axis=2))
    return out


def _class_scores(nodes, kwargs, n, data, id_index, scores):
    """(B, C, N) scores with one row per class id (the box's score in its class's row,
    the lowest float elsewhere), C = max id - min id + 1."""
    ids = _column(nodes, kwargs, data, id_index, n + 'ids')
    nodes += [
        node('Cast', [ids], [n + 'ids_int'], to=tensor_type(np.int64)),  # as MXNet truncates
        node('ReduceMin', [n + 'ids_int'], [n + 'id_min'], keepdims=0),
        node('Sub', [n + 'ids_int', n + 'id_min'], [n + 'class']),
        node('ReduceMax', [n + 'class'], [n + 'class_max'], keepdims=0),
        node('Add', [n + 'class_max', int64(kwargs, n + 'one', 1)], [n + 'num_classes']),
        node('Range', [int64(kwargs, n + 'zero', 0), n + 'num_classes', n + 'one'],
             [n + 'classes']),
        node('Reshape', [n + 'classes', int64(kwargs, n + 'column', [1, -1, 1])],
             [n + 'class_column']),
        node('Unsqueeze', [n + 'class', int64(kwargs, n + 'axis1', [1])], [n + 'box_class']),
        node('Equal', [n + 'box_class', n + 'class_column'], [n + 'in_class']),  # (B, C, N)
        node('Unsqueeze', [scores, n + 'axis1'], [n + 'score_row']),
        node('Where', [n + 'in_class', n + 'score_row', n + 'lowest'], [n + 'nms_scores']),
    ]
    return n + 'nms_scores'


def convert_box_nms(mx_node, **kwargs):
    """``_contrib_box_nms`` (corner boxes, no background id) with MXNet's semantics (module
    docstring)."""
    name, (data,), attrs, dtypes = inputs(mx_node, kwargs)
    dtype = dtypes[0]
    overlap = float(attrs.get('overlap_thresh', 0.5))
    valid_thresh = float(attrs.get('valid_thresh', 0))
    topk = int(attrs.get('topk', -1))
    coord_start = int(attrs.get('coord_start', 2))
    score_index = int(attrs.get('score_index', 1))
    id_index = int(attrs.get('id_index', -1))
    if attrs.get('in_format', 'corner') != attrs.get('out_format', 'corner') or \
            attrs.get('in_format', 'corner') != 'corner' or \
            int(attrs.get('background_id', -1)) != -1:
        raise NotImplementedError('box_nms {}: only corner boxes without a background id are '
                                  'supported'.format(name))
    if topk == 0:  # MXNet returns its input
        return [node('Identity', [data], [name + '0'], name=name)]
    n = name + '_'
    const(kwargs, n + 'lowest', _LOWEST, dtype)
    nodes = [
        node('Shape', [data], [n + 'shape']),
        node('Slice', [n + 'shape', int64(kwargs, n + 'last2', [-2]),
                       int64(kwargs, n + 'end', [2 ** 62])], [n + 'rows_width']),
        node('Concat', [int64(kwargs, n + 'batch', [-1]), n + 'rows_width'], [n + 'view'],
             axis=0),
        node('Reshape', [data, n + 'view'], [n + 'data']),  # (B, N, W)
        node('Gather', [n + 'rows_width', int64(kwargs, n + 'first', [0])], [n + 'num']),
    ]
    scores = _column(nodes, kwargs, n + 'data', score_index, n + 'scores')
    nodes += [
        node('Greater', [scores, const(kwargs, n + 'valid_thresh', valid_thresh, dtype)],
             [n + 'valid']),
        node('Where', [n + 'valid', scores, n + 'lowest'], [n + 'valid_scores']),
    ]
    candidates = n + 'valid'
    if topk >= 0:  # only the topk best valid boxes enter the NMS
        nodes += [
            node('TopK', [n + 'valid_scores', n + 'num'], [n + 'sorted', n + 'order'], axis=1),
            node('Shape', [n + 'order'], [n + 'order_shape']),
            node('Gather', [n + 'order_shape', int64(kwargs, n + 'dim1', 1)], [n + 'count']),
            node('Range', [int64(kwargs, n + 'r0', 0), n + 'count', int64(kwargs, n + 'r1', 1)],
                 [n + 'ranks']),
            node('Expand', [n + 'ranks', n + 'order_shape'], [n + 'rank_rows']),
            node('ScatterElements', [n + 'rank_rows', n + 'order', n + 'rank_rows'],
                 [n + 'rank'], axis=1),  # rank of every box in the sorted order
            node('Less', [n + 'rank', int64(kwargs, n + 'topk', topk)], [n + 'in_topk']),
            node('And', [n + 'valid', n + 'in_topk'], [n + 'candidate']),
        ]
        candidates = n + 'candidate'
    if overlap >= 1:  # an IoU never exceeds 1: nothing is suppressed
        keep = candidates
    else:
        nodes += [
            node('Where', [candidates, scores, n + 'lowest'], [n + 'cand_scores']),
            node('Slice', [n + 'data', int64(kwargs, n + 'cs', [coord_start]),
                           int64(kwargs, n + 'ce', [coord_start + 4]),
                           int64(kwargs, n + 'caxis', [2])], [n + 'boxes']),
        ]
        if id_index >= 0 and not flag(attrs, 'force_suppress'):
            nms_scores = _class_scores(nodes, kwargs, n, n + 'data', id_index,
                                       n + 'cand_scores')
        else:
            nodes.append(node('Unsqueeze', [n + 'cand_scores', int64(kwargs, n + 'ax1', [1])],
                              [n + 'nms_scores']))
            nms_scores = n + 'nms_scores'
        nodes += [
            node('NonMaxSuppression', [n + 'boxes', nms_scores,
                                       int64(kwargs, n + 'max_out', [2 ** 31 - 1]),
                                       const(kwargs, n + 'iou', [overlap], np.float32),
                                       const(kwargs, n + 'score_min', [_LOWEST], np.float32)],
                 [n + 'selected']),  # (K, 3): batch, class, box
            node('Gather', [n + 'selected', int64(kwargs, n + 'batch_box', [0, 2])],
                 [n + 'kept_index'], axis=1),
            node('Shape', [n + 'selected'], [n + 'selected_shape']),
            node('Slice', [n + 'selected_shape', int64(kwargs, n + 's0', [0]),
                           int64(kwargs, n + 's1', [1])], [n + 'num_kept']),
            node('Expand', [const(kwargs, n + 'true', [True], np.bool_), n + 'num_kept'],
                 [n + 'trues']),
            node('Shape', [scores], [n + 'score_shape']),
            node('Expand', [const(kwargs, n + 'false', [False], np.bool_), n + 'score_shape'],
                 [n + 'falses']),
            node('ScatterND', [n + 'falses', n + 'kept_index', n + 'trues'], [n + 'keep']),
        ]
        keep = n + 'keep'
    nodes += [  # kept rows by decreasing score (ties by index), then -1 rows
        node('Where', [keep, scores, n + 'lowest'], [n + 'kept_scores']),
        node('TopK', [n + 'kept_scores', n + 'num'], [n + 'out_sorted', n + 'out_order'],
             axis=1),
        node('GatherElements', [keep, n + 'out_order'], [n + 'out_keep'], axis=1),
        node('Unsqueeze', [n + 'out_order', int64(kwargs, n + 'ax2', [2])], [n + 'row_index']),
        node('Shape', [n + 'data'], [n + 'data_shape']),
        node('Expand', [n + 'row_index', n + 'data_shape'], [n + 'row_indices']),
        node('GatherElements', [n + 'data', n + 'row_indices'], [n + 'rows'], axis=1),
        node('Unsqueeze', [n + 'out_keep', n + 'ax2'], [n + 'row_keep']),
        node('Where', [n + 'row_keep', n + 'rows', const(kwargs, n + 'minus1', -1., dtype)],
             [n + 'result']),
        node('Reshape', [n + 'result', n + 'shape'], [name + '0'], name=name),
    ]  # named as mx2onnx names the first of the operator's two outputs
    return nodes


def convert_roi_align(mx_node, **kwargs):
    """``_contrib_ROIAlign`` (average, not position-sensitive) as ONNX ``RoiAlign`` (module
    docstring)."""
    name, (data, rois), attrs, dtypes = inputs(mx_node, kwargs)
    if flag(attrs, 'position_sensitive'):
        raise NotImplementedError('ROIAlign {}: position_sensitive is not supported'
                                  .format(name))
    pooled_h, pooled_w = ints(attrs['pooled_size'])
    n = name + '_'
    mode = 'half_pixel' if flag(attrs, 'aligned') else 'output_half_pixel'
    return [
        node('Gather', [rois, int64(kwargs, n + 'index_col', 0)], [n + 'index_f'], axis=1),
        node('Slice', [rois, int64(kwargs, n + 'b', [1]), int64(kwargs, n + 'e', [5]),
                       int64(kwargs, n + 'axis', [1])], [n + 'boxes']),
        node('Cast', [n + 'index_f'], [n + 'index'], to=tensor_type(np.int64)),
        node('Max', [n + 'index', int64(kwargs, n + 'zero', 0)], [n + 'batch_index']),
        node('RoiAlign', [data, n + 'boxes', n + 'batch_index'], [n + 'pooled'],
             mode='avg', output_height=pooled_h, output_width=pooled_w,
             sampling_ratio=max(int(attrs.get('sample_ratio', -1)), 0),
             spatial_scale=float(attrs['spatial_scale']),
             coordinate_transformation_mode=mode),
        node('Less', [n + 'index_f', const(kwargs, n + 'zero_f', 0., dtypes[1])],
             [n + 'skipped']),
        node('Reshape', [n + 'skipped', int64(kwargs, n + 'rows', [-1, 1, 1, 1])],
             [n + 'skipped_rows']),
        node('Where', [n + 'skipped_rows', const(kwargs, n + 'zeros', 0., dtypes[0]),
                       n + 'pooled'], [name], name=name),
    ]
