# Copyright (c) mmssl contributors. All rights reserved.
import os

import pytest

# One intra-op thread: tiny test tensors gain nothing from more, and several
# processes (DDP tests, data-loader workers) spinning two OpenMP threads each
# on a small machine slow every op down by orders of magnitude.
os.environ.setdefault('OMP_NUM_THREADS', '1')


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
