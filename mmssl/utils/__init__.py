# Copyright (c) mmssl contributors. All rights reserved.
from .checkpoint import (CheckpointFileError, UnsafeCheckpointError,
                         checkpoint_format, safe_torch_load)
from .checkpoint_save import atomic_save_checkpoint
from .checkpoint_schemes import load_url
from .mmengine_patches import patch_mmengine_checkpoint_io
from .setup_env import register_all_modules
from .torchscript_weights import load_torchscript_state_dict

__all__ = [
    'CheckpointFileError', 'UnsafeCheckpointError', 'atomic_save_checkpoint',
    'checkpoint_format', 'load_torchscript_state_dict', 'load_url',
    'patch_mmengine_checkpoint_io', 'safe_torch_load', 'register_all_modules'
]
