# Copyright (c) mmssl contributors. All rights reserved.
from .densecl_warmup_hook import DenseCLWarmupHook
from .frozen_eval_hook import FrozenEvalHook
from .prompt_class_names_hook import PromptClassNamesHook
from .random_state_hook import RandomStateHook
from .reconstruction_vis_hook import ReconstructionVisHook
from .subpt_hook import SubPTHook
from .teacher_update_hook import TeacherUpdateHook

__all__ = [
    'FrozenEvalHook', 'RandomStateHook', 'ReconstructionVisHook',
    'TeacherUpdateHook', 'DenseCLWarmupHook'
]
__all__ += ['PromptClassNamesHook', 'SubPTHook']
