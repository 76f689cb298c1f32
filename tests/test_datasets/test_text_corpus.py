# Copyright (c) mmssl contributors. All rights reserved.
import json
import os.path as osp
import sys

import pytest
from text_helpers import SMALL_MODULES, small_corpus

from mmssl.datasets import make_embedded_corpus, read_documents
from mmssl.datasets.text_corpus import DEFAULT_CORPUS_MODULES


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return small_corpus(tmp_path_factory.mktemp('text') / 'corpus')


def test_default_module_list_is_sorted_and_public():
    assert list(DEFAULT_CORPUS_MODULES) == sorted(DEFAULT_CORPUS_MODULES)
    assert 'argparse' in DEFAULT_CORPUS_MODULES
    assert not any(m.startswith('_') for m in DEFAULT_CORPUS_MODULES)
    assert 'test' not in DEFAULT_CORPUS_MODULES


def test_corpus_files_and_manifest(corpus):
    assert corpus['generated']
    with open(osp.join(corpus['root'], 'manifest.json')) as f:
        manifest = json.load(f)
    assert manifest['python'] == '.'.join(map(str, sys.version_info[:3]))
    train = read_documents(corpus['files']['train'])
    val = read_documents(corpus['files']['val'])
    assert len(train) == manifest['sizes']['train']['documents'] > 100
    assert len(val) == manifest['sizes']['val']['documents'] > 0
    assert sum(map(len, train)) == manifest['sizes']['train']['sentences']
    # documents of >= 2 sentences, no tabs, split disjoint, real prose
    assert all(len(d) >= 2 for d in train + val)
    assert not any('\t' in s for d in train for s in d)
    keys = {'\n'.join(d) for d in train}
    assert not keys & {'\n'.join(d) for d in val}
    words = ' '.join(s for d in train for s in d).split()
    assert sum(w.lower() in ('the', 'a', 'of', 'is')
               for w in words) > 0.05 * len(words)


def test_corpus_is_deterministic_and_reused(corpus, tmp_path):
    again = make_embedded_corpus(corpus['root'], modules=SMALL_MODULES)
    assert not again['generated']
    other = make_embedded_corpus(tmp_path / 'c2', modules=SMALL_MODULES)
    assert other['generated']
    assert other['sizes'] == corpus['sizes']  # includes the sha1 of files
    lower = make_embedded_corpus(
        tmp_path / 'c2', modules=SMALL_MODULES, lower_case=True)
    assert lower['generated']  # new parameters rebuild in place
    text = open(lower['files']['train']).read()
    assert text == text.lower()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_corpus_without_docstrings_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match='no documents'):
        make_embedded_corpus(tmp_path / 'c', modules=('no_such_module_x', ))


def test_read_documents_blocks_and_line_numbers(tmp_path):
    path = tmp_path / 'c.txt'
    path.write_text('a one.\nb two.\n\n\nc three.\n  \nd four.\n')
    assert read_documents(str(path)) == [['a one.', 'b two.'], ['c three.'],
                                         ['d four.']]
    docs = read_documents(str(path), with_line_numbers=True)
    assert docs[1] == [(5, 'c three.')] and docs[2] == [(7, 'd four.')]


@pytest.mark.parametrize('content,match', [
    (b'', 'is empty'),
    (b'\n \n\n', 'is empty'),
    (b'text\n\x00\x01binary', r'binary \(a NUL byte at offset 5, line 2'),
    (b'ok\n\xff\xfe bad', 'not UTF-8 text .* line 2'),
])
def test_read_documents_refuses_bad_files(tmp_path, content, match):
    path = tmp_path / 'bad.txt'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as err:
        read_documents(str(path))
    assert str(path) in str(err.value)


def test_read_documents_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='make_embedded_corpus'):
        read_documents(str(tmp_path / 'none.txt'))
