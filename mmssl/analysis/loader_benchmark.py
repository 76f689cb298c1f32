# Copyright (c) mmssl contributors. All rights reserved.
"""The input pipeline alone: decoded images/s of a config's training loader.

:func:`benchmark_loader` builds ``cfg.train_dataloader`` as a training run
builds it (``tools/train.py``'s loader defaults, then mmengine's
``Runner.build_dataloader`` with the config's data set, sampler,
``collate_fn``, ``persistent_workers`` and seed), once per worker count, and
only iterates it: nothing is sent to a device, no model runs. For every
worker count the numbers are:

* ``first_batch_s``: seconds from asking for the iterator (which starts the
  workers) to the first batch.
* ``img_per_s`` / ``batches_per_s``: the median over ``repeat`` timed
  windows of ``batches`` batches each, after ``warmup`` untimed batches
  (the first of them also absorbs the workers' start-up). Images are
  counted in the batches (the length of ``data_samples``, else of
  ``inputs``), so a short last batch counts what it holds. A loader that
  runs out of batches starts its next epoch, as a training run does.
* ``build_s``: seconds to build the data set and the loader.

:func:`time_transforms` splits the per-sample cost of the data set's
pipeline by transform: every transform of
``cfg.train_dataloader.dataset.pipeline`` timed in the main process on a few
samples, so that the transform that limits the loader is named
(``bottleneck``).

No speed is promised by any of this: the numbers belong to the machine and
its load at the time (:func:`mmssl.analysis.machine_info`).
"""
import copy
import gc
import numbers
import statistics
import time
from typing import Any, Iterator, List, Optional, Sequence, Union

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

from mmssl.engine.machine_cfg import set_default_dataloader_cfg
from mmssl.utils.config import config_dataset, default_scope_of

__all__ = [
    'benchmark_loader', 'time_transforms', 'batch_images', 'loader_summary'
]

_LOADER = 'train_dataloader'


def _check_count(value: Any, key: str, minimum: int, fix: str) -> int:
    """``value`` as an int >= ``minimum``, else a ValueError with the fix."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        raise ValueError(f'benchmark_loader: {key} must be an integer >= '
                         f'{minimum}, got {value!r}; {fix}')
    return int(value)


def _worker_counts(num_workers_list: Sequence[int]) -> List[int]:
    """The worker counts, checked, in the given order without repeats."""
    if isinstance(num_workers_list, numbers.Integral):
        num_workers_list = [num_workers_list]
    counts: List[int] = []
    for value in num_workers_list:
        count = _check_count(
            value, 'a worker count', 0,
            'give worker counts such as (0, 1, 2) (0 loads in the main '
            'process)')
        if count not in counts:
            counts.append(count)
    if not counts:
        raise ValueError('benchmark_loader: num_workers_list is empty; give '
                         'at least one worker count, e.g. (0, 1, 2)')
    return counts


def _as_config(cfg: Union[str, Config, dict]) -> Config:
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, str):
        return Config.fromfile(cfg)
    return Config(cfg)


def _loader_cfg(cfg: Config, num_workers: int,
                batch_size: Optional[int]) -> Config:
    """The training loader's settings with ``num_workers`` workers, after
    ``tools/train.py``'s defaults (``persistent_workers`` with workers,
    ``default_collate``, ``pin_memory`` where CUDA is)."""
    holder = Config({_LOADER: copy.deepcopy(cfg[_LOADER])})
    holder[_LOADER].num_workers = num_workers
    if batch_size is not None:
        holder[_LOADER].batch_size = batch_size
    if num_workers == 0:  # torch refuses these without workers
        holder[_LOADER].pop('prefetch_factor', None)
    set_default_dataloader_cfg(holder, [_LOADER])
    return holder[_LOADER]


def batch_images(batch: Any) -> int:
    """The number of samples in a collated batch.

    The length of ``data_samples`` (one per sample with ``default_collate``
    and ``pseudo_collate`` alike), else of ``inputs`` (a tensor's first
    dimension, a list's length), else of the batch itself.
    """
    if isinstance(batch, dict):
        samples = batch.get('data_samples')
        if isinstance(samples, (list, tuple)) and samples:
            return len(samples)
        inputs = batch.get('inputs', samples)
        if inputs is not None:
            return batch_images(inputs)
    if hasattr(batch, 'shape') and len(batch.shape) > 0:
        return int(batch.shape[0])
    if isinstance(batch, dict):
        for value in batch.values():
            return batch_images(value)
    return len(batch)


def _cycle(loader) -> Iterator[Any]:
    """The loader's batches, epoch after epoch (as a training run sees
    them; the sampler's epoch is advanced between epochs)."""
    epoch = 0
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError('benchmark_loader: the training loader yields '
                             'no batch (an empty data set, or fewer samples '
                             'than batch_size with drop_last=True)')
        epoch += 1
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)


def _shutdown(batches: Iterator[Any], loader) -> None:
    """Stop the loader's workers now rather than when garbage collected."""
    batches.close()
    worker_iter = getattr(loader, '_iterator', None)
    if worker_iter is not None and hasattr(worker_iter, '_shutdown_workers'):
        worker_iter._shutdown_workers()
    gc.collect()


def _time_loader(loader, batches: int, warmup: int, repeat: int, tick) -> dict:
    """Iterate ``loader``: first batch, warm-up, then timed windows."""
    stream = _cycle(loader)
    try:
        start = time.perf_counter()
        first_batch_s = None
        window_start = start
        for _ in range(warmup):
            next(stream)
            tick()
            if first_batch_s is None:
                first_batch_s = time.perf_counter() - start
            window_start = time.perf_counter()
        times, images = [], []
        for _ in range(repeat):
            count = 0
            for _ in range(batches):
                batch = next(stream)
                count += batch_images(batch)
                tick()
                if first_batch_s is None:
                    first_batch_s = time.perf_counter() - start
            now = time.perf_counter()
            times.append(now - window_start)
            images.append(count)
            window_start = now
    finally:
        _shutdown(stream, loader)
    return dict(first_batch_s=first_batch_s, times=times, images=images)


def benchmark_loader(cfg: Union[str, Config, dict],
                     num_workers_list: Sequence[int] = (0, 1, 2),
                     batches: int = 20,
                     warmup: int = 5,
                     repeat: int = 3,
                     batch_size: Optional[int] = None,
                     seed: int = 0,
                     transform_samples: int = 8,
                     progress: bool = False) -> dict:
    """Time a config's training loader alone, at several worker counts.

    See the module docstring for what each number means.

    Args:
        cfg (str | Config | dict): A training config (file) with
            ``train_dataloader``.
        num_workers_list (Sequence[int]): Worker counts to measure, in
            order (0 = loading in the main process). Defaults to (0, 1, 2).
        batches (int): Batches per timed window. Defaults to 20.
        warmup (int): Untimed batches first, per worker count, which also
            absorb the workers' start-up. Defaults to 5.
        repeat (int): Timed windows per worker count. Defaults to 3.
        batch_size (int, optional): Samples per batch; the config's
            ``train_dataloader.batch_size`` if None.
        seed (int): Seed of the sampler, the workers and the random
            transforms, the same for every worker count.
        transform_samples (int): Samples the per-transform breakdown runs
            the pipeline on (0 skips it). Defaults to 8.
        progress (bool): Show mmengine's progress bar. Defaults to False.

    Returns:
        dict: ``runs``, one record per worker count, in order:
        ``num_workers``, ``batch_size``, ``images`` (counted in the timed
        windows), ``img_per_s`` (median), ``img_per_s_windows``,
        ``batches_per_s``, ``s_per_batch``, ``first_batch_s``, ``build_s``,
        ``persistent_workers``, ``batches``, ``warmup``, ``repeat``;
        ``best`` (the record with the most img/s), ``transforms`` (see
        :func:`time_transforms`; None when skipped), ``batch_size``,
        ``num_samples`` (the data set's length) and ``collate_fn``.

    Raises:
        ValueError: a worker count below 0, a non-positive ``batches`` /
            ``repeat`` / ``batch_size``, a negative ``warmup``, or a config
            without ``train_dataloader``.
    """
    counts = _worker_counts(num_workers_list)
    batches = _check_count(batches, 'batches', 1,
                           'the batches per timed window, e.g. 20')
    repeat = _check_count(repeat, 'repeat', 1,
                          'the timed windows per worker count, e.g. 3')
    warmup = _check_count(warmup, 'warmup', 0,
                          'the untimed batches first, e.g. 5')
    transform_samples = _check_count(transform_samples, 'transform_samples', 0,
                                     'e.g. 8, or 0 to skip')
    if batch_size is not None:
        batch_size = _check_count(batch_size, 'batch_size', 1,
                                  'or None for the config\'s batch size')
    cfg = _as_config(cfg)
    if not isinstance(cfg.get(_LOADER), dict):
        raise ValueError(
            f'benchmark_loader: the config {getattr(cfg, "filename", None)!r}'
            f' has no {_LOADER}; give a training config (one that '
            'tools/train.py accepts)')
    from mmengine.runner import Runner
    from mmengine.utils import ProgressBar
    randomness = cfg.get('randomness') or {}
    bar = ProgressBar(len(counts) * (warmup + batches * repeat)) \
        if progress else None

    def tick():
        if bar is not None:
            bar.update()

    runs, num_samples, collate = [], None, None
    with DefaultScope.overwrite_default_scope(default_scope_of(cfg)):
        for count in counts:
            loader_cfg = _loader_cfg(cfg, count, batch_size)
            collate = loader_cfg.get('collate_fn')
            if isinstance(collate, dict):
                collate = collate.get('type')
            collate = getattr(collate, '__name__', collate)
            set_random_seed(seed)
            start = time.perf_counter()
            loader = Runner.build_dataloader(
                loader_cfg,
                seed=seed,
                diff_rank_seed=randomness.get('diff_rank_seed', False))
            build_s = time.perf_counter() - start
            num_samples = len(loader.dataset)
            timing = _time_loader(loader, batches, warmup, repeat, tick)
            del loader
            rates = [n / t for n, t in zip(timing['images'], timing['times'])]
            batch_rates = [batches / t for t in timing['times']]
            runs.append(
                dict(
                    num_workers=count,
                    batch_size=int(loader_cfg.batch_size),
                    images=sum(timing['images']),
                    img_per_s=statistics.median(rates),
                    img_per_s_windows=rates,
                    batches_per_s=statistics.median(batch_rates),
                    s_per_batch=statistics.median(timing['times']) / batches,
                    first_batch_s=timing['first_batch_s'],
                    build_s=build_s,
                    persistent_workers=bool(
                        loader_cfg.get('persistent_workers', False)),
                    batches=batches,
                    warmup=warmup,
                    repeat=repeat))
        if bar is not None:
            print()
        transforms = time_transforms(
            cfg, transform_samples, seed=seed) if transform_samples else None
    best = max(runs, key=lambda run: run['img_per_s'])
    return dict(
        runs=runs,
        best=best,
        transforms=transforms,
        batch_size=runs[0]['batch_size'],
        num_samples=num_samples,
        collate_fn=collate)


def _pipeline_of(dataset) -> Optional[Any]:
    """The ``Compose`` of a data set, looking through dataset wrappers."""
    for _ in range(8):
        pipeline = getattr(dataset, 'pipeline', None)
        if pipeline is not None and hasattr(pipeline, 'transforms'):
            return pipeline
        inner = getattr(dataset, 'dataset', None)
        if inner is None:
            inner = (getattr(dataset, 'datasets', None) or [None])[0]
        if inner is None:
            return None
        dataset = inner
    return None


def time_transforms(cfg: Union[str, Config, dict],
                    num_samples: int = 8,
                    seed: int = 0) -> dict:
    """Per-sample cost of each transform of the training pipeline.

    The data set of ``cfg.train_dataloader`` is built in the main process
    and the first ``num_samples`` samples are passed through its pipeline
    one transform at a time, each transform timed on its own, after one
    untimed pass of the first sample (first-call set-up). A transform that
    drops a sample (returns None) ends that sample's pass.

    Args:
        cfg (str | Config | dict): A training config.
        num_samples (int): Samples to time (fewer if the data set is
            smaller). Defaults to 8.
        seed (int): Seed of the random transforms.

    Returns:
        dict: ``steps``, one record per transform in pipeline order:
        ``name`` (the class name), ``type`` (as written in the config),
        ``ms_per_sample`` (mean over the samples that reached it),
        ``share`` (percent of the pipeline's time) and ``samples``;
        ``total_ms_per_sample``, ``img_per_s`` (one process, the pipeline
        alone), ``bottleneck`` (the name of the costliest transform) and
        ``samples``.
    """
    cfg = _as_config(cfg)
    dataset = config_dataset(cfg, 'train')
    pipeline = _pipeline_of(dataset)
    if pipeline is None or not hasattr(dataset, 'get_data_info'):
        return dict(
            steps=[],
            total_ms_per_sample=None,
            img_per_s=None,
            bottleneck=None,
            samples=0)
    written = [
        step.get('type') if isinstance(step, dict) else None
        for step in cfg[_LOADER].dataset.get('pipeline', []) or []
    ]
    if len(written) != len(pipeline.transforms):
        written = [None] * len(pipeline.transforms)
    totals = [0.] * len(pipeline.transforms)
    reached = [0] * len(pipeline.transforms)
    set_random_seed(seed)
    used = min(num_samples, len(dataset))
    if used:  # one untimed pass: imports, caches and first-call set-up
        pipeline(dataset.get_data_info(0))
    for idx in range(used):
        results = dataset.get_data_info(idx)
        for k, transform in enumerate(pipeline.transforms):
            start = time.perf_counter()
            results = transform(results)
            totals[k] += time.perf_counter() - start
            reached[k] += 1
            if results is None:
                break
    per_sample = [1e3 * t / n if n else 0. for t, n in zip(totals, reached)]
    total = sum(per_sample)
    steps = [
        dict(
            name=type(transform).__name__,
            type=str(written[k] or type(transform).__name__),
            ms_per_sample=per_sample[k],
            share=100. * per_sample[k] / total if total else 0.,
            samples=reached[k])
        for k, transform in enumerate(pipeline.transforms)
    ]
    bottleneck = max(steps, key=lambda s: s['ms_per_sample'])['name'] \
        if steps and used else None
    return dict(
        steps=steps,
        total_ms_per_sample=total if used else None,
        img_per_s=1e3 / total if total else None,
        bottleneck=bottleneck,
        samples=used)


def loader_summary(loader_img_per_s: float, step_img_per_s: float) -> str:
    """One line saying which side limits training: the loader (at its best
    worker count) or the training step."""
    ratio = loader_img_per_s / step_img_per_s
    if ratio < 1:
        return (f'the loader limits: {loader_img_per_s:.1f} img/s at best '
                f'vs {step_img_per_s:.1f} img/s for the step (the step '
                f'waits; the loader reaches {100 * ratio:.0f}% of the step)')
    return (f'the step limits: the loader gives {loader_img_per_s:.1f} '
            f'img/s at best, {ratio:.1f}x the step\'s '
            f'{step_img_per_s:.1f} img/s')
