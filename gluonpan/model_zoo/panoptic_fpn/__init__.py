"""gluonpan.model_zoo.panoptic_fpn"""
