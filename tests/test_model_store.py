"""Model store: downloads through gluoncv's own store, and errors that say what to do.

Every test points MXNET_GLUON_REPO at 127.0.0.1 (a tiny HTTP server in a thread, or a port that
refuses connections), so nothing here leaves the machine and nothing waits on a network timeout.
"""
import hashlib
import http.server
import io
import os
import socket
import threading
import time
import zipfile

import mxnet as mx
import pytest

from gluonpan.errors import DataError, InputError, MissingFileError, UsageError
from gluonpan.model_zoo import model_store

BACKBONE = 'resnet18_v1b'  # a real gluoncv name; its sha1 is replaced by the fake file's


class Repo(object):
    """HTTP server on 127.0.0.1 serving ``files`` (URL path -> bytes); ``hits`` lists the GETs."""

    def __init__(self):
        self.files, self.hits = {}, []
        repo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                repo.hits.append(self.path)
                body = repo.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header('Content-Length', str(len(body or b'')))
                self.end_headers()
                try:
                    self.wfile.write(body or b'')
                except (BrokenPipeError, ConnectionResetError):  # a client that only wanted headers
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:{}/'.format(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()

    def serve_zip(self, stem, members):
        """Serve ``gluon/models/{stem}.zip`` holding ``members`` (name -> bytes)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w') as zf:
            for member, data in members.items():
                zf.writestr(member, data)
        self.files['/gluon/models/{}.zip'.format(stem)] = buf.getvalue()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def repo(monkeypatch):
    server = Repo()
    monkeypatch.setenv('MXNET_GLUON_REPO', server.url)
    yield server
    server.close()


@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 whose port is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    yield 'http://127.0.0.1:{}/'.format(sock.getsockname()[1])
    sock.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'home'))
    return tmp_path / 'home' / 'models'


@pytest.fixture(scope='module')
def fake_params(tmp_path_factory):
    """A small real ``.params`` file (bytes) and its sha1."""
    path = str(tmp_path_factory.mktemp('fake') / 'fake.params')
    mx.nd.save(path, {'arg:conv1.weight': mx.nd.arange(12).reshape((2, 2, 3))})
    with open(path, 'rb') as f:
        data = f.read()
    return data, hashlib.sha1(data).hexdigest()


def served_backbone(repo, fake_params, monkeypatch, members=None):
    """Register the fake file as gluoncv's resnet18_v1b and serve it; return its path stem."""
    data, sha1 = fake_params
    monkeypatch.setitem(model_store.GLUONCV_SHA1, BACKBONE, sha1)
    stem = '{}-{}'.format(BACKBONE, sha1[:8])
    repo.serve_zip(stem, members if members is not None else {stem + '.params': data})
    return stem


def test_download_lands_in_mxnet_home_once(repo, home, fake_params, monkeypatch):
    stem = served_backbone(repo, fake_params, monkeypatch)
    path = model_store.get_backbone_file(BACKBONE)
    assert path == str(home / (stem + '.params'))
    with open(path, 'rb') as f:
        assert f.read() == fake_params[0]
    assert mx.nd.load(path)['arg:conv1.weight'].shape == (2, 2, 3)
    assert not (home / (stem + '.zip')).exists()
    downloads = list(repo.hits)
    assert downloads and set(downloads) == {'/gluon/models/{}.zip'.format(stem)}
    assert model_store.get_backbone_file(BACKBONE) == path  # cached: no request at all
    assert repo.hits == downloads


def test_explicit_root_wins_over_mxnet_home(repo, home, fake_params, monkeypatch, tmp_path):
    stem = served_backbone(repo, fake_params, monkeypatch)
    root = tmp_path / 'mine'
    path = model_store.get_backbone_file(BACKBONE, root=str(root))
    assert path == str(root / (stem + '.params')) and os.path.isfile(path)
    assert not (home / (stem + '.params')).exists()
    assert os.environ['MXNET_HOME'] == str(home.parent)  # restored after the download


def test_released_weights_use_the_same_repository(repo, home, fake_params, monkeypatch):
    name = 'panoptic_fpn_resnet18_v1b_citys'
    data, sha1 = fake_params
    with pytest.raises(ValueError, match='no pretrained weights'):
        model_store.get_model_file(name)
    monkeypatch.setitem(model_store.MODEL_SHA1, name, sha1)
    stem = '{}-{}'.format(name, sha1[:8])
    repo.serve_zip(stem, {stem + '.params': data})
    assert model_store.get_model_file(name) == str(home / (stem + '.params'))
    assert set(repo.hits) == {'/gluon/models/{}.zip'.format(stem)}
    assert name not in model_store.GLUONCV_SHA1  # gluoncv's table is left as it was


def test_offline_error_names_file_url_and_where_to_put_it(refused_url, home, monkeypatch):
    monkeypatch.setenv('MXNET_GLUON_REPO', refused_url.rstrip('/'))  # gluoncv adds the slash
    sha1 = model_store.GLUONCV_SHA1[BACKBONE]
    file_name = '{}-{}.params'.format(BACKBONE, sha1[:8])
    start = time.time()
    with pytest.raises(MissingFileError) as err:
        model_store.get_backbone_file(BACKBONE)
    assert time.time() - start < 5
    message = str(err.value)
    assert isinstance(err.value, (InputError, FileNotFoundError))
    assert '\n' not in message
    assert file_name in message
    assert '{}gluon/models/{}.zip'.format(refused_url, file_name[:-len('.params')]) in message
    assert 'at {} '.format(home / file_name) in message
    assert 'Connection refused' in message
    assert 'MXNET_HOME' in message and 'MXNET_GLUON_REPO' in message and sha1 in message
    assert not home.exists()  # a failed attempt leaves nothing behind


def test_offline_error_with_an_explicit_root(refused_url, tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_GLUON_REPO', refused_url)
    monkeypatch.delenv('MXNET_HOME', raising=False)
    with pytest.raises(MissingFileError) as err:
        model_store.get_backbone_file(BACKBONE, root=str(tmp_path))
    sha1 = model_store.GLUONCV_SHA1[BACKBONE]
    assert str(tmp_path / '{}-{}.params'.format(BACKBONE, sha1[:8])) in str(err.value)
    assert 'pass a root' in str(err.value)


def test_http_error(repo, home, fake_params, monkeypatch):
    data, sha1 = fake_params
    monkeypatch.setitem(model_store.GLUONCV_SHA1, BACKBONE, sha1)  # nothing served
    with pytest.raises(MissingFileError, match='HTTP 404') as err:
        model_store.get_backbone_file(BACKBONE)
    assert repo.url + 'gluon/models/' in str(err.value)


def test_bad_sha1_after_download_is_removed(repo, home, fake_params, monkeypatch):
    stem = served_backbone(repo, fake_params, monkeypatch)
    wrong = b'another version of the weights'
    repo.serve_zip(stem, {stem + '.params': wrong})
    with pytest.raises(MissingFileError) as err:
        model_store.get_backbone_file(BACKBONE)
    assert hashlib.sha1(wrong).hexdigest() in str(err.value)
    assert fake_params[1] in str(err.value)
    assert not (home / (stem + '.params')).exists()  # the next call downloads again


def test_not_a_zip(repo, home, fake_params, monkeypatch):
    stem = served_backbone(repo, fake_params, monkeypatch)
    repo.files['/gluon/models/{}.zip'.format(stem)] = b'<html>captive portal</html>'
    with pytest.raises(MissingFileError, match='not a zip'):
        model_store.get_backbone_file(BACKBONE)
    assert sorted(os.listdir(home)) == [stem + '.lock']  # gluoncv's lock file only, no .zip


def test_cached_file_with_wrong_sha1_is_not_replaced(repo, home, fake_params, monkeypatch):
    stem = served_backbone(repo, fake_params, monkeypatch)
    home.mkdir(parents=True)
    cached = home / (stem + '.params')
    cached.write_bytes(b'corrupt')
    with pytest.raises(DataError) as err:
        model_store.get_backbone_file(BACKBONE)
    message = str(err.value)
    assert str(cached) in message and fake_params[1] in message
    assert hashlib.sha1(b'corrupt').hexdigest() in message and 'delete it' in message
    assert repo.hits == [] and cached.read_bytes() == b'corrupt'


def test_a_silent_server_times_out(home, monkeypatch):
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(('127.0.0.1', 0))
    silent.listen(1)  # the kernel completes the connection; nobody ever answers
    try:
        monkeypatch.setenv('MXNET_GLUON_REPO', 'http://127.0.0.1:{}/'.format(
            silent.getsockname()[1]))
        monkeypatch.setenv(model_store.TIMEOUT_ENV, '0.3')
        start = time.time()
        with pytest.raises(MissingFileError, match='no answer within 0.3 s'):
            model_store.get_backbone_file(BACKBONE)
        assert time.time() - start < 3
    finally:
        silent.close()


@pytest.mark.parametrize('variable, value', [('MXNET_GLUON_REPO', ''),
                                             (model_store.TIMEOUT_ENV, 'soon')])
def test_bad_settings(home, refused_url, monkeypatch, variable, value):
    monkeypatch.setenv('MXNET_GLUON_REPO', refused_url)  # never the real repository
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError, match=variable):
        model_store.get_backbone_file(BACKBONE)
