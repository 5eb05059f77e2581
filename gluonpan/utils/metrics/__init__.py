"""Evaluation metrics: panoptic quality (PQ/SQ/RQ) and semantic mIoU, as the official tools."""
from .panoptic_files import (detect_format, evaluate_panoptic_files, load_panoptic_json,
                             read_panoptic_ids, retain_freed_memory)
from .panoptic_quality import PanopticQuality, PQStats, format_results, panoptic_image_stats
from .semantic import CITYSCAPES_AVG_CLASS_SIZE, CityscapesSemanticMetric, SemanticMetric
from .semantic_files import (evaluate_ade20k_files, evaluate_cityscapes_semantic_files,
                             read_label_png)

__all__ = ['PanopticQuality', 'PQStats', 'panoptic_image_stats', 'format_results',
           'evaluate_panoptic_files', 'read_panoptic_ids', 'load_panoptic_json', 'detect_format',
           'retain_freed_memory', 'SemanticMetric', 'CityscapesSemanticMetric',
           'CITYSCAPES_AVG_CLASS_SIZE', 'evaluate_cityscapes_semantic_files',
           'evaluate_ade20k_files', 'read_label_png']
