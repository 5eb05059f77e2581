"""Weight converters from other frameworks' models (pure numpy; MXNet is imported on use).

* ``python -m gluonpan.convert {detectron2,torchvision,panopticfcn} FILE --out DIR``
  (:mod:`.__main__`):
  a checkpoint -> a model folder (``.params`` + ``args.json`` with the source's conventions).
* :mod:`gluonpan.convert.detectron2`: detectron2 COCO Panoptic FPN R50 / R101
  (``model_final_*.pkl``, read without PyTorch) -> ``panoptic_fpn_resnet{50,101}_msra_coco``,
  semantic head included.
* :mod:`gluonpan.convert.panopticfcn`: the authors' PanopticFCN (a detectron2 project) R50 / R101
  -> ``panoptic_fcn_resnet{50,101}_msra_coco``, deformable position head included.
* :mod:`gluonpan.convert.torchvision`: torchvision Mask R-CNN R50-FPN state dicts (COCO's 91
  class slots mapped to our 80 thing classes) and ImageNet ResNet-50 / 101 backbones.
* :mod:`gluonpan.convert.common`: checked loading (every name and shape before any change) and
  saving of converted weights.
* :mod:`gluonpan.convert.pth`: read a PyTorch ``.pth`` checkpoint into numpy without PyTorch.
* :mod:`gluonpan.convert.seeded`: seeded random weights, reproducible in any environment (the
  reference fixtures of ``tests/test_reference_*.py``).

Nothing here imports PyTorch.
"""
