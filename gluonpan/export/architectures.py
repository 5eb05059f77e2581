"""What the export needs to know of each architecture: the names of the graph's outputs, which
input sizes the graph takes, and the model attributes the post-processing reads (recorded in
the ONNX file, so that :class:`~gluonpan.export.OnnxPredictor` needs no MXNet network).

=======================  ==================  ===================================================
architecture             ONNX inputs         outputs (those of ``net.predict``, in order)
=======================  ==================  ===================================================
``semantic_fpn``         ``data``            ``logits``
                         (B, 3, H, W)
``panoptic_fcn``         ``data``            ``centers``, ``regions``, ``thing_kernels``,
                         (1, 3, H, W)        ``stuff_kernels``, ``stuff_stats``, ``encoded``
``panoptic_fpn``         ``data``            ``ids``, ``scores``, ``boxes``, ``masks``,
                         (1, 3, H, W),       ``sem_logits``
                         ``window``
                         (1, 1, h, w)
``panoptic_segformer``   ``data``            ``thing_scores``, ``thing_labels``,
                         (B, 3, H, W)        ``thing_masks``, ``stuff_scores``, ``stuff_masks``
=======================  ==================  ===================================================

``data`` holds normalised images; H and W are dynamic (any size the MXNet network takes, x 32
for Panoptic FCN and Panoptic FPN, unpadded for Panoptic SegFormer; one exported file serves
every size), and so is B where it is ``B``.  Panoptic FPN's ``window`` is the image inside the
padded input (only its shape is read; h <= H, w <= W): proposals and detections are clipped to
it, as ``PanopticFPN.predict(data, image_size)``.  Panoptic SegFormer exports with either
deformable attention method (``msda_method='gather'``, its default, or ``'bilinear'``).
"""
from collections import namedtuple

from ..errors import UsageError

__all__ = ['Architecture', 'ARCHITECTURES', 'architecture_of', 'describe']

#: one architecture: its zoo prefix, graph inputs and outputs, input batch (None: any), size
#: divisor and a sample input size for building the graph
Architecture = namedtuple('Architecture', 'arch inputs outputs batch divisor sample_size')

ARCHITECTURES = {
    'semantic_fpn': Architecture('semantic_fpn', ('data',), ('logits',), None, 1, (64, 64)),
    'panoptic_fcn': Architecture('panoptic_fcn', ('data',), (
        'centers', 'regions', 'thing_kernels', 'stuff_kernels', 'stuff_stats', 'encoded'),
        1, 32, (64, 64)),
    'panoptic_fpn': Architecture('panoptic_fpn', ('data', 'window'), (
        'ids', 'scores', 'boxes', 'masks', 'sem_logits'), 1, 32, (128, 128)),
    'panoptic_segformer': Architecture('panoptic_segformer', ('data',), (
        'thing_scores', 'thing_labels', 'thing_masks', 'stuff_scores', 'stuff_masks'),
        None, 1, (64, 64)),
}


def architecture_of(net):
    """The :class:`Architecture` of a zoo network; a :class:`UsageError` for anything else."""
    from ..model_zoo import PanopticFCN, PanopticFPN, SemanticFPN
    from ..model_zoo.panoptic_segformer import PanopticSegFormer
    classes = {'semantic_fpn': SemanticFPN, 'panoptic_fcn': PanopticFCN,
               'panoptic_fpn': PanopticFPN, 'panoptic_segformer': PanopticSegFormer}
    for arch, cls in classes.items():
        if isinstance(net, cls):
            return ARCHITECTURES[arch]
    raise UsageError('cannot export a {}: export takes these gluonpan.model_zoo networks: {}'
                     .format(type(net).__name__, ', '.join(c.__name__ for c in classes.values())))


def describe(net, name=None):
    """The JSON-able record of ``net`` that the post-processing needs besides the graph.

    Parameters
    ----------
    net : SemanticFPN, PanopticFCN, PanopticFPN or PanopticSegFormer
        The exported network.
    name : str, optional
        Its zoo name (recorded for information).

    Returns
    -------
    dict
        ``arch``, ``name``, ``task``, ``inputs``, ``outputs``, ``batch``, ``divisor`` and the
        architecture's attributes: ``num_classes`` (semantic); ``categories`` (panoptic);
        ``inference_options`` and ``fusion_defaults`` (PanopticFCN, Panoptic SegFormer: its
        thresholds and ``test_size``); ``conventions``,
        ``semantic_mode``, ``anchors`` and ``num_proposals`` (Panoptic FPN).
    """
    spec = architecture_of(net)
    record = dict(arch=spec.arch, name=name, task=getattr(net, 'task', 'panoptic'),
                  inputs=list(spec.inputs), outputs=list(spec.outputs), batch=spec.batch,
                  divisor=spec.divisor)
    if spec.arch == 'semantic_fpn':
        record['num_classes'] = int(net.num_classes)
        return record
    record['categories'] = net.categories.to_json()
    if spec.arch in ('panoptic_fcn', 'panoptic_segformer'):
        options = dict(net.inference_options)
        if options.get('test_size') is not None:
            options['test_size'] = list(options['test_size'])
        record.update(inference_options=options, fusion_defaults=net.fusion_defaults)
    else:
        anchors = net.anchors
        record.update(conventions=dict(net.conventions), semantic_mode=net.semantic_mode,
                      anchors=dict(strides=list(anchors.strides), sizes=list(anchors.sizes),
                                   ratios=list(anchors.ratios), style=anchors.style),
                      num_proposals=int(net.rpn.post_nms(False)))
    return record
