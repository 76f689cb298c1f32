# Copyright (c) mmssl contributors. All rights reserved.
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from mmssl.utils import UnsafeCheckpointError, atomic_save_checkpoint


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
