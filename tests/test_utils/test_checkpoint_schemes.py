# Copyright (c) mmssl contributors. All rights reserved.
"""``load_url``: the torch.hub cache, its single-file zips and its
arguments (the URL schemes themselves are tested with a file server in
``test_checkpoint_payloads.py``)."""
import os
import os.path as osp
import zipfile

import pytest
import torch

from mmssl.utils import CheckpointFileError
from mmssl.utils.checkpoint_schemes import load_url

URL = 'https://download.example.org/models/tiny_20240101.zip'


def _zip_of_legacy_checkpoint(path, member):
    """A zip holding one checkpoint in the legacy (pre-1.6) format, as
    torch.hub accepts them."""
    legacy = osp.join(osp.dirname(path), 'legacy.pth')
    torch.save({'w': torch.arange(3.)},
               legacy,
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path, 'w') as zf:
        zf.write(legacy, member)
    os.remove(legacy)


def test_single_file_zip_is_extracted_and_loaded(tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    _zip_of_legacy_checkpoint(str(cache / osp.basename(URL)), 'tiny.pth')
    out = load_url(URL, model_dir=str(cache))  # cached: no download
    assert torch.equal(out['w'], torch.arange(3.))
    assert (cache / 'tiny.pth').is_file()


@pytest.mark.parametrize('member', ['sub/tiny.pth', '../tiny.pth'])
def test_single_file_zip_with_a_path_is_refused(tmp_path, member):
    """Only a plain file name is extracted into the cache folder."""
    cache = tmp_path / 'cache'
    cache.mkdir()
    _zip_of_legacy_checkpoint(str(cache / osp.basename(URL)), member)
    with pytest.raises(CheckpointFileError) as err:
        load_url(URL, model_dir=str(cache))
    msg = str(err.value)
    assert f'only member {member!r} is not a plain file name' in msg
    assert URL in msg
    assert sorted(os.listdir(cache)) == [osp.basename(URL)]
    assert not (tmp_path / 'tiny.pth').exists()


@pytest.mark.parametrize('kwargs,progress,hash_prefix', [
    ({}, True, None),
    (dict(progress=False), False, None),
    (dict(check_hash=True), True, '20240101'),
])
def test_download_arguments(tmp_path, monkeypatch, kwargs, progress,
                            hash_prefix):
    """Downloaded into ``<TORCH_HOME>/hub/checkpoints`` with torch.hub's
    defaults: a progress bar, and the hash prefix of the file name when
    ``check_hash``."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    calls = []

    def download(url, dst, prefix, progress=True):
        calls.append((url, dst, prefix, progress))
        torch.save({'w': torch.ones(2)}, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    url = URL.replace('.zip', '-20240101.pth')
    out = load_url(url, **kwargs)
    cached = str(tmp_path / 'torch_home' / 'hub' / 'checkpoints' /
                 osp.basename(url))
    assert calls == [(url, cached, hash_prefix, progress)]
    assert torch.equal(out['w'], torch.ones(2))
    load_url(url, **kwargs)  # read from the cache
    assert len(calls) == 1


# --------------------------------------------------------------- schemes
@pytest.mark.parametrize('rank', [0, 1])
def test_http_rank_0_downloads_first(monkeypatch, rank):
    """In a 2-process job rank 0 loads (downloads) before the barrier and
    the other ranks after it, from the cache."""
    from mmssl.utils import checkpoint_schemes as schemes
    events = []
    monkeypatch.setattr('mmengine.dist.get_dist_info', lambda: (rank, 2))
    monkeypatch.setattr(torch.distributed, 'barrier',
                        lambda: events.append('barrier'))

    def fake_load_url(url, model_dir=None, map_location=None, progress=True):
        events.append(('load', url, model_dir, progress))
        return {'rank': rank}

    monkeypatch.setattr(schemes, 'load_url', fake_load_url)
    out = schemes.load_from_http(URL, model_dir='hub', progress=False)
    assert out == {'rank': rank}
    load = ('load', URL, 'hub', False)
    assert events == ([load, 'barrier'] if rank == 0 else ['barrier', load])


@pytest.mark.parametrize('address,name', [
    ('torchvision://resnet18', 'resnet18'),
    ('modelzoo://resnet18', 'resnet18'),
    ('open-mmlab://tiny', 'tiny'),
    ('openmmlab://tiny', 'tiny'),
    ('open-mmlab://old_tiny', 'tiny'),
])
def test_model_name_schemes(monkeypatch, address, name):
    """``torchvision://`` (and the deprecated ``modelzoo://``) and
    ``open-mmlab://`` (and ``openmmlab://``, and deprecated names) resolve
    the name through mmengine's maps."""
    from mmengine.runner import checkpoint as ckpt_mod

    from mmssl.utils import checkpoint_schemes as schemes
    urls = {'resnet18': 'https://r18.pth', 'tiny': 'https://tiny.pth'}
    monkeypatch.setattr(ckpt_mod, 'get_torchvision_models', lambda: urls)
    monkeypatch.setattr(ckpt_mod, 'get_external_models', lambda: urls)
    monkeypatch.setattr(ckpt_mod, 'get_deprecated_model_names',
                        lambda: {'old_tiny': 'tiny'})
    monkeypatch.setattr(
        schemes, 'load_from_http', lambda url, map_location=None: url)
    assert ckpt_mod.CheckpointLoader.load_checkpoint(address) == urls[name]


def test_pavi_scheme(tmp_path, monkeypatch):
    """``pavi://NAME`` asks modelcloud for NAME, downloads it to a
    temporary folder and loads it safely."""
    import sys
    import types

    from mmssl.utils import checkpoint_schemes as schemes
    asked = []

    class Model:
        name = 'tiny.pth'

        def download(self, path):
            torch.save({'w': torch.ones(1)}, path)

    def get(name):
        asked.append(name)
        return Model()

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=get)
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    out = schemes.load_from_pavi('pavi://project/tiny')
    assert asked == ['project/tiny']
    assert torch.equal(out['w'], torch.ones(1))


@pytest.mark.parametrize('name', ['tiny.safetensors', ''])
def test_ceph_keeps_the_file_name(tmp_path, monkeypatch, name):
    """An ``s3://`` file is copied under its own name (a ``.safetensors``
    file is read as one), or as ``checkpoint`` when the URI has none."""
    import safetensors.torch

    from mmssl.utils import checkpoint_schemes as schemes
    local = str(tmp_path / 'tiny.safetensors')
    safetensors.torch.save_file({'w': torch.arange(2.)}, local)
    if not name:
        torch.save({'w': torch.arange(2.)}, local)

    class Backend:

        def get(self, filepath):
            with open(local, 'rb') as f:
                return f.read()

    monkeypatch.setattr('mmengine.fileio.get_file_backend',
                        lambda *args, **kwargs: Backend())
    out = schemes.load_from_ceph(f's3://bucket/{name}')
    assert torch.equal(out['w'], torch.arange(2.))


def test_foreign_scheme_is_refused(monkeypatch):
    """A scheme registered by another package has no safe loader: after
    installing, loading from it names the scheme and the fix."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmssl.utils.checkpoint_schemes import install_safe_loaders
    monkeypatch.setattr(CheckpointLoader, '_schemes',
                        dict(CheckpointLoader._schemes))
    CheckpointLoader.register_scheme(
        prefixes='foo://', loader=lambda filename, map_location=None: 'run')
    install_safe_loaders()
    with pytest.raises(CheckpointFileError) as err:
        CheckpointLoader.load_checkpoint('foo://weights.pth')
    assert "no safe loader for the 'foo://' scheme" in str(err.value)
    assert 'local path' in str(err.value)
