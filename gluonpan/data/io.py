"""Image, panoptic-PNG and panoptic-JSON reading with errors that name the file and the reason.

Every failure caused by a file is a :mod:`gluonpan.errors` input error naming the file:
:class:`~gluonpan.errors.MissingFileError` (no such file),
:class:`~gluonpan.errors.UnreadableFileError` (a folder, no permission), :class:`~gluonpan.errors.DataError` (empty, not the format its name
says, truncated, damaged, wrong type, a JSON whose content breaks the panoptic format).  File
signatures are checked before decoding, so a JPEG saved as ``.png`` is named as such instead of
being decoded into phantom segments.
"""
import io
import math

import cv2
import numpy as np
from PIL import Image

from ..errors import DataError, read_bytes, read_json
from .categories import MAX_PANOPTIC_ID, short_list
from .png import COLOUR_TYPES, decode_panoptic_png_or_problem, png_damage, png_header

__all__ = ['read_image', 'read_panoptic_ids', 'read_bytes', 'sniff', 'read_panoptic_json',
           'check_annotations']

_TO_RGBA = {3: cv2.COLOR_BGR2RGBA, 4: cv2.COLOR_BGRA2RGBA}

#: leading bytes -> the format they announce (what :func:`sniff` reports)
_MAGIC = ((b'\x89PNG\r\n\x1a\n', 'PNG'), (b'\xff\xd8\xff', 'JPEG'), (b'GIF87a', 'GIF'),
          (b'GIF89a', 'GIF'), (b'BM', 'BMP'), (b'II*\x00', 'TIFF'), (b'MM\x00*', 'TIFF'),
          (b'\x1f\x8b', 'gzip'), (b'PK\x03\x04', 'zip'), (b'%PDF', 'PDF'))


def sniff(data):
    """The format ``data`` looks like from its first bytes: ``'PNG'``, ``'JPEG'``, ``'WebP'``,
    ``'text'`` ..., or ``'unknown'``."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WebP'
    head = data[:64]
    if head and all(32 <= b < 127 or b in b'\t\r\n' for b in head):
        return 'JSON' if head.lstrip()[:1] in (b'{', b'[') else 'text'
    return 'unknown'


def _looks_like(data):
    kind = sniff(data)
    return 'unrecognised data' if kind == 'unknown' else '{} data'.format(kind)


def _png_type(header):
    """``'16-bit RGB'`` ... for a message, from :func:`png_header`'s tuple."""
    colour = COLOUR_TYPES.get(header[3], 'colour type {}'.format(header[3]))
    return '{}-bit {}'.format(header[2], colour)


def read_image(path, allow_gray=False):
    """Read an image file as ``(H, W, 3)`` uint8 RGB.

    PNGs go through OpenCV (fast; ``None`` on a truncated file), other formats through PIL, which
    raises on a truncated JPEG instead of filling it with grey.  The file signature is checked
    first: a ``.png`` file must hold PNG data.

    Parameters
    ----------
    path : str
        Image file.
    allow_gray : bool
        Convert every other image type to 8-bit RGB, as COCO (grayscale images) and the demo need:
        grayscale, palette, RGBA (alpha dropped), 16-bit (scaled to 8-bit).  Cityscapes images are
        always 8-bit RGB, so there anything else is an error.

    Raises
    ------
    MissingFileError, UnreadableFileError, DataError
        See :func:`gluonpan.errors.read_bytes`; a :class:`DataError` also for a file that is not the format its
        name says, is truncated or damaged, or (``allow_gray=False``) is not 8-bit RGB.
    """
    data = read_bytes(path, 'image')
    kind = sniff(data)
    if path.lower().endswith('.png') and kind != 'PNG':
        raise DataError('image {} is not a PNG (looks like {})'.format(path, _looks_like(data)))
    if kind == 'PNG':
        return _read_png_image(data, path, allow_gray)
    return _read_other_image(data, path, allow_gray)


def _read_png_image(data, path, allow_gray):
    header = png_header(data)
    if header is not None and not allow_gray and (header[2] != 8 or header[3] in (0, 4)):
        raise DataError('image {} must be 8-bit RGB, got {}'.format(path, _png_type(header)))
    damage = png_damage(data)  # before libpng, which would print its own error
    if damage:
        raise DataError('cannot decode image {}: {}'.format(path, damage))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError('cannot decode image {}: damaged PNG data'.format(path))
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.dtype == np.uint16:  # 16-bit: 0..65535 -> 0..255, rounded
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # (H, W, 3)
    if img.dtype != np.uint8:
        raise DataError('image {} must be 8-bit RGB, got shape {} dtype {}'
                        .format(path, img.shape, img.dtype))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_other_image(data, path, allow_gray):
    try:
        with Image.open(io.BytesIO(data)) as pil:
            mode = pil.mode
            if mode != 'RGB' and not allow_gray:
                raise DataError('image {} must be RGB, got PIL mode {}'.format(path, mode))
            if mode.startswith('I;16'):  # 16-bit grayscale -> 8-bit RGB
                gray = ((np.asarray(pil, np.uint32) + 128) // 257).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            return np.asarray(pil.convert('RGB'))
    except Image.UnidentifiedImageError:
        raise DataError('image {} is not an image file (looks like {})'.format(
            path, _looks_like(data))) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError('cannot decode image {}: {}'.format(path, err)) from None


def read_panoptic_ids(path):
    """Read a panoptic PNG as ``(H, W)`` uint32 segment ids ``R + 256*G + 256**2*B``.

    8-bit RGB(A) PNGs, what every panoptic dataset and writer produces, go through our decoder
    (:mod:`gluonpan.data.png`: zlib-ng + a compiled unfilter, ~4x faster than OpenCV and equal to
    it bit for bit).  Palette and interlaced PNGs go through OpenCV: ``cvtColor`` to RGBA lays
    each pixel out as the bytes R, G, B, A of a little-endian uint32, and masking A off leaves the
    id.  An alpha channel, if any, is ignored as the references do.  The signature and the IHDR
    type are checked first (a few bytes): a file that is not a PNG, or a grayscale or 16-bit one,
    is an error, not a map of phantom segments.

    Parameters
    ----------
    path : str
        PNG file.

    Returns
    -------
    np.ndarray
        ``(H, W)`` uint32 ids (C-contiguous, possibly a view of a larger buffer).

    Raises
    ------
    MissingFileError, UnreadableFileError, DataError
        See :func:`gluonpan.errors.read_bytes`; a :class:`DataError` also for a file that is not a PNG, not 8-bit
        RGB(A) (palette allowed), truncated or damaged (the message says how).
    """
    data = read_bytes(path, 'panoptic PNG')
    header = png_header(data)
    if header is None:
        if sniff(data) != 'PNG':
            raise DataError('panoptic PNG {} is not a PNG (looks like {})'.format(
                path, _looks_like(data)))
        raise DataError('cannot decode panoptic PNG {}: {}'.format(path, png_damage(data)))
    if header[3] != 3 and (header[2] != 8 or header[3] not in (2, 6)):
        raise DataError('panoptic PNG {} must be 8-bit RGB(A), got {}'.format(
            path, _png_type(header)))
    ids, problem = decode_panoptic_png_or_problem(data)
    if ids is not None:
        return ids
    if not problem.startswith('unsupported'):  # broken: libpng would print its own error
        raise DataError('cannot decode panoptic PNG {}: {}'.format(path, problem))
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise DataError('cannot decode panoptic PNG {}: damaged PNG data'.format(path))
    if bgr.ndim != 3 or bgr.shape[2] not in _TO_RGBA or bgr.dtype != np.uint8:
        raise DataError('panoptic PNG {} must be 8-bit RGB(A), got shape {} dtype {}'
                        .format(path, bgr.shape, bgr.dtype))
    ids = cv2.cvtColor(bgr, _TO_RGBA[bgr.shape[2]]).view('<u4')[..., 0]  # (H, W)
    np.bitwise_and(ids, 0xFFFFFF, out=ids)
    return ids


# ---------------------------------------------------------------------------------------------
# panoptic JSON


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def read_panoptic_json(path, what='panoptic JSON', categories=None, need_categories=False):
    """Load a panoptic JSON and check its ``annotations`` (see :func:`check_annotations`).

    Parameters
    ----------
    path : str
        The file.
    what : str
        What the file is, for messages (``'ground-truth JSON'`` ...).
    categories : collection of int, optional
        The valid category ids; every segment's ``category_id`` is checked against them.
    need_categories : bool
        The file must hold a ``categories`` list (the ground truth).

    Returns
    -------
    dict
        The JSON.

    Raises
    ------
    MissingFileError, UnreadableFileError, DataError
        One error naming the file (and image id, segment id) for the first problem found.
    """
    data = read_json(path, '{}'.format(what))
    where = '{} {}'.format(what, path)
    if not isinstance(data, dict):
        raise DataError('{} must hold a JSON object with "annotations", got a {}'.format(
            where, type(data).__name__))
    if need_categories and not isinstance(data.get('categories'), list):
        raise DataError('{} has no "categories" list'.format(where))
    check_annotations(data, where, categories)
    return data


def check_annotations(data, where, categories=None):
    """Check the ``annotations`` of a panoptic JSON; one :class:`DataError` for the first problem.

    Each annotation must be an object with an ``image_id`` (integer or string, unique), a
    ``file_name`` (string) and a ``segments_info`` list of objects with an integer ``id`` in
    ``[0, 256**3)`` and an integer ``category_id`` (one of ``categories`` if given), an optional
    ``iscrowd`` of 0/1 and an optional finite numeric ``area``.

    Parameters
    ----------
    data : dict
        The JSON.
    where : str
        ``'<what> <path>'``, the start of every message.
    categories : collection of int, optional
        The valid category ids.
    """
    anns = data.get('annotations')
    if not isinstance(anns, list):
        raise DataError('{} has no "annotations" list{}'.format(
            where, '' if anns is None else ' ("annotations" is a {})'.format(type(anns).__name__)))
    seen = set()
    for n, ann in enumerate(anns):
        image_id = _check_annotation(ann, n, where)
        if image_id in seen:
            raise DataError('{}: image id {!r} has more than one annotation'.format(
                where, image_id))
        seen.add(image_id)
        image = '{}, image {!r}'.format(where, image_id)
        for seg in ann['segments_info']:
            _check_segment(seg, image, categories)


def _check_annotation(ann, n, where):
    """The image id of annotation number ``n``, checked with its keys."""
    if not isinstance(ann, dict):
        raise DataError('{}: annotation {} is not an object: {!r}'.format(where, n, ann)[:300])
    image_id = ann.get('image_id')
    if not (_is_int(image_id) or isinstance(image_id, str)):
        got = 'no' if image_id is None else 'the invalid ' + repr(image_id)
        raise DataError('{}: annotation {} has {} image_id (an integer or a string is needed)'
                        .format(where, n, got))
    if not isinstance(ann.get('file_name'), str) or not ann['file_name']:
        raise DataError('{}, image {!r}: "file_name" must be a file name, got {!r}'.format(
            where, image_id, ann.get('file_name')))
    if not isinstance(ann.get('segments_info'), list):
        raise DataError('{}, image {!r}: "segments_info" must be a list, got {}'.format(
            where, image_id, 'nothing' if 'segments_info' not in ann else
            repr(ann['segments_info'])[:80]))
    return image_id


def _check_segment(seg, image, categories):
    if not isinstance(seg, dict):
        raise DataError('{}: a segment is not an object: {}'.format(image, repr(seg)[:80]))
    seg_id = seg.get('id')
    if type(seg_id) is not int and not _is_int(seg_id):  # fast path first: JSON gives int
        raise DataError('{}: segment id {} is not an integer'.format(
            image, 'missing' if 'id' not in seg else repr(seg_id)))
    if not 0 <= seg_id < MAX_PANOPTIC_ID:
        raise DataError('{}: segment id {} is out of range [0, 256**3)'.format(image, seg_id))
    cat = seg.get('category_id')
    if type(cat) is not int and not _is_int(cat):
        raise DataError('{}, segment id {}: category_id {} is not an integer'.format(
            image, seg_id, 'missing' if 'category_id' not in seg else repr(cat)))
    if categories is not None and cat not in categories:
        raise DataError('{}, segment id {}: unknown category_id {}; valid ids: {}'.format(
            image, seg_id, cat, short_list(sorted(categories), 25)))
    crowd = seg.get('iscrowd', 0)
    if crowd != 0 and crowd != 1:
        raise DataError('{}, segment id {}: iscrowd must be 0 or 1, got {!r}'.format(
            image, seg_id, crowd))
    area = seg.get('area', 0)
    if type(area) is not int and not _is_number(area):
        raise DataError('{}, segment id {}: area must be a number, got {!r}'.format(
            image, seg_id, seg['area']))
