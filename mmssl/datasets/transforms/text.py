# Copyright (c) mmssl contributors. All rights reserved.
"""Text transforms: ALBERT's n-gram masking and packing of text items.

:func:`ngram_mask_spans` is the pure masking rule (spec section 2, step
4); :class:`NgramMLMMask` (``mmssl.NgramMLMMask``) applies it to an item
of :class:`mmssl.AlbertPretrainDataset`; :class:`PackTextInputs`
(``mmssl.PackTextInputs``) packs text items (pretraining or fine-tuning)
into ``{'inputs': dict(input_ids, token_type_ids), 'data_samples':
BaseDataElement}``, the format :class:`mmssl.TextDataPreprocessor` batches.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mmssl.registry import TRANSFORMS
from mmssl.utils.validation import check_float, check_int

__all__ = [
    'ngram_mask_spans', 'mask_budget', 'NgramMLMMask', 'PackTextInputs',
    'TEXT_SPECIAL_IDS'
]

#: Special token ids of mmssl's tokenizers: pad, unk, [CLS], [SEP], [MASK].
TEXT_SPECIAL_IDS = (0, 1, 2, 3, 4)


def mask_budget(num_tokens: int, mask_prob: float,
                max_predictions: int) -> int:
    """``min(max_predictions, max(1, round(mask_prob * num_tokens)))``
    (Python's ``round``, as the reference)."""
    return min(max_predictions, max(1, int(round(num_tokens * mask_prob))))


def _word_units(word_starts: np.ndarray,
                candidate: np.ndarray) -> List[List[int]]:
    """Whole-word units: a candidate token that starts a word, or follows a
    non-candidate (special) token, opens a unit; the others join it."""
    units, previous = [], -2
    for i in np.flatnonzero(candidate):
        if word_starts[i] or previous != i - 1 or not units:
            units.append([int(i)])
        else:
            units[-1].append(int(i))
        previous = i
    return units


def ngram_mask_spans(word_starts: Sequence[bool],
                     candidate: Sequence[bool],
                     budget: int,
                     rng: np.random.Generator,
                     max_ngram: int = 3,
                     favor_shorter: bool = True) -> List[List[int]]:
    """Choose the masked spans of one sequence (ALBERT's n-gram masking).

    Candidate units are whole words (see ``word_starts``). Their start
    positions are shuffled; at each, n in ``1..max_ngram`` is drawn with
    ``p(n) ∝ 1/n`` (``favor_shorter``; otherwise the same weights reversed,
    ``p(n) ∝ 1/(max_ngram + 1 - n)``, as google-research/albert), limited
    to the words left in the sequence, and shrunk while the n-gram would exceed
    the budget (skipped if even one word does); a span overlapping an
    earlier one is skipped. Stops when ``budget`` tokens are chosen.

    Args:
        word_starts (Sequence[bool]): ``(T,)`` whether each token starts a
            word.
        candidate (Sequence[bool]): ``(T,)`` whether a token may be masked
            (False for special tokens).
        budget (int): most tokens to choose (see :func:`mask_budget`).
        rng (np.random.Generator): the random source.
        max_ngram (int): longest span in words. Defaults to 3.
        favor_shorter (bool): ``p(n) ∝ 1/n``; False reverses the
            weights. Defaults to True.

    Returns:
        list[list[int]]: the spans in the order chosen, each the sorted
        token positions of n consecutive whole words; they never overlap
        and hold at most ``budget`` tokens together.
    """
    starts = np.asarray(word_starts, dtype=bool)
    units = _word_units(starts, np.asarray(candidate, dtype=bool))
    ngrams = np.arange(1, max_ngram + 1)
    pvals = 1. / ngrams
    if not favor_shorter:  # the reference reverses the weights
        pvals = pvals[::-1]
    spans, covered, total = [], set(), 0
    for idx in rng.permutation(len(units)):
        if total >= budget:
            break
        avail = min(max_ngram, len(units) - idx)
        p = pvals[:avail] / pvals[:avail].sum()
        n = int(rng.choice(ngrams[:avail], p=p))
        span = sum(units[idx:idx + n], [])
        while total + len(span) > budget and n > 1:
            n -= 1
            span = sum(units[idx:idx + n], [])
        if total + len(span) > budget or covered.intersection(span):
            continue
        covered.update(span)
        spans.append(span)
        total += len(span)
    return spans


@TRANSFORMS.register_module()
class NgramMLMMask(BaseTransform):
    """ALBERT's n-gram masked-language-model masking (spec section 2, 4).

    The budget is ``min(max_predictions, max(1, round(mask_prob * T)))``
    for ``T`` tokens (special tokens included, as in the reference); the
    spans come from :func:`ngram_mask_spans`. Each chosen token becomes
    ``[MASK]`` (80 %), stays (10 %) or becomes a random non-special token
    of the vocabulary (10 %).

    Random source: with ``seed`` given, a numpy generator seeded with
    ``(seed, sample_idx)``, so an item is masked the same way in every
    epoch and run (fixed masking, as the reference's offline data);
    without, a generator seeded from numpy's global generator, which
    mmengine seeds (``randomness.seed``) in the main process and in each
    data-loader worker, so masks change every epoch (dynamic masking) and a
    seeded run repeats.

    **Required keys**: ``input_ids`` (T,), ``word_starts`` (T,) and, with
    ``seed``, ``sample_idx``.

    **Modified keys**: ``input_ids`` (the masked sequence).

    **Added keys**: ``mlm_positions`` (P,) int64, ``mlm_labels`` (P,) int64
    (the original ids), ``mlm_weights`` (P,) float32 (1 real, 0 padding),
    with ``P = max_predictions``, sorted by position and padded with 0.

    Args:
        mask_prob (float): share of tokens to predict. Defaults to 0.15.
        max_ngram (int): longest span in words. Defaults to 3.
        max_predictions (int): ``P``. Defaults to 20.
        favor_shorter (bool): ``p(n) ∝ 1/n``; False reverses the weights
            (see :func:`ngram_mask_spans`). Defaults to True.
        mask_token_id (int): id of ``[MASK]``. Defaults to 4.
        vocab_size (int): size of the vocabulary the random tokens come
            from. Defaults to 30000.
        special_ids (Sequence[int]): never masked nor drawn as random
            tokens. Defaults to (0, 1, 2, 3, 4).
        mask_rate (float): share of chosen tokens set to ``[MASK]``.
            Defaults to 0.8.
        random_rate (float): share set to a random token. Defaults to 0.1.
        seed (int, optional): fixed masking seed (see above).
    """

    def __init__(self,
                 mask_prob: float = 0.15,
                 max_ngram: int = 3,
                 max_predictions: int = 20,
                 favor_shorter: bool = True,
                 mask_token_id: int = 4,
                 vocab_size: int = 30000,
                 special_ids: Sequence[int] = TEXT_SPECIAL_IDS,
                 mask_rate: float = 0.8,
                 random_rate: float = 0.1,
                 seed: Optional[int] = None) -> None:
        owner = 'mmssl.NgramMLMMask'
        self.mask_prob = check_float(
            mask_prob, 'mask_prob', owner, 0., 1., inclusive=(False, True))
        self.max_ngram = check_int(max_ngram, 'max_ngram', owner)
        self.max_predictions = check_int(max_predictions, 'max_predictions',
                                         owner)
        self.favor_shorter = bool(favor_shorter)
        self.vocab_size = check_int(vocab_size, 'vocab_size', owner, 2)
        self.mask_token_id = check_int(
            mask_token_id,
            'mask_token_id',
            owner,
            minimum=0,
            maximum=self.vocab_size - 1)
        self.special_ids = tuple(int(i) for i in special_ids)
        self.mask_rate = check_float(mask_rate, 'mask_rate', owner, 0., 1.)
        self.random_rate = check_float(random_rate, 'random_rate', owner, 0.,
                                       1. - self.mask_rate)
        self.seed = None if seed is None else check_int(
            seed, 'seed', owner, minimum=0)
        self.random_ids = np.setdiff1d(
            np.arange(self.vocab_size), np.asarray(self.special_ids))
        if len(self.random_ids) == 0:
            raise ValueError(f'{owner}: vocab_size={vocab_size} has no '
                             'non-special token to draw')

    def _rng(self, results: dict) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(np.random.randint(0, 2**31, size=4))
        if 'sample_idx' not in results:
            raise KeyError('mmssl.NgramMLMMask: seed is set but the item has '
                           'no sample_idx (mmengine data sets add it)')
        return np.random.default_rng([self.seed, int(results['sample_idx'])])

    def transform(self, results: dict) -> dict:
        for key in ('input_ids', 'word_starts'):
            if key not in results:
                raise KeyError(f'mmssl.NgramMLMMask: the item has no {key!r}; '
                               'use it after mmssl.AlbertPretrainDataset '
                               '(keys: ' + ', '.join(results) + ')')
        ids = np.array(results['input_ids'], dtype=np.int64)
        if ids.max(initial=0) >= self.vocab_size:
            raise ValueError(
                f'mmssl.NgramMLMMask: token id {int(ids.max())} >= vocab_size='
                f'{self.vocab_size}; set vocab_size to the tokenizer\'s size')
        rng = self._rng(results)
        candidate = ~np.isin(ids, self.special_ids)
        budget = mask_budget(len(ids), self.mask_prob, self.max_predictions)
        spans = ngram_mask_spans(results['word_starts'], candidate, budget,
                                 rng, self.max_ngram, self.favor_shorter)
        positions = np.array(sorted(sum(spans, [])), dtype=np.int64)
        labels = ids[positions]
        draw = rng.random(len(positions))
        random_tokens = rng.choice(self.random_ids, size=len(positions))
        masked = ids.copy()
        to_mask = draw < self.mask_rate
        to_random = (draw >= self.mask_rate) & (
            draw < self.mask_rate + self.random_rate)
        masked[positions[to_mask]] = self.mask_token_id
        masked[positions[to_random]] = random_tokens[to_random]
        num, size = len(positions), self.max_predictions
        results['input_ids'] = masked
        results['mlm_positions'] = np.zeros(size, np.int64)
        results['mlm_positions'][:num] = positions
        results['mlm_labels'] = np.zeros(size, np.int64)
        results['mlm_labels'][:num] = labels
        results['mlm_weights'] = np.zeros(size, np.float32)
        results['mlm_weights'][:num] = 1.
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mask_prob={self.mask_prob}, '
                f'max_ngram={self.max_ngram}, max_predictions='
                f'{self.max_predictions}, favor_shorter={self.favor_shorter}, '
                f'mask_token_id={self.mask_token_id}, vocab_size='
                f'{self.vocab_size}, seed={self.seed})')


def _tensor(value, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value if dtype is None else value.to(dtype)
    array = np.asarray(value)
    if dtype is None:
        dtype = torch.float32 if array.dtype.kind == 'f' else torch.int64
    return torch.as_tensor(array, dtype=dtype)


@TRANSFORMS.register_module()
class PackTextInputs(BaseTransform):
    """Pack a text item into ``inputs`` and a ``BaseDataElement``.

    Output::

        {'inputs': dict(input_ids=LongTensor[T], token_type_ids=LongTensor[T]),
         'data_samples': BaseDataElement(metainfo=dict(sample_idx=...),
                                         mlm_positions=..., sop_label=...)}

    Missing ``token_type_ids`` become zeros. Data fields: integer arrays /
    values become LongTensors (``mlm_positions``, ``mlm_labels``,
    ``sop_label``, a class ``gt_label``), floats FloatTensors
    (``mlm_weights``, a regression ``gt_label``); scalars are 0-d tensors.
    Keys that the item lacks are skipped.

    Args:
        input_keys (Sequence[str]): keys put in ``inputs`` as LongTensors.
            Defaults to ``('input_ids', 'token_type_ids')``.
        data_keys (Sequence[str]): keys put in the data sample as tensors.
            Defaults to the pretraining and fine-tuning targets.
        meta_keys (Sequence[str]): keys put in the data sample's metainfo
            as they are. Defaults to ``('sample_idx',)``.
    """

    def __init__(
        self,
        input_keys: Sequence[str] = ('input_ids', 'token_type_ids'),
        data_keys: Sequence[str] = ('mlm_positions', 'mlm_labels',
                                    'mlm_weights', 'sop_label', 'gt_label'),
        meta_keys: Sequence[str] = ('sample_idx', )
    ) -> None:
        self.input_keys = tuple(input_keys)
        self.data_keys = tuple(data_keys)
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'input_ids' not in results:
            raise KeyError('mmssl.PackTextInputs: the item has no '
                           "'input_ids' (keys: " + ', '.join(results) + ')')
        ids = _tensor(results['input_ids'], torch.long)
        inputs = {}
        for key in self.input_keys:
            if key in results:
                inputs[key] = _tensor(results[key], torch.long)
            elif key == 'token_type_ids':
                inputs[key] = torch.zeros_like(ids)
        sample = BaseDataElement()
        sample.set_data({
            key: _tensor(results[key])
            for key in self.data_keys if key in results
        })
        sample.set_metainfo(
            {key: results[key]
             for key in self.meta_keys if key in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_keys={self.input_keys}, '
                f'data_keys={self.data_keys}, meta_keys={self.meta_keys})')
