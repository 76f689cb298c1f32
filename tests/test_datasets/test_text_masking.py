# Copyright (c) mmssl contributors. All rights reserved.
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from mmssl.datasets.tokenizer import SPECIAL_TOKENS
from mmssl.datasets.transforms import (TEXT_SPECIAL_IDS, NgramMLMMask,
                                       PackTextInputs, mask_budget,
                                       ngram_mask_spans)

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


def test_longer_ngrams_favoured_as_the_reference_reverses_the_weights():
    """favor_shorter=False: google-research/albert reverses the weights 1/n,
    p(n) = 2/11, 3/11, 6/11 (not proportional to n: 1/6, 2/6, 3/6)."""
    rng = np.random.default_rng(12)
    starts = np.ones(3000, bool)
    counts = Counter()
    for _ in range(300):
        spans = ngram_mask_spans(starts, starts, 100, rng, favor_shorter=False)
        counts.update(len(s) for s in spans[:-1])
    total = sum(counts.values())
    freq = np.array([counts[n] / total for n in (1, 2, 3)])
    assert np.allclose(freq, [2 / 11, 3 / 11, 6 / 11], atol=0.02), freq


@pytest.mark.parametrize('favor_shorter,expected', [(True, 1 / 9),
                                                    (False, 1 / 5)])
def test_ngram_length_is_drawn_among_the_words_left(favor_shorter, expected):
    """Three one-token words, max_ngram 3: at the middle word n is drawn
    from {1, 2} with the weights renormalised (p(2) = 1/3, or 3/5 with the
    reversed weights). The first span is [1, 2] when the middle word is
    visited first (1/3) and n = 2: p = 1/9 (1/5)."""
    rng = np.random.default_rng(13)
    hits = sum(
        ngram_mask_spans([True] * 3, [True] *
                         3, 10, rng, 3, favor_shorter)[0] == [1, 2]
        for _ in range(6000))
    # drawing from {1, 2, 3} there instead gives 5/33 (and 3/11)
    assert abs(hits / 6000 - expected) < 0.015, hits / 6000


def test_a_budget_of_one_draws_one_ngram_length_then_stops():
    """The loop stops when the budget is reached, before the next unit's
    draw (the reference's ``break``): the generator has made the
    permutation and one choice, so the 80 / 10 / 10 draws that follow are
    the reference's."""
    starts = np.ones(50, bool)
    rng = np.random.default_rng(14)
    spans = ngram_mask_spans(starts, starts, 1, rng)
    replay = np.random.default_rng(14)
    first = int(replay.permutation(50)[0])
    avail = min(3, 50 - first)
    weights = 1. / np.arange(1, avail + 1)
    replay.choice(np.arange(1, avail + 1), p=weights / weights.sum())
    assert spans == [[first]]
    assert rng.random() == replay.random()


def test_a_piece_after_a_special_token_opens_its_own_unit():
    """[CLS] a ##b [SEP] ##c [SEP]: '##c' does not start a word but follows
    a special token, so it is a unit of its own, never masked together
    with a, ##b."""
    starts = [True, True, False, True, False, True]
    candidate = [False, True, True, False, True, False]
    rng = np.random.default_rng(15)
    seen = set()
    for _ in range(50):
        for span in ngram_mask_spans(starts, candidate, 3, rng, 1):
            seen.add(tuple(span))
    assert seen == {(1, 2), (4, )}


def test_budget_of_short_sequences_and_pythons_round():
    assert mask_budget(3, 0.15, 20) == 1  # round(0.45) = 0 -> at least 1
    assert mask_budget(10, 0.25, 20) == 2  # round(2.5): half to even
    assert mask_budget(14, 0.25, 20) == 4  # round(3.5)
    assert mask_budget(200, 0.15, 20) == 20


def test_mask_defaults_and_the_tokenizers_special_ids():
    mask = NgramMLMMask()
    assert (mask.mask_prob, mask.max_ngram, mask.max_predictions,
            mask.favor_shorter, mask.vocab_size, mask.mask_rate,
            mask.random_rate, mask.seed) == (0.15, 3, 20, True, 30000, 0.8,
                                             0.1, None)
    assert TEXT_SPECIAL_IDS == mask.special_ids == tuple(
        SPECIAL_TOKENS.values())
    assert mask.mask_token_id == SPECIAL_TOKENS['[MASK]']


def test_mask_argument_ranges():
    # mask_prob 1: every token up to the budget (one-word spans: longer
    # ones can leave words out by overlapping)
    item = _item(5, np.random.default_rng(0))
    out = NgramMLMMask(
        mask_prob=1., max_ngram=1, vocab_size=VOCAB, seed=0)(
            dict(item))
    assert out['mlm_weights'].sum() == 5  # the 5 words; [CLS] / [SEP] not
    # the smallest vocabulary: one special id and one to draw
    small = NgramMLMMask(vocab_size=2, mask_token_id=0, special_ids=(0, ))
    assert small.random_ids.tolist() == [1]
    with pytest.raises(ValueError, match='vocab_size'):
        NgramMLMMask(vocab_size=1, mask_token_id=0, special_ids=())
    # one non-special token is enough; none is refused
    assert NgramMLMMask(vocab_size=6).random_ids.tolist() == [5]
    with pytest.raises(ValueError, match='no non-special token'):
        NgramMLMMask(vocab_size=5)
    # random_rate up to 1 - mask_rate
    assert NgramMLMMask(mask_rate=0.7, random_rate=0.3).random_rate == 0.3
    with pytest.raises(ValueError, match='random_rate'):
        NgramMLMMask(mask_rate=0.8, random_rate=0.3)
    # the largest id passes, the vocabulary size itself is refused
    ids = np.array([2, VOCAB - 1, 3])
    starts = np.ones(3, bool)
    NgramMLMMask(
        vocab_size=VOCAB, seed=0)(
            dict(input_ids=ids, word_starts=starts, sample_idx=0))
    with pytest.raises(ValueError, match=f'token id {VOCAB} >= vocab_size'):
        NgramMLMMask(
            vocab_size=VOCAB, seed=0)(
                dict(
                    input_ids=ids + [0, 1, 0],
                    word_starts=starts,
                    sample_idx=0))


def test_pack_converts_tensors_to_the_key_dtype():
    packed = PackTextInputs()(
        dict(
            input_ids=torch.tensor([2, 9, 3], dtype=torch.int32),
            token_type_ids=torch.tensor([0, 0, 1], dtype=torch.int32),
            mlm_weights=torch.tensor([1., 0.], dtype=torch.float64)))
    assert packed['inputs']['input_ids'].dtype == torch.long
    assert packed['inputs']['token_type_ids'].dtype == torch.long
    # data fields keep a tensor's own dtype
    assert packed['data_samples'].mlm_weights.dtype == torch.float64
