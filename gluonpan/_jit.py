"""numba's ``njit`` with the on-disk cache when one can be written, and without it otherwise.

``cache=True`` saves the ~1.5 s compile of each kernel for the next process, but numba raises at
decoration time when neither the package's ``__pycache__`` nor the user's cache directory is
writable (read-only installs, containers without a home); then the kernels compile per process.
"""
import numba

__all__ = ['njit']


def njit(**options):
    """``numba.njit(cache=True, **options)``, falling back to no cache (see module docstring)."""
    def decorate(func):
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(func)
    return decorate
