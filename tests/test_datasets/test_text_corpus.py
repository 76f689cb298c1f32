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


def test_module_files_of_a_package(tmp_path, monkeypatch):
    """A package gives its ``__init__`` first, then its ``.py`` files
    walked in sorted order, without test folders, caches or other files;
    a module without Python source gives nothing."""
    from mmssl.datasets.text_corpus import _module_files
    pkg = tmp_path / 'corpus_pkg_probe'
    for rel in ('__init__.py', 'b.py', 'a.py', 'notes.txt', 'sub/__init__.py',
                'sub/c.py', 'tests/t.py', 'test/u.py', '__pycache__/x.py',
                'idle_test/v.py'):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text('"""Doc."""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    files = [
        osp.relpath(f, str(pkg)) for f in _module_files('corpus_pkg_probe')
    ]
    assert files == [
        '__init__.py', 'a.py', 'b.py',
        osp.join('sub', '__init__.py'),
        osp.join('sub', 'c.py')
    ]
    (tmp_path / 'corpus_mod_probe.py').write_text('"""Doc."""\n')
    assert _module_files('corpus_mod_probe') == [
        str(tmp_path / 'corpus_mod_probe.py')
    ]
    assert _module_files('math') == []  # built in: no source
    assert _module_files('no_such_module_anywhere') == []


def test_prose_sentences_keep_prose_only():
    from mmssl.datasets.text_corpus import _prose_sentences
    doc = '\n\n'.join([
        'First line of prose. It has two sentences.',
        'Example::',
        '    An indented block is code or a literal.',
        '>>> print("a doctest")',
        'a = 1 + 2 * 3 / 4',  # 1 letter in 11 characters: a formula
        'abc12',  # 3 letters of 5 characters, 0.6 exactly: kept
        'Ok.',  # 3 characters: kept
        'Hm',  # 2 characters: dropped
    ])
    assert _prose_sentences(doc) == [
        'First line of prose.', 'It has two sentences.', 'Example::', 'abc12',
        'Ok.'
    ]


PROBE_SOURCE = '''"""A module of one sentence."""


class Probe:
    """The first Sentence of a class. Its second sentence."""

    def method(self):
        """An indented docstring spans lines.
        Its second line is the same paragraph.

        A second paragraph follows. It ends here.
        """

    async def later(self):
        """The first Sentence of a class. Its second sentence."""


def three():
    """One sentence here. Two sentences here. Three sentences here."""
'''


def _probe_module(tmp_path, monkeypatch, name='corpus_doc_probe'):
    (tmp_path / f'{name}.py').write_text(PROBE_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_docstring_documents_by_hand(tmp_path, monkeypatch):
    """Module, class, function and async-function docstrings are documents
    (in the order of ``ast.walk``); one of fewer than 2 sentences is
    dropped, one of exactly 2 kept, a repeated one kept once; indentation
    is cleaned and case is kept unless asked."""
    from mmssl.datasets.text_corpus import docstring_documents
    name = _probe_module(tmp_path, monkeypatch)
    cls_doc = ['The first Sentence of a class.', 'Its second sentence.']
    method_doc = [
        'An indented docstring spans lines.',
        'Its second line is the same paragraph.',
        'A second paragraph follows.', 'It ends here.'
    ]
    three = [
        'One sentence here.', 'Two sentences here.', 'Three sentences here.'
    ]
    docs = docstring_documents([name])
    assert docs == [cls_doc, three, method_doc]
    assert docstring_documents([name], min_sentences=3) == [three, method_doc]
    assert docstring_documents(
        [name], min_sentences=1)[0] == ['A module of one sentence.']
    assert docstring_documents([name],
                               lower_case=True) == [[s.lower() for s in d]
                                                    for d in docs]


def test_manifest_records_file_hashes_and_defaults(tmp_path, monkeypatch):
    import hashlib
    name = _probe_module(tmp_path, monkeypatch)
    out = make_embedded_corpus(tmp_path / 'c', modules=[name])
    for split in ('train', 'val'):
        data = open(out['files'][split], 'rb').read()
        assert out['sizes'][split]['sha1'] == hashlib.sha1(data).hexdigest()
        assert out['sizes'][split]['bytes'] == len(data)
    params = out['params']
    assert params['val_fraction'] == 0.1 and params['min_sentences'] == 2
    assert params['lower_case'] is False and params['num_modules'] == 1
    assert out['sizes']['train']['documents'] + out['sizes']['val'][
        'documents'] == 3


def test_corpus_arguments_at_the_edges(tmp_path, monkeypatch):
    name = _probe_module(tmp_path, monkeypatch)
    # val_fraction 0 puts every document in train; 1 would leave none
    out = make_embedded_corpus(tmp_path / 'c', modules=[name], val_fraction=0.)
    assert out['sizes']['val']['documents'] == 0
    assert out['sizes']['train']['documents'] == 3
    with pytest.raises(ValueError, match='val_fraction'):
        make_embedded_corpus(tmp_path / 'd', modules=[name], val_fraction=1.)
    for modules in ([], [name, 3]):
        with pytest.raises(ValueError, match='non-empty list of module'):
            make_embedded_corpus(tmp_path / 'e', modules=modules)


def test_check_corpus_file_by_hand(tmp_path):
    from mmssl.datasets.text_corpus import check_corpus_file
    path = tmp_path / 'c.txt'
    with pytest.raises(FileNotFoundError, match='does not exist'):
        check_corpus_file(str(path))
    path.write_bytes(b'')
    with pytest.raises(ValueError, match='is empty'):
        check_corpus_file(str(path))
    path.write_bytes(b'a')  # one byte is a corpus
    check_corpus_file(str(path))
    # a NUL on line 3: its byte offset and line are named
    path.write_bytes(b'ab\ncd\nx\x00y\n')
    with pytest.raises(ValueError, match=r'offset 7, line 3'):
        check_corpus_file(str(path))
    path.write_bytes(b'ab\ncd\n\xffz\n')
    with pytest.raises(ValueError, match=r'not UTF-8 .*offset 6, line 3'):
        check_corpus_file(str(path))


def test_check_corpus_file_reads_the_first_64_kib_only(tmp_path):
    from mmssl.datasets.text_corpus import check_corpus_file
    path = tmp_path / 'c.txt'
    path.write_bytes(b'a\n' * 32767 + b'\x00\n')  # NUL at byte 65534
    with pytest.raises(ValueError, match='offset 65534'):
        check_corpus_file(str(path))
    path.write_bytes(b'a\n' * 35000 + b'\x00\n')  # beyond: the readers' job
    check_corpus_file(str(path))


@pytest.mark.parametrize('cut', range(8, 16))
def test_check_corpus_file_keeps_whole_lines_and_characters(tmp_path, cut):
    """The probe ends anywhere in a line or inside a character: valid UTF-8
    is never refused for the bytes the probe cut off."""
    from mmssl.datasets.text_corpus import check_corpus_file
    path = tmp_path / 'c.txt'
    # a 4-byte, a 3-byte and a 2-byte character on one line, then a line
    path.write_bytes('ab😀c€dé\nx😀\n'.encode())
    check_corpus_file(str(path), probe_bytes=cut)
    # without a line end in the probe, and right after one
    path.write_bytes('a😀😀€é😀\n'.encode())
    check_corpus_file(str(path), probe_bytes=cut)
    path.write_bytes('\nab€\u00e9\u00e9😀\n'.encode())
    check_corpus_file(str(path), probe_bytes=cut)
    # bytes that are not UTF-8 within the probe are still refused
    path.write_bytes(b'abc\xffdefghijklmnop\n')
    with pytest.raises(ValueError, match='not UTF-8'):
        check_corpus_file(str(path), probe_bytes=cut)
    # and so is a character cut off by the end of a file the probe holds
    path.write_bytes('a😀'.encode()[:-1])
    with pytest.raises(ValueError, match='not UTF-8'):
        check_corpus_file(str(path), probe_bytes=cut)


def test_iter_corpus_lines_longest_line(tmp_path):
    from mmssl.datasets.text_corpus import iter_corpus_lines
    path = tmp_path / 'c.txt'
    # 4 bytes and its line end fit max_line_bytes=4, numbered as written
    path.write_bytes(b'abcd\nef\n\nghij')
    assert list(iter_corpus_lines(str(path),
                                  max_line_bytes=4)) == [(1, 'abcd'),
                                                         (2, 'ef'), (3, ''),
                                                         (4, 'ghij')]
    assert list(iter_corpus_lines(str(path))) == list(
        iter_corpus_lines(str(path), max_line_bytes=4))
    path.write_bytes(b'ab\nabcde\n')
    with pytest.raises(ValueError, match=r'line 2 .*offset 3\) is longer'):
        list(iter_corpus_lines(str(path), max_line_bytes=4))
    path.write_bytes(b'ab\nabcde')  # the last line, without a line end
    with pytest.raises(ValueError, match='max_line_bytes=4'):
        list(iter_corpus_lines(str(path), max_line_bytes=4))


def test_iter_documents_defaults_and_a_trailing_blank_line(tmp_path):
    from mmssl.datasets.text_corpus import iter_documents
    path = tmp_path / 'c.txt'
    path.write_text('a one.\nb two.\n\n')  # every document ends in a blank
    assert list(iter_documents(str(path))) == [['a one.', 'b two.']]
    assert read_documents(str(path), True) == [[(1, 'a one.'), (2, 'b two.')]]
