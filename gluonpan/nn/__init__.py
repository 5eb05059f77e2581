"""gluonpan.nn: the building blocks of Panoptic FPN."""
from .anchors import FPNAnchors
from .backbone import ResNetV1bFeatures, stride_in_1x1
from .class_predictor import PerClassPredictorMixin, conv_class_predictor
from .fpn import FPN
from .losses import mask_loss, rcnn_losses, rpn_losses, semantic_loss
from .mask_head import MaskHead
from .roi_heads import RoIHeads, pyramid_roi_align
from .rpn import FPNRPN, LevelAnchors, RPNHead
from .semantic_head import GroupNorm, SemanticFPNHead

__all__ = ['FPNAnchors', 'ResNetV1bFeatures', 'stride_in_1x1', 'PerClassPredictorMixin',
           'conv_class_predictor',
           'FPN', 'mask_loss', 'rcnn_losses', 'rpn_losses', 'semantic_loss', 'MaskHead',
           'RoIHeads', 'pyramid_roi_align', 'FPNRPN', 'LevelAnchors', 'RPNHead', 'GroupNorm',
           'SemanticFPNHead']
