# Copyright (c) mmssl contributors. All rights reserved.
from .checkpoint import (UnsafeCheckpointError, atomic_save_checkpoint,
                         patch_mmengine_checkpoint_io, safe_torch_load)
from .setup_env import register_all_modules

__all__ = [
    'UnsafeCheckpointError', 'atomic_save_checkpoint',
    'patch_mmengine_checkpoint_io', 'safe_torch_load', 'register_all_modules'
]
