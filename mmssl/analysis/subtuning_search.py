# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning's finetuning profile and greedy block selection, by training.

The logic of ``tools/analysis_tools/subtuning_search.py`` (which only parses
the command line). :class:`SubsetEvaluator` trains one config (whose model
is a :class:`~mmssl.models.SubTuningClassifier`) with
``model.trainable_blocks=list(subset)`` and returns the validation top-1
accuracy; :mod:`mmssl.analysis.subtuning_select` builds the finetuning
profile (every single block, and consecutive pairs) and the greedy search
(:func:`~mmssl.models.utils.greedy_select`) on top of the same evaluation
(spec sections 2 and 6).

Accuracies are fractions in [0, 1]: mmpretrain's ``Accuracy`` reports
``accuracy/top1`` in percent, divided here by 100, so the greedy tolerance
``eps=0.01`` is one percentage point, as in the paper.

**Selection data.** By default the search never sees the config's val
split (the test split of a study): it holds out part of the training data.
Each run trains on ``mmssl.KFoldDataset(dataset=<train_dataloader.dataset>,
part='train', fold=k)`` and validates on ``part='val'`` of the same split
with the val dataloader's pipeline; with ``cv=False`` only fold 0 is used,
with ``cv=True`` the accuracy is the mean over all ``num_folds`` folds (the
reference's 5-fold cross-validation). The split is made after the config's
own subset of the training set (e.g. ``LabelFractionDataset``), so a
label-scarce search uses only the labels it is allowed. ``use_val_split``
uses the config's train and val sets as they are. With several ``seeds``
the accuracy is the mean over folds and seeds.

**Runs.** Every run is trained in this process through mmengine's
``Runner`` (as ``tools/train.py`` builds it, with the same CPU fallbacks):
the runs of a search are many short trainings, and a subprocess each would
pay the start-up (importing torch, mmpretrain and mmssl) every time. Each
run gets its own ``experiment_name`` (mmengine shares the logger and message
hub of runs with the same name) and work dir
``<work_dir>/<mode>/<subset>[/fold<k>][/seed<s>]`` (``fold<k>`` unless the
config's val split is used, ``seed<s>`` with more than one seed; the subset
is named by its blocks joined with ``+``, ``none`` when empty). After a run
its logger's file handlers are closed and its logger, message hub,
visualizer and default scope are dropped from mmengine's registries of
instances, so a search does not pile up open files. Validation runs once,
after the last epoch, and no checkpoints are written (``keep_checkpoints``
keeps the config's checkpoint hook). With ``quiet=True`` a run's console
output goes to ``stdout.log`` in its work dir (its full log is in the
usual ``<timestamp>/<timestamp>.log``), leaving the terminal to the
progress bar.

**Cache.** Every finished run is recorded at once in
``<work_dir>/<mode>/<subset>/result.json`` together with a fingerprint of
the settings (the config after ``cfg_options``, the data options), so a
search started again after a crash, or with more seeds, trains only the
runs that are missing. Records of other settings are trained again.
"""
import contextlib
import copy
import hashlib
import json
import math
import os
import os.path as osp
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from mmssl.engine.runner_utils import (ToolError, configure_amp,
                                       friendly_errors, load_config,
                                       merge_cfg_options,
                                       set_default_dataloader_cfg)
from mmssl.models.utils.subtuning import resolve_blocks, selectable_blocks
from mmssl.utils.validation import check_choice, check_int
from .train_in_process import train_run

__all__ = [
    'ACCURACY_KEY', 'SearchError', 'SubsetEvaluator', 'subset_name',
    'consecutive_pairs', 'top1_fraction', 'train_run', 'save_json'
]

#: the validation metric the search reads (mmpretrain ``Accuracy``, percent)
ACCURACY_KEY = 'accuracy/top1'
MODES = ('profile', 'greedy')
_OWNER = 'subtuning_search'
_SUBTUNING = 'SubTuningClassifier'
#: a validation interval no schedule reaches: validation only at the end
_NEVER = 10**9


class SearchError(ToolError):
    """A mistake in the search's input (config, block names, options) or a
    run that reported no accuracy; the tool prints it as ``error: ...``."""


Subset = Tuple[str, ...]


def subset_name(subset: Sequence[str]) -> str:
    """The folder name of a subset: its blocks joined with ``+``.

    ``'none'`` for the empty set (linear probing); a name longer than 120
    characters becomes ``'<n>blocks-<sha1 prefix>'``.
    """
    if not subset:
        return 'none'
    name = '+'.join(subset)
    if len(name) > 120:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = f'{len(subset)}blocks-{digest}'
    return name


def consecutive_pairs(blocks: Sequence[str]) -> List[Subset]:
    """``[(b0, b1), (b1, b2), ...]``: neighbouring blocks in forward order."""
    return [(a, b) for a, b in zip(blocks[:-1], blocks[1:])]


def _is_number(value: Any) -> bool:
    return isinstance(
        value,
        (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def top1_fraction(metrics: Dict[str, Any], where: str) -> float:
    """``accuracy/top1`` of a run's validation metrics, as a fraction.

    Args:
        metrics (dict): the metrics of the run's last validation.
        where (str): the run, for the message.

    Returns:
        float: mmpretrain's percent divided by 100.

    Raises:
        SearchError: the key is missing or not a finite number.
    """
    value = metrics.get(ACCURACY_KEY)
    if not _is_number(value):
        got = ', '.join(sorted(metrics)) or (
            'none: validation did not run (check val_cfg, val_dataloader '
            'and train_cfg.val_begin)')
        raise SearchError(
            f'the run in {where} reported no {ACCURACY_KEY} (its validation '
            f'metrics: {got}); the search ranks subsets by top-1 accuracy, '
            "so the config needs val_evaluator=dict(type='Accuracy', "
            'topk=(1, ...))')
    return float(value) / 100.


def _model_class(cfg: Config):
    """The class ``cfg.model.type`` names, looked up in the config's scope."""
    from mmengine.registry import MODELS
    model_type = cfg.model.get('type')
    if not isinstance(model_type, str):
        return model_type
    with contextlib.suppress(Exception), MODELS.switch_scope_and_registry(
            cfg.get('default_scope')) as registry:
        return registry.get(model_type)
    return None


class SubsetEvaluator:
    """Validation top-1 of a config trained with a subset of blocks.

    ``evaluator(subset)`` trains the config with
    ``model.trainable_blocks=list(subset)`` once per fold and seed (see the
    module notes for the data, work dirs and cache) and returns the mean
    accuracy, a fraction in [0, 1]. It is the ``evaluate`` of
    :func:`finetuning_profile` and :func:`greedy_search`.

    Args:
        config (str | Config): the SubTuning config (a file, or a loaded
            Config). Its model must be a ``SubTuningClassifier``.
        work_dir (str): root of the runs and the cache.
        mode (str): ``'profile'`` or ``'greedy'``: the runs go to
            ``<work_dir>/<mode>/``. Defaults to ``'profile'``.
        cfg_options (dict, optional): settings merged into the config
            (``--cfg-options``; keys are checked as in ``tools/train.py``),
            e.g. ``{'train_cfg.max_epochs': 2}``.
        seeds (Sequence[int]): the training seeds of every subset; the
            accuracy is their mean. Defaults to ``(0, )``.
        use_val_split (bool): validate on the config's val set instead of
            held-out folds of the training set. Defaults to False.
        num_folds (int): k of the k-fold split. Defaults to 5.
        cv (bool): mean over all k folds (k-fold cross-validation) instead
            of fold 0 only. Defaults to False.
        split_seed (int): seed of the k-fold shuffle (42 as in the
            reference's VTAB search). Defaults to 42.
        keep_checkpoints (bool): keep the config's checkpoint hook.
            Defaults to False (no checkpoints).
        quiet (bool): send each run's console output to its
            ``stdout.log``. Defaults to True.
        progress (bool): show a progress bar over the runs (tqdm).
            Defaults to True.

    Attributes:
        cfg (Config): the config after ``cfg_options``.
        blocks (list[str]): the candidate blocks of its backbone
            (:func:`~mmssl.models.utils.selectable_blocks`).
        folds (list): the folds every subset is trained on (``[None]`` with
            ``use_val_split``).
        results (dict): subset name -> record of every subset evaluated.
        num_trained (int): runs trained (not taken from the cache).

    Raises:
        SearchError: bad options, a model that is not a
            ``SubTuningClassifier``, or data that cannot be split.
    """

    def __init__(self,
                 config: Union[str, Config],
                 work_dir: str,
                 mode: str = 'profile',
                 cfg_options: Optional[dict] = None,
                 seeds: Sequence[int] = (0, ),
                 use_val_split: bool = False,
                 num_folds: int = 5,
                 cv: bool = False,
                 split_seed: int = 42,
                 keep_checkpoints: bool = False,
                 quiet: bool = True,
                 progress: bool = True) -> None:
        try:
            self.mode = check_choice(mode, 'mode', _OWNER, MODES)
            seeds = list(seeds)
            if not seeds or len(set(seeds)) != len(seeds):
                raise ValueError(f'{_OWNER}: seeds must be distinct and at '
                                 f'least one, got {seeds!r}')
            self.seeds = [check_int(s, 'seeds', _OWNER, 0) for s in seeds]
            self.num_folds = check_int(num_folds, 'num_folds', _OWNER, 2)
            self.split_seed = check_int(split_seed, 'split_seed', _OWNER, 0)
        except ValueError as err:
            raise SearchError(str(err)) from None
        if use_val_split and cv:
            raise SearchError(
                f'{_OWNER}: cv (k-fold cross-validation on the training '
                'set) and use_val_split (the config\'s val set) exclude each '
                'other; choose one')
        self.use_val_split = bool(use_val_split)
        self.cv = bool(cv)
        self.work_dir = work_dir
        self.keep_checkpoints = keep_checkpoints
        self.quiet = quiet
        self.show_progress = progress
        self.cfg_options = dict(cfg_options or {})
        if isinstance(config, Config):
            self.config_path = config.filename or '<config>'
            cfg = copy.deepcopy(config)
        else:
            self.config_path = config
            cfg = load_config(config)
        merge_cfg_options(cfg, self.cfg_options, self.config_path)
        configure_amp(cfg, False)
        set_default_dataloader_cfg(
            cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'])
        self.cfg = cfg
        self._check_config()
        self.backbone = self._build_backbone()
        self.blocks = selectable_blocks(self.backbone)
        if self.use_val_split:
            self.folds: List[Optional[int]] = [None]
        else:
            self.folds = list(range(self.num_folds)) if cv else [0]
        self.settings = self._settings()
        self.results: Dict[str, dict] = {}
        self.num_trained = 0
        self._bar = None

    # -- config ----------------------------------------------------------
    def _check_config(self) -> None:
        cfg, path = self.cfg, self.config_path
        from mmssl.models import SubTuningClassifier
        model = cfg.get('model')
        if not isinstance(model, dict):
            raise SearchError(f'{_OWNER}: the config {path!r} has no model')
        cls = _model_class(cfg)
        if not (isinstance(cls, type)
                and issubclass(cls, SubTuningClassifier)):
            raise SearchError(
                f'{_OWNER}: the model of {path!r} is '
                f'{model.get("type")!r}, not a SubTuningClassifier: the '
                'search sets model.trainable_blocks, so write model = '
                "dict(type='mmssl.SubTuningClassifier', trainable_blocks=[], "
                '...) (see configs/subtuning/)')
        for key in ('train_dataloader', 'train_cfg', 'val_dataloader',
                    'val_evaluator'):
            if not cfg.get(key):
                raise SearchError(
                    f'{_OWNER}: the config {path!r} has no {key}: every run '
                    'trains and then validates (the search needs '
                    'train_dataloader, train_cfg, val_dataloader and '
                    "val_evaluator with type='Accuracy')")
        if not self.use_val_split:
            for key in ('train_dataloader', 'val_dataloader'):
                if 'pipeline' not in cfg[key].dataset:
                    raise SearchError(
                        f'{_OWNER}: {key}.dataset of {path!r} has no '
                        'pipeline, so its data cannot be split into folds '
                        '(mmssl.KFoldDataset wraps a data set config that '
                        'takes a pipeline, not a dataset wrapper); use '
                        'use_val_split (--use-val-split) or give it a '
                        'pipeline')

    def _build_backbone(self):
        from mmengine.registry import MODELS
        with friendly_errors(self.config_path, self.cfg), \
                MODELS.switch_scope_and_registry(
                    self.cfg.get('default_scope')) as registry:
            return registry.build(copy.deepcopy(self.cfg.model.backbone))

    def _settings(self) -> dict:
        """What a cached run must share with this search to be reused: the
        config after ``cfg_options`` (as a hash) and the data options."""
        text = json.dumps(self.cfg.to_dict(), sort_keys=True, default=repr)
        return dict(
            config_sha1=hashlib.sha1(text.encode()).hexdigest(),
            data='val_split' if self.use_val_split else 'kfold',
            num_folds=None if self.use_val_split else self.num_folds,
            split_seed=None if self.use_val_split else self.split_seed)

    def resolve(self, blocks: Optional[Sequence[str]] = None) -> List[str]:
        """Check block names against the backbone (``None``: the default
        candidates, :attr:`blocks`).

        Raises:
            SearchError: an unknown name; the message lists the valid ones.
        """
        if blocks is None:
            return list(self.blocks)
        try:
            resolved = resolve_blocks(self.backbone, list(blocks), 'blocks',
                                      _OWNER)
        except ValueError as err:
            raise SearchError(str(err)) from None
        if not resolved:
            raise SearchError(f'{_OWNER}: give at least one block')
        return resolved

    def describe_data(self) -> str:
        """One sentence on the data the subsets are selected with."""
        train = self.cfg.train_dataloader.dataset
        inner = train.get('type')
        if 'fraction' in train:
            inner = (f'{inner} fraction={train.fraction} '
                     f'seed={train.get("seed", 0)}')
        seeds = ', '.join(map(str, self.seeds))
        runs = (f'training seed {seeds}' if len(self.seeds) == 1 else
                f'mean over training seeds {seeds}')
        if self.use_val_split:
            return (f'trained on train_dataloader.dataset ({inner}), '
                    "validated on the config's val_dataloader.dataset "
                    f'(--use-val-split); {runs}')
        how = (f'mean over all {self.num_folds} folds (cross-validation)'
               if self.cv else 'fold 0')
        return (f'{self.num_folds}-fold split (shuffle seed '
                f'{self.split_seed}) of train_dataloader.dataset ({inner}): '
                f'trained on the other folds, validated on the held-out '
                f"fold, {how}; the config's val split was not used; {runs}")

    def data_cfgs(self, fold: Optional[int]) -> Tuple[dict, dict]:
        """The train and validation data set configs of a fold.

        Args:
            fold (int | None): the held-out fold (``None`` with
                ``use_val_split``).

        Returns:
            tuple[dict, dict]: ``train_dataloader.dataset`` and
            ``val_dataloader.dataset`` of the runs of that fold.
        """
        cfg = self.cfg
        if fold is None:
            return (copy.deepcopy(cfg.train_dataloader.dataset),
                    copy.deepcopy(cfg.val_dataloader.dataset))
        inner = copy.deepcopy(cfg.train_dataloader.dataset)
        train_pipeline = inner.pop('pipeline')
        common = dict(
            type='mmssl.KFoldDataset',
            dataset=inner,
            num_folds=self.num_folds,
            fold=fold,
            seed=self.split_seed)
        train = dict(copy.deepcopy(common), part='train')
        train['pipeline'] = train_pipeline
        val = dict(common, part='val')
        val['pipeline'] = copy.deepcopy(cfg.val_dataloader.dataset.pipeline)
        return train, val

    # -- runs ------------------------------------------------------------
    def subset_dir(self, subset: Sequence[str]) -> str:
        """``<work_dir>/<mode>/<subset name>``: the runs and the cache of a
        subset."""
        return osp.join(self.work_dir, self.mode, subset_name(subset))

    def run_dir(self, subset: Sequence[str], fold: Optional[int],
                seed: int) -> str:
        """The work dir of one run."""
        path = self.subset_dir(subset)
        if fold is not None:
            path = osp.join(path, f'fold{fold}')
        if len(self.seeds) > 1:
            path = osp.join(path, f'seed{seed}')
        return path

    @staticmethod
    def run_key(fold: Optional[int], seed: int) -> str:
        """Key of a run in the cache: ``fold<k>/seed<s>`` (``val/seed<s>``
        with the config's val split)."""
        return f'{"val" if fold is None else f"fold{fold}"}/seed{seed}'

    def run_cfg(self, subset: Sequence[str], fold: Optional[int],
                seed: int) -> Config:
        """The full runner config of one run.

        Args:
            subset (Sequence[str]): the blocks to train.
            fold (int | None): the held-out fold (``None``: the config's
                val set).
            seed (int): the training seed (``randomness.seed``).

        Returns:
            Config: a copy of the config with ``model.trainable_blocks``,
            the data of the fold, its own ``work_dir`` and
            ``experiment_name``, validation only after the last epoch and
            (unless ``keep_checkpoints``) no checkpoint hook.
        """
        cfg = copy.deepcopy(self.cfg)
        cfg.model.trainable_blocks = list(subset)
        train_data, val_data = self.data_cfgs(fold)
        cfg.train_dataloader.dataset = train_data
        cfg.val_dataloader.dataset = val_data
        cfg.work_dir = self.run_dir(subset, fold, seed)
        cfg.experiment_name = (f'subtuning-{self.mode}-{subset_name(subset)}-'
                               f'{self.run_key(fold, seed).replace("/", "-")}-'
                               f'{uuid.uuid4().hex[:8]}')
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
        cfg.resume = False
        if cfg.get('val_cfg') is None:
            cfg.val_cfg = dict()
        cfg.train_cfg.val_interval = _NEVER
        cfg.train_cfg.pop('dynamic_intervals', None)
        if not self.keep_checkpoints and cfg.get('default_hooks'):
            cfg.default_hooks.checkpoint = None
        return cfg

    def _cache_file(self, subset: Subset) -> str:
        return osp.join(self.subset_dir(subset), 'result.json')

    def _load(self, subset: Subset) -> dict:
        record = dict(
            subset=list(subset),
            config=self.config_path,
            cfg_options={
                k: repr(v)
                for k, v in self.cfg_options.items()
            },
            settings=self.settings,
            runs={})
        path = self._cache_file(subset)
        if osp.exists(path):
            with open(path) as f:
                cached = json.load(f)
            if cached.get('settings') == self.settings:
                record['runs'] = cached.get('runs', {})
        return record

    def _save(self, subset: Subset, record: dict) -> None:
        path = self._cache_file(subset)
        os.makedirs(osp.dirname(path), exist_ok=True)
        tmp = f'{path}.{os.getpid()}.tmp'
        save_json(record, tmp)
        os.replace(tmp, path)

    @contextlib.contextmanager
    def progress(self, num_subsets: int, desc: str) -> Iterator[None]:
        """A progress bar over the runs of up to ``num_subsets`` subsets
        (closed at the count reached when the search ends early)."""
        if not self.show_progress:
            yield
            return
        from tqdm import tqdm
        runs = len(self.folds) * len(self.seeds)
        self._bar = tqdm(
            total=num_subsets * runs,
            desc=desc,
            unit='run',
            dynamic_ncols=True)
        try:
            yield
        finally:
            bar, self._bar = self._bar, None
            bar.total = bar.n
            bar.refresh()
            bar.close()

    def _tick(self, subset: Subset, cached: bool) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f'{subset_name(subset)}' +
                                      (' (cached)' if cached else ''))
            self._bar.update(1)

    def __call__(self, subset: Sequence[str]) -> float:
        """Mean validation top-1 (fraction) of ``subset`` over the folds
        and seeds; runs already in the cache are not trained again."""
        subset = tuple(subset)
        record = self._load(subset)
        accuracies = []
        for fold in self.folds:
            for seed in self.seeds:
                key = self.run_key(fold, seed)
                if key not in record['runs']:
                    cfg = self.run_cfg(subset, fold, seed)
                    start = time.time()
                    stdout = osp.join(cfg.work_dir, 'stdout.log')
                    try:
                        metrics = train_run(cfg, self.config_path,
                                            stdout if self.quiet else None)
                    except Exception as err:
                        if self.quiet and hasattr(err, 'add_note'):
                            err.add_note(f'the run\'s output: {stdout}')
                        raise
                    self.num_trained += 1
                    record['runs'][key] = dict(
                        accuracy=top1_fraction(metrics, cfg.work_dir),
                        metrics={
                            k: v
                            for k, v in metrics.items()
                            if isinstance(v, (int, float))
                        },
                        seconds=round(time.time() - start, 2),
                        work_dir=cfg.work_dir)
                    self._save(subset, record)
                    self._tick(subset, cached=False)
                else:
                    self._tick(subset, cached=True)
                accuracies.append(record['runs'][key]['accuracy'])
        record['accuracy'] = sum(accuracies) / len(accuracies)
        self._save(subset, record)
        self.results[subset_name(subset)] = dict(
            subset=list(subset),
            accuracy=record['accuracy'],
            runs={
                self.run_key(f, s): record['runs'][self.run_key(f,
                                                                s)]['accuracy']
                for f in self.folds
                for s in self.seeds
            })
        return record['accuracy']


def save_json(obj: Any, path: str) -> str:
    """Write ``obj`` as indented JSON (folders made as needed)."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
    return path
