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


def test_truncation_drops_from_a_on_a_tie():
    from mmssl.datasets import truncate_longest_first
    assert truncate_longest_first([1, 2], [3, 4], 3) == ([1], [3, 4])
    assert truncate_longest_first([1], [3, 4, 5], 3) == ([1], [3, 4])
    assert truncate_longest_first([1, 2], [3], 5) == ([1, 2], [3])


def test_max_length_default_and_smallest(tok, tmp_path):
    pair = _write(tmp_path / 'p.tsv', ['sentence1', 'sentence2', 'label'],
                  [[A, B, '1']])
    single = _write(tmp_path / 's.tsv', ['sentence', 'label'], [[A, '1']])
    assert GLUEDataset(pair, tok).max_length == 128
    # room for the special tokens and one token of each text
    assert len(GLUEDataset(pair, tok, max_length=5)[0]['input_ids']) == 5
    assert len(
        GLUEDataset(single, tok, task='single',
                    max_length=3)[0]['input_ids']) == 3
    with pytest.raises(
            ValueError, match='max_length must be an integer >= '
            '5'):
        GLUEDataset(pair, tok, max_length=4)
    with pytest.raises(
            ValueError, match='max_length must be an integer >= '
            '3'):
        GLUEDataset(single, tok, task='single', max_length=2)


def test_blank_rows_are_skipped_and_malformed_rows_counted(
        tok, tmp_path, monkeypatch):
    from mmssl.datasets import glue
    logged = []
    monkeypatch.setattr(glue, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    path = tmp_path / 'b.tsv'
    path.write_text('sentence\tlabel\n'
                    f'{A}\t1\n'
                    '\n'
                    '   \n'
                    'only one column\n'
                    f'{B}\n'
                    f'{B}\t0\n')
    ds = GLUEDataset(str(path), tok, task='single', skip_malformed=True)
    assert [ds[i]['line'] for i in range(len(ds))] == [2, 7]
    assert logged == [f'GLUEDataset: skipped 2 malformed rows of {path}']
    with pytest.raises(
            ValueError, match='line 5 has 1 columns and lacks '
            "column 'label'"):
        GLUEDataset(str(path), tok, task='single')
    logged.clear()
    GLUEDataset(
        _write(tmp_path / 'ok.tsv', ['sentence', 'label'], [[A, '1']]),
        tok,
        task='single',
        skip_malformed=True)
    assert logged == []


def _docs():
    letters = 'abcdefghij'
    return [[f'{c}{i}' for i in range(n)]
            for c, n in zip(letters, (2, 3, 5, 8, 13, 4, 6, 7, 9, 3))]


def test_pair_rows_by_their_invariants():
    from mmssl.datasets.glue import _pair_rows
    docs = _docs()
    rows = _pair_rows(docs, np.random.default_rng(0))
    where = {
        s: (d, i)
        for d, doc in enumerate(docs)
        for i, s in enumerate(doc)
    }
    labels = [label for _, _, label in rows]
    assert labels.count(0) == labels.count(1) > 0
    used_docs = set()
    for s1, s2, label in rows:
        (d1, i1), (d2, i2) = where[s1], where[s2]
        assert d1 == d2  # one document
        used_docs.add(d1)
        assert i1 < len(docs[d1]) - 1  # never the last sentence first
        if label:
            assert i2 == i1 + 1
        else:
            assert i2 not in (i1, i1 + 1)
    assert 0 not in used_docs  # 2 sentences: no negative possible
    # a document of exactly 3 sentences gives rows
    rows3 = [
        _pair_rows([['x0', 'x1', 'x2']] * 4, np.random.default_rng(s))
        for s in range(10)
    ]
    assert any(rows3)
    # an odd limit: half of it (rounded down) per class
    capped = _pair_rows(docs, np.random.default_rng(0), limit=7)
    assert sorted(label for _, _, label in capped) == [0] * 3 + [1] * 3


def test_pair_task_seed_key_and_rebuilds(tmp_path, monkeypatch):
    import hashlib

    from mmssl.datasets import glue
    docs = {'train': _docs(), 'val': [['y0', 'y1']]}  # no dev rows
    monkeypatch.setattr(
        glue, 'make_embedded_corpus', lambda root, **kw: dict(
            files={s: s
                   for s in docs}, sizes={s: dict(sha1=s)
                                          for s in docs}))
    monkeypatch.setattr(glue, 'read_documents', lambda path: docs[path])
    out = tmp_path / 'pairs'
    made = make_embedded_pair_task('corpus', str(out))
    assert made['sizes']['dev'] == dict(rows=0, positive=0)
    assert made['majority_rate'] == 0.5  # of the split that has rows
    # seed 0 by default; each split's rows from sha1('<seed>-<split>')
    seed = int.from_bytes(hashlib.sha1(b'0-train').digest()[:8], 'big')
    rows = glue._pair_rows(docs['train'], np.random.default_rng(seed))
    lines = (out / 'train.tsv').read_text().splitlines()
    assert lines == ['sentence1\tsentence2\tlabel'
                     ] + [f'{a}\t{b}\t{label}' for a, b, label in rows]
    # reused while up to date; rebuilt when forced or a file is missing
    assert not make_embedded_pair_task('corpus', str(out))['generated']
    assert make_embedded_pair_task('corpus', str(out), force=True)['generated']
    (out / 'dev.tsv').unlink()
    assert make_embedded_pair_task('corpus', str(out))['generated']
    assert make_embedded_pair_task('corpus', str(out), seed=1)['generated']
