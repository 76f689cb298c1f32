# Copyright (c) mmssl contributors. All rights reserved.
import gc
import os

import pytest

# One intra-op thread: tiny test tensors gain nothing from more, and several
# processes (DDP tests, data-loader workers) spinning two OpenMP threads each
# on a small machine slow every op down by orders of magnitude.
os.environ.setdefault('OMP_NUM_THREADS', '1')


def pytest_collection_finish(session):
    """Move everything the test modules imported out of the collector.

    With torch, mmcv, mmdet, mmseg and mmpretrain loaded, one full
    ``gc.collect()`` walks half a million objects (about a second on a 2-core
    CPU), and mmengine's ``BaseDataset`` calls it every time it serialises a
    data list, i.e. for every data set a test builds. Frozen objects are
    still freed by reference counting; only the cycle collector skips them.
    """
    gc.collect()
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test module, free its garbage and freeze what stays.

    What is left are mostly modules imported on first use inside tests
    (mmdet's models, diffusers, ...); freezing them keeps later collections
    as short as the first ones.
    """
    yield
    if getattr(nextitem, 'module', None) is not getattr(item, 'module', None):
        gc.collect()
        gc.freeze()


@pytest.fixture(autouse=True)
def _pretrain_scope():
    """Most tests build mmpretrain-scope models, as the configs do."""
    import torch
    from mmengine.registry import init_default_scope

    import mmssl  # noqa: F401
    init_default_scope('mmpretrain')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
