"""Fast, exact decoders for the PNGs segmentation reads most: panoptic ids and label maps.

Two decoders share the chunk / CRC checks below: :func:`decode_panoptic_png` (8-bit RGB(A)
panoptic ids) and :func:`read_label_png` / :func:`decode_label_png` (single-channel label maps:
8/16-bit grayscale, palette indices), the one reader of every semantic label PNG (datasets and
file evaluators).

Panoptic ids are the RGB bytes of a PNG, and decoding the two PNGs of an image pair is most of the
cost of evaluating PQ.  OpenCV and PIL inflate with zlib (~10 ms for a 1024x2048 panoptic PNG on
our CPUs); zlib-ng inflates the same stream, byte for byte, in ~0.5 ms.  The PNG row filters
(None, Sub, Up, Average, Paeth; PNG spec section 9) are undone by a loop compiled with numba that
writes the ids ``R + 256*G + 256**2*B`` in the same pass, one ``uint32`` per pixel:

* The pixel to the left stays in registers, so the serial chains of Sub/Average/Paeth do not go
  through memory; the row above is the previous row of the output itself (its bytes unpacked).
* Panoptic maps are runs of equal ids, which the encoder turns into zero filter bytes.  A zero
  filter byte triple whose predictor is known without arithmetic (Sub: the left pixel; Up: the
  pixel above; Average: the left pixel when it equals the one above; Paeth: the left pixel when
  the pixels above and above-left are equal) is copied, skipping the Paeth/Average chain.

The CRC of every critical chunk is checked.  Whatever this decoder does not handle (palette,
grey, 16-bit, interlaced, a damaged file) makes :func:`decode_panoptic_png` return ``None``;
:func:`decode_panoptic_png_or_problem` also says why, so that the caller falls back to OpenCV
for a valid PNG of another type and names the damage of a broken one.

Label maps (grayscale, non-interlaced) are inflated by zlib-ng the same way (~20x faster than the
zlib of OpenCV and PIL) and unfiltered bytewise by a second compiled loop (:func:`_unfilter_gray`);
palette PNGs give their indices (as PIL, which the references use, reads them) and interlaced
ones go through OpenCV.
"""
import io
import struct

import cv2
import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from .._jit import njit
from ..errors import DataError, read_bytes

__all__ = ['decode_panoptic_png', 'decode_panoptic_png_or_problem', 'decode_label_png',
           'read_label_png', 'png_header', 'png_damage', 'COLOUR_TYPES']

_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_BYTES_PER_PIXEL = {2: 3, 6: 4}  # colour type (RGB, RGBA) -> bytes per pixel at bit depth 8


@njit(inline='always')
def _paeth(a, b, c):  # pragma: no cover (compiled)
    """PNG Paeth predictor of one byte from left ``a``, above ``b``, above-left ``c``."""
    pa = abs(b - c)
    pb = abs(a - c)
    pc = abs(a + b - 2 * c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


@njit(inline='always')
def _pack(r, g, b):  # pragma: no cover (compiled)
    """The id ``R + 256*G + 256**2*B`` of three bytes."""
    return np.uint32(r) | (np.uint32(g) << 8) | (np.uint32(b) << 16)


@njit(inline='always')
def _zero(raw, o):  # pragma: no cover (compiled)
    """The three filtered R, G, B bytes at ``raw[o:o + 3]`` are all zero."""
    return (raw[o] | raw[o + 1] | raw[o + 2]) == 0


@njit(nogil=True, boundscheck=False)
def _unfilter_ids(raw, height, width, bpp, out):  # pragma: no cover (compiled)
    """Undo the row filters of the inflated ``raw`` bytes into ids ``out[1:]``.

    Parameters
    ----------
    raw : np.ndarray
        ``height * (1 + width * bpp)`` uint8: per row a filter-type byte, then the filtered bytes.
    out : np.ndarray
        ``(height + 1, width)`` uint32; row 0 must be zeros (the row above the first one).

    Returns
    -------
    int
        ``height``, or the first row whose filter type is unknown.
    """
    stride = width * bpp + 1
    for y in range(height):
        base = y * stride + 1
        kind = raw[base - 1]
        prev = out[y]
        cur = out[y + 1]
        if kind == 0:  # None
            for x in range(width):
                o = base + x * bpp
                cur[x] = _pack(raw[o], raw[o + 1], raw[o + 2])
        elif kind == 1:  # Sub: left + filtered
            left = np.uint32(0)
            r = 0
            g = 0
            b = 0
            for x in range(width):
                o = base + x * bpp
                if _zero(raw, o):
                    cur[x] = left
                    continue
                r = (r + raw[o]) & 255
                g = (g + raw[o + 1]) & 255
                b = (b + raw[o + 2]) & 255
                left = _pack(r, g, b)
                cur[x] = left
        elif kind == 2:  # Up: above + filtered, bytewise without carries between the bytes
            for x in range(width):
                o = base + x * bpp
                if _zero(raw, o):
                    cur[x] = prev[x]
                    continue
                v = _pack(raw[o], raw[o + 1], raw[o + 2])
                p = prev[x]
                cur[x] = ((v & 0x7f7f7f) + (p & 0x7f7f7f)) ^ ((v ^ p) & 0x808080)
        elif kind == 3:  # Average: floor((left + above) / 2) + filtered
            left = np.uint32(0)
            r = 0
            g = 0
            b = 0
            for x in range(width):
                o = base + x * bpp
                p = prev[x]
                if _zero(raw, o) and p == left:
                    cur[x] = left
                    continue
                pi = np.int64(p)
                r = (raw[o] + ((r + (pi & 255)) >> 1)) & 255
                g = (raw[o + 1] + ((g + ((pi >> 8) & 255)) >> 1)) & 255
                b = (raw[o + 2] + ((b + ((pi >> 16) & 255)) >> 1)) & 255
                left = _pack(r, g, b)
                cur[x] = left
        elif kind == 4:  # Paeth
            left = np.uint32(0)
            upleft = np.uint32(0)
            r = 0
            g = 0
            b = 0
            for x in range(width):
                o = base + x * bpp
                p = prev[x]
                if _zero(raw, o) and p == upleft:
                    cur[x] = left  # above == above-left: the predictor is the left pixel
                    continue
                pi = np.int64(p)
                ci = np.int64(upleft)
                upleft = p
                r = (raw[o] + _paeth(r, pi & 255, ci & 255)) & 255
                g = (raw[o + 1] + _paeth(g, (pi >> 8) & 255, (ci >> 8) & 255)) & 255
                b = (raw[o + 2] + _paeth(b, (pi >> 16) & 255, (ci >> 16) & 255)) & 255
                left = _pack(r, g, b)
                cur[x] = left
        else:
            return y
    return height


def _chunks(data):
    """``(chunks, problem)``: (type, payload memoryview) of every chunk up to IEND, or ``None``
    and what is wrong with the file.  The CRCs of the critical chunks are checked; an ancillary
    chunk (type starting with a lower-case letter) is not read, and libpng only warns on its CRC,
    too."""
    chunks = []
    view = memoryview(data)  # payloads and CRCs as slices of it: no copy of the image data
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from('>I4s', data, pos)
        end = pos + 12 + length
        if end > len(data):
            return None, 'truncated: its {} chunk ends past the end of the file'.format(_name(kind))
        if not kind[0] & 0x20:  # critical
            crc, = struct.unpack_from('>I', data, end - 4)
            if zlib_ng.crc32(view[pos + 4:end - 4]) != crc:
                return None, 'damaged: CRC mismatch in its {} chunk'.format(_name(kind))
        chunks.append((kind, view[pos + 8:end - 4]))  # joined (one copy) by the decoder
        if kind == b'IEND':
            return chunks, None
        pos = end
    return None, 'truncated: no IEND chunk'


def _name(kind):
    """A chunk type for a message (``IDAT``; escaped if it is not ASCII)."""
    return kind.decode('ascii', 'backslashreplace')


#: PNG colour types, for messages
COLOUR_TYPES = {0: 'grayscale', 2: 'RGB', 3: 'palette', 4: 'grayscale+alpha', 6: 'RGBA'}


def png_header(data):
    """``(width, height, bit depth, colour type, interlace)`` from a PNG's IHDR, or ``None``.

    Reads the first 33 bytes only (signature, then the IHDR chunk, which must come first).
    """
    if len(data) < 33 or not data.startswith(_SIGNATURE) or data[12:16] != b'IHDR':
        return None
    return struct.unpack_from('>IIBBB', data, 16)[:4] + (data[28],)


def _structure(data):
    """``(chunks, IHDR fields, problem)``: the chunks and the 7 IHDR fields, or the problem."""
    if not data.startswith(_SIGNATURE):
        return None, None, 'not a PNG (no PNG signature)'
    chunks, problem = _chunks(data)
    if problem:
        return None, None, problem
    if chunks[0][0] != b'IHDR' or len(chunks[0][1]) != 13:
        return None, None, 'damaged: no valid IHDR chunk first'
    header = struct.unpack('>IIBBBBB', chunks[0][1])
    if not header[0] or not header[1]:
        return None, None, 'damaged: its IHDR gives a size of {}x{}'.format(*header[:2])
    return chunks, header, None


def png_damage(data):
    """What is wrong with the structure of a PNG (signature, chunks, critical CRCs, IHDR), or
    ``None``: a check of a few microseconds per MB, to run before handing a file to libpng, which
    prints its own errors on stderr."""
    return _structure(data)[2]


def decode_panoptic_png_or_problem(data):
    """``(ids, None)`` as :func:`decode_panoptic_png`, or ``(None, problem)``.

    ``problem`` starts with ``'unsupported'`` for a valid PNG this decoder leaves to OpenCV
    (palette, interlaced ...); otherwise it says how the file is broken: ``'not a PNG ...'``,
    ``'truncated: ...'``, ``'damaged: CRC mismatch in its IDAT chunk'`` ...
    """
    chunks, header, problem = _structure(data)
    if problem:
        return None, problem
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _BYTES_PER_PIXEL or interlace:
        return None, 'unsupported: not an 8-bit RGB(A) non-interlaced PNG'
    bpp = _BYTES_PER_PIXEL[colour]
    try:
        raw = zlib_ng.decompress(b''.join(payload for kind, payload in chunks if kind == b'IDAT'))
    except zlib_ng.error as err:
        return None, 'damaged: its compressed image data is invalid ({})'.format(err)
    if len(raw) != height * (width * bpp + 1):
        return None, 'damaged: {} bytes of image data where {}x{} needs {}'.format(
            len(raw), width, height, height * (width * bpp + 1))
    out = np.zeros((height + 1, width), np.uint32)  # row 0: the zero row above the image
    rows = _unfilter_ids(np.frombuffer(raw, np.uint8), height, width, bpp, out)
    if rows != height:
        return None, 'damaged: unknown filter type {} in row {}'.format(
            raw[rows * (width * bpp + 1)], rows)
    return out[1:], None  # (H, W)


def decode_panoptic_png(data):
    """Panoptic ids of an 8-bit RGB(A) non-interlaced PNG, or ``None`` to leave it to OpenCV.

    Parameters
    ----------
    data : bytes
        The file's content.

    Returns
    -------
    np.ndarray or None
        ``(H, W)`` uint32 ids ``R + 256*G + 256**2*B`` (alpha ignored, as the references do);
        ``None`` when the file is not an 8-bit RGB/RGBA non-interlaced PNG or is damaged in any
        way (bad signature, CRC, zlib stream, size or filter type;
        :func:`decode_panoptic_png_or_problem` says which).
    """
    return decode_panoptic_png_or_problem(data)[0]


@njit(nogil=True, boundscheck=False)
def _unfilter_gray(raw, height, row_bytes, bpp, out):  # pragma: no cover (compiled)
    """Undo the PNG row filters of the inflated ``raw`` into ``out[1:]`` ((height + 1, row_bytes)
    uint8, row 0 zeros); returns ``height``, or the first row with an unknown filter type.

    One loop per filter type; the bytes ``bpp`` (1 or 2) to the left stay in registers
    (``far``, ``near``), so the serial Sub/Average/Paeth chains do not go through memory.
    """
    for y in range(height):
        base = y * (row_bytes + 1) + 1
        kind, up, row = raw[base - 1], out[y], out[y + 1]
        far = near = upleft_far = upleft_near = np.int32(0)
        if kind == 0:
            row[:] = raw[base:base + row_bytes]
        elif kind == 2:
            for x in range(row_bytes):
                row[x] = raw[base + x] + up[x]
        elif kind in (1, 3, 4):
            for x in range(row_bytes):
                a = near if bpp == 1 else far
                b = np.int32(up[x])
                if kind == 1:
                    v = (raw[base + x] + a) & 255
                elif kind == 3:
                    v = (raw[base + x] + ((a + b) >> 1)) & 255
                else:  # Paeth
                    c = upleft_near if bpp == 1 else upleft_far
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                    v = (raw[base + x] + pred) & 255
                    upleft_far, upleft_near = upleft_near, b
                row[x] = v
                far, near = near, np.int32(v)
        else:
            return y
    return height


def _decode_gray(chunks, width, height, depth):
    """An 8/16-bit non-interlaced grayscale PNG -> ``(array, None)`` or ``(None, problem)``."""
    try:
        raw = zlib_ng.decompress(b''.join(payload for kind, payload in chunks if kind == b'IDAT'))
    except zlib_ng.error as err:
        return None, 'damaged: its compressed image data is invalid ({})'.format(err)
    row_bytes = width * depth // 8
    if len(raw) != height * (row_bytes + 1):
        return None, 'damaged: {} bytes of image data where {}x{} needs {}'.format(
            len(raw), width, height, height * (row_bytes + 1))
    out = np.zeros((height + 1, row_bytes), np.uint8)  # row 0: the zero row above the image
    rows = _unfilter_gray(np.frombuffer(raw, np.uint8), height, row_bytes, depth // 8, out)
    if rows != height:
        return None, 'damaged: unknown filter type {} in row {}'.format(
            raw[rows * (row_bytes + 1)], rows)
    if depth == 16:
        return out[1:].view('>u2').astype(np.uint16), None  # (H, W) big-endian -> native
    return out[1:], None


def decode_label_png(data):
    """A single-channel PNG's values: ``(array, None)``, or ``(None, problem)``.

    Parameters
    ----------
    data : bytes
        The file's content.

    Returns
    -------
    tuple
        ``(H, W)`` uint8 (8-bit grayscale, palette indices) or uint16 (16-bit grayscale) and
        ``None``; or ``None`` and what is wrong: ``'not a PNG ...'``, ``'truncated: ...'``,
        ``'damaged: ...'``, or ``'must be a single-channel PNG ...'`` for RGB, grayscale+alpha
        ... PNGs.
    """
    chunks, header, problem = _structure(data)
    if problem:
        return None, problem
    width, height, depth, colour, _, _, interlace = header
    if not (colour == 0 and depth in (8, 16) or colour == 3):
        return None, 'must be a single-channel PNG (8/16-bit grayscale or palette), got {}-bit ' \
                     '{}'.format(depth, COLOUR_TYPES.get(colour, colour))
    if colour == 0 and not interlace:
        return _decode_gray(chunks, width, height, depth)
    if colour == 3:  # palette: the indices are the labels
        try:
            with Image.open(io.BytesIO(data)) as img:
                return np.asarray(img), None
        except (OSError, ValueError, SyntaxError) as err:
            return None, 'damaged: {}'.format(err)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # interlaced
    return (arr, None) if arr is not None else (None, 'damaged PNG data')


def read_label_png(path, what='label PNG'):
    """A single-channel label PNG (8/16-bit grayscale, or palette: its indices) as ``(H, W)``.

    The one reader of label PNGs: semantic datasets (:mod:`gluonpan.data.semantic_dataset`) and
    the file evaluators (:mod:`gluonpan.utils.metrics.semantic_files`).

    Parameters
    ----------
    path : str
        The file.
    what : str
        What the file is, for messages (``'ground-truth labelIds PNG'`` ...).

    Returns
    -------
    np.ndarray
        ``(H, W)`` uint8, or uint16 for a 16-bit PNG.

    Raises
    ------
    MissingFileError, UnreadableFileError, DataError
        Naming ``path``: missing, empty, not a PNG, damaged, or not single-channel.
    """
    from .io import sniff  # io imports this module
    data = read_bytes(path, what)
    arr, problem = decode_label_png(data)
    if arr is not None:
        return arr
    kind = sniff(data)
    if kind != 'PNG':
        raise DataError('{} {} is not a PNG (looks like {})'.format(
            what, path, 'unrecognised data' if kind == 'unknown' else kind + ' data'))
    if problem.startswith('must be'):
        raise DataError('{} {} {}'.format(what, path, problem))
    raise DataError('cannot decode {} {}: {}'.format(what, path, problem))
