# Copyright (c) mmssl contributors. All rights reserved.
"""Span masks of speech: span lengths, exact counts per clone, padding,
determinism (mmssl.SpanMasker, block_span_mask, span_mask)."""
import pytest
import torch

from mmssl.models.utils import SpanMasker, block_span_mask, span_mask
from mmssl.registry import MODELS


def _runs(row: torch.Tensor):
    """(start, length) of the runs of True in a 1-D bool tensor."""
    out, start = [], None
    for i, v in enumerate(row.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


@pytest.mark.parametrize('frames', [20, 49, 97, 250, 1001])
def test_block_masks_have_exact_counts(frames):
    g = torch.Generator().manual_seed(frames)
    mask = block_span_mask(64, frames, 0.5, 5, 0.05, g)
    assert mask.dtype == torch.bool and mask.shape == (64, frames)
    assert (mask.sum(1) == int(frames * 0.5)).all()


def test_block_spans_are_centred_runs_of_mask_length():
    """Before the count equalisation, each centre masks the L frames
    ``c - L // 2 ... c - L // 2 + L - 1`` clamped to the sequence."""
    g = torch.Generator().manual_seed(0)
    for L in (5, 10):
        # one centre per row: int(100 * 0.05 / 5) or int(100 * 0.1 / 10)
        mask = block_span_mask(200, 100, L / 100, L, 0., g, same_count=False)
        for row in mask:
            (start, length), = _runs(row)
            end = start + length
            centre = start + L // 2 if start > 0 else end - (L - L // 2)
            assert length == min(end, 100) - max(centre - L // 2, 0)
            assert length <= L
        # the interior rows are exactly L long
        assert (mask.sum(1) == L).float().mean() > 0.85
    # many centres: runs not touching the ends are >= L long
    mask = block_span_mask(50, 300, 0.3, 5, 0., g, same_count=False)
    for row in mask:
        for start, length in _runs(row):
            if start > 0 and start + length < 300:
                assert length >= 5


def test_spans_method_counts_and_span_lengths():
    g = torch.Generator().manual_seed(1)
    mask = span_mask([200] * 32, 200, 0.65, 10, min_masks=2, generator=g)
    counts = mask.sum(1)
    assert (counts == counts[0]).all() and 0 < counts[0] < 200
    free = span_mask(
        [200] * 32, 200, 0.65, 10, 2, same_count=False, generator=g)
    for row in free:
        for start, length in _runs(row):
            if start + length < 200:  # spans of 10 (merged when they touch)
                assert length >= 10


def test_spans_respect_padding_and_min_masks():
    g = torch.Generator().manual_seed(2)
    lengths = [120, 80, 33]
    mask = span_mask(lengths, 120, 0.65, 10, 1, generator=g)
    for row, n in zip(mask, lengths):
        assert not row[n:].any()
    counts = mask.sum(1)
    assert (counts == counts.min()).all()
    # probability 0 still masks min_masks spans
    few = span_mask([50, 50], 50, 0., 10, 2, same_count=False, generator=g)
    assert (few.sum(1) >= 10).all()
    # mask_dropout unmasks round(n * p) in every row
    full = span_mask([100] * 4, 100, 0.5, 5, 1, generator=g)
    g2 = torch.Generator().manual_seed(2)
    dropped = span_mask(lengths, 120, 0.65, 10, 1, True, 0.5, g2)
    assert (dropped.sum(1) == dropped.sum(1)[0]).all()
    assert (full.sum(1) == full.sum(1)[0]).all()


def test_span_mask_never_masks_a_whole_row():
    """3 spans of 10 in a row of 5 frames (starts drawn from 0..3, each
    span running to the end): the row is masked entirely when a start is
    0, which is refused; otherwise frame 0 stays visible."""
    outcomes = set()
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        try:
            mask = span_mask([5], 5, 0.9, 10, 3, generator=g)
        except ValueError as err:
            assert 'every frame of a row of 5 frames' in str(err)
            outcomes.add('refused')
        else:
            assert mask[0].tolist() == [False, True, True, True, True]
            outcomes.add('kept')
    assert outcomes == {'refused', 'kept'}


@pytest.mark.parametrize('method', ['block', 'spans'])
def test_span_masker_clones_share_one_count(method):
    gen = MODELS.build(
        dict(
            type='mmssl.SpanMasker',
            mask_prob=0.5,
            mask_length=5,
            num_masks=8,
            method=method,
            seed=0))
    masks = gen(3, (97, ), torch.device('cpu'))
    assert masks.shape == (3, 8, 97) and masks.dtype == torch.bool
    counts = masks.flatten(0, 1).sum(1)
    assert (counts == counts[0]).all()
    if method == 'block':
        assert counts[0] == int(97 * 0.5)
    # the clones of one clip differ
    assert not torch.equal(masks[0, 0], masks[0, 1])


def test_span_masker_is_deterministic_with_a_seed():
    a = SpanMasker(num_masks=4, seed=3)(2, (60, ), 'cpu')
    b = SpanMasker(num_masks=4, seed=3)(2, (60, ), 'cpu')
    c = SpanMasker(num_masks=4, seed=4)(2, (60, ), 'cpu')
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = SpanMasker(num_masks=4)(2, (60, ), 'cpu')
    torch.manual_seed(5)
    assert torch.equal(d, SpanMasker(num_masks=4)(2, (60, ), 'cpu'))


def test_span_masker_refuses_bad_settings_and_layouts():
    with pytest.raises(ValueError, match='mask_prob'):
        SpanMasker(mask_prob=1.0)
    with pytest.raises(ValueError, match='method'):
        SpanMasker(method='blocks')
    with pytest.raises(ValueError, match='sequences'):
        SpanMasker()(2, (4, 4), 'cpu')
    with pytest.raises(ValueError, match='too few'):
        SpanMasker()(2, (1, ), 'cpu')


def test_block_centres_are_distinct_and_as_many_as_the_adjusted_density():
    """int(T * (p + adjust) / L) centres drawn without replacement (fairseq
    ``torch.multinomial(..., replacement=False)``): with L = 1 and no
    equalisation, exactly that many frames per row, every frame (both ends
    included) a centre of some row."""
    g = torch.Generator().manual_seed(3)
    mask = block_span_mask(300, 40, 0.5, 1, 0.05, g, same_count=False)
    assert (mask.sum(1) == int(40 * 0.55)).all()
    assert mask.any(0).all()
    # a density above 1 is capped at every frame
    assert block_span_mask(2, 10, 0.99, 1, 0.05, g, same_count=False).all()


def test_block_spans_reach_both_ends():
    """A centre c masks c - L // 2 ... c + L - 1 - L // 2: the last frame
    is masked by the centres T - 3 ... T - 1 (L = 5), the first by 0 ... 2."""
    g = torch.Generator().manual_seed(4)
    mask = block_span_mask(400, 50, 0.1, 5, 0., g, same_count=False)
    assert mask[:, 0].any() and mask[:, -1].any()
    for row in mask:
        (start, length), = _runs(row)
        centre = start + 2 if start > 0 else start + length - 3
        assert 0 <= centre < 50


def test_span_mask_rows_without_spans_and_mask_dropout():
    g = torch.Generator().manual_seed(5)
    # no span drawn (p = 0, min_masks 0): nothing masked
    assert not span_mask([20, 20], 20, 0., 5, 0, generator=g).any()
    # mask_dropout unmasks round(n * dropout) of each row's n frames
    full = span_mask([100] * 4, 100, 0.1, 5, 2, generator=g)
    g2 = torch.Generator().manual_seed(5)
    span_mask([20, 20], 20, 0., 5, 0, generator=g2)
    half = span_mask([100] * 4, 100, 0.1, 5, 2, mask_dropout=0.5, generator=g2)
    assert (half & ~full).sum() == 0  # only unmasks
    n = int(full[0].sum())
    assert (half.sum(1) == n - round(n * 0.5)).all()


def test_span_shrunk_when_the_spans_would_not_fit():
    """fairseq: when T - L <= n, the spans start among T - n - 1 ... so
    that n + 1 starts are drawn from: with T = 10, L = 5, n = 5 the starts
    are 5 of 0 ... 5, and the row is masked from frame 1 (start 0 left
    out), to frame 8 (start 5 left out), or entirely (refused)."""
    outcomes = set()
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        try:
            row = span_mask([10], 10, 0.01, 5, 5, generator=g)[0]
        except ValueError:
            outcomes.add('all')
            continue
        outcomes.add((int(row.float().argmax()), int(row.sum())))
    assert outcomes == {(1, 9), (0, 9), 'all'}


def test_span_masker_defaults_and_edges():
    gen = SpanMasker()
    assert (gen.mask_prob, gen.mask_length, gen.num_masks,
            gen.mask_prob_adjust, gen.method, gen.min_masks,
            gen.mask_dropout) == (0.5, 5, 8, 0.05, 'block', 1, 0.)
    assert SpanMasker(min_masks=0, method='spans').min_masks == 0
    with pytest.raises(ValueError, match='mask_prob'):
        SpanMasker(mask_prob=0.)
    # three frames are enough for p = 0.5 (one masked)
    masks = SpanMasker(num_masks=2, seed=0)(1, (3, ), torch.device('cpu'))
    assert masks.shape == (1, 2, 3) and (masks.sum(-1) == 1).all()


def test_number_of_spans_is_fairseqs_with_a_uniform_round():
    """num = int(p T / L + u), u ~ U(0, 1): with L = 1 (spans never
    overlap, no equalisation) a row of T = 6 at p = 0.25 has 1 or 2 masked
    frames, a row of 10 has 2 or 3; both of each seen. The defaults:
    span_mask's min_masks 0 (p = 0 masks nothing), block_span_mask's
    adjust 0 (int(T p / L) centres)."""
    g = torch.Generator().manual_seed(6)
    for frames, counts in ((6, {1, 2}), (10, {2, 3})):
        seen = {
            int(
                span_mask([frames],
                          frames,
                          0.25,
                          1,
                          same_count=False,
                          generator=g).sum())
            for _ in range(60)
        }
        assert seen == counts
    assert not span_mask([20, 20], 20, 0., 5, generator=g).any()
    mask = block_span_mask(5, 40, 0.5, 1, generator=g, same_count=False)
    assert (mask.sum(1) == 20).all()


def test_span_masker_accepts_two_frames_and_refuses_dropout_1():
    masks = SpanMasker(num_masks=2, seed=0)(1, (2, ), torch.device('cpu'))
    assert (masks.sum(-1) == 1).all()
    with pytest.raises(ValueError, match='mask_dropout'):
        SpanMasker(mask_dropout=1.)
