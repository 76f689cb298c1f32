# Copyright (c) mmssl contributors. All rights reserved.
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from mmssl.utils import (CheckpointFileError, UnsafeCheckpointError,
                         atomic_save_checkpoint, safe_torch_load)
from mmssl.utils.checkpoint import checkpoint_format


class _Evil:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_mmengine_style_checkpoint_loads_weights_only(tmp_path):
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(np.float64(2.0))
    ckpt = dict(
        state_dict=dict(w=torch.ones(2)),
        meta=dict(
            message_hub=dict(log_scalars={'train/loss': buf}),
            seed=3,
            dataset_meta=dict(classes=('a', 'b'))),
        arr=np.arange(3))
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    # plain torch.load (weights-only by default on torch >= 2.6) now works
    out = torch.load(path, weights_only=True)
    assert isinstance(out['meta']['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    # and so does mmengine's loader (which is what --resume uses)
    out = _load_checkpoint(path, map_location='cpu')
    assert out['meta']['message_hub']['log_scalars']['train/loss'].current(
    ) == 2.0
    assert np.array_equal(out['arr'], np.arange(3))


def test_code_running_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Evil(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        _load_checkpoint(path, map_location='cpu')
    msg = str(err.value)
    assert path in msg and 'system' in msg and 'allow-list' in msg
    assert not marker.exists()


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


def test_atomic_save_keeps_old_file_on_crash(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'w': torch.zeros(3)}, path)  # patched by mmssl
    assert torch.equal(torch.load(path)['w'], torch.zeros(3))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_checkpoint({'w': torch.ones(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)['w'], torch.zeros(3))
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_runner_uses_atomic_save():
    from mmengine.runner import checkpoint as ckpt_mod
    from mmengine.runner import runner as runner_mod
    assert runner_mod.save_checkpoint is ckpt_mod.save_checkpoint
    assert 'atomic' in runner_mod.save_checkpoint.__doc__.lower()


def test_plain_mmengine_history_buffer_pickle_loads(tmp_path, monkeypatch):
    """Checkpoints written without mmssl pickle getattr(HistoryBuffer, ..)."""
    from mmengine.logging.history_buffer import HistoryBuffer as HB
    buf = HB()
    buf.update(3.0)
    buf._statistics_methods = {'min': HB.min, 'mean': HB.mean}
    # save the way an unpatched mmengine would
    monkeypatch.delattr(HB, '__getstate__')
    monkeypatch.delattr(HB, '__setstate__')
    path = str(tmp_path / 'legacy.pth')
    torch.save({'meta': {'buf': buf}}, path)
    monkeypatch.undo()
    assert b'getattr' in open(path, 'rb').read()
    out = _load_checkpoint(path, map_location='cpu')
    assert out['meta']['buf'].current() == 3.0
    # mmssl-written buffers carry no getattr at all
    path2 = str(tmp_path / 'new.pth')
    torch.save({'buf': HB([1.0], [1])}, path2)
    assert b'getattr' not in open(path2, 'rb').read()
    assert torch.load(path2, weights_only=True)['buf'].mean() == 1.0


def test_restricted_getattr_refuses_other_attributes(tmp_path):

    class Sneaky:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'tofile'))

    path = str(tmp_path / 'sneaky.pth')
    torch.save({'x': Sneaky()}, path)
    with pytest.raises(UnsafeCheckpointError, match='tofile|getattr'):
        _load_checkpoint(path, map_location='cpu')


def _plain_mmengine_checkpoint(monkeypatch):
    """A checkpoint body as unpatched mmengine pickles it (getattr)."""
    from mmengine.logging.history_buffer import HistoryBuffer as HB
    buf = HB()
    buf.update(3.0)
    buf._statistics_methods = {'min': HB.min, 'mean': HB.mean}
    monkeypatch.delattr(HB, '__getstate__')
    monkeypatch.delattr(HB, '__setstate__')
    return {'state_dict': {'w': torch.ones(2)}, 'meta': {'buf': buf}}


def test_plain_mmengine_legacy_format_loads(tmp_path, monkeypatch):
    """getattr(HistoryBuffer, ...) is also read in the legacy format, by
    the weights-only path (there is no other)."""
    ckpt = _plain_mmengine_checkpoint(monkeypatch)
    path = str(tmp_path / 'legacy_format.pth')
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    monkeypatch.undo()
    out = _load_checkpoint(path, map_location='cpu')
    assert out['meta']['buf'].current() == 3.0
    assert torch.equal(out['state_dict']['w'], torch.ones(2))


def test_getattr_is_allowed_only_while_mmssl_loads(tmp_path, monkeypatch):
    """mmssl's restricted getattr is not left in torch's allow-list, and
    the weights-only unpickler is the only one torch.load is given."""
    ckpt = _plain_mmengine_checkpoint(monkeypatch)
    path = str(tmp_path / 'plain.pth')
    torch.save(ckpt, path)
    monkeypatch.undo()
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    assert _load_checkpoint(path)['meta']['buf'].mean() == 3.0
    assert calls == [dict(map_location=None, weights_only=True)]
    monkeypatch.undo()
    names = [
        g[1] if isinstance(g, tuple) else g
        for g in torch.serialization.get_safe_globals()
    ]
    assert 'builtins.getattr' not in names
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    'content,why',
    [
        (b'', 'the file is empty'),
        (b'model = dict(type="MAE")\n', 'it is a text file'),
        (b'\x00\x01binary junk', 'no torch checkpoint format'),
        # not ASCII: shown as bytes, not decoded
        ('été notes'.encode('utf-8'), "starts with the bytes b'\\xc3\\xa9t"),
    ])
def test_not_a_checkpoint(tmp_path, content, why):
    path = tmp_path / 'notes.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointFileError) as err:
        _load_checkpoint(str(path))
    msg = str(err.value)
    assert f"'{path}' is not a checkpoint" in msg and why in msg
    assert 'unsafe' not in msg.lower() and 'Refusing' not in msg


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_other_pickles_and_zips_are_not_checkpoints(tmp_path):
    path = tmp_path / 'plain.pkl'
    path.write_bytes(pickle.dumps({'a': 1}, protocol=2))
    with pytest.raises(CheckpointFileError, match='not one written by'):
        safe_torch_load(str(path))
    path.write_bytes(pickle.dumps({'a': 1}, protocol=4))
    with pytest.raises(CheckpointFileError, match='is not a checkpoint'):
        safe_torch_load(str(path))
    archive = tmp_path / 'images.zip'
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('a.txt', 'hi')
    with pytest.raises(CheckpointFileError, match='without the data.pkl'):
        safe_torch_load(str(archive))
    # data.pkl must be a record of the archive's one top folder
    for name in ('notes/readme.txt', '/data.pkl', 'a/b/data.pkl'):
        with zipfile.ZipFile(archive, 'w') as zf:
            zf.writestr(name, 'hi')
        with pytest.raises(CheckpointFileError, match='without the data.pkl'):
            safe_torch_load(str(archive))


@pytest.mark.parametrize('legacy', [False, True])
@pytest.mark.parametrize('keep', [0.5, 0.95, 0.01])
def test_truncated_checkpoint(tmp_path, legacy, keep):
    full = tmp_path / 'full.pth'
    torch.save(
        dict(state_dict={'w': torch.randn(2000)}, meta=dict(epoch=1)),
        full,
        _use_new_zipfile_serialization=not legacy)
    data = full.read_bytes()
    path = tmp_path / 'epoch_3.pth'
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointFileError) as err:
        _load_checkpoint(str(path))
    assert f"truncated checkpoint '{path}'" in str(err.value)


def test_torchscript_archive_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / 'scripted.pt')
    torch.jit.script(torch.nn.Linear(2, 2)).save(path)
    assert checkpoint_format(path) == 'torchscript'
    with pytest.raises(CheckpointFileError) as err:
        _load_checkpoint(path)
    assert 'TorchScript' in str(err.value) and path in str(err.value)
    assert 'load_torchscript_state_dict' in str(err.value)


def test_checkpoint_format(tmp_path):
    torch.save({'w': torch.ones(1)}, tmp_path / 'a.pth')
    torch.save({'w': torch.ones(1)},
               tmp_path / 'b.pth',
               _use_new_zipfile_serialization=False)
    assert checkpoint_format(str(tmp_path / 'a.pth')) == 'zip'
    assert checkpoint_format(str(tmp_path / 'b.pth')) == 'legacy'
    with pytest.raises(FileNotFoundError, match='c.pth'):
        checkpoint_format(str(tmp_path / 'c.pth'))


class _ScriptBlock(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=(2, 1))  # an int list
        self.scale = torch.ones(2)  # a tensor attribute, not a buffer

    def forward(self, x):
        return self.bn(self.fc(x)) * self.scale.sum()


class _ScriptNet(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(_ScriptBlock(), _ScriptBlock())
        self.proj = torch.nn.Parameter(torch.randn(3, 2).half())
        self.register_buffer('pos', torch.arange(5))
        self.heads = torch.nn.ModuleList(
            [torch.nn.Linear(2, 2),
             torch.nn.Linear(2, 2)])

    def forward(self, x):
        x = self.blocks(x) @ self.proj.float()
        for head in self.heads:
            x = head(x)
        return x


def test_torchscript_state_dict_matches_jit_load(tmp_path, monkeypatch):
    """The weights of a TorchScript archive, read without torch.jit.load,
    are exactly what jit.load(path).state_dict() gives (same keys, order,
    dtypes, values; plain tensor attributes are not in it)."""
    from mmssl.utils.torchscript_weights import load_torchscript_state_dict
    torch.manual_seed(0)
    net = _ScriptNet()
    net.blocks[0].bn.running_mean.fill_(0.5)
    path = str(tmp_path / 'net.pt')
    torch.jit.script(net).save(path)
    ref = torch.jit.load(path).state_dict()  # the test's own trusted file

    def no_jit(*args, **kwargs):
        raise AssertionError('torch.jit.load must not run')

    monkeypatch.setattr(torch.jit, 'load', no_jit)
    out = load_torchscript_state_dict(path)
    assert list(out) == list(ref)
    assert 'blocks.0.scale' not in out
    for key, value in ref.items():
        assert out[key].dtype == value.dtype, key
        assert torch.equal(out[key], value), key
        assert not out[key].requires_grad


def test_torchscript_reader_refuses_other_files(tmp_path):
    from mmssl.utils.torchscript_weights import load_torchscript_state_dict
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'w': torch.ones(1)}, path)
    with pytest.raises(CheckpointFileError, match='not a TorchScript'):
        load_torchscript_state_dict(path)


def test_history_buffer_getattr_answers_its_statistics_only():
    from mmssl.utils.checkpoint import _history_buffer_getattr
    for name in ('min', 'max', 'current', 'mean'):
        assert _history_buffer_getattr(HistoryBuffer,
                                       name) is getattr(HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, 'update'), (HistoryBuffer, '__init__'),
                      (np.ndarray, 'mean'), (os, 'system')):
        with pytest.raises(UnsafeCheckpointError, match=repr(name)):
            _history_buffer_getattr(obj, name)


def test_errors_name_the_source_of_a_cached_file(tmp_path):
    path = tmp_path / 'ckpt.pth'
    path.write_bytes(b'<html>Not Found</html>')
    url = 'https://example.org/ckpt.pth'
    with pytest.raises(CheckpointFileError) as err:
        safe_torch_load(str(path), source=url)
    assert f'{url!r} (cached as {str(path)!r}) is not a checkpoint' in str(
        err.value)
    with pytest.raises(CheckpointFileError) as err:
        safe_torch_load(str(path), source=str(path))
    assert str(err.value).startswith(f'{str(path)!r} is not a checkpoint')


def test_other_runtime_errors_are_not_called_truncation(tmp_path, monkeypatch):
    """A RuntimeError of torch.load without a sign of a damaged file (here
    running out of memory) is raised as it is."""
    path = str(tmp_path / 'a.pth')
    torch.save({'w': torch.ones(1)}, path)

    def load(*args, **kwargs):
        raise RuntimeError('[enforce fail at alloc_cpu.cpp:117] DefaultCPU'
                           'Allocator: not enough memory')

    monkeypatch.setattr(torch, 'load', load)
    with pytest.raises(RuntimeError, match='not enough memory') as err:
        safe_torch_load(path)
    assert not isinstance(err.value, CheckpointFileError)
