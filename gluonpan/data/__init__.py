"""Panoptic datasets, id conventions, transforms and batching."""
from .batchify import split_and_load, train_batchify, val_batchify
from .categories import (IGNORE_LABEL, OFFSET, PanopticCategories, cityscapes_categories,
                         coco_categories_from_json, id2rgb, rgb2id)
from .cityscapes_panoptic import CityscapesPanoptic
from .coco_panoptic import COCOPanoptic
from .panoptic_dataset import PanopticDataset
from .presets import PanopticTrainTransform, PanopticValTransform, RPNTargets
from .sampler import EpochSampler
from .targets import panoptic_targets, segment_index
