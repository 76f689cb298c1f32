# Copyright (c) mmssl contributors. All rights reserved.
import numpy as np
import pytest
from text_helpers import SMALL_MODULES, small_tokenizer

from mmssl.datasets import (GLUE_TASKS, GLUEDataset, SentencePieceTokenizer,
                            make_embedded_pair_task)

A, B = 'the parser reads arguments', 'a logger writes records'
LAYOUTS = {
    'cola': (None, [['gj04', '1', '', A], ['gj04', '0', '*', B]], ['1', '0']),
    'sst2': (['sentence', 'label'], [[A, '1'], [B, '0']], ['1', '0']),
    'mrpc': (['Quality', '#1 ID', '#2 ID',
              '#1 String', '#2 String'], [['1', '1', '2', A, B],
                                          ['0', '3', '4', B, A]], ['1', '0']),
    'stsb': ([
        'index', 'genre', 'filename', 'year', 'old_index', 'source1',
        'source2', 'sentence1', 'sentence2', 'score'
    ], [['0', 'g', 'f', 'y', '0', 's', 's', A, B, '3.8'],
        ['1', 'g', 'f', 'y', '1', 's', 's', B, A, '0.5']], [3.8, 0.5]),
    'qqp': (['id', 'qid1', 'qid2', 'question1', 'question2',
             'is_duplicate'], [['0', '1', '2', A, B, '0'],
                               ['1', '3', '4', B, A, '1']], ['0', '1']),
    'mnli': ([
        'index', 'promptID', 'pairID', 'genre', 'sentence1', 'sentence2',
        'label1', 'gold_label'
    ], [['0', '1', '2', 'g', A, B, 'neutral', 'neutral'],
        ['1', '1', '2', 'g', B, A, 'entailment',
         'contradiction']], ['neutral', 'contradiction']),
    'qnli': (['index', 'question', 'sentence',
              'label'], [['0', A, B, 'entailment'],
                         ['1', B, A,
                          'not_entailment']], ['entailment',
                                               'not_entailment']),
    'rte': (['index', 'sentence1', 'sentence2',
             'label'], [['0', A, B, 'not_entailment'],
                        ['1', B, A,
                         'entailment']], ['not_entailment', 'entailment']),
}


@pytest.fixture(scope='module')
def tok(tmp_path_factory):
    return SentencePieceTokenizer(
        small_tokenizer(tmp_path_factory.mktemp('glue')))


def _write(path, header, rows):
    lines = ([header] if header else []) + rows
    path.write_text(''.join('\t'.join(r) + '\n' for r in lines))
    return str(path)


@pytest.mark.parametrize('task', sorted(LAYOUTS))
def test_glue_layouts(task, tok, tmp_path):
    header, rows, labels = LAYOUTS[task]
    path = _write(tmp_path / 'dev.tsv', header, rows)
    ds = GLUEDataset(path, tok, task=task)
    assert len(ds) == 2
    layout = GLUE_TASKS[task]
    for k, item in enumerate([ds[0], ds[1]]):
        if layout['labels'] is None:
            assert ds.metainfo['regression']
            assert item['gt_label'] == pytest.approx(labels[k])
        else:
            assert ds.metainfo['classes'] == layout['labels']
            assert layout['labels'][item['gt_label']] == labels[k]
        ids = list(item['input_ids'])
        a = tok.encode(A if k == 0 else B)
        assert ids[:len(a) + 2] == [2] + a + [3] and ids[-1] == 3
        if len(layout['text']) == 2:
            b = tok.encode(B if k == 0 else A)
            assert ids[len(a) + 2:] == b + [3]
            assert list(item['token_type_ids']) == [0] * (len(a) + 2) + [1] * (
                len(b) + 1)
        else:
            assert len(ids) == len(a) + 2 and not item['token_type_ids'].any()


def test_truncation_longest_first(tok, tmp_path):
    long = ' '.join(['argument'] * 60)
    path = _write(tmp_path / 't.tsv', ['sentence1', 'sentence2', 'label'],
                  [[long, A, '1'], [A, long, '0']])
    ds = GLUEDataset(path, tok, max_length=24)
    for i in range(2):
        ids = ds[i]['input_ids']
        assert len(ids) == 24 and (ids == 3).sum() == 2
    short = tok.encode(A)
    assert list(ds[0]['input_ids'][-len(short) - 1:-1]) == short
    single = GLUEDataset(
        _write(tmp_path / 's.tsv', ['sentence', 'label'], [[long, '1']]),
        tok,
        task='single',
        max_length=10)
    assert len(single[0]['input_ids']) == 10


def test_generic_columns_and_without_labels(tok, tmp_path):
    path = _write(tmp_path / 'x.tsv', ['text', 'other', 'y'],
                  [[A, B, 'pos'], [B, A, 'neg']])
    ds = GLUEDataset(
        path,
        tok,
        task='pair',
        text_columns=('text', 'other'),
        label_column='y',
        labels=('neg', 'pos'))
    assert [ds[0]['gt_label'], ds[1]['gt_label']] == [1, 0]
    test = GLUEDataset(
        path, tok, task='single', text_columns=('text', ), with_label=False)
    assert 'gt_label' not in test[0]


def test_missing_column_errors(tok, tmp_path):
    path = _write(tmp_path / 'm.tsv', ['sentence1', 'sentence2', 'label'],
                  [[A, B, '1'], [A, B]])
    with pytest.raises(ValueError) as err:
        GLUEDataset(path, tok)
    msg = str(err.value)
    assert path in msg and 'line 3' in msg and "'label'" in msg
    ds = GLUEDataset(path, tok, skip_malformed=True)
    assert len(ds) == 1
    header = _write(tmp_path / 'h.tsv', ['sentence', 'label'], [[A, '1']])
    with pytest.raises(ValueError, match="line 1 .*no column 'sentence1'"):
        GLUEDataset(header, tok, task='rte')
    with pytest.raises(
            ValueError, match='line 1 has 2 columns and lacks column 3'):
        GLUEDataset(
            _write(tmp_path / 'c.tsv', None, [['src', '1']]), tok, task='cola')


def test_label_outside_label_set(tok, tmp_path):
    path = _write(tmp_path / 'l.tsv',
                  ['index', 'sentence1', 'sentence2', 'label'],
                  [['0', A, B, 'entailment'], ['1', A, B, 'maybe']])
    with pytest.raises(ValueError) as err:
        GLUEDataset(path, tok, task='rte')
    msg = str(err.value)
    assert path in msg and 'line 3' in msg and "'maybe'" in msg
    assert "['entailment', 'not_entailment']" in msg
    bad_score = _write(tmp_path / 's.tsv', LAYOUTS['stsb'][0],
                       [LAYOUTS['stsb'][1][0][:-1] + ['high']])
    with pytest.raises(ValueError, match="line 2 has label 'high'.*number"):
        GLUEDataset(bad_score, tok, task='stsb')


def test_embedded_pair_task(tok, tmp_path):
    corpus = tmp_path / 'corpus'
    kw = dict(modules=SMALL_MODULES)
    first = make_embedded_pair_task(corpus, tmp_path / 'pairs', **kw)
    assert first['generated'] and first['majority_rate'] == 0.5
    again = make_embedded_pair_task(corpus, tmp_path / 'pairs', **kw)
    assert not again['generated']
    other = make_embedded_pair_task(corpus, tmp_path / 'p2', **kw)
    for split in ('train', 'dev'):
        a = open(first['files'][split]).read()
        assert a == open(other['files'][split]).read()
        size = first['sizes'][split]
        assert size['rows'] == 2 * size['positive'] > 0
    ds = GLUEDataset(first['files']['train'], tok, task='pair')
    labels = np.array([ds[i]['gt_label'] for i in range(len(ds))])
    assert labels.mean() == 0.5
    capped = make_embedded_pair_task(
        corpus, tmp_path / 'p3', max_train=11, **kw)
    assert capped['sizes']['train'] == dict(rows=10, positive=5)
