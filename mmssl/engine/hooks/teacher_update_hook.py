# Copyright (c) mmssl contributors. All rights reserved.
"""Update a model's EMA teacher after each optimizer update."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmssl.registry import HOOKS


@HOOKS.register_module()
class TeacherUpdateHook(Hook):
    """Call ``model.update_teacher()`` after every optimizer update.

    For methods whose training target comes from an EMA teacher that is
    part of the model (data2vec 2.0's ``self.teacher``), so the teacher and
    its step count live in the model's ``state_dict``, go into checkpoints
    and come back on resume. This is not mmengine's ``EMAHook``, which keeps
    a separate averaged copy for evaluation.

    With gradient accumulation (``optim_wrapper.accumulative_counts > 1``)
    the teacher moves only on the iterations where the optimizer stepped
    (``runner.optim_wrapper.should_update()``). The decay used is logged as
    ``teacher_decay``.

    Args:
        log_decay (bool): Log the EMA decay. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, log_decay: bool = True) -> None:
        self.log_decay = log_decay

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not callable(getattr(model, 'update_teacher', None)):
            raise TypeError(
                f'mmssl.TeacherUpdateHook needs a model with an '
                f'`update_teacher()` method (an EMA teacher), but '
                f'{type(model).__name__} has none; remove the hook from '
                'custom_hooks or use a teacher-student model')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[Sequence] = None) -> None:
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        if callable(should_update) and not should_update():
            return
        decay = self._model(runner).update_teacher()
        if self.log_decay and isinstance(decay, float):
            runner.message_hub.update_scalar('train/teacher_decay', decay)
