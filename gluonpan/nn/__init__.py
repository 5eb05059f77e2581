"""gluonpan.nn: the building blocks shared by the architectures of the zoo."""
from .anchors import FPNAnchors
from .backbone import ResNetV1bFeatures, stride_in_1x1
from .box_ops import aligned_giou, cxcywh_to_xyxy, xyxy_to_cxcywh
from .class_predictor import PerClassPredictorMixin, conv_class_predictor
from .deformable_attention import (MultiScaleDeformableAttention, ms_deform_attn_core,
                                   sampling_offset_bias)
from .fpn import FPN
from .losses import mask_loss, rcnn_losses, rpn_losses, semantic_loss
from .mask_head import MaskHead
from .positional_encoding import SinePositionalEncoding, all_valid_mask
from .roi_heads import RoIHeads, pyramid_roi_align
from .rpn import FPNRPN, LevelAnchors, RPNHead
from .semantic_head import GroupNorm, SemanticFPNHead
from .set_losses import (LOSS_WEIGHTS, avg_factor_for_context, box_l1_loss,
                         focal_classification_loss, giou_loss, mask_dice_loss, thing_stuff_ratios)
from .set_matching import (HungarianMatcher, MatchResult, encode_matches, location_matcher,
                           mask_matcher, stuff_assignment)

__all__ = ['FPNAnchors', 'ResNetV1bFeatures', 'stride_in_1x1', 'PerClassPredictorMixin',
           'conv_class_predictor',
           'FPN', 'mask_loss', 'rcnn_losses', 'rpn_losses', 'semantic_loss', 'MaskHead',
           'RoIHeads', 'pyramid_roi_align', 'FPNRPN', 'LevelAnchors', 'RPNHead', 'GroupNorm',
           'SemanticFPNHead',
           # query-based models (Panoptic SegFormer): deformable attention, box utilities,
           # Hungarian matching and the set-prediction losses
           'MultiScaleDeformableAttention', 'ms_deform_attn_core', 'sampling_offset_bias',
           'SinePositionalEncoding', 'all_valid_mask', 'aligned_giou', 'cxcywh_to_xyxy',
           'xyxy_to_cxcywh', 'HungarianMatcher', 'MatchResult', 'encode_matches',
           'location_matcher', 'mask_matcher', 'stuff_assignment', 'LOSS_WEIGHTS',
           'avg_factor_for_context', 'box_l1_loss', 'focal_classification_loss', 'giou_loss',
           'mask_dice_loss', 'thing_stuff_ratios']
