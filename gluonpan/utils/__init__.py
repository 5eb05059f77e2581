"""gluonpan.utils: the machinery shared by the scripts (imported on first use).

* ``engine``: ``train_one_epoch``, ``fit``, ``evaluate``
* ``checkpoint``: atomic checkpoints, ``CheckpointManager``
* ``lr_scheduler``: ``WarmupStepLR``
* ``logger``: ``setup_logger``
* ``metrics``: PQ and mIoU (no MXNet)
* ``dist``: kvstore / trainer creation and ``python -m gluonpan.utils.dist`` (MXNet's launcher);
  not an attribute here, so that running it with ``-m`` does not import it twice.
"""
from .._lazy import lazy_attributes

__getattr__, __dir__ = lazy_attributes(
    __name__, {}, submodules=('checkpoint', 'engine', 'logger', 'lr_scheduler', 'metrics'))
