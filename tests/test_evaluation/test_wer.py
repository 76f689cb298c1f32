# Copyright (c) mmssl contributors. All rights reserved.
"""WER / CER by hand and the metric through mmengine's evaluator."""
import pytest
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from mmssl.evaluation.functional.wer import (cer, char_errors, edit_distance,
                                             wer, word_errors)
from mmssl.evaluation.metrics import WERMetric
from mmssl.registry import METRICS


@pytest.mark.parametrize('a, b, dist', [
    ('', '', 0),
    ('abc', '', 3),
    ('', 'ab', 2),
    ('kitten', 'sitting', 3),
    ('flaw', 'lawn', 2),
    (['A', 'B', 'C'], ['A', 'C'], 1),
    ([1, 2, 3], [3, 2, 1], 2),
    ('abc', 'abc', 0),
])
def test_edit_distance(a, b, dist):
    assert edit_distance(a, b) == dist
    assert edit_distance(b, a) == dist


def test_word_errors_by_hand():
    # B -> X substituted, D deleted: 2 errors of 4 words
    assert word_errors('A B C D', 'A X C') == (2, 4)
    assert word_errors('A B', 'A B C D') == (2, 2)  # two insertions
    assert word_errors('  A   B ', 'A B') == (0, 2)  # whitespace ignored
    assert wer(['A B C D'], ['A X C']) == 0.5
    # corpus rate: summed errors over summed words, not a mean of rates
    assert wer(['A B C D', 'E F'], ['A X C', 'E F']) == pytest.approx(2 / 6)


def test_char_errors_by_hand():
    assert char_errors('AB CD', 'AB CE') == (1, 5)
    assert char_errors('THE CAT', 'THE CAT') == (0, 7)
    assert cer(['AB CD'], ['ABCD']) == pytest.approx(1 / 5)


def test_rate_errors():
    with pytest.raises(ValueError, match='2 references but 1'):
        wer(['A', 'B'], ['A'])
    with pytest.raises(ValueError, match='no words'):
        wer([''], ['A'])
    with pytest.raises(TypeError, match='lists'):
        wer('A B', 'A B')


def _sample(ref, hyp):
    s = DataSample()
    s.set_field(ref, 'transcript', dtype=str)
    s.set_field(hyp, 'pred_text', dtype=str)
    return s


def test_metric_through_evaluator():
    evaluator = Evaluator(METRICS.build(dict(type='mmssl.WERMetric')))
    evaluator.process([_sample('A B C D', 'A X C')])
    evaluator.process([_sample('E F', 'E F').to_dict(),
                       _sample('GH', 'GI')])  # dicts too
    out = evaluator.evaluate(3)
    assert set(out) == {'asr/wer', 'asr/cer'}
    assert out['asr/wer'] == pytest.approx(100 * 3 / 7)
    # chars: 'A B C D' vs 'A X C' -> 3; 'E F' 0; 'GH' vs 'GI' 1
    assert out['asr/cer'] == pytest.approx(100 * 4 / (7 + 3 + 2))


def test_metric_prefix_and_missing_key():
    metric = WERMetric(prefix='dev')
    metric.process(None, [_sample('A', 'A')])
    assert metric.evaluate(1) == {'dev/wer': 0.0, 'dev/cer': 0.0}
    bad = DataSample()
    bad.set_field('A', 'transcript', dtype=str)
    with pytest.raises(KeyError, match='pred_text'):
        WERMetric().process(None, [bad])


def test_one_side_a_single_string_is_refused():
    with pytest.raises(TypeError, match='lists'):
        wer(['A B'], 'A B')
    with pytest.raises(TypeError, match='lists'):
        cer('A B', ['A B'])
