# Copyright (c) mmssl contributors. All rights reserved.
"""Tell the model how many optimizer updates training has made (fairseq's
``set_num_updates``)."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmssl.registry import HOOKS


@HOOKS.register_module()
class NumUpdatesHook(Hook):
    """Call ``model.set_num_updates(n)`` before every training iteration.

    ``n`` is the number of optimizer updates made so far:
    ``runner.iter // accumulative_counts`` (gradient accumulation makes
    several iterations one update, fairseq's ``update_freq``). Models whose
    behaviour depends on it read it from there, e.g.
    ``mmssl.CTCSpeechRecognizer`` keeps its encoder frozen for the first
    ``freeze_finetune_updates`` updates. The count is derived from
    ``runner.iter`` only, so it is right after ``--resume``.
    """

    priority = 'ABOVE_NORMAL'

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not callable(getattr(model, 'set_num_updates', None)):
            raise TypeError(
                'mmssl.NumUpdatesHook needs a model with a '
                f'`set_num_updates(n)` method, but {type(model).__name__} '
                'has none; remove the hook from custom_hooks')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        # an OptimWrapper checks that its count is at least 1; several
        # optimizers (OptimWrapperDict) have none and step every iteration
        counts = getattr(runner.optim_wrapper, '_accumulative_counts', 1)
        self._model(runner).set_num_updates(runner.iter // counts)
