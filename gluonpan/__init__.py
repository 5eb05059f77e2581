"""gluonpan: panoptic segmentation for MXNet Gluon.

Subpackages and ``gluonpan.predict`` are imported on first use (see ``gluonpan/_lazy.py``).
"""
from ._lazy import lazy_attributes

__version__ = '0.1.0'
__all__ = ['data', 'model_zoo', 'nn', 'utils', 'predict']

__getattr__, __dir__ = lazy_attributes(__name__, {'predict': 'api'},
                                       submodules=('data', 'model_zoo', 'nn', 'utils'))
