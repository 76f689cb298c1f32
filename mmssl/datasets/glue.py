# Copyright (c) mmssl contributors. All rights reserved.
"""GLUE-format fine-tuning data: the eight GLUE tasks' TSV files and any
single-sentence or sentence-pair TSV, plus a pair task made from the
embedded corpus.

:class:`GLUEDataset` (``mmssl.GLUEDataset``) reads one TSV file and
tokenises each row into ``[CLS] a [SEP] (b [SEP])``. The layouts of the
GLUE distribution (``train.tsv`` / ``dev.tsv``; MNLI ``dev_matched.tsv``)
are built in (:data:`GLUE_TASKS`); ``task='single'`` / ``'pair'`` read any
TSV with a header whose column names are given.

:func:`make_embedded_pair_task` writes a sentence-pair task in that format
from the embedded docstring corpus (:func:`make_embedded_corpus`).
"""
import csv
import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_int
from .text_corpus import install_folder, make_embedded_corpus, read_documents
from .tokenizer import CLS_ID, SEP_ID, SentencePieceTokenizer, build_tokenizer

__all__ = [
    'GLUE_TASKS', 'GLUEDataset', 'make_embedded_pair_task',
    'truncate_longest_first'
]

Column = Union[str, int]

#: Layout of each task: whether the file has a header, the text columns
#: (names, or indices for header-less files), the label column and the
#: label set (None: a regression score). Labels follow the order of the
#: reference ALBERT / BERT classifiers.
GLUE_TASKS: Dict[str, dict] = {
    'cola':
    dict(header=False, text=(3, ), label=1, labels=('0', '1')),
    'sst2':
    dict(header=True, text=('sentence', ), label='label', labels=('0', '1')),
    'mrpc':
    dict(
        header=True,
        text=('#1 String', '#2 String'),
        label='Quality',
        labels=('0', '1')),
    'stsb':
    dict(
        header=True,
        text=('sentence1', 'sentence2'),
        label='score',
        labels=None),
    'qqp':
    dict(
        header=True,
        text=('question1', 'question2'),
        label='is_duplicate',
        labels=('0', '1')),
    'mnli':
    dict(
        header=True,
        text=('sentence1', 'sentence2'),
        label='gold_label',
        labels=('contradiction', 'entailment', 'neutral')),
    'qnli':
    dict(
        header=True,
        text=('question', 'sentence'),
        label='label',
        labels=('entailment', 'not_entailment')),
    'rte':
    dict(
        header=True,
        text=('sentence1', 'sentence2'),
        label='label',
        labels=('entailment', 'not_entailment')),
    'single':
    dict(header=True, text=('sentence', ), label='label', labels=('0', '1')),
    'pair':
    dict(
        header=True,
        text=('sentence1', 'sentence2'),
        label='label',
        labels=('0', '1')),
}


def truncate_longest_first(a: List[int], b: List[int],
                           max_tokens: int) -> Tuple[List[int], List[int]]:
    """Drop tokens from the end of the longer of ``a`` / ``b`` (``a`` on a
    tie) until ``len(a) + len(b) <= max_tokens``."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


@DATASETS.register_module()
class GLUEDataset(BaseDataset):
    """A GLUE-format TSV file as a text classification / regression set.

    Rows are read with ``csv`` (tab-separated, no quoting, as the GLUE
    files need; a UTF-8 byte-order mark is dropped). Each row becomes::

        input_ids       (T,) int64   [CLS] a [SEP] (b [SEP]), T <= max_length
        token_type_ids  (T,) int64   0 for [CLS] a [SEP], 1 for b [SEP]
        gt_label        int (class index) | float (regression score)

    Pairs are truncated longest-first. The metainfo has ``classes`` (the
    label set, None for regression) and ``regression``; ``line`` is each
    row's line number in the file.

    Args:
        ann_file (str): the TSV file (relative to ``data_root``).
        tokenizer (str | dict): the SentencePiece ``.model`` file (relative
            to ``data_root`` if not found as given).
        task (str): a key of :data:`GLUE_TASKS`. Defaults to ``'pair'``.
        max_length (int): longest item incl. special tokens.
            Defaults to 128.
        text_columns (Sequence[str | int], optional): override of the text
            columns (1 or 2; names need a header, ints index the row).
        label_column (str | int, optional): override of the label column.
        labels (Sequence[str], optional): override of the label set (the
            strings in the file, in class-index order).
        regression (bool, optional): a float label (``labels`` ignored);
            default from the task (``stsb``).
        with_label (bool): read labels; False for test files without them.
            Defaults to True.
        has_header (bool, optional): override whether the first row is a
            header.
        skip_malformed (bool): skip rows with too few columns (logged with
            a count) instead of raising; the QQP training file has a few.
            Defaults to False.
        data_root (str): folder of the files. Defaults to ``''``.
        pipeline (Sequence[dict | Callable]): e.g. ``PackTextInputs``.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self,
                 ann_file: str,
                 tokenizer: Union[str, dict, SentencePieceTokenizer],
                 task: str = 'pair',
                 max_length: int = 128,
                 text_columns: Optional[Sequence[Column]] = None,
                 label_column: Optional[Column] = None,
                 labels: Optional[Sequence[str]] = None,
                 regression: Optional[bool] = None,
                 with_label: bool = True,
                 has_header: Optional[bool] = None,
                 skip_malformed: bool = False,
                 data_root: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        self.task = check_choice(task, 'task', owner, tuple(GLUE_TASKS))
        layout = GLUE_TASKS[task]
        self.text_columns = tuple(layout['text'] if text_columns is
                                  None else text_columns)
        if len(self.text_columns) not in (1, 2):
            raise ValueError(f'{owner}: text_columns must name 1 or 2 '
                             f'columns, got {self.text_columns!r}')
        self.label_column = layout['label'] if label_column is None \
            else label_column
        self.regression = (layout['labels'] is None) if regression is None \
            else bool(regression)
        labels = layout['labels'] if labels is None else labels
        self.labels = None if self.regression else tuple(
            str(x) for x in labels)
        if not self.regression and not self.labels:
            raise ValueError(f'{owner}: labels is empty; give the label '
                             'strings of the file or regression=True')
        self.with_label = bool(with_label)
        self.has_header = layout['header'] if has_header is None \
            else bool(has_header)
        self.skip_malformed = bool(skip_malformed)
        self.max_length = check_int(max_length, 'max_length', owner,
                                    1 + 2 * len(self.text_columns))
        self.tokenizer = build_tokenizer(tokenizer, data_root)
        # (a string value in metainfo makes mmengine look for a file)
        metainfo = dict(classes=self.labels, regression=self.regression)
        metainfo.update(kwargs.pop('metainfo', None) or {})
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            pipeline=pipeline,
            metainfo=metainfo,
            **kwargs)

    def _index(self, column: Column, header: Optional[List[str]]) -> int:
        if isinstance(column, int):
            return column
        if header is None:
            raise ValueError(
                f'{type(self).__name__}: column {column!r} is a name but '
                f'{self.ann_file!r} is read without a header (task '
                f'{self.task!r}); give column indices or has_header=True')
        if column not in header:
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file!r} line 1 (header) '
                f'has no column {column!r} (columns: {header}); check the '
                f'file or set text_columns / label_column for task '
                f'{self.task!r}')
        return header.index(column)

    def read_rows(self) -> List[Tuple[int, List[str], object]]:
        """``(line number, texts, label)`` of every row, checked."""
        owner, path = type(self).__name__, self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(f'{owner}: TSV file {path!r} does not '
                                    'exist')
        with open(path, encoding='utf-8-sig', newline='') as f:
            rows = list(csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
        header = None
        start = 1
        if self.has_header:
            if not rows:
                raise ValueError(f'{owner}: TSV file {path!r} is empty')
            header, rows, start = rows[0], rows[1:], 2
        columns = [self._index(c, header) for c in self.text_columns]
        names = list(self.text_columns)
        if self.with_label:
            columns.append(self._index(self.label_column, header))
            names.append(self.label_column)
        out, skipped = [], 0
        for number, row in enumerate(rows, start):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            missing = [n for n, c in zip(names, columns) if c >= len(row)]
            if missing:
                if self.skip_malformed:
                    skipped += 1
                    continue
                raise ValueError(
                    f'{owner}: {path!r} line {number} has {len(row)} '
                    f'columns and lacks column {missing[0]!r} (task '
                    f'{self.task!r} reads columns {names}); fix the row, or '
                    'set skip_malformed=True to drop such rows')
            texts = [row[c] for c in columns[:len(self.text_columns)]]
            label = None
            if self.with_label:
                label = self._label(row[columns[-1]], number)
            out.append((number, texts, label))
        if skipped:
            print_log(
                f'{owner}: skipped {skipped} malformed rows of {path}',
                logger='current')
        if not out:
            raise ValueError(f'{owner}: TSV file {path!r} has no data rows')
        return out

    def _label(self, value: str, number: int):
        value = value.strip()
        if self.regression:
            try:
                return float(value)
            except ValueError:
                raise ValueError(
                    f'{type(self).__name__}: {self.ann_file!r} line {number} '
                    f'has label {value!r} in column {self.label_column!r}, '
                    'not a number (task '
                    f'{self.task!r} is a regression)') from None
        if value not in self.labels:
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file!r} line {number} has '
                f'label {value!r} in column {self.label_column!r}, not one '
                f'of the labels {list(self.labels)} of task {self.task!r}; '
                'fix the row or give labels=[...]')
        return self.labels.index(value)

    def load_data_list(self) -> List[dict]:
        rows = self.read_rows()
        width = len(self.text_columns)
        encoded = self.tokenizer.encode(
            [t for _, texts, _ in rows for t in texts])
        data_list = []
        for k, (number, _, label) in enumerate(rows):
            parts = encoded[k * width:(k + 1) * width]
            if width == 1:
                a = parts[0][:self.max_length - 2]
                ids = [CLS_ID] + a + [SEP_ID]
                types = [0] * len(ids)
            else:
                a, b = truncate_longest_first(parts[0], parts[1],
                                              self.max_length - 3)
                ids = [CLS_ID] + a + [SEP_ID] + b + [SEP_ID]
                types = [0] * (len(a) + 2) + [1] * (len(b) + 1)
            info = dict(
                input_ids=np.asarray(ids, dtype=np.int64),
                token_type_ids=np.asarray(types, dtype=np.int64),
                line=number)
            if label is not None:
                info['gt_label'] = label
            data_list.append(info)
        return data_list


def make_embedded_pair_task(corpus_root: str = 'data/embedded_text',
                            out_dir: str = 'data/embedded_text/next_sentence',
                            seed: int = 0,
                            max_train: Optional[int] = None,
                            max_dev: Optional[int] = None,
                            force: bool = False,
                            **corpus_kwargs) -> dict:
    """Write a GLUE-format sentence-pair task from the embedded corpus.

    The task: is ``sentence2`` the sentence right after ``sentence1`` in
    the same document (label 1), or another sentence of the same document
    (label 0)? Both come from one document, so topic gives no hint; only
    coherence does. For each document with at least 3 sentences and each
    of its sentences ``i`` but the last, a seeded coin makes the row
    positive (sentence ``i + 1``) or negative (a random sentence of the
    document other than ``i`` and ``i + 1``); then the rows are balanced by
    dropping (seeded) rows of the larger class, so the majority-class
    accuracy is exactly 50 % (``manifest['majority_rate']``). The corpus's
    train split gives ``train.tsv``, its val split ``dev.tsv`` (columns
    ``sentence1``, ``sentence2``, ``label``; read with
    ``GLUEDataset(task='pair')``). Written atomically; reused when
    ``manifest.json`` matches the arguments and the corpus.

    Args:
        corpus_root (str): folder of the embedded corpus (made if needed
            with ``corpus_kwargs``).
        out_dir (str): output folder.
        seed (int): seed of the rows. Defaults to 0.
        max_train (int, optional): keep at most this many (balanced) rows.
        max_dev (int, optional): as ``max_train`` for ``dev.tsv``.
        force (bool): rebuild even if up to date.
        **corpus_kwargs: arguments of :func:`make_embedded_corpus`.

    Returns:
        dict: the manifest (``files``, ``sizes`` with ``rows`` and
        ``positive`` per split, ``majority_rate``, ``generated``).
    """
    corpus = make_embedded_corpus(corpus_root, **corpus_kwargs)
    out_dir = osp.abspath(osp.expanduser(out_dir))
    params = dict(
        seed=check_int(seed, 'seed', 'make_embedded_pair_task', minimum=0),
        max_train=max_train,
        max_dev=max_dev,
        corpus_sha1={
            s: v['sha1']
            for s, v in corpus['sizes'].items()
        })
    files = dict(
        train=osp.join(out_dir, 'train.tsv'), dev=osp.join(out_dir, 'dev.tsv'))
    try:
        with open(osp.join(out_dir, 'manifest.json')) as f:
            old = json.load(f)
        if not force and old.get('params') == params and all(
                osp.isfile(p) for p in files.values()):
            return dict(old, files=files, generated=False)
    except (OSError, ValueError):
        pass
    sizes = {}
    parent = osp.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tmp-pairs-', dir=parent)
    try:
        for split, source, limit in (('train', 'train', max_train),
                                     ('dev', 'val', max_dev)):
            key = f'{seed}-{split}'.encode()
            rng = np.random.default_rng(
                int.from_bytes(hashlib.sha1(key).digest()[:8], 'big'))
            rows = _pair_rows(
                read_documents(corpus['files'][source]), rng, limit)
            with open(
                    osp.join(tmp, f'{split}.tsv'), 'w', encoding='utf-8') as f:
                f.write('sentence1\tsentence2\tlabel\n')
                for s1, s2, label in rows:
                    f.write(f'{s1}\t{s2}\t{label}\n')
            sizes[split] = dict(
                rows=len(rows), positive=sum(r[2] for r in rows))
        manifest = dict(
            format='mmssl.embedded_pair_task/1',
            task='next sentence within the same document',
            params=params,
            sizes=sizes,
            majority_rate=max(
                max(v['positive'], v['rows'] - v['positive']) /
                max(v['rows'], 1) for v in sizes.values()))
        install_folder(tmp, out_dir, manifest)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return dict(manifest, files=files, generated=True)


def _pair_rows(documents: List[List[str]],
               rng: np.random.Generator,
               limit: Optional[int] = None) -> List[Tuple[str, str, int]]:
    """Balanced, shuffled (sentence1, sentence2, label) rows, at most
    ``limit`` (rounded down to even)."""
    rows = {0: [], 1: []}
    for doc in documents:
        if len(doc) < 3:
            continue
        for i in range(len(doc) - 1):
            if rng.random() < 0.5:
                rows[1].append((doc[i], doc[i + 1], 1))
            else:
                others = [j for j in range(len(doc)) if j not in (i, i + 1)]
                rows[0].append(
                    (doc[i], doc[others[rng.integers(len(others))]], 0))
    size = min(len(rows[0]), len(rows[1]))
    if limit is not None:
        size = min(size, limit // 2)
    kept = []
    for label in (0, 1):
        keep = np.sort(rng.permutation(len(rows[label]))[:size])
        kept += [rows[label][k] for k in keep]
    order = rng.permutation(len(kept))
    return [kept[k] for k in order]
