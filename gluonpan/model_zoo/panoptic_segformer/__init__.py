"""Panoptic SegFormer: the network, its registered builders, training targets and inference."""
from .panoptic_segformer import (LR_MULT, PanopticSegFormer, build_panoptic_segformer,
                                 default_loss_weights, loss_names)
from .predefined import get_panoptic_segformer

__all__ = ['LR_MULT', 'PanopticSegFormer', 'build_panoptic_segformer', 'default_loss_weights',
           'get_panoptic_segformer', 'loss_names']
