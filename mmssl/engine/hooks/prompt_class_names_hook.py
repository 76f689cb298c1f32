# Copyright (c) mmssl contributors. All rights reserved.
"""Give a prompt-learning model the class names of its data set."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmssl.registry import HOOKS

__all__ = ['PromptClassNamesHook']


@HOOKS.register_module()
class PromptClassNamesHook(Hook):
    """Call ``model.set_class_names(names, num_base)`` from the data set.

    The names are the data set's ``metainfo['all_classes']`` (written by
    :class:`mmssl.FewShotDataset`: every class, base first) or
    ``metainfo['classes']``; ``num_base`` is ``metainfo['num_base']`` when
    the training set holds only the base classes. A model that was given
    ``class_names`` in its config keeps them. Runs before training (from
    the training set), and before validation or testing (from their data
    sets) when the model still has no names.
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def _apply(runner, dataset) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        if getattr(model, 'class_names', None) is not None:
            return
        meta = dataset.metainfo
        names = meta.get('all_classes') or meta.get('classes')
        if not names:
            raise ValueError('PromptClassNamesHook: the data set has no '
                             "metainfo['classes']")
        model.set_class_names(list(names), meta.get('num_base'))

    def before_train(self, runner) -> None:
        self._apply(runner, runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader.dataset)
