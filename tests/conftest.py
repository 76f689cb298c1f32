# Copyright (c) mmssl contributors. All rights reserved.
import os

import pytest

os.environ.setdefault('OMP_NUM_THREADS', '2')


@pytest.fixture(autouse=True)
def _pretrain_scope():
    """Most tests build mmpretrain-scope models, as the configs do."""
    from mmengine.registry import init_default_scope
    import mmssl  # noqa: F401
    init_default_scope('mmpretrain')
    yield
