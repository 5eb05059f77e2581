"""Bad input on the train / eval / demo scripts: one line naming the culprit, exit 2 (usage) or 1
(data), no traceback; and the valid edge cases the demo must take (see tests/_bad_input.py)."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from _bad_input import assert_input_error, run

TINY_MODEL = dict(fpn_channels=32, sem_seg_channels=32, sem_seg_num_groups=8, rpn_channels=32,
                  rpn_train_pre_nms=300, rpn_train_post_nms=64, rpn_test_pre_nms=300,
                  rpn_test_post_nms=64, rcnn_num_sample=32, test_max_dets=20)
PREFIX = 'panoptic_fpn_resnet18_v1b_citys'


def _train(root, save_dir, *extra, dataset='synthetic'):
    return ('--dataset', dataset, '--dataset-root', root, '--network', 'resnet18_v1b',
            '--gpus', '', '--num-workers', '0', '--crop-size', '64x128', '--scale-range', '0.5,0.5',
            '--norm-layer', 'bn', '--model-kwargs', json.dumps(TINY_MODEL), '--lr-warmup', '2',
            '--batch-size', '1', '--epochs', '1', '--save-dir', save_dir) + extra


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    """Random weights of the tiny resnet18 Cityscapes model with the args.json of a training run."""
    from gluonpan.model_zoo import get_model
    folder = tmp_path_factory.mktemp('weights')
    net = get_model(PREFIX, **TINY_MODEL)
    path = str(folder / 'model.params')
    net.save_parameters(path)
    (folder / 'args.json').write_text(json.dumps({
        'network': 'resnet18_v1b', 'dataset': 'citys',
        'model_kwargs': json.dumps(dict(net.conventions, **TINY_MODEL))}))
    return path


def _write(path, data):
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)
    return path


# --- train: flags and config files (exit 2) ----------------------------------------------------
def _config(tmp, content):
    return ('--config', _write(os.path.join(tmp, 'recipe.json'), content))


TRAIN_USAGE = [
    # (case id, extra flags (a callable of the tmp dir for files), culprits named in the message)
    ('config-missing', lambda t: ('--config', os.path.join(t, 'nope.json')), ['nope.json']),
    ('config-invalid-json', lambda t: _config(t, '{"lr": 0.1,'), ['recipe.json', 'not valid JSON']),
    ('config-empty', lambda t: _config(t, ''), ['recipe.json', 'empty']),
    ('config-not-object', lambda t: _config(t, '[1, 2]'), ['recipe.json', 'JSON object']),
    ('config-unknown-key', lambda t: _config(t, '{"learning_rate": 0.1}'), ['learning_rate']),
    ('config-wrong-type', lambda t: _config(t, '{"lr": "fast"}'), ['--lr', 'fast']),
    ('config-not-a-number', lambda t: _config(t, '{"val_interval": [2]}'), ['--val-interval']),
    ('batch-size-0', lambda t: ('--batch-size', '0'), ['--batch-size', '0']),
    ('epochs-0', lambda t: ('--epochs', '0'), ['--epochs']),
    ('lr-negative', lambda t: ('--lr', '-1'), ['--lr', '-1']),
    ('lr-nan', lambda t: ('--lr', 'nan'), ['--lr', 'nan']),
    ('num-workers-negative', lambda t: ('--num-workers', '-1'), ['--num-workers']),
    ('seed-negative', lambda t: ('--seed', '-3'), ['--seed']),
    ('batch-size-not-int', lambda t: ('--batch-size', 'two'), ['--batch-size', 'two']),
    ('crop-not-multiple-of-32', lambda t: ('--crop-size', '100x200'), ['--crop-size', '100x200']),
    ('crop-not-a-size', lambda t: ('--crop-size', '512xabc'), ['--crop-size', '512xabc']),
    ('scale-range-reversed', lambda t: ('--scale-range', '2,1'), ['--scale-range', '2,1']),
    ('anchor-sizes-short', lambda t: ('--anchor-sizes', '32,64'), ['--anchor-sizes']),
    ('lr-decay-epoch-bad', lambda t: ('--lr_decay_epoch', 'a,b'), ['--lr_decay_epoch', 'a,b']),
    ('model-kwargs-unknown-key', lambda t: ('--model-kwargs', '{"fpn_chanels": 64}'),
     ['--model-kwargs', 'fpn_chanels']),
    ('model-kwargs-bad-json', lambda t: ('--model-kwargs', '{bad'), ['--model-kwargs', '{bad']),
    ('model-kwargs-not-object', lambda t: ('--model-kwargs', '[64]'), ['--model-kwargs']),
    ('gpus-negative', lambda t: ('--gpus', '-1'), ['--gpus', '-1']),
    ('gpus-not-ids', lambda t: ('--gpus', 'a,b'), ['--gpus', 'a,b']),
    ('gpus-beyond', lambda t: ('--gpus', '99'), ['--gpus 99']),
    ('network-unknown', lambda t: ('--network', 'resnet999_v1b'), ['resnet999_v1b']),
    ('resume-missing-file', lambda t: ('--resume', os.path.join(t, 'gone.json')), ['gone.json']),
    ('synthetic-size-bad', lambda t: ('--synthetic-size', '100x100'), ['--synthetic-size']),
    ('batch-larger-than-split', lambda t: ('--batch-size', '4'), ['--batch-size 4']),
    ('batch-not-multiple-of-contexts', lambda t: ('--batch-size', '3', '--cpu-contexts', '2'),
     ['--batch-size 3']),
]


@pytest.mark.parametrize('case,extra,culprits', TRAIN_USAGE, ids=[c[0] for c in TRAIN_USAGE])
def test_train_usage_errors(case, extra, culprits, synthetic_citys, tmp_path):
    save_dir = str(tmp_path / 'run')
    proc = run('train', *_train(synthetic_citys, save_dir, *extra(str(tmp_path))))
    assert_input_error(proc, 2, *culprits)
    assert not os.path.exists(os.path.join(save_dir, PREFIX + '-final.params'))


def test_train_refuses_a_missing_dataset_root(tmp_path):
    missing = str(tmp_path / 'no_citys')
    proc = run('train', '--dataset', 'citys', '--dataset-root', missing, '--gpus', '',
               '--network', 'resnet18_v1b', '--save-dir', str(tmp_path / 'run'))
    assert_input_error(proc, 2, '--dataset-root', missing)


def test_resume_without_checkpoint_says_where_it_looked(synthetic_citys, tmp_path):
    save_dir = str(tmp_path / 'empty_run')
    proc = run('train', *_train(synthetic_citys, save_dir, '--resume'))
    assert_input_error(proc, 2, '--resume', save_dir)


def test_fresh_start_into_a_run_directory_is_refused(synthetic_citys, tmp_path):
    save_dir = tmp_path / 'run'
    save_dir.mkdir()
    (save_dir / (PREFIX + '-0001.json')).write_text('{}')
    proc = run('train', *_train(synthetic_citys, str(save_dir)))
    assert_input_error(proc, 2, str(save_dir), '--resume')
    assert sorted(os.listdir(str(save_dir))) == [PREFIX + '-0001.json']  # nothing touched


def test_resume_with_only_damaged_checkpoints_is_a_data_error(synthetic_citys, tmp_path):
    save_dir = tmp_path / 'run'
    save_dir.mkdir()
    _write(str(save_dir / (PREFIX + '-0001.json')), '{"format": "gluonpan-checkpoint/1"')
    proc = run('train', *_train(synthetic_citys, str(save_dir), '--resume'))
    assert_input_error(proc, 1, PREFIX + '-0001.json')


# --- train: data errors once the run starts (exit 1) ---------------------------------------------
def _broken_citys(synthetic_citys, tmp_path, breaker):
    root = str(tmp_path / 'citys')
    shutil.copytree(synthetic_citys, root)
    return root, breaker(root)


def _first_train_image(root):
    folder = os.path.join(root, 'leftImg8bit', 'train')
    city = sorted(os.listdir(folder))[0]
    return os.path.join(folder, city, sorted(os.listdir(os.path.join(folder, city)))[0])


def _corrupt_image(root):
    path = _first_train_image(root)
    _write(path, open(path, 'rb').read()[:200])  # truncated PNG
    return os.path.basename(path)


def _empty_split(root):
    path = os.path.join(root, 'gtFine', 'cityscapes_panoptic_train.json')
    data = json.load(open(path))
    data['images'], data['annotations'] = [], []
    _write(path, json.dumps(data))
    return 'cityscapes_panoptic_train.json'


def _missing_json(root):
    os.remove(os.path.join(root, 'gtFine', 'cityscapes_panoptic_train.json'))
    return 'cityscapes_panoptic_train.json'


TRAIN_DATA = [('corrupt-image', _corrupt_image, '0'), ('corrupt-image-in-worker', _corrupt_image, '1'),
              ('empty-split', _empty_split, '0'), ('missing-panoptic-json', _missing_json, '0')]


@pytest.mark.slow
@pytest.mark.parametrize('case,breaker,workers', TRAIN_DATA, ids=[c[0] for c in TRAIN_DATA])
def test_train_data_errors(case, breaker, workers, synthetic_citys, tmp_path):
    root, culprit = _broken_citys(synthetic_citys, tmp_path, breaker)
    proc = run('train', *_train(root, str(tmp_path / 'run'), '--num-workers', workers,
                                dataset='citys'))
    assert_input_error(proc, 1, culprit)


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_and_status_1(synthetic_citys, tmp_path):
    proc = run('train', *_train(synthetic_citys, str(tmp_path / 'run'), '--lr', '1e30',
                                '--lr-warmup', '0', '--epochs', '3'))
    assert_input_error(proc, 1, 'non-finite loss')


# --- eval and demo --------------------------------------------------------------------------------
def _eval(root, pretrained, tmp, *extra):
    return ('--pretrained', pretrained, '--dataset', 'synthetic', '--dataset-root', root,
            '--gpus', '', '--num-workers', '0', '--save-dir', os.path.join(tmp, 'eval')) + extra


def _other_architecture(tmp, weights):
    """Weights of the tiny model, next to an args.json that claims the default widths."""
    folder = os.path.join(tmp, 'other')
    os.makedirs(folder)
    shutil.copy(weights, os.path.join(folder, 'model.params'))
    _write(os.path.join(folder, 'args.json'), json.dumps({'network': 'resnet18_v1b'}))
    return os.path.join(folder, 'model.params')


def _broken_args_json(tmp, weights):
    folder = os.path.join(tmp, 'broken_args')
    os.makedirs(folder)
    shutil.copy(weights, os.path.join(folder, 'model.params'))
    _write(os.path.join(folder, 'args.json'), '')
    return os.path.join(folder, 'model.params')


EVAL_CASES = [
    # (case id, --pretrained from (tmp, good weights), extra flags, status, culprits)
    ('pretrained-missing', lambda t, w: os.path.join(t, 'none.params'), (), 2, ['none.params']),
    ('pretrained-is-folder', lambda t, w: t, (), 2, ['--pretrained', 'folder']),
    ('pretrained-not-params', lambda t, w: _write(os.path.join(t, 'junk.params'), b'\0' * 4096),
     (), 1, ['junk.params']),
    ('pretrained-truncated', lambda t, w: _write(os.path.join(t, 'cut.params'),
                                                 open(w, 'rb').read()[:5000]), (), 1, ['cut.params']),
    ('pretrained-other-architecture', _other_architecture, (), 1, ['model.params', 'shape']),
    ('args-json-empty', _broken_args_json, (), 1, ['args.json', 'empty']),
    ('model-kwargs-bad-json', lambda t, w: w, ('--model-kwargs', '{x'), 2, ['--model-kwargs']),
    ('model-kwargs-unknown-key', lambda t, w: w, ('--model-kwargs', '{"fpn_chanels": 32}'), 2,
     ['fpn_chanels']),
    ('num-workers-negative', lambda t, w: w, ('--num-workers', '-2'), 2, ['--num-workers']),
    ('gpus-negative', lambda t, w: w, ('--gpus', '-1'), 2, ['--gpus']),
    ('dataset-root-missing', lambda t, w: w, ('--dataset', 'citys', '--dataset-root',
                                              '/nonexistent/citys'), 2, ['/nonexistent/citys']),
]


@pytest.mark.parametrize('case,pretrained,extra,status,culprits', EVAL_CASES,
                         ids=[c[0] for c in EVAL_CASES])
def test_eval_errors(case, pretrained, extra, status, culprits, synthetic_citys, tiny_weights,
                     tmp_path):
    weights = pretrained(str(tmp_path), tiny_weights)
    proc = run('eval', *_eval(synthetic_citys, weights, str(tmp_path), *extra))
    assert_input_error(proc, status, *culprits)


def _demo(weights, out, *images):
    return ('--pretrained', weights, '--out-dir', out, '--images') + images


def test_demo_usage_errors(tiny_weights, tmp_path):
    missing = str(tmp_path / 'street.png')
    assert_input_error(run('demo', *_demo(tiny_weights, str(tmp_path / 'o'), missing)), 2,
                       '--images', missing)
    empty = tmp_path / 'empty_folder'
    empty.mkdir()
    assert_input_error(run('demo', *_demo(tiny_weights, str(tmp_path / 'o'), str(empty))), 1,
                       str(empty))
    proc = run('demo', '--pretrained', tiny_weights, '--images', str(empty), '--categories-json',
               str(tmp_path / 'cats.json'))
    assert_input_error(proc, 2, '--categories-json', 'cats.json')


def test_demo_bad_images_are_named_and_the_good_ones_still_written(tiny_weights, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    good = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / 'a_good.png'), good)
    ok, jpeg = cv2.imencode('.jpg', good)
    _write(str(folder / 'b_truncated.jpg'), jpeg.tobytes()[:300])
    _write(str(folder / 'c_text.png'), 'not an image at all')
    out = tmp_path / 'out'
    proc = run('demo', *_demo(tiny_weights, str(out), str(folder)))
    line = assert_input_error(proc, 1, 'b_truncated.jpg', 'c_text.png')
    assert '2 of 3' in line
    assert (out / 'a_good_overlay.png').is_file() and (out / 'a_good_panoptic.json').is_file()


def test_demo_takes_odd_images(tiny_weights, tmp_path):
    """RGBA, 16-bit, grayscale, 1x1 and extreme-aspect images are segmented, not rejected."""
    folder = tmp_path / 'odd'
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = {'rgba.png': rng.integers(0, 255, (48, 64, 4), dtype=np.uint8),
              'deep16.png': rng.integers(0, 65535, (48, 64, 3), dtype=np.uint16),
              'gray.png': rng.integers(0, 255, (48, 64), dtype=np.uint8),
              'one_pixel.png': rng.integers(0, 255, (1, 1, 3), dtype=np.uint8),
              'strip.png': rng.integers(0, 255, (2, 300, 3), dtype=np.uint8),
              'photo.jpg': rng.integers(0, 255, (33, 47, 3), dtype=np.uint8)}
    for name, image in images.items():
        assert cv2.imwrite(str(folder / name), image)
    out = tmp_path / 'out'
    proc = run('demo', *_demo(tiny_weights, str(out), str(folder)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, image in images.items():
        stem = str(out / os.path.splitext(name)[0])
        overlay = cv2.imread(stem + '_overlay.png')
        assert overlay.shape[:2] == image.shape[:2], name
        assert json.load(open(stem + '_panoptic.json'))['file_name'] == name
