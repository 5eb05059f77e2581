"""gluonpan.utils: the machinery shared by the scripts.

* ``engine``: ``train_one_epoch``, ``fit``, ``evaluate``
* ``checkpoint``: atomic checkpoints, ``CheckpointManager``
* ``lr_scheduler``: ``WarmupStepLR``
* ``logger``: ``setup_logger``
* ``dist``: kvstore / trainer creation and ``python -m gluonpan.utils.dist`` (MXNet's launcher);
  not imported here, so that running it with ``-m`` does not import it twice.
"""
from . import checkpoint, engine, logger, lr_scheduler  # noqa: F401
