"""Panoptic post-processing shared by every panoptic model: fusion of things and stuff into one
panoptic map (the writer of official-format files and the overlays are
:mod:`gluonpan.utils.panoptic_writer` and :mod:`gluonpan.utils.visualize`)."""
from .fusion import combine_instances_and_semantics

__all__ = ['combine_instances_and_semantics']
