"""Weight converters from other frameworks' models (pure numpy; MXNet is imported on use).

* :mod:`gluonpan.convert.torchvision`: torchvision Mask R-CNN R50-FPN state dicts.
* :mod:`gluonpan.convert.pth`: read a PyTorch ``.pth`` checkpoint into numpy without PyTorch.
* :mod:`gluonpan.convert.seeded`: seeded random weights, reproducible in any environment (the
  reference fixtures of ``tests/test_reference_*.py``).

Nothing here imports PyTorch.
"""
