# Copyright (c) mmssl contributors. All rights reserved.
"""The attention benchmark: shapes parsed, every cell timed in interleaved
rounds, medians and ratios by hand."""
import pytest
import torch

from mmssl.analysis import attention_benchmark as ab


@pytest.mark.parametrize('text,shape', [('8,16,197,32', (8, 16, 197, 32)),
                                        ('2x12x1024x64', (2, 12, 1024, 64))])
def test_parse_shape(text, shape):
    assert ab.parse_shape(text) == shape


@pytest.mark.parametrize('text', ['8,16,197', '8,16,0,32', 'a,b,c,d', ''])
def test_bad_shapes_are_named(text):
    with pytest.raises(ValueError, match='four positive integers B,H,N,d'):
        ab.parse_shape(text)


def test_time_attention_runs_forward_and_backward(monkeypatch):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def sdpa(q, k, v):
        calls.append((q.shape, q.dtype, q.requires_grad))
        return real(q, k, v)

    monkeypatch.setattr(ab.F, 'scaled_dot_product_attention', sdpa)
    ms = ab.time_attention((1, 2, 5, 4), torch.bfloat16, 'math', iters=3)
    assert ms > 0
    # one untimed call, then the timed ones
    assert calls == [((1, 2, 5, 4), torch.bfloat16, True)] * 4
    with pytest.raises(ValueError, match="backend 'fast'"):
        ab.time_attention((1, 1, 2, 2), backend='fast')


def test_cells_interleave_and_medians(monkeypatch):
    order = []
    times = iter([5., 1., 9., 7., 3., 2.] * 1 + [4., 8., 6., 2., 6., 1.])

    def fake(shape, dtype, backend, iters, device, seed):
        order.append((shape, dtype))
        return next(times)

    monkeypatch.setattr(ab, 'time_attention', fake)
    s1, s2 = (1, 1, 4, 2), (1, 1, 8, 2)
    res = ab.benchmark_attention([s1, s2],
                                 dtypes=(torch.float32, torch.bfloat16),
                                 repeat=2)
    cells = [(s1, torch.float32), (s1, torch.bfloat16), (s2, torch.float32),
             (s2, torch.bfloat16)]
    # rounds of every cell, not one cell's repeats in a row
    assert order == cells + cells
    # round 1: 5 1 9 7, round 2: 3 2 4 8 (then 6 2 6 1 unused)
    assert [r['ms_rounds'] for r in res] == [[5., 3.], [1., 2.], [9., 4.],
                                             [7., 8.]]
    assert [r['ms'] for r in res] == [4., 1.5, 6.5, 7.5]
    assert [r['ratio_to_first_dtype']
            for r in res] == [1., 1.5 / 4, 1., 7.5 / 6.5]
    assert [r['dtype'] for r in res] == ['float32', 'bfloat16'] * 2
    assert res[0]['backend'] == 'default' and res[0]['shape'] == list(s1)


def test_milliseconds_per_call_by_a_fake_clock(monkeypatch):
    clock = iter([10., 12.])
    monkeypatch.setattr(ab, 'perf_counter', lambda: next(clock))
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(ab.F, 'scaled_dot_product_attention',
                        lambda *a: calls.append(1) or real(*a))
    # 2 s over the 5 timed calls of the default
    assert ab.time_attention((1, 1, 3, 2)) == pytest.approx(400.)
    assert len(calls) == 6  # one untimed call first


def test_benchmark_defaults(monkeypatch):
    seen = []

    def fake(shape, dtype, backend, iters, device, seed):
        seen.append((dtype, backend, iters, seed))
        return 1.

    monkeypatch.setattr(ab, 'time_attention', fake)
    res = ab.benchmark_attention([(1, 1, 2, 2)])
    # fp32 and bf16, PyTorch's backend, 3 rounds of 5 calls, seed 0
    assert [r['dtype'] for r in res] == ['float32', 'bfloat16']
    assert len(seen) == 6 and all(s[1:] == (None, 5, 0) for s in seen)
    assert [r['ms_rounds'] for r in res] == [[1.] * 3] * 2
