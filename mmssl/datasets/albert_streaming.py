# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT pretraining pairs streamed from corpora larger than memory.

:class:`AlbertStreamingPretrainDataset`
(``mmssl.AlbertStreamingPretrainDataset``) reads plain-text files in the
format of :class:`mmssl.AlbertPretrainDataset` (one sentence per line,
blank lines between documents) one line at a time, tokenises each document
as it arrives and builds its pairs with the same functions
(:func:`mmssl.datasets.instances_from_document`), holding at most
``buffer_docs`` tokenised documents per data-loader worker. It is a
``torch.utils.data.IterableDataset``: documents are sharded over the
data-loader workers and the distributed ranks, and an optional shuffle
buffer mixes them. :class:`EmbeddedTextStreamingDataset` streams the
embedded corpus (made on first use).

A config runs it with ``sampler=None`` (PyTorch refuses a sampler for an
iterable data set) and an ``IterBasedTrainLoop``; mmengine restarts the
data loader at the end of each pass. mmengine's ``LoggerHook`` asks the
length of the data loader, so give ``num_samples`` (an estimate of the
pairs of one pass; see ``configs/albert/*stream*.py``).
"""
import glob
import math
import os.path as osp
from collections import deque
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import print_log
from torch.utils.data import IterableDataset, get_worker_info

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_float, check_int
from .albert_pretrain import (SINGLE_SENTENCE_MODES, Segment,
                              document_segments, instances_from_document)
from .embedded_text import embedded_corpus_args
from .text_corpus import check_corpus_file, iter_documents
from .tokenizer import SentencePieceTokenizer, build_tokenizer

__all__ = [
    'AlbertStreamingPretrainDataset', 'EmbeddedTextStreamingDataset',
    'SHARD_MODES'
]

SHARD_MODES = ('document', 'file')
#: Most data-loader workers per process whose passes are counted.
MAX_WORKERS = 64
# random streams of a pass
_PAIRS, _SHUFFLE, _FILES = 0, 1, 2


def _slot(num_workers: int, worker: int) -> int:
    """Pass-counter slot of ``worker`` of ``num_workers`` (0: the process
    itself, slot 1); each number of workers has its own slots, so workers
    of one pass agree on its epoch. Slot 0 holds the epoch of
    ``set_epoch``."""
    if num_workers == 0:
        return 1
    return 2 + num_workers * (num_workers - 1) // 2 + worker


class _DocumentBuffer:
    """At most ``capacity`` tokenised documents, taken first-in first-out
    (``rng`` None) or at random (a shuffle buffer).

    Args:
        capacity (int): most documents held.
        rng (np.random.Generator, optional): draws the document to take.
    """

    def __init__(self, capacity: int,
                 rng: Optional[np.random.Generator]) -> None:
        self.capacity, self.rng = capacity, rng
        self.docs = deque() if rng is None else []
        self.ids = deque() if rng is None else []

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, doc_id: Tuple[int, int], segments: List[Segment]) -> None:
        if len(self.docs) >= self.capacity:
            raise RuntimeError('the document buffer is full')
        self.docs.append(segments)
        self.ids.append(doc_id)

    def next_index(self) -> int:
        """The document to pair next: the oldest, or a random one."""
        if self.rng is None:
            return 0
        return int(self.rng.integers(len(self.docs)))

    def remove(self, index: int) -> None:
        if self.rng is None:
            self.docs.popleft()
            self.ids.popleft()
            return
        for items in (self.docs, self.ids):  # swap with the last, pop
            items[index] = items[-1]
            items.pop()


@DATASETS.register_module()
class AlbertStreamingPretrainDataset(IterableDataset):
    """Sentence-order-prediction pairs streamed from plain-text files.

    The pairs of each document are those of :class:`AlbertPretrainDataset`
    (same functions: target length with ``short_seq_prob``, random sentence
    boundary, SOP coin, truncation, ``[CLS] A [SEP] B [SEP]``), and so are
    the items, plus ``doc_id``; the same pipeline (``NgramMLMMask``,
    ``PackTextInputs``) and collate function apply.

    **A pass.** Each process (rank) and each of its data-loader workers is
    one shard (``shard = rank * num_workers + worker``). The files are read
    in the given order (``shuffle``: a permutation drawn from
    ``(seed, epoch)``, the same in every shard), line by line; with
    ``shard_by='document'`` the k-th document of the pass goes to shard
    ``k % num_shards`` (every shard reads every line, tokenises only its
    own documents), with ``shard_by='file'`` the k-th file goes to shard
    ``k % num_shards`` (each shard reads only its files; give at least as
    many files as shards). So in one pass every document is paired exactly
    once, in exactly one shard. A shard puts its documents into a buffer
    of ``buffer_docs`` documents; once it is full (and at the end of the
    files) it takes one out and yields its pairs: the oldest
    (``shuffle=False``) or a random one (``shuffle=True``, a shuffle buffer
    drawn from ``(seed, epoch, shard)``: documents are mixed within a
    window of about ``buffer_docs``, across files by the file order). With
    ``single_sentence='random_doc'`` the random other document comes from
    the buffer. Memory: ``buffer_docs`` tokenised documents and one line
    per worker.

    **Epochs.** The pairs of a shard come from a generator seeded with
    ``(seed, epoch, shard)``, so a pass is the same for the same seed,
    epoch, files, number of shards and tokenizer; another epoch gives new
    chunk boundaries and SOP coins and (``shuffle``) a new order. mmengine
    calls ``set_epoch`` on the sampler only, which an iterable data set
    does not have, so the data set counts its passes itself: the epoch of a
    pass is the one given to :meth:`set_epoch` (0 at first) plus the number
    of passes started since, counted per data-loader worker in shared
    memory, so data-loader workers that are started anew each pass (the
    default ``persistent_workers=False``) count too. In epoch 0 with one
    shard the generator is ``np.random.default_rng(seed)``, that of
    :class:`AlbertPretrainDataset`: without shuffling (and with
    ``single_sentence`` other than ``'random_doc'``) the items are those of
    ``AlbertPretrainDataset(..., dupe_factor=1)``, for any ``buffer_docs``.

    Items (before the pipeline)::

        input_ids       (T,) int64     T <= max_seq_length
        token_type_ids  (T,) int64     0 / 1
        word_starts     (T,) bool      whole-word starts (special tokens too)
        sop_label       int            0 original order, 1 swapped
        single_sentence bool
        doc_id          (int, int)     (file index in ann_file, first line)
        sample_idx      int            count * num_shards + shard

    Args:
        ann_file (str | Sequence[str]): the corpus files (relative to
            ``data_root``); a name with ``*``, ``?`` or ``[`` is a glob
            pattern (matches sorted).
        tokenizer (str | dict): the SentencePiece ``.model`` file (relative
            to ``data_root`` if not found as given) or
            ``dict(model_file=...)``.
        max_seq_length (int): longest item incl. the 3 special tokens.
            Defaults to 512.
        short_seq_prob (float): share of documents with a random shorter
            target length. Defaults to 0.1.
        single_sentence (str): ``'split_tokens'``, ``'random_doc'`` or
            ``'skip'`` (see :class:`AlbertPretrainDataset`). Defaults to
            ``'split_tokens'``.
        truncate_long_sentences (bool): cut sentences longer than
            ``max_seq_length - 3`` tokens instead of raising. Defaults to
            False.
        buffer_docs (int): most tokenised documents held per worker.
            Defaults to 1000.
        shuffle (bool): shuffle the files and the documents (buffer).
            Defaults to True.
        shard_by (str): ``'document'`` or ``'file'``. Defaults to
            ``'document'``.
        max_line_bytes (int): longest line in bytes (a longer one raises
            naming the file and line: a file without line breaks is not
            read into memory). Defaults to 1 MiB.
        max_documents (int, optional): stop each pass after this many
            documents (all shards together; ``shard_by='document'`` only).
        num_samples (int, optional): an estimate of the pairs of one pass
            over all ranks; gives the data set a length (its share per
            rank, ``ceil(num_samples / world_size)``) for mmengine's hooks
            and an ``EpochBasedTrainLoop`` (its schedules; a pass still
            yields all its pairs, so with several ranks, whose passes may
            differ by a batch, use an ``IterBasedTrainLoop``, which restarts
            each rank's loader on its own). Without it ``len()`` raises.
        seed (int): seed of the pairs and the shuffle. Defaults to 0.
        data_root (str): folder of the files. Defaults to ``''``.
        pipeline (Sequence[dict | Callable]): e.g. ``NgramMLMMask`` and
            ``PackTextInputs``.
    """

    METAINFO = dict(task='albert_pretrain')

    def __init__(
        self,
        ann_file: Union[str, Sequence[str]],
        tokenizer: Union[str, dict, SentencePieceTokenizer],
        max_seq_length: int = 512,
        short_seq_prob: float = 0.1,
        single_sentence: str = 'split_tokens',
        truncate_long_sentences: bool = False,
        buffer_docs: int = 1000,
        shuffle: bool = True,
        shard_by: str = 'document',
        max_line_bytes: int = 1 << 20,
        max_documents: Optional[int] = None,
        num_samples: Optional[int] = None,
        seed: int = 0,
        data_root: str = '',
        pipeline: Sequence[Union[dict, Callable]] = ()
    ) -> None:
        owner = type(self).__name__
        self.max_seq_length = check_int(
            max_seq_length, 'max_seq_length', owner, minimum=5)
        self.short_seq_prob = check_float(short_seq_prob, 'short_seq_prob',
                                          owner, 0., 1.)
        self.single_sentence = check_choice(single_sentence, 'single_sentence',
                                            owner, SINGLE_SENTENCE_MODES)
        self.truncate_long_sentences = bool(truncate_long_sentences)
        self.buffer_docs = check_int(buffer_docs, 'buffer_docs', owner)
        self.shuffle = bool(shuffle)
        self.shard_by = check_choice(shard_by, 'shard_by', owner, SHARD_MODES)
        self.max_line_bytes = check_int(max_line_bytes, 'max_line_bytes',
                                        owner)
        self.max_documents = None if max_documents is None else check_int(
            max_documents, 'max_documents', owner)
        if self.max_documents is not None and shard_by == 'file':
            raise ValueError(f'{owner}: max_documents needs '
                             "shard_by='document' (the shards of "
                             "shard_by='file' do not see each other's files)")
        self.num_samples = None if num_samples is None else check_int(
            num_samples, 'num_samples', owner)
        self.seed = check_int(seed, 'seed', owner, minimum=0)
        self.data_root = data_root
        self.files = self._resolve_files(ann_file, data_root)
        self.tokenizer = build_tokenizer(tokenizer, data_root)
        self.pipeline = Compose(pipeline)
        # [epoch of set_epoch, passes started per worker slot]: in shared
        # memory, so workers started anew each pass see the count
        self._passes = torch.zeros(
            _slot(MAX_WORKERS, MAX_WORKERS - 1) + 1, dtype=torch.int64)
        try:
            self._passes.share_memory_()
        except (RuntimeError, OSError):  # pragma: no cover
            pass  # then only workers that persist count their passes
        size = sum(osp.getsize(f) for f in self.files)
        print_log(
            f'{owner}: streaming {len(self.files)} file(s), '
            f'{size / 2**20:.1f} MiB, buffer {self.buffer_docs} documents '
            f'per worker, shuffle={self.shuffle}, max length '
            f'{self.max_seq_length}',
            logger='current')

    @staticmethod
    def _resolve_files(ann_file: Union[str, Sequence[str]],
                       data_root: str) -> List[str]:
        owner = 'AlbertStreamingPretrainDataset'
        names = [ann_file] if isinstance(ann_file, str) else []
        if isinstance(ann_file, (list, tuple)):
            names = list(ann_file)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f'{owner}: ann_file must be a file name or a '
                             f'non-empty list of them, got {ann_file!r}')
        files = []
        for name in names:
            name = osp.join(data_root or '', name)  # absolute: as given
            if glob.has_magic(name):
                matches = sorted(glob.glob(name))
                if not matches:
                    raise FileNotFoundError(
                        f'{owner}: no corpus file matches {name!r}; check '
                        'the pattern and data_root')
                files += matches
            else:
                files.append(name)
        seen = set()
        for path in files:
            if osp.abspath(path) in seen:
                raise ValueError(f'{owner}: corpus file {path!r} is given '
                                 'twice; its documents would be seen twice '
                                 'a pass')
            seen.add(osp.abspath(path))
            check_corpus_file(path)
        return files

    # -- length, epochs, shards ----------------------------------------------

    @property
    def metainfo(self) -> dict:
        return dict(self.METAINFO)

    def __len__(self) -> int:
        if self.num_samples is None:
            raise TypeError(
                f'{type(self).__name__} streams its files and has no length; '
                'give num_samples=N (an estimate of the pairs of one pass) '
                'for mmengine\'s hooks and loops that ask len(dataloader)')
        return math.ceil(self.num_samples / get_world_size())

    @property
    def epoch(self) -> int:
        """The epoch given to :meth:`set_epoch` (0 at first)."""
        return int(self._passes[0])

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (the passes after it count on
        from there): its file order, shuffle buffer and pairs are drawn from
        ``(seed, epoch, shard)``."""
        self._passes.zero_()
        self._passes[0] = check_int(
            epoch, 'epoch', f'{type(self).__name__}.set_epoch', minimum=0)

    def _begin_pass(self, num_workers: int, worker: int) -> int:
        """The epoch of the pass this worker starts; counts it."""
        if num_workers > MAX_WORKERS:
            raise ValueError(
                f'{type(self).__name__}: num_workers={num_workers} is more '
                f'than the {MAX_WORKERS} workers whose passes it counts; use '
                'fewer data-loader workers')
        slot = _slot(num_workers, worker)
        passes = int(self._passes[slot])
        self._passes[slot] = passes + 1
        return self.epoch + passes

    def _generator(self, epoch: int, shard: int,
                   stream: int) -> np.random.Generator:
        if (epoch, shard, stream) == (0, 0, _PAIRS):
            return np.random.default_rng(self.seed)  # AlbertPretrainDataset's
        return np.random.default_rng([self.seed, epoch, shard, stream])

    @staticmethod
    def shard_info() -> Tuple[int, int, int, int]:
        """``(shard, num_shards, worker, num_workers)`` of the calling
        process / data-loader worker (``num_workers`` 0 without workers)."""
        info = get_worker_info()
        worker, num_workers = (0, 0) if info is None else (info.id,
                                                           info.num_workers)
        rank, world_size = get_rank(), get_world_size()
        per_rank = max(1, num_workers)
        return (rank * per_rank + worker, world_size * per_rank, worker,
                num_workers)

    # -- reading ------------------------------------------------------------

    def file_order(self, epoch: int) -> List[int]:
        """Indices into :attr:`files` in the order of a pass of ``epoch``."""
        order = list(range(len(self.files)))
        if self.shuffle and len(order) > 1:
            rng = self._generator(epoch, 0, _FILES)
            order = [int(i) for i in rng.permutation(len(order))]
        return order

    def shard_documents(
            self, epoch: int, shard: int, num_shards: int
    ) -> Iterator[Tuple[Tuple[int, int], List[Segment]]]:
        """The tokenised documents of ``shard`` in a pass of ``epoch``.

        Yields:
            tuple: ``((file index, first line), segments)``; documents
            without tokens are skipped.
        """
        owner = type(self).__name__
        order = self.file_order(epoch)
        if self.shard_by == 'file' and len(order) < num_shards:
            raise ValueError(
                f'{owner}: shard_by=\'file\' with {len(order)} file(s) for '
                f'{num_shards} shards (ranks x data-loader workers); give at '
                "least one file per shard, or use shard_by='document'")
        total, own = 0, False
        for position, index in enumerate(order):
            if self.shard_by == 'file' and position % num_shards != shard:
                continue
            path = self.files[index]
            for doc in iter_documents(path, True, self.max_line_bytes):
                mine = self.shard_by == 'file' or total % num_shards == shard
                total += 1
                if mine:
                    own = True
                    encoded = self.tokenizer.encode([t for _, t in doc])
                    segments = document_segments(doc, encoded, self.tokenizer,
                                                 self.max_seq_length,
                                                 self.truncate_long_sentences,
                                                 path, owner)
                    if segments:
                        yield (index, doc[0][0]), segments
                if total == self.max_documents:
                    break
            if total == self.max_documents:
                break
        if not own:
            raise ValueError(
                f'{owner}: shard {shard} of {num_shards} (ranks x data-loader '
                f'workers) got no document of the {total} read from '
                f'{len(self.files)} file(s); use fewer workers or ranks, or '
                'a larger corpus')

    # -- pairs --------------------------------------------------------------

    def _take(self, buffer: _DocumentBuffer,
              rng: np.random.Generator) -> List[dict]:
        index = buffer.next_index()
        doc_id = buffer.ids[index]
        items = instances_from_document(buffer.docs, index, rng,
                                        self.max_seq_length,
                                        self.short_seq_prob,
                                        self.single_sentence)
        buffer.remove(index)
        for item in items:
            item['doc_id'] = doc_id
        return items

    def iter_pairs(self) -> Iterator[dict]:
        """The items of one pass of this shard, before the pipeline."""
        shard, num_shards, worker, num_workers = self.shard_info()
        epoch = self._begin_pass(num_workers, worker)
        rng = self._generator(epoch, shard, _PAIRS)
        buffer = _DocumentBuffer(
            self.buffer_docs,
            self._generator(epoch, shard, _SHUFFLE) if self.shuffle else None)
        count = 0
        documents = self.shard_documents(epoch, shard, num_shards)
        for doc_id, segments in documents:
            buffer.add(doc_id, segments)
            if len(buffer) < self.buffer_docs:
                continue
            for item in self._take(buffer, rng):
                item['sample_idx'] = count * num_shards + shard
                count += 1
                yield item
        while len(buffer):
            for item in self._take(buffer, rng):
                item['sample_idx'] = count * num_shards + shard
                count += 1
                yield item
        if count == 0 and num_shards == 1:
            raise ValueError(
                f'{type(self).__name__}: no sentence pairs could be made from '
                f'{self.files}; give a corpus with documents of two or more '
                'sentences')

    def __iter__(self) -> Iterator[dict]:
        for item in self.iter_pairs():
            item = self.pipeline(item)
            if item is not None:
                yield item

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(files={self.files}, '
                f'buffer_docs={self.buffer_docs}, shuffle={self.shuffle}, '
                f'shard_by={self.shard_by!r}, max_seq_length='
                f'{self.max_seq_length}, seed={self.seed})')


@DATASETS.register_module()
class EmbeddedTextStreamingDataset(AlbertStreamingPretrainDataset):
    """:class:`AlbertStreamingPretrainDataset` on the embedded corpus, with
    the tokenizer trained on its training split (both made on first use,
    as for :class:`mmssl.EmbeddedTextPretrainDataset`).

    Args:
        data_root (str): the embedded text folder.
            Defaults to ``'data/embedded_text'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        vocab_size (int): pieces of the tokenizer. Defaults to 2000.
        **kwargs: the other arguments of
            :class:`AlbertStreamingPretrainDataset` (``buffer_docs``,
            ``max_seq_length``, ``num_samples``, ``pipeline``, ...); not
            ``ann_file`` or ``tokenizer``.
    """

    def __init__(self,
                 data_root: str = 'data/embedded_text',
                 split: str = 'train',
                 vocab_size: int = 2000,
                 **kwargs) -> None:
        super().__init__(
            **embedded_corpus_args(
                type(self).__name__, data_root, split, vocab_size, kwargs,
                'mmssl.AlbertStreamingPretrainDataset'), **kwargs)
