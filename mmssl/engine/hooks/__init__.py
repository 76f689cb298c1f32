# Copyright (c) mmssl contributors. All rights reserved.
"""Hooks of the mmssl methods (registered in ``mmssl.registry.HOOKS``)."""
from .densecl_warmup_hook import DenseCLWarmupHook
from .frozen_eval_hook import FrozenEvalHook
from .frozen_module_check_hook import FrozenModuleCheckHook, frozen_state
from .label_quality_hook import LabelQualityHook
from .prompt_class_names_hook import PromptClassNamesHook
from .random_state_hook import (RandomStateHook, SampleSeededPipeline,
                                get_random_state, select_random_state,
                                set_random_state)
from .reconstruction_vis_hook import ReconstructionVisHook
from .subpt_hook import SubPTHook
from .teacher_update_hook import TeacherUpdateHook

__all__ = [
    'DenseCLWarmupHook', 'FrozenEvalHook', 'PromptClassNamesHook',
    'RandomStateHook', 'SampleSeededPipeline', 'get_random_state',
    'select_random_state', 'set_random_state', 'ReconstructionVisHook',
    'SubPTHook', 'TeacherUpdateHook', 'FrozenModuleCheckHook', 'frozen_state',
    'LabelQualityHook'
]

from .num_updates_hook import NumUpdatesHook  # noqa: E402

__all__ += ['NumUpdatesHook']
from .collapse_guard_hook import CollapseGuardHook  # noqa: E402

__all__ += ['CollapseGuardHook']
