"""``--config`` of the eval and demo programs: the recipe training used gives them its keys that
are their flags (the command line wins, and so does what the run's args.json records of the model
and its data), ignores the keys only training has, and refuses a key no program has."""
import glob
import json
import os

import pytest
from _scripts import load_script
from test_scripts import TINY_MODEL

from gluonpan.utils.cli import fusion_kwargs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: (scripts folder, architecture, a training recipe of it shipped with the scripts)
RECIPES = [('panoptic', 'panoptic_fpn', 'scripts/panoptic/configs/synthetic_quick.json'),
           ('panoptic', 'panoptic_fcn', 'scripts/panoptic/configs/fcn_synthetic_quick.json'),
           ('segmentation', 'semantic_fpn', 'scripts/segmentation/configs/synthetic_quick.json')]


def _parse(folder, program, arch, argv):
    return load_script(folder, '{}_{}'.format(program, arch)).parse_args(argv)


def _weights(folder, record=None):
    """A .params file in ``folder`` (parsing only checks that it exists), with ``record`` as the
    args.json of its training run beside it."""
    os.makedirs(folder, exist_ok=True)
    params = os.path.join(folder, 'w.params')
    open(params, 'wb').close()
    if record is not None:
        with open(os.path.join(folder, 'args.json'), 'w') as f:
            json.dump(record, f)
    return params


@pytest.mark.parametrize('folder,arch,recipe', RECIPES)
def test_eval_and_demo_take_their_flags_from_a_training_recipe(folder, arch, recipe, tmp_path):
    cfg = json.load(open(os.path.join(ROOT, recipe)))
    assert {'lr', 'epochs', 'batch_size', 'crop_size'} <= set(cfg)  # training-only keys
    params = _weights(str(tmp_path))
    config = ['--config', os.path.join(ROOT, recipe), '--pretrained', params]
    args = _parse(folder, 'eval', arch, config)
    for key in ('gpus', 'num_workers', 'network', 'dataset', 'dataset_root', 'synthetic_size',
                'synthetic_train', 'synthetic_val'):
        assert getattr(args, key) == cfg[key], key
    assert json.loads(args.model_kwargs) == cfg['model_kwargs']
    assert getattr(args, 'stuff_area', None) == cfg.get('stuff_area')
    # the recipe's save_dir is the training run's, not where eval writes
    assert args.save_dir == os.path.join(str(tmp_path), 'eval_val') != cfg['save_dir']
    assert not hasattr(args, 'lr') and not hasattr(args, 'epochs')
    # the command line wins
    args = _parse(folder, 'eval', arch, config + ['--num-workers', '3', '--network',
                                                  'resnet50_v1b', '--dataset-root', 'elsewhere'])
    assert (args.num_workers, args.network, args.dataset_root) == (3, 'resnet50_v1b', 'elsewhere')

    demo = config + ['--images', os.path.join(ROOT, 'README.md')]
    args = _parse(folder, 'demo', arch, demo)
    assert (args.gpus, args.network, args.dataset) == (cfg['gpus'], cfg['network'], cfg['dataset'])
    assert json.loads(args.model_kwargs) == cfg['model_kwargs']
    assert _parse(folder, 'demo', arch, demo + ['--gpus', '0']).gpus == '0'


@pytest.mark.parametrize('program', ['eval', 'demo'])
def test_a_key_no_program_has_is_an_error_naming_it_and_the_file(program, tmp_path, capsys):
    cfg = str(tmp_path / 'recipe.json')
    with open(cfg, 'w') as f:  # lr, epochs: training only; images: demo only; all fine
        json.dump({'lr': 0.1, 'epochs': 3, 'images': ['x'], 'gpus': '', 'learning_rat': 0.1}, f)
    argv = ['--config', cfg, '--pretrained', _weights(str(tmp_path)), '--images', ROOT]
    with pytest.raises(SystemExit) as err:
        _parse('panoptic', program, 'panoptic_fpn', argv if program == 'demo' else argv[:4])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert 'learning_rat' in message and cfg in message
    assert "'lr'" not in message and "'images'" not in message


def test_the_runs_record_wins_over_the_recipe_for_the_model_and_its_data(tmp_path):
    """A recipe value that the training command line overrode: the run's args.json says what the
    run used."""
    recipe = os.path.join(ROOT, RECIPES[0][2])
    record = {'model': 'panoptic_fpn_resnet18_v1b_coco', 'network': 'resnet18_v1b',
              'dataset': 'synthetic_coco', 'dataset_root': 'data/coco_elsewhere',
              'synthetic_size': None, 'synthetic_train': None, 'synthetic_val': None,
              'model_kwargs': json.dumps(TINY_MODEL), 'stuff_area': 99, 'score_thresh': None,
              'overlap_thresh': None, 'gpus': '0'}
    params = _weights(str(tmp_path / 'run'), record)
    args = _parse('panoptic', 'eval', 'panoptic_fpn', ['--config', recipe, '--pretrained', params])
    for key in ('dataset', 'dataset_root', 'synthetic_size', 'synthetic_train', 'synthetic_val',
                'model_kwargs', 'stuff_area'):
        assert getattr(args, key) is None, key  # left to the run record (eval's main reads it)
    assert args.gpus == '' and args.network == 'resnet18_v1b'  # the recipe's: eval's own flags
    assert fusion_kwargs(args, record)['stuff_area_threshold'] == 99
    args = _parse('panoptic', 'eval', 'panoptic_fpn', ['--config', recipe, '--pretrained', params,
                                                       '--stuff-area', '5'])
    assert fusion_kwargs(args, record)['stuff_area_threshold'] == 5


@pytest.mark.slow
def test_a_model_trained_with_a_recipe_is_evaluated_with_the_recipe_alone(synthetic_citys,
                                                                         tmp_path):
    save_dir = str(tmp_path / 'run')
    recipe = {'dataset': 'synthetic', 'dataset_root': synthetic_citys, 'synthetic_size': '128x256',
              'synthetic_train': 3, 'synthetic_val': 2, 'network': 'resnet18_v1b',
              'norm_layer': 'bn', 'gpus': '', 'num_workers': 0, 'batch_size': 1, 'epochs': 1,
              'lr': 0.01, 'lr_warmup': 2, 'crop_size': '64x128', 'scale_range': '0.5,0.5',
              'stuff_area': 16, 'model_kwargs': TINY_MODEL, 'val_interval': 0,
              'save_dir': save_dir}
    cfg = str(tmp_path / 'recipe.json')
    with open(cfg, 'w') as f:
        json.dump(recipe, f)
    load_script('panoptic', 'train_panoptic_fpn').main(['--config', cfg])
    params = os.path.join(save_dir, 'panoptic_fpn_resnet18_v1b_citys-final.params')
    res = load_script('panoptic', 'eval_panoptic_fpn').main(['--config', cfg, '--pretrained',
                                                             params])
    assert res['num_images'] == 2
    assert os.path.isfile(os.path.join(save_dir, 'eval_val', 'pq.json'))
    image = sorted(glob.glob(os.path.join(synthetic_citys, 'leftImg8bit', 'val', '*', '*.png')))[0]
    stems = load_script('panoptic', 'demo_panoptic_fpn').main(
        ['--config', cfg, '--pretrained', params, '--images', image, '--out-dir',
         str(tmp_path / 'demo')])
    assert len(stems) == 1 and os.path.isfile(stems[0] + '_overlay.png')
