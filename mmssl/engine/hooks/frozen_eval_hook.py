# Copyright (c) mmssl contributors. All rights reserved.
"""Frozen-feature evaluation (kNN, linear probe, health) during training."""
from typing import Dict, Optional, Union

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from mmssl.evaluation.protocols import (POOL_MODES, build_eval_dataloader,
                                        evaluate_backbone, seeded_rng)
from mmssl.registry import HOOKS
from mmssl.utils.validation import check_choice, check_float, check_int

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class FrozenEvalHook(Hook):
    """Track how good the features are while a model pretrains.

    Every ``interval`` epochs (or iterations) and after the last one, the
    unwrapped model's backbone embeds a labelled training and test set
    (unmasked, eval mode, ``no_grad``), and the hook computes the weighted
    kNN top-1, optionally a linear-probe top-1, and the representation
    health numbers (std of normalised features, effective rank). The train
    mode of every submodule and the state of every random number generator
    are restored afterwards, so the pretraining run is the same with or
    without this hook.

    The numbers are written to ``runner.message_hub`` as
    ``{prefix}/knn_top1``, ``{prefix}/linear_top1``, ``{prefix}/std_mean``,
    ``{prefix}/std_min``, ``{prefix}/effective_rank`` and
    ``{prefix}/rank_ratio``, logged as one line, and added to the
    visualizer (``vis_data/scalars.json``) at the current iteration. They
    are logged directly because mmengine's ``LogProcessor`` only shows
    ``train/``-prefixed message-hub scalars, and only on logging iterations,
    which the end of an epoch need not be.

    Only the main process computes (on the whole data sets, read in order by
    a non-distributed sampler); other ranks go on training.

    Args:
        interval (int): Evaluate every ``interval`` epochs (or iterations
            when ``by_epoch=False``). Defaults to 1.
        by_epoch (bool): Count ``interval`` in epochs. Defaults to True.
        train_dataloader (dict | DataLoader, optional): Labelled data the
            kNN searches and the linear probe trains on; a dataloader config
            as in mmengine (its ``sampler`` is replaced by a sequential one).
            None (with ``val_dataloader`` None too) takes both from the
            config's ``frozen_eval`` dict, the one
            ``tools/analysis_tools/eval_frozen.py`` reads.
        val_dataloader (dict | DataLoader, optional): Labelled test data.
        k (int): kNN neighbours. Defaults to 20.
        temperature (float): kNN vote temperature. Defaults to 0.07.
        linear (bool): Also train a linear probe. Defaults to True.
        pool (str): ``'auto'``, ``'cls'`` or ``'mean'``; see
            :func:`~mmssl.evaluation.protocols.pool_features`. Defaults to
            'auto'.
        num_classes (int, optional): None reads it from the training data
            set's ``metainfo['classes']`` or the labels.
        linear_cfg (dict, optional): Keyword arguments of
            :func:`mmssl.evaluation.functional.linear_probe`.
        seed (int): Seed of the data loaders (and of any random transform
            in their pipelines). Defaults to 0.
        prefix (str): Prefix of the scalar names. Defaults to 'frozen'.

    Example:
        >>> # with frozen_eval = dict(train_dataloader=..., val_dataloader=...)
        >>> # in the config (or pass both dataloaders to the hook)
        >>> custom_hooks = [dict(type='mmssl.FrozenEvalHook', interval=10)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1,
                 by_epoch: bool = True,
                 train_dataloader: Optional[Union[dict, DataLoader]] = None,
                 val_dataloader: Optional[Union[dict, DataLoader]] = None,
                 k: int = 20,
                 temperature: float = 0.07,
                 linear: bool = True,
                 pool: str = 'auto',
                 num_classes: Optional[int] = None,
                 linear_cfg: Optional[dict] = None,
                 seed: int = 0,
                 prefix: str = 'frozen') -> None:
        if (train_dataloader is None) != (val_dataloader is None):
            raise ValueError('FrozenEvalHook needs both train_dataloader and '
                             'val_dataloader, or neither (then the '
                             "config's frozen_eval provides them)")
        name = type(self).__name__
        check_int(interval, 'interval', name)
        check_int(k, 'k', name)
        check_float(temperature, 'temperature', name, low=0, inclusive=False)
        check_choice(pool, 'pool', name, POOL_MODES)
        self.interval = interval
        self.by_epoch = by_epoch
        self.train_dataloader = train_dataloader
        self.val_dataloader = val_dataloader
        self.k = k
        self.temperature = temperature
        self.linear = linear
        self.pool = pool
        self.num_classes = num_classes
        self.linear_cfg = linear_cfg or {}
        self.seed = seed
        self.prefix = prefix
        self._loaders: Optional[tuple] = None

    def before_train(self, runner) -> None:
        """Take the data from the config's ``frozen_eval`` if not given."""
        if self.train_dataloader is not None:
            return
        frozen = runner.cfg.get('frozen_eval') or {}
        if 'train_dataloader' not in frozen or \
                'val_dataloader' not in frozen:
            raise ValueError(
                'FrozenEvalHook got no train_dataloader/val_dataloader and '
                'the config has no frozen_eval = dict(train_dataloader=..., '
                'val_dataloader=...)')
        self.train_dataloader = frozen['train_dataloader']
        self.val_dataloader = frozen['val_dataloader']
        if self.num_classes is None:
            self.num_classes = frozen.get('num_classes')

    def after_train_epoch(self, runner) -> None:
        """Evaluate after every ``interval``-th and the last epoch."""
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self.evaluate(
                runner,
                step=runner.iter,
                tag=f'Epoch(frozen) [{runner.epoch + 1}]')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Evaluate after every ``interval``-th and the last iteration."""
        if self.by_epoch:
            return
        if self.every_n_train_iters(runner, self.interval) or \
                self.is_last_train_iter(runner):
            self.evaluate(
                runner,
                step=runner.iter + 1,
                tag=f'Iter(frozen) [{runner.iter + 1}]')

    def evaluate(self, runner, step: int, tag: str) -> Dict[str, float]:
        """Compute, record and log the frozen-feature metrics now.

        Args:
            runner (Runner): The runner.
            step (int): Step at which the scalars are recorded.
            tag (str): Start of the log line.

        Returns:
            dict[str, float]: The metrics under their prefixed names (empty
            on processes other than the main one).
        """
        if not is_main_process():
            return {}
        if self._loaders is None:
            train = build_eval_dataloader(self.train_dataloader, self.seed)
            val = build_eval_dataloader(self.val_dataloader, self.seed)
            self._loaders = (train, val)
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        protocols = ('knn', 'linear') if self.linear else ('knn', )
        with seeded_rng(self.seed):
            results = evaluate_backbone(
                model,
                *self._loaders,
                protocols=protocols,
                num_classes=self.num_classes,
                k=self.k,
                temperature=self.temperature,
                pool=self.pool,
                linear_cfg=self.linear_cfg,
                seed=self.seed,
                progress=False)
        results.pop('num_classes', None)
        metrics = {
            f'{self.prefix}/{name}': float(value)
            for name, value in results.items()
        }
        for name, value in metrics.items():
            runner.message_hub.update_scalar(name, value)
        values = '  '.join(f'{name}: {value:.4f}'
                           for name, value in metrics.items())
        runner.logger.info(f'{tag}  {values}')
        runner.visualizer.add_scalars(
            metrics, step=step, file_path=f'{runner.timestamp}.json')
        return metrics
