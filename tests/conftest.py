"""Shared fixtures: small synthetic datasets in the real on-disk formats (generated once per run)."""
import os
import shutil

import pytest

from gluonpan.data.synthetic import ensure_cityscapes, ensure_coco_panoptic

SIZE = dict(height=128, width=256)


@pytest.fixture(autouse=True)
def offline_model_store(monkeypatch):
    """No test reaches the internet: a download of weights goes to a refused local port (tests of
    the download itself serve files from 127.0.0.1 and set their own URL)."""
    monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:9/')


@pytest.fixture(scope='session')
def synthetic_citys(tmp_path_factory):
    """A read-only synthetic Cityscapes root (3 train, 2 val images of 128x256)."""
    root = str(tmp_path_factory.mktemp('citys'))
    ensure_cityscapes(root, splits=(('train', 3), ('val', 2)), **SIZE)
    return root


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory):
    """A read-only synthetic COCO panoptic root (2 train, 2 val images of 128x256)."""
    root = str(tmp_path_factory.mktemp('coco'))
    ensure_coco_panoptic(root, splits=(('train', 2), ('val', 2)), **SIZE)
    return root


@pytest.fixture
def citys_copy(synthetic_citys, tmp_path):
    """A writable copy of the synthetic Cityscapes root, for tests that break files."""
    dst = os.path.join(str(tmp_path), 'citys')
    shutil.copytree(synthetic_citys, dst)
    return dst
