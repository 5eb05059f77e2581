"""The fast panoptic PNG decoder against the true ids and OpenCV, for every PNG row filter."""
import struct
import zlib
from unittest import mock

import cv2
import numba
import numpy as np
import pytest

from gluonpan.data.categories import id2rgb, rgb2id
from gluonpan.data.io import read_panoptic_ids
from gluonpan.data.png import decode_panoptic_png
from gluonpan.errors import DataError


def _chunk(kind, payload):
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack(
        '>I', zlib.crc32(kind + payload))


def _predictors(img, kind):
    """PNG spec predictors of every byte of ``img`` ((H, W, C) uint8) for filter ``kind``."""
    pix = img.astype(np.int64)
    left = np.zeros_like(pix)
    left[:, 1:] = pix[:, :-1]
    up = np.zeros_like(pix)
    up[1:] = pix[:-1]
    upleft = np.zeros_like(pix)
    upleft[1:, 1:] = pix[:-1, :-1]
    if kind == 0:
        return np.zeros_like(pix)
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    pa, pb, pc = np.abs(up - upleft), np.abs(left - upleft), np.abs(left + up - 2 * upleft)
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))


def _encode(img, filters, idat_parts=1, interlace=0):
    """PNG bytes of an (H, W, 3|4) uint8 image, row ``y`` filtered with ``filters[y]``."""
    h, w, c = img.shape
    predictors = {kind: _predictors(img, kind) for kind in set(filters)}  # once per kind
    rows = []
    for y, kind in enumerate(filters):
        filtered = (img[y].astype(np.int64) - predictors[kind][y]) % 256
        rows.append(bytes([kind]) + filtered.astype(np.uint8).tobytes())
    stream = zlib.compress(b''.join(rows), 6)
    cut = np.linspace(0, len(stream), idat_parts + 1).astype(int)
    header = struct.pack('>IIBBBBB', w, h, 8, {3: 2, 4: 6}[c], 0, 0, interlace)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header)
            + b''.join(_chunk(b'IDAT', stream[a:b]) for a, b in zip(cut[:-1], cut[1:]))
            + _chunk(b'IEND', b''))


def _panoptic_like(rng, h, w):
    """Runs of equal ids (boxes on stripes) with bytes at the 0/255 wrap-around."""
    palette = np.array([0, 255, 256, 65535, 65536, 26001, 26002, 24000, 7, 0xFFFFFF, 0x80FF7F])
    ids = np.repeat(rng.choice(palette, (h, 1)), w, 1)
    for _ in range(12):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        ids[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = rng.choice(palette)
    return ids


def _cv2_ids(data):
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return rgb2id(bgr[..., 2::-1])


@pytest.mark.parametrize('alpha', [False, True])
@pytest.mark.parametrize('kind', [0, 1, 2, 3, 4, 'mixed'])
@pytest.mark.parametrize('content', ['noise', 'panoptic'])
def test_decoder_equals_the_ids_and_opencv(kind, alpha, content):
    rng = np.random.default_rng(zlib.crc32(repr((kind, alpha, content)).encode()))
    h, w = 37, 53
    ids = (rng.integers(0, 256 ** 3, (h, w)) if content == 'noise' else _panoptic_like(rng, h, w))
    img = id2rgb(ids)
    if alpha:
        img = np.concatenate([img, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], 2)
    filters = rng.integers(0, 5, h) if kind == 'mixed' else [kind] * h
    data = _encode(img, filters, idat_parts=3)
    assert (_cv2_ids(data) == ids).all()  # the test's encoder writes valid PNGs
    got = decode_panoptic_png(data)
    assert got is not None and got.dtype == np.uint32 and got.shape == (h, w)
    assert (got == ids).all()


def test_repeated_rows_and_single_pixel_images():
    ids = np.tile(np.arange(40, dtype=np.int64) * 70001 % 256 ** 3, (6, 1))  # every row equal
    for kind in range(5):
        assert (decode_panoptic_png(_encode(id2rgb(ids), [kind] * 6)) == ids).all()
    one = np.array([[0xABCDEF]])
    for kind in range(5):
        assert (decode_panoptic_png(_encode(id2rgb(one), [kind])) == one).all()


def test_read_panoptic_ids_uses_it_and_falls_back_to_opencv(tmp_path):
    rng = np.random.default_rng(1)
    ids = _panoptic_like(rng, 20, 30)
    path = str(tmp_path / 'a.png')
    with open(path, 'wb') as f:
        f.write(_encode(id2rgb(ids), rng.integers(0, 5, 20)))
    assert (read_panoptic_ids(path) == ids).all()
    # what the fast decoder declines goes to OpenCV, whose errors name the file
    gray = str(tmp_path / 'gray.png')
    cv2.imwrite(gray, (ids % 256).astype(np.uint8))
    with open(gray, 'rb') as f:
        assert decode_panoptic_png(f.read()) is None
    with pytest.raises(ValueError, match='gray.png must be 8-bit RGB'):
        read_panoptic_ids(gray)
    deep = str(tmp_path / 'deep.png')
    cv2.imwrite(deep, id2rgb(ids).astype(np.uint16) * 257)
    with open(deep, 'rb') as f:
        assert decode_panoptic_png(f.read()) is None
    with pytest.raises(ValueError, match='deep.png must be 8-bit RGB'):
        read_panoptic_ids(deep)
    assert decode_panoptic_png(_encode(id2rgb(ids), [0] * 20, interlace=1)) is None


@pytest.mark.parametrize('damage', ['crc', 'filter', 'truncated', 'short_stream', 'empty'])
def test_damaged_files_name_the_file(tmp_path, damage):
    ids = _panoptic_like(np.random.default_rng(2), 16, 16)
    data = bytearray(_encode(id2rgb(ids), [4] * 16))
    idat = data.index(b'IDAT')
    if damage == 'crc':
        data[idat + 10] ^= 0x01
    elif damage == 'filter':
        data = bytearray(_encode(id2rgb(ids), [4] * 8 + [5] + [4] * 7))
    elif damage == 'truncated':
        data = data[:idat + 20]
    elif damage == 'short_stream':
        data = bytearray(_encode(id2rgb(ids[:15]), [4] * 15))
        data[16:24] = struct.pack('>II', 16, 16)  # IHDR claims one row more than the stream has
        data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    else:
        data = bytearray()
    assert decode_panoptic_png(bytes(data)) is None
    path = str(tmp_path / 'bad_{}.png'.format(damage))
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(DataError, match='bad_{}.png'.format(damage)):
        read_panoptic_ids(path)


def test_kernels_compile_without_a_writable_cache():
    """No writable cache location (read-only install): numba would raise; we compile uncached."""
    from numba.core import caching
    from gluonpan._jit import njit

    def twice(x):
        return 2 * x

    with mock.patch.object(caching.CacheImpl, '_locator_classes', []):
        with pytest.raises(RuntimeError, match='no locator'):
            numba.njit(cache=True)(twice)
        assert njit()(twice)(21) == 42
