"""Read a PyTorch ``.pth`` checkpoint into numpy arrays without PyTorch.

A ``.pth`` written by ``torch.save`` (PyTorch >= 1.6) is a zip archive: ``<name>/data.pkl`` is a
pickle whose tensors refer, through persistent ids ``('storage', <dtype class>, key, location,
numel)``, to raw little-endian storages ``<name>/data/<key>``; a tensor is rebuilt by
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``.  The unpickler below
knows only those few names (plus ``collections.OrderedDict`` and parameters), so loading a file
runs no code from it; anything else is an error naming the global.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

from ..errors import DataError

__all__ = ['load_pth', 'state_dict_of']

#: storage classes torch pickles -> numpy dtypes
_STORAGE_DTYPES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64,
                   'HalfStorage': np.float16, 'LongStorage': np.int64, 'IntStorage': np.int32,
                   'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
                   'BoolStorage': np.bool_}


class _StorageType(object):
    """Stand-in for ``torch.<X>Storage`` in a persistent id."""

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """A numpy copy of the tensor view ``(storage, offset, size, stride)`` (strides in items)."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride],
        writeable=False)
    return np.array(view)  # (*size), C-contiguous copy


def _rebuild_parameter(data, *unused):
    return data


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


_GLOBALS = {('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
            ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
            ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
            ('collections', 'OrderedDict'): _ordered_dict}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data, archive, prefix, where):
        super(_Unpickler, self).__init__(data)
        self._archive, self._prefix, self._where = archive, prefix, where
        self._storages = {}

    def find_class(self, module, name):
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise DataError('{}: cannot read {}.{} without PyTorch (only tensors, parameters and '
                        'dicts of them are supported)'.format(self._where, module, name))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
            raise DataError('{}: unknown persistent id {!r}'.format(self._where, pid))
        _, storage_type, key, _, numel = pid
        if key not in self._storages:
            raw = self._archive.read('{}data/{}'.format(self._prefix, key))
            self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder('<'),
                                                count=numel)
        return self._storages[key]


def load_pth(path):
    """The object ``torch.save`` stored in ``path``, with tensors as numpy arrays.

    Parameters
    ----------
    path : str
        A ``.pth`` / ``.pt`` file in PyTorch's zip format (the default since PyTorch 1.6).

    Returns
    -------
    object
        Usually a dict ``{name: np.ndarray}`` (a state dict) or a dict holding one.

    Raises
    ------
    DataError
        Not a zip-format checkpoint (e.g. the legacy format of PyTorch < 1.6), big-endian data,
        or objects other than tensors and containers.
    """
    if not zipfile.is_zipfile(path):
        raise DataError('{}: not a zip-format PyTorch checkpoint (re-save it with torch >= 1.6, '
                        'or it is damaged)'.format(path))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith('data.pkl')]
        if len(pkl) != 1:
            raise DataError('{}: expected one data.pkl in the archive, found {}'.format(path, pkl))
        prefix = pkl[0][:-len('data.pkl')]
        if prefix + 'byteorder' in names and \
                archive.read(prefix + 'byteorder').decode().strip() != 'little':
            raise DataError('{}: big-endian checkpoints are not supported'.format(path))
        return _Unpickler(io.BytesIO(archive.read(pkl[0])), archive, prefix, path).load()


def state_dict_of(checkpoint):
    """The state dict inside a loaded checkpoint (``model`` / ``state_dict`` key, or itself)."""
    for key in ('model', 'state_dict', 'model_state_dict'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if isinstance(checkpoint, dict) and all(isinstance(v, np.ndarray) for v in checkpoint.values()):
        return checkpoint
    raise DataError('no state dict found in the checkpoint (keys: {})'.format(
        sorted(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__))
