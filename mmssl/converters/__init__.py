# Copyright (c) mmssl contributors. All rights reserved.
"""Backbone checkpoints for transfer: one converter per (architecture,
target library) pair, looked up in :data:`CONVERTERS`; and the converters
of outside checkpoints (official MAE, ALBERT, DINO ViT, guided-diffusion)."""
from .albert import (AlbertCheckpoint, albert_to_tf_names, convert_albert,
                     detect_albert_layout, encoder_config_from_json,
                     load_albert_state)
from .arch import ARCHS, arch_info, detect_arch
from .check import check_backbone_state
from .checkpoint import (BACKBONE_PREFIX, ConversionError, Converted,
                         describe_keys, extract_prefixed, split_checkpoint)
from .convert import CONVERTERS, TARGETS, convert_state_dict, load_hint
from .dino_vit import DINO_URLS, convert_dino_vit, dino_vit_state
from .guided_diffusion import ARCHS as GUIDED_DIFFUSION_ARCHS
from .guided_diffusion import (classcond_ddpm_cfg, convert_guided_diffusion,
                               diffusers_config, guided_diffusion_shapes)
from .mae_official import convert_official_mae, load_official_mae
from .subtuning_multitask import (SubTuningTask, load_subtuning_task,
                                  merge_subtuning_tasks,
                                  save_multitask_checkpoint, strip_pretrained,
                                  tensor_bytes, verify_multitask)

__all__ = [
    'ARCHS', 'TARGETS', 'BACKBONE_PREFIX', 'CONVERTERS', 'ConversionError',
    'Converted', 'arch_info', 'check_backbone_state', 'convert_state_dict',
    'convert_official_mae', 'describe_keys', 'detect_arch', 'extract_prefixed',
    'load_hint', 'load_official_mae', 'split_checkpoint'
]
__all__ += [
    'SubTuningTask', 'load_subtuning_task', 'merge_subtuning_tasks',
    'save_multitask_checkpoint', 'strip_pretrained', 'tensor_bytes',
    'verify_multitask'
]
__all__ += [
    'AlbertCheckpoint', 'albert_to_tf_names', 'convert_albert',
    'detect_albert_layout', 'encoder_config_from_json', 'load_albert_state'
]
__all__ += [
    'DINO_URLS', 'convert_dino_vit', 'dino_vit_state',
    'GUIDED_DIFFUSION_ARCHS', 'classcond_ddpm_cfg', 'convert_guided_diffusion',
    'diffusers_config', 'guided_diffusion_shapes'
]
