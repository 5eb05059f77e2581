"""gluonpan: panoptic segmentation for MXNet Gluon."""
__version__ = '0.1.0'

from . import data  # noqa: F401
