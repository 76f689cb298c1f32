# Copyright (c) mmssl contributors. All rights reserved.
"""Pictures of masked-image reconstructions during pretraining."""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import default_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmssl.registry import HOOKS
from mmssl.utils.validation import check_int
from mmssl.visualization.grids import reconstruction_grid


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """Save original / masked / reconstruction / pasted grids.

    Every ``interval`` epochs (or iterations with ``by_epoch=False``) the
    model's ``reconstruct(inputs, noise)`` is run on the same ``num_images``
    images of the training set with the same masks, and a grid with one row
    per image and four columns (original, masked input, reconstruction,
    reconstruction with the visible patches pasted back) is written to
    ``<work_dir>/<out_dir>/reconstruction_<epoch|iter>_<n>.png`` and to the
    runner's visualizer backends. The masks come from a private generator, so
    the hook never changes the training run's random stream.

    Args:
        interval (int): how often to draw. Defaults to 1.
        by_epoch (bool): count ``interval`` in epochs. Defaults to True.
        num_images (int): images in the grid. Defaults to 8.
        indices (Sequence[int], optional): which training samples; evenly
            spread over the data set if None.
        out_dir (str): folder under the work dir. Defaults to 'vis'.
        seed (int): seed of the masks. Defaults to 0.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 by_epoch: bool = True,
                 num_images: int = 8,
                 indices: Optional[Sequence[int]] = None,
                 out_dir: str = 'vis',
                 seed: int = 0) -> None:
        name = type(self).__name__
        self.interval = check_int(interval, 'interval', name)
        self.by_epoch = by_epoch
        self.num_images = check_int(num_images, 'num_images', name)
        self.indices = indices
        self.out_dir = out_dir
        self.seed = seed
        self._batch = None
        self.saved_files = []

    def _get_batch(self, runner):
        if self._batch is None:
            dataset = runner.train_dataloader.dataset
            n = min(self.num_images, len(dataset))
            indices = self.indices if self.indices is not None else \
                np.linspace(0, len(dataset) - 1, n).astype(int).tolist()
            self._batch = default_collate([dataset[i] for i in indices])
        return self._batch

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self._draw(runner, f'epoch{runner.epoch + 1}')

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self._draw(runner, f'iter{runner.iter + 1}')

    @torch.no_grad()
    def _draw(self, runner, tag: str) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'reconstruct'):
            runner.logger.warning(
                f'{type(model).__name__} has no `reconstruct` method; '
                'ReconstructionVisHook draws nothing')
            return
        if runner.rank != 0:
            return
        was_training = model.training
        model.eval()
        try:
            data = model.data_preprocessor(self._get_batch(runner), False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):
                inputs = inputs[0]
            gen = torch.Generator().manual_seed(self.seed)
            num_patches = model.backbone.patch_resolution[0] * \
                model.backbone.patch_resolution[1]
            noise = torch.rand(inputs.shape[0], num_patches, generator=gen)
            out = model.reconstruct(inputs, noise=noise.to(inputs.device))
        finally:
            model.train(was_training)
        pre = model.data_preprocessor
        grid = reconstruction_grid(
            inputs,
            out['mask'],
            out['reconstruction'],
            out['pasted'],
            mean=getattr(pre, 'mean', None),
            std=getattr(pre, 'std', None))
        name = f'reconstruction_{tag}'
        path = osp.join(runner.work_dir, self.out_dir, name + '.png')
        import mmcv
        mmcv.imwrite(grid[..., ::-1], path)
        self.saved_files.append(path)
        step = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        runner.visualizer.add_image('reconstruction', grid, step=step)
