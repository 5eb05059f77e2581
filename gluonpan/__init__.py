"""gluonpan: panoptic segmentation for MXNet Gluon."""
__version__ = '0.1.0'

from . import data, model_zoo, nn, utils  # noqa: F401
from .api import predict  # noqa: F401
