# Copyright (c) mmssl contributors. All rights reserved.
"""The patches ``import mmssl`` applies to mmengine: a message hub's
history buffers pickle (into checkpoints), and every patch is applied
once."""
import pickle

from mmengine.logging.history_buffer import HistoryBuffer

import mmssl.utils.mmengine_patches as patches


def test_a_history_buffer_pickles_with_its_statistics():
    buf = HistoryBuffer()
    for value in (1., 3., 5.):
        buf.update(value)
    back = pickle.loads(pickle.dumps(buf))
    assert back.mean() == 3. and back.current() == 5.
    assert back.statistics('max') == 5.  # the method table is rebuilt


def test_the_patches_are_applied_once(monkeypatch):
    getstate = HistoryBuffer.__getstate__
    patches._make_history_buffer_picklable()
    assert HistoryBuffer.__getstate__ is getstate
    calls = []
    for name in ('install_safe_loaders', 'install_atomic_save',
                 '_make_history_buffer_picklable'):
        monkeypatch.setattr(patches, name, lambda: calls.append(name))
    patches.patch_mmengine_checkpoint_io()  # import mmssl did it already
    assert calls == []
