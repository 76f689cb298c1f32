# Copyright (c) mmssl contributors. All rights reserved.
"""The suite keeps the imported stack out of the cycle collector."""
import gc

import torch


def test_imported_modules_are_frozen():
    """``tests/conftest.py`` froze what the collected test modules imported:
    torch's namespace is in the permanent generation, where mmengine's
    ``gc.collect()`` per data set does not walk it again."""
    assert gc.get_freeze_count() > 10_000
    assert gc.is_tracked(torch.__dict__)
    assert not any(obj is torch.__dict__ for obj in gc.get_objects())
