# Copyright (c) mmssl contributors. All rights reserved.
"""Code-running checkpoints against every way mmssl loads a checkpoint.

A payload is a checkpoint whose unpickling calls ``builtins.exec`` to
write a marker file. Four formats:

* ``zip``: ``torch.save`` of the payload (the default format);
* ``legacy``: the same with ``_use_new_zipfile_serialization=False``;
* ``getattr``: a legacy-format checkpoint whose first pickle (the magic
  number) names ``builtins.getattr`` before the payload, then a real
  checkpoint: the file that used to make mmssl's loader retry with full
  unpickling (the marker was written and the checkpoint loaded);
* ``in-checkpoint``: a real runner checkpoint (``state_dict`` + ``meta``)
  with the payload as one ``meta`` value.

Every entry point must refuse each payload with a message naming the file
("Refusing to load checkpoint ..."), and the marker must never appear. The
payloads themselves are checked to work: full unpickling writes the marker.
"""
import functools
import http.server
import io
import json
import os
import os.path as osp
import pickle
import struct
import subprocess
import sys
import threading
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHON = sys.executable
FORMATS = ('zip', 'legacy', 'getattr', 'in-checkpoint')
REFUSAL = 'Refusing to load checkpoint'

TINY_VIT = dict(
    type='mmpretrain.VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=8)


class _WriteMarker:
    """Unpickling this writes ``marker`` (what an attacker's code would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("ran")', ))


def _checkpoint_body():
    """A small runner-style checkpoint."""
    return dict(
        state_dict=OrderedDict(weight=torch.ones(2, 2)),
        meta=dict(epoch=1, iter=4, seed=0))


def _write_getattr_legacy(path, marker):
    """Legacy format whose magic-number pickle is
    ``getattr, exec('<write marker>'), MAGIC_NUMBER``, followed by a real
    checkpoint. Weights-only torch refuses it at ``builtins.getattr`` (which
    made mmssl retry with a full unpickler); full unpickling runs the code
    and returns the magic number, so the rest loads as a normal
    checkpoint."""
    buf = io.BytesIO()
    torch.save(_checkpoint_body(), buf, _use_new_zipfile_serialization=False)
    legit = buf.getvalue()
    magic = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
    assert legit.startswith(magic)
    code = f'open({str(marker)!r}, "w").write("ran")'.encode()
    head = b''.join([
        b'\x80\x02',  # PROTO 2
        b'c__builtin__\ngetattr\n',  # GLOBAL builtins.getattr
        b'c__builtin__\nexec\n',  # GLOBAL builtins.exec
        b'X' + struct.pack('<I', len(code)) + code,  # BINUNICODE code
        b'\x85R',  # TUPLE1, REDUCE: exec(code)
        magic[2:],  # LONG1 MAGIC_NUMBER, STOP (returns the magic number)
    ])
    with open(path, 'wb') as f:
        f.write(head + legit[len(magic):])


def write_payload(fmt, path, marker):
    path = str(path)
    if fmt == 'zip':
        torch.save(_WriteMarker(marker), path)
    elif fmt == 'legacy':
        torch.save(
            _WriteMarker(marker), path, _use_new_zipfile_serialization=False)
    elif fmt == 'getattr':
        _write_getattr_legacy(path, marker)
    elif fmt == 'in-checkpoint':
        body = _checkpoint_body()
        body['meta']['hook_state'] = _WriteMarker(marker)
        torch.save(body, path)
    else:
        raise ValueError(fmt)
    return path


@pytest.fixture
def payload(tmp_path, request):
    """``(path, marker)`` of the payload of format ``request.param``."""
    marker = tmp_path / 'marker'
    path = write_payload(request.param, tmp_path / f'{request.param}.pth',
                         marker)
    yield path, marker
    assert not marker.exists(), 'the payload ran'


# ------------------------------------------------------------- controls
@pytest.mark.parametrize('fmt', FORMATS)
def test_payloads_run_when_fully_unpickled(tmp_path, fmt):
    """The payloads work: plain full unpickling writes the marker (so the
    refusals below are not vacuous); plain weights-only torch refuses."""
    marker = tmp_path / 'marker'
    path = write_payload(fmt, tmp_path / 'p.pth', marker)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()
    out = torch.load(path, weights_only=False)
    assert marker.read_text() == 'ran'
    if fmt in ('getattr', 'in-checkpoint'):  # a working checkpoint too
        assert torch.equal(out['state_dict']['weight'], torch.ones(2, 2))


# --------------------------------------------------- in-process loaders
def _runner(path, work_dir, resume):
    from mmengine.runner import Runner
    return Runner(
        model=dict(type='mmpretrain.ImageClassifier', backbone=TINY_VIT),
        work_dir=str(work_dir),
        experiment_name=f'payload_{osp.basename(osp.dirname(work_dir))}',
        load_from=path,
        resume=resume,
        default_scope='mmpretrain',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')


def _safe_torch_load(path, tmp_path):
    from mmssl.utils import safe_torch_load
    safe_torch_load(path)


def _mmengine_load_checkpoint_private(path, tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    _load_checkpoint(path, map_location='cpu')


def _mmengine_load_checkpoint(path, tmp_path):
    from mmengine.runner import load_checkpoint
    load_checkpoint(nn.Linear(2, 2), path, map_location='cpu')


def _pretrained_init_cfg(path, tmp_path):
    from mmpretrain.registry import MODELS
    model = MODELS.build(
        dict(TINY_VIT, init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()


def _runner_load_from(path, tmp_path):
    _runner(path, tmp_path / 'work', resume=False).load_or_resume()


def _runner_resume(path, tmp_path):
    _runner(path, tmp_path / 'work', resume=True).load_or_resume()


def _mmdet_init_detector(path, tmp_path):
    from mmdet.apis import init_detector
    from mmengine.config import Config
    cfg = Config(
        dict(
            default_scope='mmdet',
            model=dict(
                type='mmpretrain.ImageClassifier',
                backbone=TINY_VIT,
                data_preprocessor=dict(
                    type='mmpretrain.ClsDataPreprocessor'))))
    init_detector(cfg, path, device='cpu')


def _clip_loader(path, tmp_path):
    from mmssl.models.clip import build_clip, load_clip_checkpoint
    load_clip_checkpoint(build_clip('tiny-rn'), path)


def _subpt_subspace_file(path, tmp_path):
    from mmssl.engine.hooks.subpt_hook import SubPTHook
    SubPTHook(subspace_file=path).before_train(runner=None)


ENTRY_POINTS = {
    'safe_torch_load': _safe_torch_load,
    'mmengine._load_checkpoint': _mmengine_load_checkpoint_private,
    'mmengine.load_checkpoint': _mmengine_load_checkpoint,
    'init_cfg=Pretrained': _pretrained_init_cfg,
    'Runner(load_from)': _runner_load_from,
    'Runner(resume=True)': _runner_resume,
    'mmdet.init_detector': _mmdet_init_detector,
    'load_clip_checkpoint': _clip_loader,
    'SubPTHook(subspace_file)': _subpt_subspace_file,
}


@pytest.mark.parametrize('payload', FORMATS, indirect=True)
@pytest.mark.parametrize('entry', list(ENTRY_POINTS))
def test_entry_point_refuses_payload(entry, payload, tmp_path):
    from mmssl.utils import UnsafeCheckpointError
    path, marker = payload
    with pytest.raises(UnsafeCheckpointError) as err:
        ENTRY_POINTS[entry](path, tmp_path)
    msg = str(err.value)
    assert REFUSAL in msg and path in msg
    assert 'builtins.exec' in msg
    assert not marker.exists()


@pytest.mark.parametrize('payload', ['getattr'], indirect=True)
def test_environment_cannot_switch_weights_only_off(payload, monkeypatch):
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` only changes calls that leave
    ``weights_only`` unset; mmssl always sets it."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmssl.utils import UnsafeCheckpointError
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    path, marker = payload
    with pytest.raises(UnsafeCheckpointError, match=REFUSAL):
        _load_checkpoint(path, map_location='cpu')


# ---------------------------------------------------------------- URLs
class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """``(folder, base URL)`` of a file server on 127.0.0.1."""
    root = tmp_path_factory.mktemp('served')
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


class _Bytes:
    """A stand-in for an ``s3://`` file backend."""

    def __init__(self, path):
        self.path = path

    def get(self, filepath):
        with open(self.path, 'rb') as f:
            return f.read()


SCHEMES = ('http', 'torchvision', 'open-mmlab', 'open-mmlab-local', 'mmcls',
           's3')


def _address(scheme, served_file, url, tmp_path, monkeypatch):
    """The checkpoint address of ``scheme`` that resolves to the file."""
    from mmengine.runner import checkpoint as ckpt_mod
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    home = tmp_path / 'mmengine_home'
    home.mkdir(exist_ok=True)
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    if scheme == 'http':
        return url
    if scheme == 'torchvision':
        monkeypatch.setattr(ckpt_mod, 'get_torchvision_models',
                            lambda: {'tiny': url})
        return 'torchvision://tiny'
    if scheme == 'mmcls':
        monkeypatch.setattr(ckpt_mod, 'get_mmcls_models',
                            lambda: {'tiny': url})
        return 'mmcls://tiny'
    if scheme == 'open-mmlab':
        (home / 'open_mmlab.json').write_text(json.dumps({'tiny': url}))
        return 'open-mmlab://tiny'
    if scheme == 'open-mmlab-local':
        local = home / osp.basename(served_file)
        local.write_bytes(open(served_file, 'rb').read())
        (home / 'open_mmlab.json').write_text(json.dumps({'tiny': local.name}))
        return 'open-mmlab://tiny'
    if scheme == 's3':
        monkeypatch.setattr('mmengine.fileio.get_file_backend',
                            lambda *args, **kwargs: _Bytes(served_file))
        return f's3://bucket/{osp.basename(served_file)}'
    raise ValueError(scheme)


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('scheme', SCHEMES)
def test_url_schemes_refuse_payload(scheme, fmt, server, tmp_path,
                                    monkeypatch):
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmssl.utils import UnsafeCheckpointError
    root, base = server
    name = f'{scheme}-{fmt}.pth'
    marker = tmp_path / 'marker'
    served = write_payload(fmt, root / name, marker)
    address = _address(scheme, served, f'{base}/{name}', tmp_path, monkeypatch)
    with pytest.raises(UnsafeCheckpointError) as err:
        _load_checkpoint(address, map_location='cpu')
    msg = str(err.value)
    assert REFUSAL in msg and name in msg and 'builtins.exec' in msg
    if scheme in ('http', 'torchvision', 'open-mmlab', 'mmcls'):
        # downloaded to torch's cache, as mmengine does
        cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / name
        assert cached.is_file() and str(cached) in msg
    assert not marker.exists()


@pytest.mark.parametrize('scheme', SCHEMES)
def test_url_schemes_load_good_checkpoints(scheme, server, tmp_path,
                                           monkeypatch):
    from mmengine.runner.checkpoint import _load_checkpoint
    root, base = server
    name = f'{scheme}-good.pth'
    torch.save(
        dict(
            state_dict=OrderedDict([('backbone.w', torch.arange(3.)),
                                    ('head.b', torch.ones(1))]),
            meta=dict(epoch=2)), root / name)
    address = _address(scheme, str(root / name), f'{base}/{name}', tmp_path,
                       monkeypatch)
    out = _load_checkpoint(address, map_location='cpu')
    if scheme == 'mmcls':  # mmengine's key processing is kept
        assert list(out['state_dict']) == ['w']
    else:
        assert out['meta'] == dict(epoch=2)
        assert torch.equal(out['state_dict']['backbone.w'], torch.arange(3.))
    # a second load reads the cache (the server may be gone)
    if scheme == 'http':
        os.remove(root / name)
        assert _load_checkpoint(address)['meta'] == dict(epoch=2)


def test_every_scheme_has_a_safe_loader():
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmssl.utils import checkpoint_schemes as safe
    loaders = CheckpointLoader._schemes
    assert {
        '', 'http://', 'https://', 'torchvision://', 'modelzoo://',
        'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://'
    } <= set(loaders)
    for prefix, fn in loaders.items():
        assert fn.__module__ == safe.__name__, (prefix, fn)
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.utils import dl_utils
    assert ckpt_mod.load_url is safe.load_url
    assert dl_utils.load_url is safe.load_url
    assert ckpt_mod.load_from_http is safe.load_from_http


# --------------------------------------------------------------- tools
CONFIG = '''
default_scope = 'mmpretrain'
model = {model!r}
_images = dict(
    type='mmpretrain.CustomDataset',
    data_root={data!r},
    with_label=False,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=32, backend='pillow'),
        dict(type='PackInputs'),
    ])
_loader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_images)
train_dataloader = _loader
test_dataloader = _loader
test_evaluator = dict(type='Accuracy')
test_cfg = dict()
frozen_eval = dict(train_dataloader=_loader, val_dataloader=_loader)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
log_level = 'WARNING'
'''


@pytest.fixture(scope='module')
def tool_config(tmp_path_factory):
    """A tiny MAE config with train, test and frozen-eval data."""
    from mmssl.testing import tiny_mae_cfg, write_random_images
    root = tmp_path_factory.mktemp('tool_cfg')
    data = root / 'images'
    data.mkdir()
    write_random_images(str(data), num=4, size=32)
    path = root / 'tiny_mae.py'
    path.write_text(
        CONFIG.format(model=tiny_mae_cfg(scope='mmpretrain'), data=str(data)))
    return str(path)


# argv of each tool ({cfg}: config, {ckpt}: the payload, {out}: an output)
TOOLS = {
    'test.py': ('tools/test.py', '{cfg}', '{ckpt}'),
    'train.py --resume':
    ('tools/train.py', '{cfg}', '--resume', '{ckpt}', '--work-dir', '{out}'),
    'eval_frozen.py': ('tools/analysis_tools/eval_frozen.py', '{cfg}',
                       '{ckpt}', '--protocols', 'knn'),
    'convert_backbone.py':
    ('tools/model_converters/convert_backbone.py', '{ckpt}', '{out}.pth'),
    'extract_backbone.py':
    ('tools/model_converters/extract_backbone.py', '{ckpt}', '{out}.pth'),
    'mae_official_to_mmssl.py':
    ('tools/model_converters/mae_official_to_mmssl.py', '{ckpt}', '{out}.pth'),
}


@pytest.mark.parametrize('payload', ['getattr'], indirect=True)
@pytest.mark.parametrize('tool', list(TOOLS))
def test_tool_refuses_payload(tool, payload, tool_config, tmp_path):
    """The legacy getattr payload (the one that used to run) per tool."""
    path, marker = payload
    out = str(tmp_path / 'out')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    argv = [a.format(cfg=tool_config, ckpt=path, out=out) for a in TOOLS[tool]]
    proc = subprocess.run([PYTHON, *argv],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert REFUSAL in output and path in output, output
    assert not marker.exists()
    assert not osp.exists(out + '.pth')
