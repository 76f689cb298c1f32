# Copyright (c) mmssl contributors. All rights reserved.
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from mmssl.datasets.transforms import (NgramMLMMask, PackTextInputs,
                                       mask_budget, ngram_mask_spans)

VOCAB = 1000


def _item(num_words, rng, multi_token=False, sample_idx=0):
    """[CLS] words [SEP]; words of 1 token, or 1-3 tokens."""
    lengths = rng.integers(1, 4, num_words) if multi_token else np.ones(
        num_words, int)
    starts = [True]
    for n in lengths:
        starts += [True] + [False] * (int(n) - 1)
    starts.append(True)
    ids = rng.integers(5, VOCAB, len(starts))
    ids[0], ids[-1] = 2, 3
    return dict(
        input_ids=ids, word_starts=np.array(starts), sample_idx=sample_idx)


@pytest.mark.parametrize('num_words', [3, 20, 60, 130, 200])
def test_number_of_predictions(num_words):
    rng = np.random.default_rng(0)
    mask = NgramMLMMask(vocab_size=VOCAB, seed=0)
    for k in range(20):
        item = _item(num_words, rng, sample_idx=k)
        length = len(item['input_ids'])
        out = mask(dict(item))
        expected = min(20, max(1, round(0.15 * length)))
        assert out['mlm_weights'].sum() == expected == mask_budget(
            length, 0.15, 20)
        assert out['mlm_positions'].shape == (20, )
        real = out['mlm_positions'][:expected]
        assert (np.diff(real) > 0).all()  # sorted, distinct
        assert (out['mlm_positions'][expected:] == 0).all()
        assert (out['mlm_labels'][expected:] == 0).all()
        assert (out['mlm_labels'][:expected] == item['input_ids'][real]).all()
        assert not np.isin(real, [0, length - 1]).any()  # never [CLS]/[SEP]


def test_spans_are_whole_words_and_disjoint():
    rng = np.random.default_rng(1)
    for _ in range(200):
        item = _item(60, rng, multi_token=True)
        starts = item['word_starts']
        candidate = ~np.isin(item['input_ids'], [0, 1, 2, 3, 4])
        spans = ngram_mask_spans(starts, candidate, 20, rng)
        flat = sum(spans, [])
        assert len(flat) == len(set(flat)) <= 20
        for span in spans:
            assert span == list(range(span[0], span[-1] + 1))
            assert starts[span[0]] and candidate[span].all()
            end = span[-1] + 1  # the next token starts a new word
            assert starts[end]
            words = starts[span].sum()
            assert 1 <= words <= 3


def test_span_length_frequencies():
    """p(n) = 6/11, 3/11, 2/11 when the budget is far from binding."""
    rng = np.random.default_rng(2)
    starts = np.ones(3000, bool)
    candidate = np.ones(3000, bool)
    counts = Counter()
    for _ in range(300):
        spans = ngram_mask_spans(starts, candidate, 100, rng)
        counts.update(len(s) for s in spans[:-1])  # the last may be shrunk
    total = sum(counts.values())
    freq = np.array([counts[n] / total for n in (1, 2, 3)])
    assert np.allclose(freq, [6 / 11, 3 / 11, 2 / 11], atol=0.02), freq
    longer = Counter()
    for _ in range(100):
        spans = ngram_mask_spans(
            starts, candidate, 100, rng, favor_shorter=False)
        longer.update(len(s) for s in spans[:-1])
    assert longer[3] > longer[1]


def test_replacement_split():
    rng = np.random.default_rng(3)
    mask = NgramMLMMask(vocab_size=VOCAB, seed=5)
    kinds = Counter()
    for k in range(600):
        item = _item(130, rng, sample_idx=k)
        original = item['input_ids'].copy()
        out = mask(dict(item))
        n = int(out['mlm_weights'].sum())
        pos = out['mlm_positions'][:n]
        new = out['input_ids'][pos]
        kinds['mask'] += int((new == 4).sum())
        kinds['same'] += int((new == original[pos]).sum())
        random = new[(new != 4) & (new != original[pos])]
        kinds['random'] += len(random)
        assert (random >= 5).all() and (random < VOCAB).all()
        unmasked = np.setdiff1d(np.arange(len(original)), pos)
        assert (out['input_ids'][unmasked] == original[unmasked]).all()
    total = sum(kinds.values())
    assert total == 600 * 20
    assert abs(kinds['mask'] / total - 0.8) < 0.015
    assert abs(kinds['same'] / total - 0.1) < 0.015
    assert abs(kinds['random'] / total - 0.1) < 0.015


def test_fixed_and_dynamic_masking():
    item = _item(100, np.random.default_rng(4), sample_idx=7)
    fixed = NgramMLMMask(vocab_size=VOCAB, seed=1)
    a, b = fixed(dict(item)), fixed(dict(item))
    assert np.array_equal(a['input_ids'], b['input_ids'])
    assert np.array_equal(a['mlm_positions'], b['mlm_positions'])
    other = fixed(dict(item, sample_idx=8))
    assert not np.array_equal(a['mlm_positions'], other['mlm_positions'])
    dynamic = NgramMLMMask(vocab_size=VOCAB)
    np.random.seed(0)
    c, d = dynamic(dict(item)), dynamic(dict(item))
    np.random.seed(0)
    e = dynamic(dict(item))
    assert not np.array_equal(c['mlm_positions'], d['mlm_positions'])
    assert np.array_equal(c['mlm_positions'], e['mlm_positions'])


def test_mask_errors():
    with pytest.raises(ValueError, match='mask_prob'):
        NgramMLMMask(mask_prob=0)
    with pytest.raises(ValueError, match='mask_token_id'):
        NgramMLMMask(vocab_size=4, mask_token_id=4)
    item = _item(10, np.random.default_rng(0))
    with pytest.raises(ValueError, match='vocab_size'):
        NgramMLMMask(vocab_size=50)(dict(item))
    with pytest.raises(KeyError, match='word_starts'):
        NgramMLMMask(vocab_size=VOCAB)(dict(input_ids=item['input_ids']))
    with pytest.raises(KeyError, match='sample_idx'):
        NgramMLMMask(
            vocab_size=VOCAB, seed=0)(
                dict(
                    input_ids=item['input_ids'],
                    word_starts=item['word_starts']))


def test_pack_text_inputs():
    rng = np.random.default_rng(5)
    item = NgramMLMMask(
        vocab_size=VOCAB, seed=0)(
            dict(
                _item(30, rng, sample_idx=3),
                sop_label=1,
                token_type_ids=np.zeros(32, np.int64)))
    packed = PackTextInputs()(item)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert set(inputs) == {'input_ids', 'token_type_ids'}
    assert inputs['input_ids'].dtype == torch.long
    assert isinstance(sample, BaseDataElement) and sample.sample_idx == 3
    assert sample.mlm_positions.dtype == torch.long
    assert sample.mlm_weights.dtype == torch.float32
    assert sample.sop_label.dtype == torch.long and sample.sop_label.dim() == 0
    assert 'word_starts' not in sample
    cls = PackTextInputs()(dict(input_ids=[2, 9, 3], gt_label=2))
    assert cls['data_samples'].gt_label.dtype == torch.long
    assert cls['inputs']['token_type_ids'].tolist() == [0, 0, 0]
    reg = PackTextInputs()(dict(input_ids=[2, 9, 3], gt_label=3.5))
    assert reg['data_samples'].gt_label.dtype == torch.float32
    with pytest.raises(KeyError, match='input_ids'):
        PackTextInputs()(dict(gt_label=1))


class _AlwaysLongest:
    """A random source that keeps the word order and always draws the
    longest n-gram allowed."""

    def permutation(self, n):
        return np.arange(n)

    def choice(self, values, p=None):
        return values[-1]


def test_a_span_over_the_budget_is_shrunk_not_skipped():
    # 6 one-token words, budget 2, every draw n = 3: the first span is
    # shrunk to 2 words (spec step 4: "shrink n if it would exceed the
    # budget"), not skipped
    starts = [True] * 6
    spans = ngram_mask_spans(starts, [True] * 6, 2, _AlwaysLongest())
    assert spans == [[0, 1]]
    # budget 1: shrunk to one word
    assert ngram_mask_spans(starts, [True] * 6, 1, _AlwaysLongest()) == [[0]]
