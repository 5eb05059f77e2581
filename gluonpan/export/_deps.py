"""The optional dependencies of the export package (``pip install -e ".[export]"``), imported on
first use so that ``import gluonpan`` never needs them."""
import importlib

from ..errors import UsageError

__all__ = ['MissingExtraError', 'require']

#: the extra of setup.py that installs them
EXTRA = 'export'


class MissingExtraError(UsageError, ImportError):
    """A package of the ``export`` extra is not installed (also an ``ImportError``)."""


def require(module):
    """Import ``module`` (``'onnx'`` or ``'onnxruntime'``), or raise :class:`MissingExtraError`
    naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            'ONNX export and inference need the {!r} package, which is not installed ({}); '
            'install the extra: pip install -e ".[{}]"'.format(module, err, EXTRA)) from None
