# Copyright (c) mmssl contributors. All rights reserved.
"""Arms x seeds studies: read the runs' logged scalars and summarise them.

A claim such as "the positional label adds N points" is measured like a
paper would: every arm (config) trained with the same schedule for several
seeds, each metric reported as mean and spread over the seeds. Runs are
plain ``tools/train.py`` work dirs ``<root>/<arm>/seed<S>``; this module
reads what mmengine's ``LocalVisBackend`` wrote there
(``<timestamp>/vis_data/scalars.json``) and summarises it.
"""
import glob
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

Records = List[dict]


def run_dir(root: str, arm: str, seed: int) -> str:
    """Work dir of one run: ``<root>/<arm>/seed<seed>``."""
    return osp.join(root, arm, f'seed{seed}')


def read_scalars(work_dir: str) -> Records:
    """The scalar records of the latest run in ``work_dir``.

    Args:
        work_dir (str): a ``tools/train.py`` work dir.

    Returns:
        list[dict]: one dict a logged step (train: ``step`` = iteration,
        ``loss``...; val: ``step`` = epoch, ``accuracy/top1``...), in order.

    Raises:
        FileNotFoundError: no ``*/vis_data/scalars.json`` in ``work_dir``.
    """
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir}: the run did not '
            'log (is LocalVisBackend in vis_backends?) or has not started')
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def eval_path(root: str, arm: str, seed: int) -> str:
    """Where a run's frozen-backbone evaluation goes:
    ``<root>/<arm>/seed<seed>_eval.json`` (``eval_frozen.py --out``)."""
    return run_dir(root, arm, seed) + '_eval.json'


def read_eval_results(path: str) -> Dict[str, float]:
    """The metrics of the first evaluated backbone in an ``eval_frozen.py
    --out`` file (``knn_top1``, ``linear_top1``, ``finetune_top1``...)."""
    with open(path) as f:
        results = json.load(f)['results']
    first = next(iter(results.values()))
    return {k: v for k, v in first.items() if isinstance(v, (int, float))}


REDUCTIONS = ('max', 'min', 'first', 'sum')


def split_key(key: str) -> Tuple[str, Optional[str]]:
    """``'accuracy/top1@max'`` -> ``('accuracy/top1', 'max')``; a key
    without ``@`` -> ``(key, None)`` (the last value). ``@sum:N`` keeps its
    step limit: ``'time@sum:60'`` -> ``('time', 'sum:60')``.

    Raises:
        ValueError: an unknown reduction after ``@`` or a bad step limit.
    """
    name, _, how = key.partition('@')
    if not how:
        return key, None
    base, _, limit = how.partition(':')
    if base not in REDUCTIONS or (limit and
                                  (base != 'sum' or not limit.isdigit())):
        raise ValueError(f'key {key!r}: unknown reduction @{how}; use one '
                         f'of {["@" + r for r in REDUCTIONS]}, @sum:STEP '
                         'or none (the last value)')
    return name, how


def last_value(records: Records,
               key: str,
               mean_of_last: int = 1) -> Optional[float]:
    """Mean of the last ``mean_of_last`` logged values of ``key`` (None if
    it was never logged). ``key@max`` / ``key@min`` / ``key@first``: the
    largest / smallest / first logged value instead (``best`` accuracy of
    a run, the first quality estimate...); ``key@sum``: the sum of every
    logged value, ``key@sum:N`` of those logged at step <= N (``time@sum:60``
    is the training time to iteration 60 of a run that logs every
    iteration)."""
    name, how = split_key(key)
    if how is not None and how.startswith('sum:'):
        limit = int(how[4:])
        records = [r for r in records if r.get('step', 0) <= limit]
        how = 'sum'
    values = [r[name] for r in records if name in r]
    if not values:
        return None
    if how is not None:
        return dict(
            max=max, min=min, first=lambda v: v[0], sum=sum)[how](
                values)
    tail = values[-mean_of_last:]
    return sum(tail) / len(tail)


def curve(records: Records, key: str) -> Tuple[List[float], List[float]]:
    """``(steps, values)`` of ``key`` over the run."""
    pairs = [(r['step'], r[key]) for r in records if key in r]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation (n - 1), min, max and n.

    >>> mean_std([1.0, 2.0, 3.0])['std']
    1.0
    """
    n = len(values)
    if n == 0:
        raise ValueError('mean_std: no values')
    mean = sum(values) / n
    std = math.sqrt(sum(
        (v - mean)**2 for v in values) / (n - 1)) if n > 1 else 0.
    return dict(mean=mean, std=std, min=min(values), max=max(values), n=n)


def summarize_study(root: str,
                    arms: Sequence[str],
                    seeds: Sequence[int],
                    keys: Sequence[str],
                    mean_of_last: int = 1) -> Dict[str, dict]:
    """Per arm and key: the per-seed final values and their mean / spread.

    A key is looked up in the run's evaluation file (:func:`eval_path`)
    first, then in its log. A key may name alternatives ``'loss_cls|loss'``
    (the first one found counts) and end in a reduction over the run
    (``'accuracy/top1@max'``: the best value; :func:`last_value`). Runs
    or keys that are missing are left out and listed under ``missing``.

    Returns:
        dict: ``{arm: {key: {'per_seed': {seed: value}, 'mean': ...,
        'std': ..., 'min': ..., 'max': ..., 'n': ...}, 'missing': [...]}}``.
    """
    out = {}
    for arm in arms:
        entry = dict(missing=[])
        records, evals = {}, {}
        for seed in seeds:
            try:
                records[seed] = read_scalars(run_dir(root, arm, seed))
            except FileNotFoundError:
                entry['missing'].append(f'seed{seed}')
                continue
            path = eval_path(root, arm, seed)
            evals[seed] = read_eval_results(path) if osp.exists(path) else {}
        for key in keys:
            per_seed = {}
            for seed, recs in records.items():
                for alt in key.split('|'):
                    value = evals[seed].get(alt)
                    if value is None:
                        value = last_value(recs, alt, mean_of_last)
                    if value is not None:
                        per_seed[seed] = value
                        break
                else:
                    entry['missing'].append(f'seed{seed}:{key}')
            stats = mean_std(list(per_seed.values())) if per_seed else {}
            entry[key] = dict(per_seed=per_seed, **stats)
        out[arm] = entry
    return out


def study_table(summary: Dict[str, dict],
                keys: Sequence[str],
                digits: int = 2,
                per_seed: bool = False) -> str:
    """A markdown table: one row an arm, ``mean ± std (n)`` a key (with
    ``per_seed``, followed by each seed's value: ``12.00 ± 2.00 (3): 10.00,
    14.00, 12.00``)."""
    lines = [
        '| arm | ' + ' | '.join(k.replace('|', ' or ') for k in keys) + ' |',
        '| --- |' + ' --- |' * len(keys),
    ]
    for arm, entry in summary.items():
        cells = []
        for key in keys:
            stats = entry.get(key, {})
            if not stats.get('n'):
                cells.append('-')
                continue
            cell = (f"{stats['mean']:.{digits}f} ± "
                    f"{stats['std']:.{digits}f} ({stats['n']})")
            if per_seed:
                cell += ': ' + ', '.join(
                    f'{stats["per_seed"][seed]:.{digits}f}'
                    for seed in sorted(stats['per_seed']))
            cells.append(cell)
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def mean_curves(root: str, arms: Sequence[str], seeds: Sequence[int],
                key: str) -> Dict[str, Tuple[List[float], List[float]]]:
    """Per arm, ``key`` over training averaged over the seeds that logged
    it at every step (for a chart of the arms side by side)."""
    out = {}
    for arm in arms:
        runs = []
        for seed in seeds:
            try:
                steps, values = curve(
                    read_scalars(run_dir(root, arm, seed)), key)
            except FileNotFoundError:
                continue
            if steps:
                runs.append(dict(zip(steps, values)))
        if not runs:
            continue
        common = sorted(set.intersection(*(set(r) for r in runs)))
        out[arm] = (common,
                    [sum(r[s] for r in runs) / len(runs) for s in common])
    return out
