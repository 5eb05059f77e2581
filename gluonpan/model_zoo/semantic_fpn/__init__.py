"""Semantic FPN: the network, its registered builders and its inference."""
from .inference import predict_semantic, predict_semantic_labels, slide_windows
from .predefined import NUM_CLASSES, get_semantic_fpn
from .semantic_fpn import LOSS_NAMES, TRAIN_INPUTS, SemanticFPN, build_semantic_fpn

__all__ = ['predict_semantic', 'predict_semantic_labels', 'slide_windows', 'NUM_CLASSES',
           'get_semantic_fpn', 'LOSS_NAMES', 'TRAIN_INPUTS', 'SemanticFPN', 'build_semantic_fpn']
