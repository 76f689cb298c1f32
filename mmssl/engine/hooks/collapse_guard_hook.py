# Copyright (c) mmssl contributors. All rights reserved.
"""Stop a teacher-student run whose representations collapsed."""
from typing import Optional, Sequence

from mmengine.hooks import Hook

from mmssl.registry import HOOKS
from mmssl.utils.validation import check_float, check_int


@HOOKS.register_module()
class CollapseGuardHook(Hook):
    """Abort training when the target or prediction spread falls too low.

    fairseq's data2vec 2.0 stops a run once, after ``after_iters`` updates,
    the teacher targets' std (per channel over the masked tokens, averaged
    over channels: the head's logged ``target_std``) drops below
    ``min_target_std`` or the student predictions' (``pred_std``) below
    ``min_pred_std`` (its ``min_target_var`` / ``min_pred_var``, which hold
    a std despite their names): the representations have collapsed to a
    constant and further updates only cost compute. The text recipe keeps
    fairseq's defaults (0.1 / 0.01 after 5,000 updates); the image recipes
    disable the check (0 / 0).

    Args:
        min_target_std (float): Lowest allowed ``target_std``; 0 disables.
            Defaults to 0.1.
        min_pred_std (float): Lowest allowed ``pred_std``; 0 disables.
            Defaults to 0.01.
        after_iters (int): Updates before the check starts. Defaults to
            5000.
    """

    priority = 'LOW'

    def __init__(self,
                 min_target_std: float = 0.1,
                 min_pred_std: float = 0.01,
                 after_iters: int = 5000) -> None:
        name = type(self).__name__
        self.min_target_std = check_float(
            min_target_std, 'min_target_std', name, low=0)
        self.min_pred_std = check_float(
            min_pred_std, 'min_pred_std', name, low=0)
        self.after_iters = check_int(
            after_iters, 'after_iters', name, minimum=0)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[Sequence] = None) -> None:
        done = runner.iter + 1
        if done <= self.after_iters or not isinstance(outputs, dict):
            return
        for key, low in (('target_std', self.min_target_std),
                         ('pred_std', self.min_pred_std)):
            if low <= 0 or key not in outputs:
                continue
            value = float(outputs[key])
            if value < low:
                raise RuntimeError(
                    f'{key} = {value:.4g} < {low} after {done} updates: the '
                    'representations collapsed to a constant, stopping the '
                    'run (mmssl.CollapseGuardHook). Resume from a checkpoint '
                    'before the collapse with a lower '
                    'optim_wrapper.optimizer.lr or a longer warmup, or lower '
                    'the hook\'s min_target_std / min_pred_std')


__all__ = ['CollapseGuardHook']
