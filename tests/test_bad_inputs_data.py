"""Bad inputs on the data side: one clear error naming the culprit, never a traceback.

A corpus of broken inputs, one small function per way of breaking them, over the evaluator
(``python -m gluonpan.evaluate``), the dataset check (``python -m gluonpan.data.check``), the
dataset classes, the readers and ``gluonpan.predict``.  The commands run in subprocesses as a user
runs them (exit status, no traceback, the one error line names the file / image id / segment id /
value); the library calls must raise an :class:`gluonpan.errors.InputError` subclass naming it.
Then the valid edge cases that must keep working: zero-instance and all-void images, and
1x1, 1x300, RGBA, 16-bit, grayscale and palette images through ``read_image`` and ``predict``.
"""
import glob
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from _bad_input import assert_input_error, run
from gluonpan.data.categories import id2rgb
from gluonpan.data.io import read_image, read_panoptic_ids
from gluonpan.errors import DataError, MissingFileError, UnreadableFileError, UsageError
from gluonpan.utils.metrics import evaluate_panoptic_files

EVALUATE, CHECK = 'gluonpan.evaluate', 'gluonpan.data.check'
MAX_LINE = 600  # an error line longer than this is not "one clear line"


# ----------------------------------------------------------------------------------------------
# helpers and fixtures


def _load(path):
    with open(path) as f:
        return json.load(f)


def _save(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)


def _edit(path, fn):
    """Apply ``fn`` to the JSON in ``path``, write it back, return the edited data."""
    data = _load(path)
    fn(data)
    _save(path, data)
    return data


def _write_bytes(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def _jpeg_bytes(shape=(128, 256, 3)):
    rng = np.random.default_rng(0)
    return cv2.imencode('.jpg', rng.integers(0, 255, shape, dtype=np.uint8))[1].tobytes()


def _replace_with_folder(path):
    """A folder where a file is expected: unreadable for root too (unlike chmod 000)."""
    os.remove(path)
    os.makedirs(path)


def _truncate(path):
    with open(path, 'rb') as f:
        data = f.read()
    _write_bytes(path, data[:len(data) // 2])


@pytest.fixture(scope='module')
def eval_template(synthetic_citys, tmp_path_factory):
    """Ground truth (synthetic Cityscapes val) and a perfect prediction, as the evaluator reads
    them."""
    root = str(tmp_path_factory.mktemp('eval_template'))
    src = os.path.join(synthetic_citys, 'gtFine', 'cityscapes_panoptic_val')
    for name in ('gt', 'pred'):
        shutil.copy(src + '.json', os.path.join(root, name + '.json'))
        shutil.copytree(src, os.path.join(root, name))
    return root


@pytest.fixture
def ev(eval_template, tmp_path):
    """A writable copy of the evaluation set: ``gt_json``, ``gt_dir``, ``pred_json``, ``pred_dir``,
    ``tmp``; ``args`` gives the command line."""
    root = str(tmp_path / 'ev')
    shutil.copytree(eval_template, root)
    s = {'tmp': str(tmp_path), 'gt_json': os.path.join(root, 'gt.json'),
         'gt_dir': os.path.join(root, 'gt'), 'pred_json': os.path.join(root, 'pred.json'),
         'pred_dir': os.path.join(root, 'pred')}
    s['args'] = ['--gt-json', s['gt_json'], '--pred-json', s['pred_json']]
    return s


def _first_ann(path):
    return _load(path)['annotations'][0]


def _pred_png(s):
    return os.path.join(s['pred_dir'], _first_ann(s['pred_json'])['file_name'])


def _gt_png(s):
    return os.path.join(s['gt_dir'], _first_ann(s['gt_json'])['file_name'])


def _edit_first_segment(s, **values):
    """Set fields of the first predicted segment of the first image -> (image id, segment id)."""
    data = _edit(s['pred_json'], lambda d: d['annotations'][0]['segments_info'][0].update(values))
    return data['annotations'][0]['image_id']


# ----------------------------------------------------------------------------------------------
# the evaluator command: each case breaks one thing -> (extra args or None, exit status, culprits)


def gt_json_missing(s):
    return ['--gt-json', s['gt_json'] + '.nope', '--pred-json', s['pred_json']], 2, \
        [s['gt_json'] + '.nope', 'does not exist']


def gt_json_is_a_folder(s):
    _replace_with_folder(s['gt_json'])
    return None, 2, [s['gt_json'], 'folder']


def workers_zero(s):
    return s['args'] + ['--workers', '0'], 2, ['--workers', '0']


def output_folder_missing(s):
    out = os.path.join(s['tmp'], 'nowhere', 'pq.json')
    return s['args'] + ['--output', out], 2, ['--output', os.path.dirname(out)]


def pred_folder_missing(s):
    shutil.rmtree(s['pred_dir'])
    return None, 1, [s['pred_dir']]


def gt_json_empty(s):
    _write_bytes(s['gt_json'], b'  \n')
    return None, 1, [s['gt_json'], 'empty']


def pred_json_broken(s):
    _write_bytes(s['pred_json'], b'{"annotations": [{"image_id": ')
    return None, 1, [s['pred_json'], 'not valid JSON']


def pred_json_is_a_list(s):
    _save(s['pred_json'], [1, 2])
    return None, 1, [s['pred_json'], 'list']


def annotations_not_a_list(s):
    _edit(s['pred_json'], lambda d: d.update(annotations={'a': 1}))
    return None, 1, [s['pred_json'], '"annotations"', 'dict']


def gt_without_annotations(s):
    _edit(s['gt_json'], lambda d: d.update(annotations=[]))
    return None, 1, [s['gt_json'], 'no annotations']


def gt_without_categories(s):
    _edit(s['gt_json'], lambda d: d.pop('categories'))
    return None, 1, [s['gt_json'], 'categories']


def gt_category_without_id(s):
    _edit(s['gt_json'], lambda d: d['categories'][0].pop('id'))
    return None, 1, [s['gt_json'], "'name': 'road'", 'lacks id']


def duplicate_image_ids(s):
    data = _edit(s['pred_json'], lambda d: d['annotations'].append(dict(d['annotations'][0])))
    return None, 1, [s['pred_json'], data['annotations'][0]['image_id'], 'more than one']


def image_without_prediction(s):
    data = _edit(s['pred_json'], lambda d: d['annotations'].pop(0))
    image_id = _first_ann(s['gt_json'])['image_id']
    assert image_id not in [a['image_id'] for a in data['annotations']]
    return None, 1, [s['pred_json'], image_id, 'no prediction']


def segments_info_null(s):
    data = _edit(s['pred_json'], lambda d: d['annotations'][0].update(segments_info=None))
    return None, 1, [s['pred_json'], data['annotations'][0]['image_id'], 'segments_info', 'None']


def segment_not_an_object(s):
    image_id = _first_ann(s['pred_json'])['image_id']
    _edit(s['pred_json'], lambda d: d['annotations'][0]['segments_info'].append(17))
    return None, 1, [s['pred_json'], image_id, 'not an object', '17']


def segment_id_string(s):
    seg_id = _first_ann(s['pred_json'])['segments_info'][0]['id']
    image_id = _edit_first_segment(s, id=str(seg_id))
    return None, 1, [s['pred_json'], image_id, repr(str(seg_id)), 'not an integer']


def segment_id_negative(s):
    return None, 1, [s['pred_json'], _edit_first_segment(s, id=-5), '-5', 'out of range']


def segment_id_too_large(s):
    return None, 1, [s['pred_json'], _edit_first_segment(s, id=256 ** 3), str(256 ** 3),
                     'out of range']


def segment_id_nan(s):
    return None, 1, [s['pred_json'], _edit_first_segment(s, id=float('nan')), 'nan',
                     'not an integer']


def segment_id_float(s):
    return None, 1, [s['pred_json'], _edit_first_segment(s, id=7.5), '7.5', 'not an integer']


def segment_without_id(s):
    data = _edit(s['pred_json'], lambda d: d['annotations'][0]['segments_info'][0].pop('id'))
    return None, 1, [s['pred_json'], data['annotations'][0]['image_id'], 'missing']


def category_id_string(s):
    return None, 1, [s['pred_json'], _edit_first_segment(s, category_id='7'), "'7'",
                     'not an integer']


def category_id_unknown(s):
    seg_id = _first_ann(s['pred_json'])['segments_info'][0]['id']
    image_id = _edit_first_segment(s, category_id=99)
    return None, 1, [s['pred_json'], image_id, 'segment id {}'.format(seg_id), '99']


def area_not_a_number(s):
    return None, 1, [s['gt_json'], _edit_first_segment_gt(s, area='big'), "'big'"]


def _edit_first_segment_gt(s, **values):
    data = _edit(s['gt_json'], lambda d: d['annotations'][0]['segments_info'][0].update(values))
    return data['annotations'][0]['image_id']


def png_missing(s):
    png = _pred_png(s)
    os.remove(png)
    return None, 1, [png]


def png_is_a_folder(s):
    png = _pred_png(s)
    _replace_with_folder(png)
    return None, 1, [png, 'folder']


def png_empty(s):
    png = _pred_png(s)
    _write_bytes(png, b'')
    return None, 1, [png, 'empty']


def png_is_jpeg(s):
    png = _pred_png(s)
    _write_bytes(png, _jpeg_bytes())
    return None, 1, [png, 'not a PNG', 'JPEG']


def png_truncated(s):
    png = _gt_png(s)
    _truncate(png)
    return None, 1, [png, 'truncated']


def png_crc_damaged(s):
    png = _gt_png(s)
    with open(png, 'rb') as f:
        data = bytearray(f.read())
    data[data.index(b'IDAT') + 8] ^= 0xFF
    _write_bytes(png, bytes(data))
    return None, 1, [png, 'CRC']


def png_16bit(s):
    png = _pred_png(s)
    cv2.imwrite(png, cv2.imread(png).astype(np.uint16) * 257)
    return None, 1, [png, '8-bit RGB', '16-bit']


def png_grayscale(s):
    png = _pred_png(s)
    cv2.imwrite(png, cv2.imread(png, cv2.IMREAD_GRAYSCALE))
    return None, 1, [png, '8-bit RGB', 'grayscale']


def png_size_mismatch(s):
    png = _pred_png(s)
    cv2.imwrite(png, cv2.imread(png)[:-8])
    return None, 1, [_first_ann(s['pred_json'])['image_id'], png, '120x256']


def png_id_not_in_json(s):
    data = _edit(s['pred_json'], lambda d: d['annotations'][0]['segments_info'].pop())
    return None, 1, [data['annotations'][0]['image_id'], _pred_png(s), 'not in its JSON']


def png_noise_many_ids(s):
    """Thousands of ids in the PNG that the JSON does not list: a few are named, with a count."""
    png = _pred_png(s)
    noise = np.random.default_rng(0).integers(1, 256 ** 3, (128, 256))
    Image.fromarray(id2rgb(noise)).save(png)
    return None, 1, [png, 'more']


EVALUATOR_CASES = [gt_json_missing, gt_json_is_a_folder, workers_zero, output_folder_missing,
                   pred_folder_missing, gt_json_empty, pred_json_broken, pred_json_is_a_list,
                   annotations_not_a_list, gt_without_annotations, gt_without_categories,
                   gt_category_without_id, duplicate_image_ids, image_without_prediction,
                   segments_info_null, segment_not_an_object, segment_id_string,
                   segment_id_negative, segment_id_too_large, segment_id_nan, segment_id_float,
                   segment_without_id, category_id_string, category_id_unknown, area_not_a_number,
                   png_missing, png_is_a_folder, png_empty, png_is_jpeg, png_truncated,
                   png_crc_damaged, png_16bit, png_grayscale, png_size_mismatch,
                   png_id_not_in_json, png_noise_many_ids]

#: cases also run as a command (each costs a process start); the rest go through the library
EVALUATOR_CLI = {gt_json_missing, gt_json_is_a_folder, workers_zero, output_folder_missing,
                 pred_folder_missing, gt_json_empty, pred_json_broken, annotations_not_a_list,
                 gt_without_annotations, duplicate_image_ids, segments_info_null,
                 segment_id_string, segment_id_nan, category_id_unknown, png_is_a_folder,
                 png_is_jpeg, png_truncated, png_16bit, png_size_mismatch, png_noise_many_ids}


@pytest.mark.parametrize('case', [c for c in EVALUATOR_CASES if c in EVALUATOR_CLI],
                         ids=lambda c: c.__name__)
def test_evaluate_command_names_the_culprit(ev, case):
    """The command exits 2 (usage) or 1 (data) with one short error line naming the culprit."""
    args, status, culprits = case(ev)
    line = assert_input_error(run(EVALUATE, *(args or ev['args'])), status, *culprits)
    assert len(line) < MAX_LINE, line


@pytest.mark.parametrize('case', [c for c in EVALUATOR_CASES if c not in EVALUATOR_CLI],
                         ids=lambda c: c.__name__)
def test_evaluate_library_names_the_culprit(ev, case):
    """The evaluator raises an input error whose message names the culprit."""
    args, status, culprits = case(ev)
    assert args is None and status == 1
    with pytest.raises((DataError, MissingFileError, UnreadableFileError)) as info:
        evaluate_panoptic_files(ev['gt_json'], ev['gt_dir'], ev['pred_json'], ev['pred_dir'])
    for culprit in culprits:
        assert str(culprit) in str(info.value)
    assert len(str(info.value)) < MAX_LINE, str(info.value)


def test_debug_shows_the_traceback(ev):
    """``--debug`` keeps the traceback of an input error."""
    gt_json_empty(ev)
    proc = run(EVALUATE, *(ev['args'] + ['--debug']))
    assert proc.returncode == 1 and 'Traceback' in proc.stderr and 'DataError' in proc.stderr


# ----------------------------------------------------------------------------------------------
# the dataset check command and the dataset classes: each case breaks one thing in a copy of the
# synthetic Cityscapes root -> (when it fails: 'init' or 'load', error class, culprits)


def _val_json(root):
    return os.path.join(root, 'gtFine', 'cityscapes_panoptic_val.json')


def _val_image(root):
    """The image of the first record (records are sorted by image id)."""
    return sorted(glob.glob(os.path.join(root, 'leftImg8bit', 'val', '*', '*.png')))[0]


def _val_png(root):
    return sorted(glob.glob(os.path.join(root, 'gtFine', 'cityscapes_panoptic_val', '*.png')))[0]


def _edit_val_ann(root, fn):
    """Apply ``fn`` to the annotation of the first record -> its image id."""
    def edit(data):
        fn(min(data['annotations'], key=lambda a: a['image_id']))
    data = _edit(_val_json(root), edit)
    return min(a['image_id'] for a in data['annotations'])


def ds_root_missing(root):
    shutil.rmtree(root)
    return 'init', MissingFileError, [root, 'does not exist']


def ds_json_missing(root):
    os.remove(_val_json(root))
    return 'init', MissingFileError, [_val_json(root), 'csCreatePanopticImgs']


def ds_json_empty(root):
    _write_bytes(_val_json(root), b'')
    return 'init', DataError, [_val_json(root), 'empty']


def ds_empty_split(root):
    _edit(_val_json(root), lambda d: d.update(images=[], annotations=[]))
    return 'init', DataError, [_val_json(root), 'no images']


def ds_images_not_a_list(root):
    _edit(_val_json(root), lambda d: d.update(images=None))
    return 'init', DataError, [_val_json(root), '"images"']


def ds_image_listed_twice(root):
    data = _edit(_val_json(root), lambda d: d['images'].append(dict(d['images'][0])))
    return 'init', DataError, [_val_json(root), data['images'][0]['id'], 'twice']


def ds_integer_image_ids(root):
    def to_int(data):
        for n, (im, ann) in enumerate(zip(data['images'], data['annotations'])):
            im['id'] = ann['image_id'] = n + 5
    _edit(_val_json(root), to_int)
    return 'init', DataError, [_val_json(root), 'strings', '5']


def ds_train_id_categories(root):
    _edit(_val_json(root), lambda d: [c.update(id=n) for n, c in enumerate(d['categories'])])
    return 'init', DataError, [_val_json(root), '--use-train-id']


def ds_segments_info_null(root):
    image_id = _edit_val_ann(root, lambda a: a.update(segments_info=None))
    return 'init', DataError, [_val_json(root), image_id, 'segments_info']


def ds_segment_id_string(root):
    image_id = _edit_val_ann(root, lambda a: a['segments_info'][0].update(id='7'))
    return 'init', DataError, [_val_json(root), image_id, "'7'"]


def ds_segment_id_out_of_range(root):
    image_id = _edit_val_ann(root, lambda a: a['segments_info'][0].update(id=-1))
    return 'init', DataError, [_val_json(root), image_id, '-1']


def ds_category_id_float(root):
    image_id = _edit_val_ann(root, lambda a: a['segments_info'][0].update(category_id=7.0))
    return 'init', DataError, [_val_json(root), image_id, '7.0']


def ds_category_id_unknown(root):
    image_id = _edit_val_ann(root, lambda a: a['segments_info'][0].update(category_id=99))
    return 'init', DataError, [_val_json(root), image_id, '99']


def ds_image_is_a_folder(root):
    path = _val_image(root)
    _replace_with_folder(path)
    return 'init', UnreadableFileError, [path, 'folder']


def ds_image_empty(root):
    path = _val_image(root)
    _write_bytes(path, b'')
    return 'load', DataError, [path, 'empty']


def ds_image_truncated(root):
    path = _val_image(root)
    _truncate(path)
    return 'load', DataError, [path, 'truncated']


def ds_image_is_jpeg(root):
    path = _val_image(root)
    _write_bytes(path, _jpeg_bytes())
    return 'load', DataError, [path, 'not a PNG', 'JPEG']


def ds_image_16bit(root):
    path = _val_image(root)
    cv2.imwrite(path, cv2.imread(path).astype(np.uint16) * 257)
    return 'load', DataError, [path, '8-bit RGB', '16-bit']


def ds_image_grayscale(root):
    path = _val_image(root)
    cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_GRAYSCALE))
    return 'load', DataError, [path, '8-bit RGB', 'grayscale']


def ds_label_is_jpeg(root):
    path = _val_png(root)
    _write_bytes(path, _jpeg_bytes())
    return 'load', DataError, [path, 'not a PNG', 'JPEG']


def ds_label_gray_alpha(root):
    path = _val_png(root)
    Image.fromarray(np.zeros((128, 256, 2), np.uint8), 'LA').save(path)
    return 'load', DataError, [path, 'grayscale+alpha']


def ds_size_mismatch(root):
    path = _val_image(root)
    cv2.imwrite(path, cv2.imread(path)[:, :-8])
    return 'load', DataError, [path, _val_png(root), '128x248']


def ds_segment_missing_from_png(root):
    _edit_val_ann(root, lambda a: a['segments_info'].append(dict(a['segments_info'][0], id=33999)))
    return 'load', DataError, [_val_png(root), '33999']


def ds_duplicate_segment_ids(root):
    _edit_val_ann(root, lambda a: a['segments_info'].append(dict(a['segments_info'][0])))
    return 'load', DataError, [_val_png(root), 'duplicate']


DATASET_CASES = [ds_root_missing, ds_json_missing, ds_json_empty, ds_empty_split,
                 ds_images_not_a_list, ds_image_listed_twice, ds_integer_image_ids,
                 ds_train_id_categories, ds_segments_info_null, ds_segment_id_string,
                 ds_segment_id_out_of_range, ds_category_id_float, ds_category_id_unknown,
                 ds_image_is_a_folder, ds_image_empty, ds_image_truncated, ds_image_is_jpeg,
                 ds_image_16bit, ds_image_grayscale, ds_label_is_jpeg, ds_label_gray_alpha,
                 ds_size_mismatch, ds_segment_missing_from_png, ds_duplicate_segment_ids]

#: cases also run through ``python -m gluonpan.data.check`` (MXNet makes each start ~2 s)
CHECK_CLI = {ds_json_missing, ds_empty_split, ds_image_truncated, ds_label_is_jpeg,
             ds_image_is_a_folder}


@pytest.mark.parametrize('case', DATASET_CASES, ids=lambda c: c.__name__)
def test_dataset_names_the_culprit(citys_copy, case):
    """The dataset raises the error when made (broken JSON) or when the sample loads (broken
    file)."""
    from gluonpan.data import CityscapesPanoptic
    stage, error, culprits = case(citys_copy)
    with pytest.raises(error) as info:
        ds = CityscapesPanoptic(citys_copy, 'val')
        assert stage == 'load', 'the dataset was made although its JSON is broken'
        ds[0]
    for culprit in culprits:
        assert str(culprit) in str(info.value)
    assert len(str(info.value)) < MAX_LINE, str(info.value)


@pytest.mark.parametrize('case', [c for c in DATASET_CASES if c in CHECK_CLI],
                         ids=lambda c: c.__name__)
def test_check_command_names_the_culprit(citys_copy, case):
    """``python -m gluonpan.data.check`` exits 1 with one line naming the broken file."""
    _, _, culprits = case(citys_copy)
    assert_input_error(run(CHECK, '--root', citys_copy, '--split', 'val'), 1, *culprits)


def test_check_command_usage_errors(tmp_path):
    """A missing ``--root`` is a usage error (exit 2) naming the flag and the path."""
    missing = str(tmp_path / 'nowhere')
    assert_input_error(run(CHECK, '--root', missing), 2, '--root', missing)


def test_coco_without_categories_is_named(synthetic_coco, tmp_path):
    """COCO reads its categories from the JSON: a JSON without them is named."""
    from gluonpan.data import COCOPanoptic
    root = str(tmp_path / 'coco')
    shutil.copytree(synthetic_coco, root)
    path = os.path.join(root, 'annotations', 'panoptic_val2017.json')
    _edit(path, lambda d: d.pop('categories'))
    with pytest.raises(DataError, match='{}.*categories'.format(path)):
        COCOPanoptic(root, 'val')


# ----------------------------------------------------------------------------------------------
# the readers: each case writes one broken file -> (reader, error class, culprits)


def text_saved_as_jpg(tmp):
    path = os.path.join(tmp, 'notes.jpg')
    _write_bytes(path, b'these are not pixels\n')
    return read_image, path, DataError, [path, 'not an image', 'text']


def truncated_jpeg(tmp):
    path = os.path.join(tmp, 'cut.jpg')
    _write_bytes(path, _jpeg_bytes()[:600])
    return read_image, path, DataError, [path]


def missing_image(tmp):
    path = os.path.join(tmp, 'nope.png')
    return read_image, path, MissingFileError, [path]


def panoptic_png_is_json(tmp):
    path = os.path.join(tmp, 'ids.png')
    _write_bytes(path, b'{"segments_info": []}')
    return read_panoptic_ids, path, DataError, [path, 'not a PNG', 'JSON']


def panoptic_png_no_iend(tmp):
    path = os.path.join(tmp, 'cut.png')
    ok, data = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))
    _write_bytes(path, data.tobytes()[:-12])
    return read_panoptic_ids, path, DataError, [path, 'truncated']


READER_CASES = [text_saved_as_jpg, truncated_jpeg, missing_image, panoptic_png_is_json,
                panoptic_png_no_iend]


@pytest.mark.parametrize('case', READER_CASES, ids=lambda c: c.__name__)
def test_readers_name_the_culprit(tmp_path, case):
    """The readers name the file and what is wrong with it."""
    reader, path, error, culprits = case(str(tmp_path))
    with pytest.raises(error) as info:
        reader(path)
    for culprit in culprits:
        assert str(culprit) in str(info.value)


# ----------------------------------------------------------------------------------------------
# gluonpan.predict: bad arrays and options -> (image, options, error class, culprits)

TINY = dict(rpn_train_pre_nms=600, rpn_train_post_nms=200, rpn_test_pre_nms=300,
            rpn_test_post_nms=100, rcnn_num_sample=64, max_num_gt=8, test_max_dets=20)


@pytest.fixture(scope='module')
def tiny_net():
    """A randomly initialised resnet18 Panoptic FPN with small proposal counts."""
    from gluonpan.model_zoo import get_model
    return get_model('panoptic_fpn_resnet18_v1b_citys', **TINY)


def _ndarray():
    import mxnet as mx
    return mx.nd.zeros((8, 8, 3), dtype='uint8')


PREDICT_CASES = [
    pytest.param(_ndarray, {}, DataError, ['NDArray', 'asnumpy'], id='ndarray'),
    pytest.param(lambda: np.zeros((8, 8, 3), np.float32), {}, DataError, ['float32', 'uint8'],
                 id='float_image'),
    pytest.param(lambda: np.zeros((8, 8, 4), np.uint8), {}, DataError, ['(8, 8, 4)', 'read_image'],
                 id='four_channels'),
    pytest.param(lambda: np.zeros((8, 8), np.uint8), {}, DataError, ['(8, 8)'], id='two_dims'),
    pytest.param(lambda: np.zeros((0, 5, 3), np.uint8), {}, DataError, ['empty', '(0, 5, 3)'],
                 id='empty_image'),
    pytest.param(lambda: np.zeros((8, 8, 3), np.uint8), {'score_treshold': 0.5}, UsageError,
                 ['score_treshold'], id='unknown_option'),
    pytest.param(lambda: np.zeros((8, 8, 3), np.uint8), {'score_threshold': 'high'}, UsageError,
                 ['score_threshold', "'high'"], id='option_not_a_number'),
]


@pytest.mark.parametrize('make, options, error, culprits', PREDICT_CASES)
def test_predict_rejects_bad_input(tiny_net, make, options, error, culprits):
    """``gluonpan.predict`` says what it got and what it takes."""
    import gluonpan
    with pytest.raises(error) as info:
        gluonpan.predict(tiny_net, make(), **options)
    for culprit in culprits:
        assert culprit in str(info.value)


def test_predict_rejects_what_is_not_a_network():
    """Something that is not a network is a usage error naming its type."""
    import gluonpan
    with pytest.raises(UsageError, match='str'):
        gluonpan.predict('resnet', np.zeros((8, 8, 3), np.uint8))


# ----------------------------------------------------------------------------------------------
# valid edge cases that must keep working


def _save_pil(path, array, mode):
    Image.fromarray(array, mode).save(path)
    return path


def _save_cv2(path, array):
    """OpenCV writes 16-bit PNGs (and takes BGR)."""
    assert cv2.imwrite(path, array)
    return path


def _save_palette(path, rgb):
    img = Image.fromarray(np.zeros((6, 6), np.uint8), 'P')
    img.putpalette(list(rgb) + [0] * 765)  # index 0 -> rgb
    img.save(path)
    assert Image.open(path).mode == 'P'
    return path


def _save_gray_jpeg(path):
    path = path.replace('.png', '.jpg')
    return _save_cv2(path, np.full((8, 8), 128, np.uint8))


EDGE_IMAGES = {  # name -> (write(path) -> path, expected RGB of the top-left pixel, shape)
    'rgba': (lambda p: _save_pil(p, np.full((5, 7, 4), (10, 20, 30, 40), np.uint8), 'RGBA'),
             (10, 20, 30), (5, 7)),
    'rgb16': (lambda p: _save_cv2(p, np.full((4, 6, 3), (257 * 30, 65535, 0), np.uint16)),
              (0, 255, 30), (4, 6)),
    'gray': (lambda p: _save_cv2(p, np.full((3, 9), 77, np.uint8)), (77, 77, 77), (3, 9)),
    'gray16': (lambda p: _save_cv2(p, np.full((3, 4), 257 * 200, np.uint16)), (200, 200, 200),
               (3, 4)),
    'palette': (lambda p: _save_palette(p, (200, 100, 50)), (200, 100, 50), (6, 6)),
    'one_pixel': (lambda p: _save_pil(p, np.full((1, 1, 3), (1, 2, 3), np.uint8), 'RGB'),
                  (1, 2, 3), (1, 1)),
    'one_by_300': (lambda p: _save_pil(p, np.full((1, 300, 3), 9, np.uint8), 'RGB'), (9, 9, 9),
                   (1, 300)),
    'gray_jpeg': (_save_gray_jpeg, (128, 128, 128), (8, 8)),
}


@pytest.mark.parametrize('name', sorted(EDGE_IMAGES))
def test_read_image_converts_edge_cases(tmp_path, name):
    """``read_image(path, allow_gray=True)`` (the demo) gives (H, W, 3) uint8 RGB for every type."""
    write, rgb, shape = EDGE_IMAGES[name]
    path = write(str(tmp_path / '{}.png'.format(name)))
    img = read_image(path, allow_gray=True)
    assert img.dtype == np.uint8 and img.shape == shape + (3,)
    assert tuple(int(v) for v in img[0, 0]) == rgb


@pytest.mark.parametrize('name', ['rgba', 'one_pixel', 'one_by_300', 'gray16'])
def test_predict_works_on_edge_images(tmp_path, tiny_net, name):
    """Tiny, extreme-aspect, RGBA and 16-bit images go through ``predict`` (padded if needed)."""
    import gluonpan
    write, _, shape = EDGE_IMAGES[name]
    image = read_image(write(str(tmp_path / '{}.png'.format(name))), allow_gray=True)
    pan, segments = gluonpan.predict(tiny_net, image, score_threshold=0.0, stuff_area_threshold=0)
    assert pan.shape == shape and pan.dtype == np.int32
    ids = set(np.unique(pan).tolist()) - {0}
    assert sorted(s['id'] for s in segments) == sorted(ids)
    assert all(s['area'] == int((pan == s['id']).sum()) for s in segments)


def _zero_instance_and_void(root):
    """Record 0 becomes one stuff segment (road) and no instance, record 1 all void."""
    data = _load(_val_json(root))
    anns = sorted(data['annotations'], key=lambda a: a['image_id'])
    folder = os.path.join(root, 'gtFine', 'cityscapes_panoptic_val')
    road = np.full((128, 256), 7, np.int64)
    Image.fromarray(id2rgb(road)).save(os.path.join(folder, anns[0]['file_name']))
    anns[0]['segments_info'] = [dict(id=7, category_id=7, iscrowd=0, area=road.size,
                                     bbox=[0, 0, 256, 128])]
    void = np.zeros((128, 256, 3), np.uint8)
    Image.fromarray(void).save(os.path.join(folder, anns[1]['file_name']))
    anns[1]['segments_info'] = []
    _save(_val_json(root), data)
    return data


def test_zero_instance_and_all_void_images_work(citys_copy, tmp_path):
    """Images without instances and all-void images are valid: dataset, evaluator, check."""
    from gluonpan.data import CityscapesPanoptic
    _zero_instance_and_void(citys_copy)
    ds = CityscapesPanoptic(citys_copy, 'val')
    road, void = ds[0], ds[1]
    assert road['gt_boxes'].shape == (0, 4) and (road['pan_ids'] == 7).all()
    assert void['segments_info'] == [] and (void['sem_seg'] == 255).all()
    assert void['gt_masks'].shape == (0, 128, 256)
    gt_json = _val_json(citys_copy)
    gt_dir = os.path.splitext(gt_json)[0]
    results = evaluate_panoptic_files(gt_json, gt_dir, gt_json, gt_dir)  # perfect prediction
    assert results['num_images'] == 2 and results['All']['n'] == 1
    assert results['per_class'][7]['pq'] == 1.0
    out = str(tmp_path / 'pq.json')
    proc = run(EVALUATE, '--gt-json', gt_json, '--pred-json', gt_json, '--output', out)
    assert proc.returncode == 0, proc.stderr
    assert _load(out)['All']['pq'] == 1.0
    proc = run(CHECK, '--root', citys_copy, '--split', 'val')
    assert proc.returncode == 0 and '2 images OK' in proc.stderr, proc.stderr


def test_error_lists_are_short(ev):
    """A PNG of noise against its JSON: the message names a few ids and how many more."""
    png_noise_many_ids(ev)
    with pytest.raises(DataError) as info:
        evaluate_panoptic_files(ev['gt_json'], ev['gt_dir'], ev['pred_json'], ev['pred_dir'])
    text = str(info.value)
    assert len(text) < MAX_LINE and 'and 32735 more' in text, text
