"""Tasks: what a kind of model (panoptic, semantic) brings to the shared train / eval programs.

The programs in :mod:`gluonpan.tools` hold all the wiring (flags, contexts, checkpoints, resume,
the engine, logging); a task supplies only what differs between panoptic and semantic models:
its datasets, transforms, metric, prediction files and the model options recorded with a run.
An architecture names its task in :data:`ARCHITECTURES`; adding a panoptic architecture adds a
line there and reuses :class:`~gluonpan.tasks.panoptic.PanopticTask` untouched (as PanopticFCN
does; Panoptic FPN's subclass adds its anchors and conventions, Panoptic SegFormer's its
optimizer defaults).
"""
from ..errors import UsageError

__all__ = ['ARCHITECTURES', 'get_task']

#: zoo prefix of an architecture -> its task (a module and class of this package)
ARCHITECTURES = {
    'panoptic_fpn': ('panoptic', 'PanopticFPNTask', 'Panoptic FPN'),
    'panoptic_fcn': ('panoptic', 'PanopticTask', 'PanopticFCN'),
    'panoptic_segformer': ('panoptic', 'PanopticSegFormerTask', 'Panoptic SegFormer'),
    'semantic_fpn': ('semantic', 'SemanticTask', 'Semantic FPN'),
}


def get_task(arch):
    """The task object of architecture ``arch`` (a key of :data:`ARCHITECTURES`)."""
    import importlib
    if arch not in ARCHITECTURES:
        raise UsageError('unknown architecture {!r}; valid: {}'.format(arch, sorted(ARCHITECTURES)))
    module, cls, title = ARCHITECTURES[arch]
    task_cls = getattr(importlib.import_module('.' + module, __name__), cls)
    return task_cls(arch, title)
