# Copyright (c) mmssl contributors. All rights reserved.
"""Token blocks of a text corpus: the pretraining data of data2vec 2.0 text
(fairseq ``masked_lm`` task with ``tokens_per_sample: 512`` and
``sample_break_mode: none``).

The corpus (one sentence per line, blank lines between documents, read
with :func:`mmssl.datasets.read_documents`) is tokenised once with the
SentencePiece model of the ALBERT path and laid out as one token stream:
every sentence followed by ``[SEP]`` (fairseq's end-of-sentence ``</s>``),
one more ``[SEP]`` at each document end (the blank line). The stream is cut
into blocks, each prefixed with ``[CLS]`` (fairseq's ``<s>``):

* ``sample_break_mode='none'`` (the recipe): blocks of exactly
  ``tokens_per_sample - 1`` stream tokens, crossing sentence and document
  boundaries; the incomplete last block is dropped, so every item has
  ``tokens_per_sample`` tokens and a batch is rectangular without padding,
  which the model-side masker (``mmssl.RandomTokenMasker``: the same count
  of removed tokens in every row) and the visible-token encoder need;
* ``'complete'``: whole sentences per block, as many as fit in
  ``tokens_per_sample - 1`` tokens (a longer sentence is cut into pieces);
  items vary in length and need padding (``mmssl.TextDataPreprocessor``),
  for MLM; data2vec 2.0 pretraining refuses padded batches.

Items (before the pipeline)::

    input_ids       (T,) int64   [CLS] + block, T = tokens_per_sample
    word_starts     (T,) bool    whole-word starts, for mmssl.NgramMLMMask
    sample_idx      int          (added by mmengine)

Pipelines: data2vec 2.0, ``[dict(type='PackInputs', input_key=
'input_ids')]`` with ``collate_fn=dict(type='default_collate')`` (the batch
is a (B, T) id tensor, the masks are drawn in the model); MLM,
``[dict(type='mmssl.NgramMLMMask', ...), dict(type='mmssl.PackTextInputs')]``.
"""
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_int
from .embedded_text import embedded_corpus_args
from .text_corpus import read_documents
from .tokenizer import CLS_ID, SEP_ID, SentencePieceTokenizer, build_tokenizer

__all__ = [
    'TextBlockDataset', 'EmbeddedTextBlockDataset', 'SAMPLE_BREAK_MODES',
    'token_stream', 'make_blocks'
]

SAMPLE_BREAK_MODES = ('none', 'complete')


def token_stream(documents: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    """One stream of the tokenised documents: each sentence followed by
    ``[SEP]``, one more ``[SEP]`` after each document; empty sentences
    dropped."""
    parts = []
    sep = np.array([SEP_ID], dtype=np.int64)
    for doc in documents:
        for sentence in doc:
            if len(sentence):
                parts += [np.asarray(sentence, dtype=np.int64), sep]
        parts.append(sep)
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def make_blocks(documents: Sequence[Sequence[Sequence[int]]],
                tokens_per_sample: int,
                mode: str = 'none') -> List[np.ndarray]:
    """The blocks ``[CLS] + tokens`` of at most ``tokens_per_sample`` ids.

    Args:
        documents (Sequence): documents as lists of sentences (token id
            lists, without special tokens).
        tokens_per_sample (int): block length incl. ``[CLS]``.
        mode (str): ``'none'`` (exact length, the last partial block
            dropped) or ``'complete'`` (whole sentences).

    Returns:
        list[np.ndarray]: int64 blocks.
    """
    size = tokens_per_sample - 1
    cls = np.array([CLS_ID], dtype=np.int64)
    if mode == 'none':
        stream = token_stream(documents)
        n = len(stream) // size
        return [
            np.concatenate([cls, stream[i * size:(i + 1) * size]])
            for i in range(n)
        ]
    blocks, current = [], []
    for doc in documents:
        for sentence in doc:
            ids = list(sentence) + [SEP_ID]
            if len(ids) == 1:
                continue
            pieces = [ids[i:i + size] for i in range(0, len(ids), size)]
            for piece in pieces:
                if len(current) + len(piece) > size and current:
                    blocks.append(current)
                    current = []
                current = current + piece
    if current:
        blocks.append(current)
    return [np.concatenate([cls, np.asarray(b, np.int64)]) for b in blocks]


@DATASETS.register_module()
class TextBlockDataset(BaseDataset):
    """Fixed-length token blocks of a plain-text corpus (see the module
    docstring).

    Args:
        ann_file (str): the corpus file (relative to ``data_root``).
        tokenizer (str | dict): the SentencePiece ``.model`` file (relative
            to ``data_root`` if not found as given) or ``dict(model_file=
            ...)``.
        tokens_per_sample (int): block length incl. ``[CLS]``; must not
            exceed the encoder's ``max_position``. Defaults to 512.
        sample_break_mode (str): ``'none'`` or ``'complete'``.
            Defaults to ``'none'``.
        max_documents (int, optional): read only the first documents.
        data_root (str): folder of the files. Defaults to ``''``.
        pipeline (Sequence[dict | Callable]): see the module docstring.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(task='text_blocks')

    def __init__(self,
                 ann_file: str,
                 tokenizer: Union[str, dict, SentencePieceTokenizer],
                 tokens_per_sample: int = 512,
                 sample_break_mode: str = 'none',
                 max_documents: Optional[int] = None,
                 data_root: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        self.tokens_per_sample = check_int(
            tokens_per_sample, 'tokens_per_sample', owner, minimum=2)
        self.sample_break_mode = check_choice(sample_break_mode,
                                              'sample_break_mode', owner,
                                              SAMPLE_BREAK_MODES)
        self.max_documents = None if max_documents is None else check_int(
            max_documents, 'max_documents', owner)
        self.tokenizer = build_tokenizer(tokenizer, data_root)
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            pipeline=pipeline,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        documents = read_documents(self.ann_file)
        if self.max_documents is not None:
            documents = documents[:self.max_documents]
        flat = [s for doc in documents for s in doc]
        encoded = self.tokenizer.encode(flat)
        docs, k = [], 0
        for doc in documents:
            docs.append(encoded[k:k + len(doc)])
            k += len(doc)
        blocks = make_blocks(docs, self.tokens_per_sample,
                             self.sample_break_mode)
        if not blocks:
            total = len(token_stream(docs))
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file!r} has {total} '
                f'tokens, less than one block of tokens_per_sample='
                f'{self.tokens_per_sample}; lower tokens_per_sample or give '
                'a larger corpus')
        print_log(
            f'{type(self).__name__}: {len(blocks)} blocks of up to '
            f'{self.tokens_per_sample} tokens ({self.sample_break_mode}) '
            f'from {len(documents)} documents of {self.ann_file}',
            logger='current')
        return [
            dict(input_ids=b, word_starts=self.tokenizer.word_starts(b))
            for b in blocks
        ]


@DATASETS.register_module()
class EmbeddedTextBlockDataset(TextBlockDataset):
    """:class:`TextBlockDataset` on the embedded docstring corpus with its
    tokenizer (both made on first use, shared with the ALBERT configs).

    Args:
        data_root (str): the embedded text folder.
            Defaults to ``'data/embedded_text'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        vocab_size (int): pieces of the tokenizer. Defaults to 2000.
        **kwargs: the other arguments of :class:`TextBlockDataset`
            (``tokens_per_sample``, ``sample_break_mode``, ``pipeline``);
            not ``ann_file`` or ``tokenizer``.
    """

    def __init__(self,
                 data_root: str = 'data/embedded_text',
                 split: str = 'train',
                 vocab_size: int = 2000,
                 **kwargs) -> None:
        super().__init__(
            **embedded_corpus_args(
                type(self).__name__, data_root, split, vocab_size, kwargs,
                'mmssl.TextBlockDataset'), **kwargs)
