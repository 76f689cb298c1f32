# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL's lambda warm-up, with a batch / queue check before training."""
from mmpretrain.engine.hooks import DenseCLHook
from mmpretrain.utils import get_ori_model

from mmssl.models.selfsup.densecl import check_queue_batch
from mmssl.registry import HOOKS
from mmssl.utils.validation import check_int


@HOOKS.register_module()
class DenseCLWarmupHook(DenseCLHook):
    """Train DenseCL on the global loss only for ``start_iters`` iterations.

    mmpretrain's ``DenseCLHook``: the model's ``loss_lambda`` is 0 while
    ``runner.iter < start_iters`` and its configured value afterwards (the
    paper's warm-up; the authors advise ``start_iters=10000`` at batch 256).
    The switch depends only on ``runner.iter``, so it survives ``--resume``.

    Before training it also checks what the model alone cannot see at build
    time: the global batch (``train_dataloader.batch_size`` x processes)
    must divide ``model.queue_len``, and every batch must be full
    (``train_dataloader.drop_last=True`` unless the data divide evenly).

    Args:
        start_iters (int): Iterations with lambda = 0; 0 disables the
            warm-up (the check still runs). Defaults to 1000.
    """

    def __init__(self, start_iters: int = 1000) -> None:
        check_int(start_iters, 'start_iters', type(self).__name__, minimum=0)
        super().__init__(start_iters=start_iters)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        queue_len = getattr(get_ori_model(runner.model), 'queue_len', None)
        loader = runner.train_dataloader
        if queue_len is None or loader.batch_size is None:
            return
        check_queue_batch(queue_len, loader.batch_size * runner.world_size)
        rest = len(loader.sampler) % loader.batch_size
        if rest and not loader.drop_last:
            raise ValueError(
                f'the last batch of each epoch has {rest} of '
                f'train_dataloader.batch_size={loader.batch_size} '
                'images, which breaks the queue update of '
                'model.queue_len; set train_dataloader.drop_last=True')
