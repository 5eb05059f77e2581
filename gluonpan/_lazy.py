"""Lazy package attributes (PEP 562), so that light modules do not import MXNet.

``python -m gluonpan.evaluate`` and the metric workers need numpy, OpenCV and numba only; with the
package ``__init__`` files importing everything, each of them paid MXNet's import (~1 s) and its
fork handlers (every ``multiprocessing`` worker start).  ``from gluonpan.data import X`` and
``gluonpan.data.X`` still work: the first access imports the module that defines ``X``.
"""
import importlib

__all__ = ['lazy_attributes']


def lazy_attributes(package, attributes, submodules=()):
    """``__getattr__`` and ``__dir__`` for ``package`` that import on first access.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    attributes : dict
        Public name -> submodule (relative name) that defines it.
    submodules : tuple of str
        Submodules reachable as attributes (``gluonpan.data`` ...).

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)`` to assign in the package's namespace.
    """
    def __getattr__(name):
        if name in submodules:
            return importlib.import_module('.' + name, package)
        if name not in attributes:
            raise AttributeError('module {!r} has no attribute {!r}'.format(package, name))
        return getattr(importlib.import_module('.' + attributes[name], package), name)

    def __dir__():
        return sorted(set(attributes) | set(submodules))

    return __getattr__, __dir__
