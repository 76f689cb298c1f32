# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning's finetuning profile and greedy search over an evaluation
function (usually a :class:`~mmssl.analysis.subtuning_search.SubsetEvaluator`),
and their outputs: JSON, pictures and the config snippet of the chosen
blocks (spec sections 2 and 6)."""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence

from mmssl.models.utils.subtuning import greedy_select
from mmssl.utils.validation import check_choice, check_float
from .subtuning_search import _OWNER, SearchError, Subset, consecutive_pairs

__all__ = [
    'finetuning_profile', 'greedy_search', 'profile_subsets', 'greedy_subsets',
    'plot_profile', 'plot_greedy', 'write_snippet'
]

Evaluate = Callable[[Subset], float]


def profile_subsets(blocks: Sequence[str],
                    pairs: bool = False) -> List[Subset]:
    """The distinct subsets :func:`finetuning_profile` evaluates, in
    order: none, every single block, the consecutive pairs (with
    ``pairs``), all blocks."""
    subsets: List[Subset] = [()] + [(b, ) for b in blocks]
    if pairs:
        subsets += consecutive_pairs(blocks)
    subsets.append(tuple(blocks))
    return list(dict.fromkeys(subsets))


def finetuning_profile(evaluate: Evaluate,
                       blocks: Sequence[str],
                       pairs: bool = False) -> dict:
    """Accuracy of every single block, of the empty set and of all blocks.

    Args:
        evaluate (Callable): ``evaluate(subset) -> accuracy`` (e.g. a
            :class:`SubsetEvaluator`).
        blocks (Sequence[str]): the candidate blocks, in forward order.
        pairs (bool): also every pair of consecutive blocks. Defaults to
            False.

    Returns:
        dict: ``blocks``, ``linear_probe`` (the empty set), ``all_blocks``
        (all candidates), ``single`` (block -> accuracy) and ``pairs``
        (``'a+b'`` -> accuracy; empty unless ``pairs``).
    """
    blocks = list(blocks)
    if not blocks:
        raise SearchError(f'{_OWNER}: the profile needs at least one block')
    accuracy = {
        subset: float(evaluate(subset))
        for subset in profile_subsets(blocks, pairs)
    }
    return dict(
        blocks=blocks,
        linear_probe=accuracy[()],
        all_blocks=accuracy[tuple(blocks)],
        single={b: accuracy[(b, )]
                for b in blocks},
        pairs={'+'.join(p): accuracy[p]
               for p in consecutive_pairs(blocks)} if pairs else {})


def greedy_subsets(num_blocks: int) -> int:
    """The most distinct subsets :func:`greedy_search` can evaluate:
    ``1 + n (n + 1) / 2`` for every start (with ``'best'`` the full set of
    the start is also the last step of the forward search)."""
    return 1 + num_blocks * (num_blocks + 1) // 2


def greedy_search(evaluate: Evaluate,
                  blocks: Sequence[str],
                  eps: float = 0.01,
                  start: str = 'non') -> dict:
    """:func:`~mmssl.models.utils.greedy_select` as JSON-ready numbers.

    Args:
        evaluate (Callable): ``evaluate(subset) -> accuracy``.
        blocks (Sequence[str]): the candidate blocks.
        eps (float): tolerance of a step below the best. Defaults to 0.01.
        start (str): ``'non'``, ``'all'`` or ``'best'``. Defaults to
            ``'non'``.

    Returns:
        dict: ``selected`` (list), ``accuracy``, ``blocks``, ``eps``,
        ``start`` and ``history`` (one dict per step, subsets as lists).
    """
    try:
        eps = check_float(eps, 'eps', _OWNER, low=0.)
        check_choice(start, 'start', _OWNER, ('non', 'all', 'best'))
    except ValueError as err:
        raise SearchError(str(err)) from None
    result = greedy_select(list(blocks), evaluate, eps=eps, start=start)
    history = [
        dict(step, subset=list(step['subset'])) for step in result.history
    ]
    return dict(
        selected=list(result.selected),
        accuracy=result.accuracy,
        blocks=list(blocks),
        eps=eps,
        start=start,
        history=history)


def _figure(width: float, height: float = 4.):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def plot_profile(profile: dict, path: str, title: str = '') -> str:
    """Bar chart of the single-block accuracies (pairs as a line between
    their blocks), with the linear-probe and all-blocks levels.

    Drawn on a bare matplotlib ``Figure`` (Agg canvas): no display needed.
    """
    blocks = profile['blocks']
    fig, ax = _figure(max(5., 0.6 * len(blocks) + 2))
    xs = list(range(len(blocks)))
    ax.bar(
        xs, [profile['single'][b] for b in blocks],
        color='tab:blue',
        alpha=0.8,
        label='single block')
    if profile.get('pairs'):
        pair_xs = [i + 0.5 for i in range(len(blocks) - 1)]
        ax.plot(
            pair_xs, [
                profile['pairs'][f'{a}+{b}']
                for a, b in consecutive_pairs(blocks)
            ],
            color='tab:orange',
            marker='o',
            label='consecutive pair')
    ax.axhline(
        profile['linear_probe'],
        color='grey',
        ls='--',
        lw=1.2,
        label='linear probe (no block)')
    ax.axhline(
        profile['all_blocks'],
        color='black',
        ls=':',
        lw=1.2,
        label=f'all {len(blocks)} blocks')
    values = [profile['linear_probe'], profile['all_blocks']] + list(
        profile['single'].values()) + list(profile.get('pairs', {}).values())
    low, high = min(values), max(values)
    pad = max(0.02, 0.1 * (high - low))
    ax.set_ylim(max(0., low - pad), high + pad)
    ax.set_xticks(xs)
    ax.set_xticklabels(blocks, rotation=45, ha='right')
    ax.set_ylabel('validation top-1')
    ax.set_title(title or 'finetuning profile')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_greedy(result: dict, path: str, title: str = '') -> str:
    """Accuracy along the greedy path: the applied step's accuracy, every
    candidate tried at each step (small dots) and the best subset (star)."""
    history = result['history']
    fig, ax = _figure(max(5., 0.7 * len(history) + 2))
    steps = [h['step'] for h in history]
    for h in history:
        tried = list(h['candidates'].values())
        ax.scatter(
            [h['step']] * len(tried),
            tried,
            s=12,
            color='tab:grey',
            alpha=0.5,
            label='candidates' if h['step'] == 1 else None)
    ax.plot(
        steps, [h['accuracy'] for h in history],
        marker='o',
        color='tab:blue',
        label='greedy path')
    ax.step(
        steps, [h['best'] for h in history],
        where='post',
        color='tab:green',
        ls='--',
        lw=1,
        label='best so far')
    best = next(h for h in history if h['subset'] == result['selected'])
    ax.scatter([best['step']], [best['accuracy']],
               marker='*',
               s=200,
               color='tab:red',
               zorder=3,
               label='selected')
    labels = []
    for h in history:
        if h['action'] == 'start':
            labels.append('start: ' + ('none' if not h['subset'] else 'all'))
        else:
            labels.append(('+' if h['action'] == 'add' else '-') + h['block'])
    ax.set_xticks(steps)
    ax.set_xticklabels(labels, rotation=45, ha='right')
    ax.set_ylabel('validation top-1')
    ax.set_title(title or f'greedy selection (start={result["start"]}, '
                 f'eps={result["eps"]})')
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def write_snippet(path: str,
                  selected: Sequence[str],
                  accuracy: float,
                  config: Optional[str],
                  command: str,
                  data: str,
                  base: bool = True) -> str:
    """Write the chosen blocks as a config file.

    The file holds ``model = dict(trainable_blocks=[...])`` with comments
    on the accuracy, the command and the selection data and, with
    ``base``, ``_base_`` = the searched config (as a path relative to the
    file, or an ``mmssl::`` name as given), so it is a complete config:
    ``python tools/train.py <file>`` trains the chosen blocks, and another
    config can ``_base_`` on it; or paste the ``model`` line into a config.

    Args:
        path (str): the ``.py`` file to write.
        selected (Sequence[str]): the chosen blocks (``[]``: head only).
        accuracy (float): their validation top-1 (fraction).
        config (str, optional): the searched config file.
        command (str): the command that made the selection.
        data (str): the data used for selection (one sentence).
        base (bool): add the ``_base_`` line. Defaults to True.

    Returns:
        str: ``path``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    lines = [
        '# Backbone blocks chosen by the SubTuning greedy search',
        '# (tools/analysis_tools/subtuning_search.py greedy).',
        f'# validation top-1 of the selection: {accuracy:.4f} '
        f'({100 * accuracy:.2f}%)',
        f'# selection data: {data}',
        f'# command: {command}',
    ]
    if base and config and (config.startswith('mmssl::')
                            or osp.isfile(config)):
        ref = config if config.startswith('mmssl::') else osp.relpath(
            osp.abspath(config), folder)
        lines += [
            '# Train with these blocks: python tools/train.py <this file>;',
            '# or copy the model line into a config based on',
            f'# {config}.',
            f'_base_ = [{ref!r}]',
        ]
    lines.append(f'model = dict(trainable_blocks={list(selected)!r})')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path
