"""Panoptic FPN: the network, its registered builders, inference and panoptic fusion."""
from ...postprocess import combine_instances_and_semantics
from .inference import pad_input, predict_panoptic
from .panoptic_fpn import (DEFAULT_LOSS_WEIGHTS, LOSS_NAMES, TRAIN_INPUTS, PanopticFPN,
                           build_panoptic_fpn)
from .predefined import get_panoptic_fpn, resnet_v1b_backbone

__all__ = ['combine_instances_and_semantics', 'pad_input', 'predict_panoptic',
           'DEFAULT_LOSS_WEIGHTS', 'LOSS_NAMES', 'TRAIN_INPUTS', 'PanopticFPN',
           'build_panoptic_fpn', 'get_panoptic_fpn', 'resnet_v1b_backbone']
