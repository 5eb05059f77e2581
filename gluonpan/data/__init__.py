"""Panoptic datasets, id conventions, transforms and batching (imported on first use)."""
from .._lazy import lazy_attributes

_ATTRIBUTES = {
    'split_and_load': 'batchify', 'train_batchify': 'batchify', 'val_batchify': 'batchify',
    'IGNORE_LABEL': 'categories', 'OFFSET': 'categories', 'PanopticCategories': 'categories',
    'cityscapes_categories': 'categories', 'coco_categories_from_json': 'categories',
    'id2rgb': 'categories', 'rgb2id': 'categories',
    'CityscapesPanoptic': 'cityscapes_panoptic', 'COCOPanoptic': 'coco_panoptic',
    'PanopticDataset': 'panoptic_dataset',
    'PanopticTrainTransform': 'presets', 'PanopticValTransform': 'presets', 'RPNTargets': 'presets',
    'EpochSampler': 'sampler', 'panoptic_targets': 'targets', 'segment_index': 'targets',
    'ADE20K_NUM_CLASSES': 'categories', 'CITYSCAPES_TO_ADE20K': 'categories',
    'ade20k_class_names': 'categories', 'ade20k_label_lut': 'categories',
    'cityscapes_train_id_lut': 'categories', 'cityscapes_train_id_names': 'categories',
    'cityscapes_train_id_to_ade20k': 'categories',
    'SemanticDataset': 'semantic_dataset', 'CityscapesSemantic': 'semantic_dataset',
    'ADE20KSemantic': 'semantic_dataset',
    'SemanticTrainTransform': 'semantic_presets', 'SemanticValTransform': 'semantic_presets',
    'generate_ade20k': 'synthetic_ade', 'ensure_ade20k': 'synthetic_ade',
}
__all__ = sorted(_ATTRIBUTES)

__getattr__, __dir__ = lazy_attributes(__name__, _ATTRIBUTES)
