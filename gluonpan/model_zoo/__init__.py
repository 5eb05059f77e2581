"""gluonpan model zoo: ``get_model(name, ...)``, ``get_model_list()``; importing it registers every
builder."""
from .model_zoo import count_parameters, get_model, get_model_list, model_options, register_model
from . import panoptic_fpn  # noqa: F401  (registers the Panoptic FPN builders)
from .panoptic_fpn import PanopticFPN, combine_instances_and_semantics, predict_panoptic
from .panoptic_fcn import PanopticFCN  # (registers the PanopticFCN builders)
from . import panoptic_segformer  # noqa: F401  (registers the Panoptic SegFormer builders)
from .semantic_fpn import SemanticFPN, predict_semantic  # (registers the Semantic FPN builders)

__all__ = ['count_parameters', 'get_model', 'get_model_list', 'model_options', 'register_model', 'PanopticFPN',
           'PanopticFCN',
           'combine_instances_and_semantics', 'predict_panoptic', 'SemanticFPN', 'predict_semantic']
