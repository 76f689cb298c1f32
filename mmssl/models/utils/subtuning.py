# Copyright (c) mmssl contributors. All rights reserved.
"""SubTuning's pure parts: block names of a backbone and greedy selection.

Block names are module paths inside the backbone, as in its
``state_dict`` keys without the ``backbone.`` prefix:

* mmpretrain ``ResNet``: the stem (``conv1``, ``bn1``; ``stem``, ``stem.0``
  ... with ``deep_stem=True``), the stages ``layer1`` ... ``layer4`` and
  their residual blocks ``layer1.0``, ``layer1.1``, ...;
* mmpretrain ``VisionTransformer``: ``cls_token``, ``pos_embed``,
  ``patch_embed``, the blocks ``layers.0`` ... ``layers.{N-1}`` (and
  ``layers`` for all of them), the final norm ``ln1`` (``ln2`` with
  ``out_type='avg_featmap'``, ``pre_norm`` with ``pre_norm=True``).

The rule is generic: every direct parameter and every direct child module
with parameters of the backbone, and every item with parameters of a direct
child that is an ``nn.Sequential`` / ``nn.ModuleList`` (a stage or a list of
blocks). :func:`selectable_blocks` gives the items only, the candidates of
the finetuning profile and of :func:`greedy_select`.
"""
import math
from typing import (Any, Callable, Dict, Iterable, List, NamedTuple, Optional,
                    Sequence, Tuple)

import torch.nn as nn

from mmssl.utils.validation import check_choice, check_float

__all__ = [
    'block_names', 'selectable_blocks', 'resolve_blocks', 'in_blocks',
    'greedy_select', 'GreedyResult'
]

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def block_names(backbone: nn.Module) -> List[str]:
    """All names ``trainable_blocks`` accepts for ``backbone``, in order.

    Args:
        backbone (nn.Module): The backbone.

    Returns:
        list[str]: direct parameters, direct children with parameters and
        the items (with parameters) of direct children that are
        ``nn.Sequential`` / ``nn.ModuleList``, in registration order.
    """
    names = [name for name, _ in backbone.named_parameters(recurse=False)]
    for name, child in backbone.named_children():
        if not _has_params(child):
            continue
        names.append(name)
        if isinstance(child, _CONTAINERS):
            names += [
                f'{name}.{item_name}'
                for item_name, item in child.named_children()
                if _has_params(item)
            ]
    return names


def selectable_blocks(backbone: nn.Module) -> List[str]:
    """The blocks SubTuning selects among: items of the block containers.

    ``layer1.0`` ... ``layer4.{n-1}`` for ResNet (16 for ResNet-50),
    ``layers.0`` ... ``layers.{N-1}`` for ViT; the stem, the embeddings and
    the final norm are not candidates (spec section 2, step 6).

    Args:
        backbone (nn.Module): The backbone.

    Returns:
        list[str]: the block names, in forward order.
    """
    return [
        f'{name}.{item_name}' for name, child in backbone.named_children()
        if isinstance(child, _CONTAINERS)
        for item_name, item in child.named_children() if _has_params(item)
    ]


def in_blocks(name: str, blocks: Iterable[str]) -> bool:
    """Whether the module / parameter path ``name`` lies in one of
    ``blocks`` (equal to a block name or below it)."""
    return any(name == b or name.startswith(b + '.') for b in blocks)


def resolve_blocks(backbone: nn.Module,
                   blocks: Any,
                   key: str = 'trainable_blocks',
                   owner: Optional[str] = None) -> List[str]:
    """Check a list of block names against ``backbone``; normalise it.

    A leading ``backbone.`` is allowed (``backbone.layer4.2`` as in the
    classifier's ``state_dict``) and removed; repeated names are dropped.

    Args:
        backbone (nn.Module): The backbone the names refer to.
        blocks (list[str] | tuple[str]): The names; may be empty.
        key (str): The config key, for the messages.
        owner (str, optional): The part that takes it, for the messages.

    Returns:
        list[str]: the names without prefix, in the given order.

    Raises:
        ValueError: ``blocks`` is not a list / tuple of strings, or a name
            is not one of :func:`block_names` (all of which are listed).
    """
    subject = f'{owner}: {key}' if owner else key
    if isinstance(blocks, str) or not isinstance(blocks, (list, tuple)):
        raise ValueError(
            f'{subject} must be a list of backbone block names (e.g. '
            f"['layer4.2'] or ['layers.11']; [] trains the head only), "
            f'got {blocks!r}')
    valid = block_names(backbone)
    resolved: List[str] = []
    for block in blocks:
        if not isinstance(block, str):
            raise ValueError(f'{subject} must hold block names (str), got '
                             f'{block!r} in {list(blocks)!r}')
        name = block[len('backbone.'):] if block.startswith(
            'backbone.') else block
        if name not in valid:
            raise ValueError(
                f'{subject}: {block!r} is not a block of '
                f'{type(backbone).__name__}; valid names (a leading '
                f"'backbone.' is optional): {', '.join(valid)}")
        if name not in resolved:
            resolved.append(name)
    return resolved


class GreedyResult(NamedTuple):
    """The outcome of :func:`greedy_select`.

    Attributes:
        selected (list[str]): the best subset found, in the order of the
            candidate list.
        accuracy (float): its accuracy.
        history (list[dict]): one entry per evaluated step, see
            :func:`greedy_select`.
    """
    selected: List[str]
    accuracy: float
    history: List[Dict[str, Any]]


def greedy_select(blocks: Sequence[str],
                  evaluate: Callable[[Tuple[str, ...]], float],
                  eps: float = 0.01,
                  start: str = 'non') -> GreedyResult:
    """Greedy subset search of SubTuning (reference ``GreedySubsetSearch``).

    ``start='non'``: S = {} and blocks are added; ``start='all'``: S = all
    blocks and blocks are removed; ``start='best'``: both are evaluated and
    the better one is the start (the empty set on a tie), with its
    direction. Then, at most ``len(blocks)`` times: evaluate ``S + {b}``
    (or ``S - {b}``) for every candidate ``b``, apply the best ``b*``
    (the first in ``blocks`` order on a tie), and

    * if its accuracy beats the best so far, it becomes the best;
    * elif it is below ``best - eps``, stop;
    * else (within ``eps`` below the best) go on without a new best.

    The returned subset is the best one seen, not the last one. K-fold
    cross-validation is the business of ``evaluate`` (return the mean over
    the folds). Every subset is evaluated once (results are cached).

    Args:
        blocks (Sequence[str]): Candidate block names (distinct).
        evaluate (Callable): ``evaluate(subset) -> accuracy``; ``subset``
            is a tuple of block names in the order of ``blocks``, ``()``
            for the empty set. Usually trains with
            ``model.trainable_blocks=list(subset)`` and returns the
            validation top-1 accuracy.
        eps (float): Tolerance; a step may lose up to ``eps`` against the
            best accuracy without ending the search. Defaults to 0.01.
        start (str): ``'non'``, ``'all'`` or ``'best'``. Defaults to
            ``'non'``.

    Returns:
        GreedyResult: ``selected`` (best subset), its ``accuracy`` and
        ``history``: a dict per step with ``step`` (0 for the start),
        ``action`` (``'start'``, ``'add'`` or ``'remove'``), ``block``
        (None for the start), ``subset`` (tuple), ``accuracy``,
        ``candidates`` (block -> accuracy of that step's trials) and
        ``best`` (the best accuracy after the step).

    Raises:
        ValueError: empty or repeated ``blocks``, ``eps`` < 0, unknown
            ``start``, or ``evaluate`` returning a non-finite value.
    """
    owner = 'greedy_select'
    blocks = list(blocks)
    if not blocks or not all(isinstance(b, str) for b in blocks):
        raise ValueError(f'{owner}: blocks must be a non-empty list of '
                         f'block names, got {blocks!r}')
    if len(set(blocks)) != len(blocks):
        raise ValueError(f'{owner}: blocks must be distinct, got {blocks!r}')
    eps = check_float(eps, 'eps', owner, low=0.)
    check_choice(start, 'start', owner, ('non', 'all', 'best'))
    order = {b: i for i, b in enumerate(blocks)}
    cache: Dict[frozenset, float] = {}

    def acc_of(subset: frozenset) -> float:
        if subset not in cache:
            key = tuple(sorted(subset, key=order.__getitem__))
            value = evaluate(key)
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not math.isfinite(value):
                raise ValueError(f'{owner}: evaluate({key!r}) must return '
                                 f'a finite number, got {value!r}')
            cache[subset] = float(value)
        return cache[subset]

    def as_tuple(subset: frozenset) -> Tuple[str, ...]:
        return tuple(sorted(subset, key=order.__getitem__))

    empty, full = frozenset(), frozenset(blocks)
    if start == 'best':
        start = 'non' if acc_of(empty) >= acc_of(full) else 'all'
    adding = start == 'non'
    current = empty if adding else full
    best, best_set = acc_of(current), current
    history = [
        dict(
            step=0,
            action='start',
            block=None,
            subset=as_tuple(current),
            accuracy=best,
            candidates={},
            best=best)
    ]
    for step in range(1, len(blocks) + 1):
        candidates = [b for b in blocks if (b in current) != adding]
        if not candidates:
            break
        trials = {
            b: acc_of(current | {b} if adding else current - {b})
            for b in candidates
        }
        chosen = max(candidates, key=lambda b: (trials[b], -order[b]))
        acc = trials[chosen]
        current = current | {chosen} if adding else current - {chosen}
        if acc > best:
            best, best_set = acc, current
        history.append(
            dict(
                step=step,
                action='add' if adding else 'remove',
                block=chosen,
                subset=as_tuple(current),
                accuracy=acc,
                candidates=trials,
                best=best))
        if acc < best - eps:
            break
    return GreedyResult(list(as_tuple(best_set)), best, history)
