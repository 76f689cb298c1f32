# Copyright (c) mmssl contributors. All rights reserved.
"""A plain-text corpus of real English prose that ships with Python.

:func:`make_embedded_corpus` writes the docstrings of the running
interpreter's standard library as a corpus in the usual BERT / ALBERT
pretraining format: one sentence per line, a blank line between documents.
It is made on first use, deterministically, and reused afterwards::

    root/train.txt       # ~90 % of the documents
    root/val.txt         # the rest (chosen by a hash of each document)
    root/manifest.json   # python version, parameters, sizes, sha1 of files

:func:`read_documents` reads any file in that format (a real corpus too) and
refuses empty or binary files with a message naming the file;
:func:`iter_documents` reads it one line at a time (for corpora larger than
memory) with the same checks and line numbers.

How the text is made: the modules of a fixed, sorted list (by default the
public names of ``sys.stdlib_module_names`` minus tests, IDLE, tkinter and
a few others, walking the ``.py`` files of packages in sorted order) are
*parsed* with :mod:`ast`, not imported, so no module's import side effects
run; a module without Python source (a C extension) or whose source does
not parse is skipped. Every module, class and function docstring is one
document. Its paragraphs (blank-line blocks) are kept when they read as
prose: doctest blocks (``>>>``) and indented code blocks are dropped, the
lines of a paragraph are joined and split into sentences at ``.``, ``!``
or ``?`` followed by a capital letter or digit. Documents with fewer than
``min_sentences`` sentences are dropped, as are exact duplicates (the
first copy is kept). The same interpreter gives byte-identical files; the
manifest records the Python version, and a different version rebuilds the
corpus (its standard library differs). With CPython 3.11 the default corpus
is about 0.9 MB of text in ~2,650 documents (10,500 sentences), built
in about five seconds.
"""
import ast
import codecs
import hashlib
import importlib.util
import inspect
import itertools
import json
import os
import os.path as osp
import re
import shutil
import sys
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from mmssl.utils.validation import check_float, check_int

__all__ = [
    'DEFAULT_CORPUS_MODULES', 'make_embedded_corpus', 'read_documents',
    'iter_documents', 'iter_corpus_lines', 'check_corpus_file',
    'docstring_documents', 'CORPUS_SPLITS'
]

CORPUS_SPLITS = ('train', 'val')
_FORMAT = 'mmssl.embedded_corpus/1'
# Packages / modules left out of the default list: tests, GUI and demo code,
# generated tables.
_EXCLUDED = frozenset({
    'test', 'idlelib', 'tkinter', 'turtledemo', 'lib2to3', 'ensurepip',
    'pydoc_data', 'this', 'antigravity', 'turtle', 'encodings'
})
_FALLBACK_MODULES = ('abc', 'argparse', 'ast', 'asyncio', 'base64', 'bisect',
                     'calendar', 'collections', 'concurrent', 'configparser',
                     'contextlib', 'copy', 'csv', 'dataclasses', 'datetime',
                     'decimal', 'difflib', 'email', 'enum', 'fractions',
                     'functools', 'gettext', 'heapq', 'http', 'imaplib',
                     'importlib', 'inspect', 'ipaddress', 'json', 'logging',
                     'mailbox', 'multiprocessing', 'optparse', 'os', 'pathlib',
                     'pickle', 'pydoc', 'random', 're', 'shutil', 'smtplib',
                     'socket', 'statistics', 'string', 'subprocess', 'tarfile',
                     'tempfile', 'textwrap', 'threading', 'typing', 'unittest',
                     'urllib', 'uuid', 'warnings', 'xml', 'zipfile')


def _default_modules() -> Tuple[str, ...]:
    names = getattr(sys, 'stdlib_module_names', _FALLBACK_MODULES)
    return tuple(
        sorted(
            n for n in names if not n.startswith('_') and n not in _EXCLUDED))


#: The modules whose docstrings make the default corpus (sorted).
DEFAULT_CORPUS_MODULES = _default_modules()

_SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=["\'(\[]?[A-Z0-9])')
_SKIP_DIRS = {'test', 'tests', 'idle_test', '__pycache__'}


def _module_files(name: str) -> List[str]:
    """The ``.py`` files of module ``name`` (a package: all of its files,
    sorted); ``[]`` when it has no Python source or cannot be found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return []
    if spec is None or not spec.origin or not spec.origin.endswith('.py'):
        return []
    files = [spec.origin]
    if spec.submodule_search_locations:
        folder = osp.dirname(spec.origin)
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            files += [
                osp.join(root, f) for f in sorted(names)
                if f.endswith('.py') and osp.join(root, f) != spec.origin
            ]
    return files


def _prose_sentences(doc: str) -> List[str]:
    """Sentences of the prose paragraphs of one docstring."""
    sentences = []
    for para in re.split(r'\n\s*\n', inspect.cleandoc(doc)):
        lines = para.split('\n')
        if lines[0][:1].isspace():
            continue  # an indented (code / literal) block
        if any(ln.lstrip().startswith(('>>>', '... ')) for ln in lines):
            continue  # a doctest
        text = ' '.join(' '.join(ln.split()) for ln in lines).strip()
        letters = sum(c.isalpha() for c in text)
        if len(text) < 3 or letters < 0.6 * len(text.replace(' ', '')):
            continue  # tables, signatures, symbols
        sentences += [
            s.strip() for s in _SENTENCE_END.split(text) if s.strip()
        ]
    return sentences


def docstring_documents(modules: Sequence[str],
                        min_sentences: int = 2,
                        lower_case: bool = False) -> List[List[str]]:
    """Documents (lists of sentences) from the docstrings of ``modules``.

    Args:
        modules (Sequence[str]): module names, walked in the given order.
        min_sentences (int): shortest document kept. Defaults to 2.
        lower_case (bool): lower-case the text. Defaults to False.

    Returns:
        list[list[str]]: one document per docstring, in module / source
        order, duplicates removed; no sentence holds a tab or a newline.
    """
    documents, seen = [], set()
    for name in modules:
        for path in _module_files(name):
            try:
                with open(path, encoding='utf-8') as f:
                    tree = ast.parse(f.read(), path)
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node,
                                  (ast.Module, ast.ClassDef, ast.FunctionDef,
                                   ast.AsyncFunctionDef)):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                sentences = _prose_sentences(doc)
                if lower_case:
                    sentences = [s.lower() for s in sentences]
                key = '\n'.join(sentences)
                if len(sentences) < min_sentences or key in seen:
                    continue
                seen.add(key)
                documents.append(sentences)
    return documents


def _split_of(document: Sequence[str], val_fraction: float) -> str:
    digest = hashlib.sha1('\n'.join(document).encode('utf-8')).digest()
    bucket = int.from_bytes(digest[:8], 'big') / 2.**64
    return 'val' if bucket < val_fraction else 'train'


def _sha1(path: str) -> str:
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _load_manifest(root: str) -> Optional[dict]:
    try:
        with open(osp.join(root, 'manifest.json')) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not all(osp.isfile(osp.join(root, f'{s}.txt')) for s in CORPUS_SPLITS):
        return None
    return manifest


def make_embedded_corpus(root: str = 'data/embedded_text',
                         modules: Optional[Sequence[str]] = None,
                         lower_case: bool = False,
                         val_fraction: float = 0.1,
                         min_sentences: int = 2,
                         force: bool = False) -> dict:
    """Write (or reuse) the standard-library docstring corpus under
    ``root``.

    The files are written into a temporary folder next to ``root`` and
    moved into place by renames, so a reader never sees half a corpus; a
    second call with the same arguments and Python version returns the
    manifest of the existing corpus without rebuilding it.

    Args:
        root (str): output folder. Defaults to ``'data/embedded_text'``.
        modules (Sequence[str], optional): modules to read, in order;
            None for :data:`DEFAULT_CORPUS_MODULES`.
        lower_case (bool): lower-case the text (a tokenizer trained with
            ``lower_case=True`` folds case itself). Defaults to False.
        val_fraction (float): share of documents in ``val.txt``, chosen by
            a hash of each document's text (stable when modules are added).
            Defaults to 0.1.
        min_sentences (int): shortest document kept. Defaults to 2.
        force (bool): rebuild even if an up-to-date corpus exists.

    Returns:
        dict: the manifest, with ``root`` (absolute), ``files`` (split ->
        path), ``generated`` (whether this call wrote it), ``python``,
        ``params`` and ``sizes`` (split -> ``documents``, ``sentences``,
        ``bytes``, ``sha1``).
    """
    owner = 'make_embedded_corpus'
    val_fraction = check_float(
        val_fraction, 'val_fraction', owner, 0., 1., inclusive=(True, False))
    min_sentences = check_int(min_sentences, 'min_sentences', owner)
    modules = tuple(DEFAULT_CORPUS_MODULES if modules is None else modules)
    if not modules or not all(isinstance(m, str) for m in modules):
        raise ValueError(f'{owner}: modules must be a non-empty list of '
                         f'module names, got {modules!r}')
    root = osp.abspath(osp.expanduser(root))
    params = dict(
        modules_sha1=hashlib.sha1('\n'.join(modules).encode()).hexdigest(),
        num_modules=len(modules),
        lower_case=bool(lower_case),
        val_fraction=val_fraction,
        min_sentences=min_sentences)
    python = '.'.join(map(str, sys.version_info[:3]))
    files = {s: osp.join(root, f'{s}.txt') for s in CORPUS_SPLITS}
    manifest = None if force else _load_manifest(root)
    if (manifest is not None and manifest.get('format') == _FORMAT
            and manifest.get('params') == params
            and manifest.get('python') == python):
        return dict(manifest, root=root, files=files, generated=False)

    documents = docstring_documents(modules, min_sentences, lower_case)
    if not documents:
        raise RuntimeError(f'{owner}: no documents found in the docstrings '
                           f'of {len(modules)} modules ({modules[:5]}...); '
                           'give modules that have Python source')
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tmp-text-', dir=parent)
    try:
        sizes = {}
        for split in CORPUS_SPLITS:
            docs = [
                d for d in documents if _split_of(d, val_fraction) == split
            ]
            path = osp.join(tmp, f'{split}.txt')
            with open(path, 'w', encoding='utf-8', newline='\n') as f:
                f.write('\n\n'.join('\n'.join(d) for d in docs) + '\n')
            sizes[split] = dict(
                documents=len(docs),
                sentences=sum(len(d) for d in docs),
                bytes=osp.getsize(path),
                sha1=_sha1(path))
        manifest = dict(
            format=_FORMAT, python=python, params=params, sizes=sizes)
        install_folder(tmp, root, manifest)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return dict(manifest, root=root, files=files, generated=True)


def install_folder(tmp: str, dest: str, manifest: dict) -> None:
    """Write ``manifest.json`` into the finished folder ``tmp`` and put it
    in place of ``dest`` by renames (``tmp`` must sit beside ``dest``), so
    a reader sees the old folder or the new one, never half of either."""
    with open(osp.join(tmp, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    if osp.lexists(dest):
        trash = tempfile.mkdtemp(prefix='.old-', dir=osp.dirname(dest))
        os.rename(dest, osp.join(trash, 'old'))
        os.rename(tmp, dest)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, dest)


def _missing_file_error(path: str) -> FileNotFoundError:
    return FileNotFoundError(
        f'corpus file {path!r} does not exist; make one with '
        'mmssl.datasets.make_embedded_corpus or give a plain-text file '
        '(one sentence per line, blank lines between documents)')


def _empty_file_error(path: str) -> ValueError:
    return ValueError(
        f'corpus file {path!r} is empty (no non-blank line); give a '
        'plain-text file, one sentence per line, blank lines between '
        'documents')


def _decode_line(path: str, raw: bytes, offset: int, line: int) -> str:
    """``raw`` (the bytes of line ``line``, starting at byte ``offset`` of
    the file) as text; a NUL byte or bytes that are not UTF-8 raise."""
    nul = raw.find(b'\x00')
    if nul >= 0:
        raise ValueError(
            f'corpus file {path!r} is binary (a NUL byte at offset '
            f'{offset + nul}, line {line}); give a UTF-8 plain-text '
            'file, one sentence per line')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as err:
        raise ValueError(
            f'corpus file {path!r} is not UTF-8 text (byte offset '
            f'{offset + err.start}, line {line}: {err.reason}); convert it '
            'to UTF-8 plain text, one sentence per line') from None


def _complete_chars(data: bytes) -> bytes:
    """``data`` without a UTF-8 character cut off at its end (bytes that
    are not UTF-8 are kept, for :func:`_decode_line` to report)."""
    decoder = codecs.getincrementaldecoder('utf-8')()
    try:
        decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return data
    return data[:len(data) - len(decoder.getstate()[0])]


def check_corpus_file(path: str, probe_bytes: int = 1 << 16) -> None:
    """Refuse a corpus file that is missing, has no bytes, or whose first
    ``probe_bytes`` bytes are binary (cheap checks before a long read; the
    readers check every line as they go).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file has no bytes, or its head holds a NUL byte or
            bytes that are not UTF-8, naming the file, offset and line.
    """
    if not osp.isfile(path):
        raise _missing_file_error(path)
    if osp.getsize(path) == 0:
        raise _empty_file_error(path)
    with open(path, 'rb') as f:
        head = f.read(probe_bytes)
    if len(head) == probe_bytes:  # the file goes on: whole characters only
        head = _complete_chars(head)
    offset = 0
    for number, raw in enumerate(head.split(b'\n'), 1):
        _decode_line(path, raw, offset, number)
        offset += len(raw) + 1


def iter_corpus_lines(
        path: str,
        max_line_bytes: Optional[int] = None) -> Iterator[Tuple[int, str]]:
    """The lines of a corpus file, read one at a time.

    Lines are numbered as ``str.splitlines`` numbers the whole text
    (``\\r``, ``\\r\\n`` and the other line boundaries of Python end a line
    too), so the numbers match :func:`read_documents`.

    Args:
        path (str): a UTF-8 text file.
        max_line_bytes (int, optional): longest line (between two ``\\n``)
            in bytes; a longer one raises instead of being read into memory.
            None for no limit.

    Yields:
        tuple[int, str]: ``(line_number, stripped_line)``, 1-based, blank
        lines included (as ``''``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line holds a NUL byte or bytes that are not UTF-8, or
            is longer than ``max_line_bytes``, naming the file and the line.
    """
    if not osp.isfile(path):
        raise _missing_file_error(path)
    number, offset = 0, 0
    with open(path, 'rb') as f:
        for raw_number in itertools.count(1):
            if max_line_bytes is None:
                raw = f.readline()
            else:
                raw = f.readline(max_line_bytes + 1)
                if len(raw) > max_line_bytes and not raw.endswith(b'\n'):
                    raise ValueError(
                        f'line {number + 1} of corpus file {path!r} (byte '
                        f'offset {offset}) is longer than max_line_bytes='
                        f'{max_line_bytes}; put one sentence per line, or '
                        'raise max_line_bytes')
            if not raw:
                return
            text = _decode_line(path, raw, offset, raw_number)
            offset += len(raw)
            for line in text.splitlines():
                number += 1
                yield number, line.strip()


def iter_documents(
    path: str,
    with_line_numbers: bool = False,
    max_line_bytes: Optional[int] = None
) -> Iterator[Union[List[str], List[Tuple[int, str]]]]:
    """The documents of a corpus file (one sentence per line, blank lines
    between documents), read one line at a time: only the current document
    is held in memory.

    Args:
        path (str): a UTF-8 text file.
        with_line_numbers (bool): give ``(line_number, sentence)`` pairs
            (1-based) instead of sentences, for error messages.
        max_line_bytes (int, optional): see :func:`iter_corpus_lines`.

    Yields:
        list[str] | list[tuple[int, str]]: one document, a non-empty list
        of stripped lines.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty (or only blank lines; raised when its
            end is reached), binary, or has a line longer than
            ``max_line_bytes``, naming the file (and the line).
    """
    current, found = [], False
    for number, line in iter_corpus_lines(path, max_line_bytes):
        if not line:
            if current:
                found = True
                yield current
                current = []
            continue
        current.append((number, line) if with_line_numbers else line)
    if current:
        found = True
        yield current
    if not found:
        raise _empty_file_error(path)


def read_documents(
    path: str,
    with_line_numbers: bool = False
) -> Union[List[List[str]], List[List[Tuple[int, str]]]]:
    """Read a corpus file: one sentence per line, blank lines between
    documents (all of it; :func:`iter_documents` streams it).

    Args:
        path (str): a UTF-8 text file.
        with_line_numbers (bool): give ``(line_number, sentence)`` pairs
            (1-based) instead of sentences, for error messages.

    Returns:
        list[list[str]] | list[list[tuple[int, str]]]: the documents, each
        a non-empty list of stripped lines.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty (or only blank lines), or binary (a
            NUL byte or bytes that are not UTF-8), naming the file.
    """
    return list(iter_documents(path, with_line_numbers))
