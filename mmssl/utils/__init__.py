# Copyright (c) mmssl contributors. All rights reserved.
from .checkpoint import (CheckpointFileError, UnsafeCheckpointError,
                         patch_mmengine_checkpoint_io, safe_torch_load)
from .checkpoint_save import atomic_save_checkpoint
from .setup_env import register_all_modules

__all__ = [
    'CheckpointFileError', 'UnsafeCheckpointError', 'atomic_save_checkpoint',
    'patch_mmengine_checkpoint_io', 'safe_torch_load', 'register_all_modules'
]
