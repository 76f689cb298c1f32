# Copyright (c) mmssl contributors. All rights reserved.
"""Per-epoch label-quality estimation for learning with noisy labels: a GMM
on every training sample's loss (DivideMix's co-divide step)."""
import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import broadcast, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from mmssl.evaluation.protocols import build_eval_dataloader, seeded_rng
from mmssl.models.utils.label_quality import auroc, gmm_label_quality
from mmssl.registry import HOOKS
from mmssl.utils.validation import check_int

__all__ = ['LabelQualityHook']

_CKPT_KEY = 'label_quality_hook'


@HOOKS.register_module()
class LabelQualityHook(Hook):
    """Refresh the label quality ``w`` of every training sample.

    At the start of epoch ``start_epoch`` and every ``interval`` epochs
    after it, the model (unwrapped, in eval mode, without gradients) reads
    the whole training set once, in order, through a loader with a
    deterministic pipeline; the cross-entropy of each sample against its
    NOISY label is min-max normalised and a 2-component GMM gives ``w =
    P(low-loss component | loss)`` (:func:`mmssl.models.utils.label_quality.
    gmm_label_quality`; with ``average_last > 1`` the normalised losses of
    the last refreshes are averaged, DivideMix's setting for 90 % noise).
    ``w`` is written into the model's ``label_quality`` buffer by
    ``sample_idx`` (:meth:`mmssl.ANMClassifier.update_label_quality`); a
    model without that method (e.g. the plain cross-entropy baseline) is
    only analysed.

    When the items carry ``gt_label_clean`` (``mmssl.NoisyLabelDataset``
    with ``PackInputs(meta_keys=NOISY_META_KEYS)``; negative values mean
    unknown), the hook also reports how well ``w`` tells clean from noisy
    labels: ``quality/auroc``, ``quality/mean_clean``,
    ``quality/mean_noisy`` and the realised ``quality/noise_rate``, next to
    ``quality/mean`` and ``quality/selected`` (share of ``w > 0.5``,
    DivideMix's labeled set). They go to the message hub, the log and the
    visualizer (``vis_data/scalars.json``); with ``save_plots`` a PNG of
    the loss and quality histograms of clean and noisy samples is written
    per refresh to ``<work_dir>/<plot_dir>/epoch_<n>.png``.

    The pass runs on the main process (the losses are broadcast, every
    process fits the same GMM) and leaves every random generator as it
    found it. The loss history needed by ``average_last`` is saved in the
    checkpoint (key ``label_quality_hook``) and restored on resume; the
    quality itself is a model buffer.

    Args:
        interval (int): refresh every ``interval`` epochs. Defaults to 1.
        start_epoch (int, optional): first refreshed epoch (0-based: the
            number of warm-up epochs). None takes the model's
            ``warmup_epochs``; a different value is refused.
        dataloader (dict | DataLoader, optional): loader of the TRAINING
            set (same items and order of ``sample_idx``) with a
            deterministic pipeline; its sampler is replaced by a sequential
            one. None derives it from ``train_dataloader`` with the data
            set's ``pipeline`` replaced by ``pipeline``, so the noise
            settings always match the training set's.
        pipeline (list[dict], optional): pipeline of the derived loader;
            None takes the config's ``test_pipeline``.
        batch_size (int, optional): of the derived loader; None keeps the
            training batch size.
        gmm (dict, optional): arguments of ``gmm_label_quality``. Defaults
            to ``dict(max_iter=10, tol=1e-2, reg_covar=5e-4)``.
        average_last (int): refreshes whose losses are averaged. Defaults
            to 1 (5 for 90 % noise in DivideMix).
        save_plots (bool): write the histograms. Defaults to True.
        plot_dir (str): folder under the work dir. Defaults to
            ``'label_quality'``.
        seed (int): seed of the loader (and of anything random inside the
            pass). Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1,
                 start_epoch: Optional[int] = None,
                 dataloader: Optional[Union[dict, DataLoader]] = None,
                 pipeline: Optional[List[dict]] = None,
                 batch_size: Optional[int] = None,
                 gmm: Optional[dict] = None,
                 average_last: int = 1,
                 save_plots: bool = True,
                 plot_dir: str = 'label_quality',
                 seed: int = 0) -> None:
        name = type(self).__name__
        self.interval = check_int(interval, 'interval', name)
        self.start_epoch = None if start_epoch is None else check_int(
            start_epoch, 'start_epoch', name, minimum=0)
        self.dataloader = dataloader
        self.pipeline = pipeline
        self.batch_size = None if batch_size is None else check_int(
            batch_size, 'batch_size', name)
        self.gmm = dict(max_iter=10, tol=1e-2, reg_covar=5e-4)
        self.gmm.update(gmm or {})
        self.average_last = check_int(average_last, 'average_last', name)
        self.save_plots = bool(save_plots)
        self.plot_dir = plot_dir
        self.seed = seed
        self.history: List[torch.Tensor] = []
        self.history_epochs: List[int] = []
        self._loader: Optional[DataLoader] = None

    # -- set-up ---------------------------------------------------------------

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _loader_cfg(self, runner) -> Union[dict, DataLoader]:
        name = type(self).__name__
        if self.dataloader is not None:
            return self.dataloader
        cfg = copy.deepcopy(runner.cfg.get('train_dataloader'))
        if not isinstance(cfg, dict) or not isinstance(
                cfg.get('dataset'), dict):
            raise ValueError(
                f'{name}: without a dataloader the hook derives it from the '
                "config's train_dataloader, which must be a config dict")
        pipeline = self.pipeline if self.pipeline is not None else \
            runner.cfg.get('test_pipeline')
        if pipeline is None:
            raise ValueError(
                f'{name}: give pipeline= (a deterministic pipeline of the '
                'training images) or a test_pipeline in the config')
        cfg = dict(cfg)
        cfg['dataset'] = dict(cfg['dataset'], pipeline=copy.deepcopy(pipeline))
        if self.batch_size is not None:
            cfg['batch_size'] = self.batch_size
        cfg.pop('persistent_workers', None)
        return cfg

    def before_train(self, runner) -> None:
        """Build the loader and check it against the model and the
        training set."""
        name = type(self).__name__
        model = self._model(runner)
        warmup = getattr(model, 'warmup_epochs', None)
        if self.start_epoch is None:
            if warmup is None:
                raise ValueError(f'{name}: start_epoch is needed for a model '
                                 'without warmup_epochs')
            self.start_epoch = int(warmup)
        elif warmup is not None and self.start_epoch != warmup:
            raise ValueError(
                f'{name}: start_epoch={self.start_epoch} differs from '
                f'model.warmup_epochs={warmup}; the first refresh ends the '
                'warm-up, leave start_epoch unset or make them equal')
        self._loader = build_eval_dataloader(
            self._loader_cfg(runner), seed=self.seed)
        n = len(self._loader.dataset)
        train_n = len(runner.train_dataloader.dataset)
        if n != train_n:
            raise ValueError(
                f'{name}: the quality loader has {n} items but the training '
                f'set {train_n}; it must read the training set')
        size = getattr(model, 'num_train_samples', None)
        if hasattr(model, 'update_label_quality') and size != n:
            raise ValueError(
                f'{name}: model.num_train_samples={size} but the training '
                f'set has {n} items; set model.num_train_samples={n}')

    # -- the refresh ----------------------------------------------------------

    def before_train_epoch(self, runner) -> None:
        """Refresh at ``start_epoch`` and every ``interval`` epochs on."""
        epoch = runner.epoch
        if self.start_epoch is None or epoch < self.start_epoch or \
                (epoch - self.start_epoch) % self.interval:
            return
        self.refresh(runner, epoch)

    @torch.no_grad()
    def _losses(self, model) -> Dict[str, torch.Tensor]:
        """Per-sample CE against the noisy label, in ``sample_idx`` order."""
        n = len(self._loader.dataset)
        loss = torch.full((n, ), float('nan'))
        noisy = torch.full((n, ), -1, dtype=torch.long)
        clean = torch.full((n, ), -1, dtype=torch.long)
        seen = torch.zeros(n, dtype=torch.long)
        was_training = model.training
        model.eval()
        try:
            with seeded_rng(self.seed):
                for batch in self._loader:
                    data = model.data_preprocessor(batch, False)
                    logits = model(data['inputs'], mode='tensor')
                    samples = data['data_samples']
                    labels = torch.cat([s.gt_label for s in samples])
                    ce = F.cross_entropy(
                        logits.float(),
                        labels.to(logits.device).long(),
                        reduction='none')
                    idx = torch.tensor(
                        [int(s.metainfo['sample_idx']) for s in samples])
                    outside = idx[(idx < 0) | (idx >= n)]
                    if len(outside):
                        raise IndexError(
                            f'{type(self).__name__}: sample_idx '
                            f'{int(outside[0])} outside the {n} items; the '
                            "hook's dataloader must read the training set "
                            f'itself, whose sample_idx run from 0 to {n - 1}')
                    loss[idx] = ce.cpu()
                    noisy[idx] = labels.cpu().long()
                    clean[idx] = torch.tensor([
                        int(s.metainfo.get('gt_label_clean', -1))
                        for s in samples
                    ])
                    seen[idx] += 1
        finally:
            model.train(was_training)
        if not bool((seen == 1).all()):
            raise RuntimeError(
                f'{type(self).__name__}: the quality loader must read every '
                f'item once; {int((seen != 1).sum())} of {n} were read '
                'zero or several times')
        return dict(loss=loss, noisy=noisy, clean=clean)

    def _broadcast(self, result: Optional[Dict[str, torch.Tensor]],
                   model) -> Dict[str, torch.Tensor]:
        _, world = get_dist_info()
        if world == 1:
            return result
        n = len(self._loader.dataset)
        device = next(model.parameters()).device
        if result is None:
            result = dict(
                loss=torch.zeros(n),
                noisy=torch.zeros(n, dtype=torch.long),
                clean=torch.zeros(n, dtype=torch.long))
        out = {}
        for key, value in result.items():
            value = value.to(device)
            broadcast(value, src=0)
            out[key] = value.cpu()
        return out

    def refresh(self, runner, epoch: int) -> np.ndarray:
        """Estimate and write the quality now (``epoch`` is 0-based).

        Returns:
            np.ndarray: (N,) the quality ``w`` in ``sample_idx`` order.
        """
        model = self._model(runner)
        if self._loader is None:
            self.before_train(runner)
        result = self._losses(model) if is_main_process() else None
        result = self._broadcast(result, model)
        self.history.append(result['loss'].float())
        self.history_epochs.append(int(epoch))
        del self.history[:-self.average_last]
        del self.history_epochs[:-self.average_last]
        try:
            w = gmm_label_quality(
                torch.stack(self.history).numpy(), **self.gmm)
        except ValueError as err:
            raise ValueError(
                f'{type(self).__name__}: cannot estimate the label quality '
                f'at epoch {epoch + 1} from the per-sample losses of the '
                f'training set: {err}') from err
        if hasattr(model, 'update_label_quality'):
            model.update_label_quality(torch.arange(len(w)), w)
        metrics = self._metrics(w, result)
        for key, value in metrics.items():
            runner.message_hub.update_scalar(key, value)
        runner.logger.info(f'Epoch(quality) [{epoch + 1}]  ' +
                           '  '.join(f'{k}: {v:.4f}'
                                     for k, v in metrics.items()))
        if is_main_process():
            runner.visualizer.add_scalars(
                metrics,
                step=runner.iter,
                file_path=f'{runner.timestamp}.json')
            if self.save_plots:
                self.plot(
                    result, w,
                    osp.join(runner.work_dir, self.plot_dir,
                             f'epoch_{epoch + 1}.png'), epoch)
        return w

    @staticmethod
    def _metrics(w: np.ndarray, result: Dict[str, torch.Tensor]) -> dict:
        metrics = {
            'quality/mean': float(w.mean()),
            'quality/selected': float((w > 0.5).mean())
        }
        clean = result['clean'].numpy()
        known = clean >= 0
        if not known.any():
            return metrics
        is_clean = clean[known] == result['noisy'].numpy()[known]
        wk = w[known]
        metrics['quality/noise_rate'] = float(1 - is_clean.mean())
        if is_clean.any():
            metrics['quality/mean_clean'] = float(wk[is_clean].mean())
        if (~is_clean).any():
            metrics['quality/mean_noisy'] = float(wk[~is_clean].mean())
        if is_clean.any() and (~is_clean).any():
            metrics['quality/auroc'] = auroc(wk, is_clean)
        return metrics

    @staticmethod
    def plot(result: Dict[str, torch.Tensor], w: np.ndarray, path: str,
             epoch: int) -> str:
        """Histograms of the losses and of ``w``, clean vs noisy samples
        (all samples when the clean labels are unknown)."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        loss = result['loss'].numpy()
        clean = result['clean'].numpy()
        known = clean >= 0
        is_clean = clean == result['noisy'].numpy()
        groups = [('clean labels', known & is_clean),
                  ('noisy labels', known & ~is_clean)] if known.any() else \
            [('all samples', np.ones_like(known))]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for values, ax, title in ((loss, axes[0], 'cross-entropy'),
                                  (w, axes[1], 'label quality w')):
            bins = np.linspace(values.min(), values.max() + 1e-8, 41)
            for label, sel in groups:
                if sel.any():
                    ax.hist(values[sel], bins=bins, alpha=0.6, label=label)
            ax.set_xlabel(title)
            ax.set_ylabel('samples')
            ax.legend()
        fig.suptitle(f'per-sample loss and quality before epoch {epoch + 1}')
        fig.tight_layout()
        os.makedirs(osp.dirname(path), exist_ok=True)
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path

    # -- checkpoints ----------------------------------------------------------

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the loss history (for ``average_last``) in the checkpoint."""
        checkpoint[_CKPT_KEY] = dict(
            history=torch.stack(self.history)
            if self.history else torch.zeros(0),
            epochs=list(self.history_epochs))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the loss history on resume."""
        state = checkpoint.get(_CKPT_KEY)
        if state is None:
            return
        history = state['history']
        self.history = [h.clone().float() for h in history] \
            if history.numel() else []
        self.history_epochs = [int(e) for e in state['epochs']]
