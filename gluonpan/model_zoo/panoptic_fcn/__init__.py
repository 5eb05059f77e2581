"""PanopticFCN: the network, its registered builders and its inference."""
from .panoptic_fcn import (DEFAULT_LOSS_WEIGHTS, LOSS_NAMES, PRESETS, TRAIN_INPUTS, PanopticFCN,
                           build_panoptic_fcn, level_shapes)
from .predefined import get_panoptic_fcn

__all__ = ['DEFAULT_LOSS_WEIGHTS', 'LOSS_NAMES', 'PRESETS', 'TRAIN_INPUTS', 'PanopticFCN',
           'build_panoptic_fcn', 'get_panoptic_fcn', 'level_shapes']
