# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT pretraining data: segment pairs with sentence-order labels.

:class:`AlbertPretrainDataset` (``mmssl.AlbertPretrainDataset``) reads a
plain-text corpus (one sentence per line, blank lines between documents;
:func:`mmssl.datasets.read_documents`), tokenises it once with a
SentencePiece model and builds the pairs of ALBERT's
``create_pretraining_data.py`` (spec section 2, steps 1-3). The masking is
a separate transform, :class:`mmssl.NgramMLMMask`, so it is redrawn every
epoch; :class:`mmssl.PackTextInputs` packs the items.

The pair building is made of functions (:func:`document_segments`,
:func:`instances_from_document`, :func:`truncate_pair`,
:func:`pair_item`) that :class:`mmssl.AlbertStreamingPretrainDataset`
shares, so both data sets make the same pairs from a document.
"""
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_float, check_int
from .text_corpus import read_documents
from .tokenizer import CLS_ID, SEP_ID, SentencePieceTokenizer, build_tokenizer

__all__ = [
    'AlbertPretrainDataset', 'SINGLE_SENTENCE_MODES', 'truncate_pair',
    'document_segments', 'pair_item', 'split_single_sentence',
    'instances_from_document'
]

SINGLE_SENTENCE_MODES = ('split_tokens', 'random_doc', 'skip')

# A segment: (token ids, word-start flags), both (n,) arrays.
Segment = Tuple[np.ndarray, np.ndarray]


def _join(segments: List[Segment]) -> Segment:
    """The segments' ids and word starts, each concatenated (empty for no
    segment)."""
    return (np.concatenate([np.zeros(0, np.int64)] + [s[0] for s in segments]),
            np.concatenate([np.zeros(0, bool)] + [s[1] for s in segments]))


def truncate_pair(a: List[Segment], b: List[Segment], max_tokens: int,
                  rng: np.random.Generator) -> Tuple[Segment, Segment]:
    """Concatenate and truncate segments A and B to ``max_tokens`` in all.

    As the reference ``truncate_seq_pair``: tokens are removed one at a time
    from the longer side, from its front or back with equal probability.

    Returns:
        tuple: ``(ids_a, starts_a), (ids_b, starts_b)``.
    """
    ids_a, st_a = _join(a)
    ids_b, st_b = _join(b)
    lo_a, hi_a, lo_b, hi_b = 0, len(ids_a), 0, len(ids_b)
    while (hi_a - lo_a) + (hi_b - lo_b) > max_tokens:
        front = rng.random() < 0.5
        if hi_a - lo_a > hi_b - lo_b:
            lo_a, hi_a = (lo_a + 1, hi_a) if front else (lo_a, hi_a - 1)
        else:
            lo_b, hi_b = (lo_b + 1, hi_b) if front else (lo_b, hi_b - 1)
    return (ids_a[lo_a:hi_a], st_a[lo_a:hi_a]), (ids_b[lo_b:hi_b],
                                                 st_b[lo_b:hi_b])


def document_segments(lines: Sequence[Tuple[int, str]],
                      encoded: Sequence[Sequence[int]],
                      tokenizer: SentencePieceTokenizer,
                      max_seq_length: int,
                      truncate_long_sentences: bool,
                      path: str,
                      owner: str = 'AlbertPretrainDataset') -> List[Segment]:
    """The segments (one per sentence) of one tokenised document.

    Empty sentences are dropped. A sentence longer than
    ``max_seq_length - 3`` tokens raises, or with
    ``truncate_long_sentences`` is cut into consecutive pieces of that
    length.

    Args:
        lines (Sequence[tuple[int, str]]): ``(line_number, sentence)`` of
            the document (from :func:`mmssl.datasets.iter_documents`).
        encoded (Sequence[Sequence[int]]): the token ids of each sentence.
        tokenizer (SentencePieceTokenizer): gives the word starts.
        max_seq_length (int): longest item incl. the 3 special tokens.
        truncate_long_sentences (bool): cut long sentences instead of
            raising.
        path (str): the corpus file, named in the error.
        owner (str): the data set named in the error.

    Returns:
        list[tuple[np.ndarray, np.ndarray]]: ``(ids (n,) int64, word
        starts (n,) bool)`` per sentence (piece), in order.

    Raises:
        ValueError: a sentence is too long, naming the file and line.
    """
    limit = max_seq_length - 3
    segments = []
    for (number, _), sentence in zip(lines, encoded):
        ids = np.asarray(sentence, dtype=np.int64)
        if len(ids) == 0:
            continue
        if len(ids) > limit and not truncate_long_sentences:
            raise ValueError(
                f'{owner}: line {number} of {path!r} has {len(ids)} tokens, '
                f'more than max_seq_length - 3 = {limit}; split the line '
                'into sentences, raise max_seq_length, or set '
                'truncate_long_sentences=True to cut it')
        starts = tokenizer.word_starts(ids)
        for lo in range(0, len(ids), limit):
            segments.append((ids[lo:lo + limit], starts[lo:lo + limit]))
    return segments


def pair_item(a: Segment, b: Segment, label: int, single: bool) -> dict:
    """The item ``[CLS] A [SEP] B [SEP]`` (see
    :class:`AlbertPretrainDataset`): ``input_ids`` / ``token_type_ids``
    ``(T,)`` int64, ``word_starts`` ``(T,)`` bool, ``sop_label``,
    ``single_sentence``; ``T = len(A) + len(B) + 3``."""
    (ids_a, starts_a), (ids_b, starts_b) = a, b
    ids = np.concatenate([[CLS_ID], ids_a, [SEP_ID], ids_b,
                          [SEP_ID]]).astype(np.int64)
    starts = np.concatenate([[True], starts_a, [True], starts_b,
                             [True]]).astype(bool)
    types = np.zeros(len(ids), dtype=np.int64)
    types[len(ids_a) + 2:] = 1
    return dict(
        input_ids=ids,
        token_type_ids=types,
        word_starts=starts,
        sop_label=int(label),
        single_sentence=bool(single))


def split_single_sentence(seg: Segment,
                          rng: np.random.Generator) -> Optional[List[List]]:
    """Split one sentence at a random word boundary (a random token
    boundary if it is one word) into ``[[A], [B]]``; None if it has fewer
    than 2 tokens."""
    ids, starts = seg
    if len(ids) < 2:
        return None
    cuts = np.flatnonzero(starts[1:]) + 1
    if len(cuts) == 0:
        cuts = np.arange(1, len(ids))
    cut = int(cuts[rng.integers(len(cuts))])
    return [[(ids[:cut], starts[:cut])], [(ids[cut:], starts[cut:])]]


def instances_from_document(
        documents: Sequence[List[Segment]],
        index: int,
        rng: np.random.Generator,
        max_seq_length: int = 512,
        short_seq_prob: float = 0.1,
        single_sentence: str = 'split_tokens') -> List[dict]:
    """The pairs of ``documents[index]`` (spec section 2, steps 1-3; see
    :class:`AlbertPretrainDataset` for the rules).

    Args:
        documents (Sequence[list]): tokenised documents (lists of
            segments); the others are only read by
            ``single_sentence='random_doc'`` (B from a random other one).
        index (int): the document to pair.
        rng (np.random.Generator): the random source (drawn in a fixed
            order, so the same generator state gives the same pairs).
        max_seq_length (int): longest item incl. the 3 special tokens.
        short_seq_prob (float): probability of a shorter random target.
        single_sentence (str): ``'split_tokens'``, ``'random_doc'`` or
            ``'skip'``.

    Returns:
        list[dict]: items of :func:`pair_item`, each at most
        ``max_seq_length`` tokens long.
    """
    document = documents[index]
    max_tokens = max_seq_length - 3
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    items, chunk, length = [], [], 0
    for i, segment in enumerate(document):
        chunk.append(segment)
        length += len(segment[0])
        if i != len(document) - 1 and length < target:
            continue
        single = len(chunk) == 1
        if not single:
            a_end = int(rng.integers(1, len(chunk)))
            parts = [chunk[:a_end], chunk[a_end:]]
        elif single_sentence == 'split_tokens':
            parts = split_single_sentence(chunk[0], rng)
        elif single_sentence == 'random_doc' and len(documents) > 1:
            other = int(rng.integers(len(documents) - 1))
            other += other >= index
            start = int(rng.integers(len(documents[other])))
            parts = [chunk, documents[other][start:]]
        else:
            parts = None
        chunk, length = [], 0
        if parts is None:
            continue
        if single and single_sentence == 'random_doc':
            label = 1  # the reference's quirk: NSP-style "random next"
        else:
            label = int(rng.random() < 0.5)
            if label:
                parts = parts[::-1]
        a, b = truncate_pair(parts[0], parts[1], max_tokens, rng)
        if len(a[0]) and len(b[0]):
            items.append(pair_item(a, b, label, single))
    return items


@DATASETS.register_module()
class AlbertPretrainDataset(BaseDataset):
    """Sentence-order-prediction pairs from a plain-text corpus.

    For each document (with a seeded generator, so the pairs are the same
    for the same corpus, tokenizer and seed) as in the reference:

    1. A target length of ``max_seq_length - 3`` tokens, with probability
       ``short_seq_prob`` a random one in ``[2, max_seq_length - 3]``
       (drawn once per document). Sentences are gathered into a chunk until
       it reaches the target (or the document ends); the chunk is split at
       a random sentence boundary into A and B.
    2. SOP: with probability 0.5 the pair stays (A, B), ``sop_label = 0``;
       otherwise it is swapped to (B, A), ``sop_label = 1``. The pair is
       truncated to ``max_seq_length - 3`` tokens (longer side first, front
       or back at random).
    3. ``input_ids = [CLS] A [SEP] B [SEP]``, ``token_type_ids`` 0 for
       ``[CLS] A [SEP]`` and 1 for ``B [SEP]``. No padding here: the data
       preprocessor pads each batch.

    A chunk of a *single* sentence has no sentence boundary. The reference
    then takes B from a random other document and labels the pair 1
    ("swapped") even in SOP mode, so a part of the SOP task is topic
    prediction (NSP), which SOP was designed to remove
    (google-research/albert#234). ``single_sentence`` chooses:

    - ``'split_tokens'`` (default): split the sentence at a random word
      boundary (a random token boundary if it is one word) and apply the
      SOP coin as for any chunk; the label stays a pure order label.
    - ``'random_doc'``: the reference's behaviour (B = sentences of a
      random other document, label 1).
    - ``'skip'``: drop the chunk.

    Every item records ``single_sentence`` (bool) for analysis.

    A sentence (line) longer than ``max_seq_length - 3`` tokens cannot fit
    a pair: it raises an error naming the file and line, unless
    ``truncate_long_sentences=True``, which cuts it into consecutive pieces
    of ``max_seq_length - 3`` tokens.

    Items (before the pipeline)::

        input_ids       (T,) int64     T <= max_seq_length
        token_type_ids  (T,) int64     0 / 1
        word_starts     (T,) bool      whole-word starts (special tokens too)
        sop_label       int            0 original order, 1 swapped
        single_sentence bool
        sample_idx      int            (added by mmengine)

    Args:
        ann_file (str): the corpus file (relative to ``data_root``).
        tokenizer (str | dict): the SentencePiece ``.model`` file (relative
            to ``data_root`` if not found as given) or
            ``dict(model_file=...)``.
        max_seq_length (int): longest item incl. the 3 special tokens.
            Defaults to 512.
        short_seq_prob (float): share of documents with a random shorter
            target length. Defaults to 0.1.
        dupe_factor (int): passes over the corpus, each with new chunk
            boundaries and SOP coins (the reference uses 40 with fixed
            masks; here masking is redrawn each epoch). Defaults to 1.
        single_sentence (str): see above. Defaults to ``'split_tokens'``.
        truncate_long_sentences (bool): see above. Defaults to False.
        seed (int): seed of the pairs. Defaults to 0.
        max_documents (int, optional): read only the first documents.
        data_root (str): folder of the files. Defaults to ``''``.
        pipeline (Sequence[dict | Callable]): e.g. ``NgramMLMMask`` and
            ``PackTextInputs``.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(task='albert_pretrain')

    def __init__(self,
                 ann_file: str,
                 tokenizer: Union[str, dict, SentencePieceTokenizer],
                 max_seq_length: int = 512,
                 short_seq_prob: float = 0.1,
                 dupe_factor: int = 1,
                 single_sentence: str = 'split_tokens',
                 truncate_long_sentences: bool = False,
                 seed: int = 0,
                 max_documents: Optional[int] = None,
                 data_root: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        owner = type(self).__name__
        self.max_seq_length = check_int(
            max_seq_length, 'max_seq_length', owner, minimum=5)
        self.short_seq_prob = check_float(short_seq_prob, 'short_seq_prob',
                                          owner, 0., 1.)
        self.dupe_factor = check_int(dupe_factor, 'dupe_factor', owner)
        self.single_sentence = check_choice(single_sentence, 'single_sentence',
                                            owner, SINGLE_SENTENCE_MODES)
        self.truncate_long_sentences = bool(truncate_long_sentences)
        self.seed = check_int(seed, 'seed', owner, minimum=0)
        self.max_documents = None if max_documents is None else check_int(
            max_documents, 'max_documents', owner)
        self.tokenizer = build_tokenizer(tokenizer, data_root)
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            pipeline=pipeline,
            **kwargs)

    # -- tokenisation -------------------------------------------------------

    def tokenize_documents(self) -> List[List[Segment]]:
        """Documents as lists of (ids, word starts) segments, one per
        sentence (long sentences checked or cut); empty sentences dropped.
        """
        documents = read_documents(self.ann_file, with_line_numbers=True)
        if self.max_documents is not None:
            documents = documents[:self.max_documents]
        flat = [text for doc in documents for _, text in doc]
        encoded = self.tokenizer.encode(flat)
        out, k = [], 0
        for doc in documents:
            segments = document_segments(doc, encoded[k:k + len(doc)],
                                         self.tokenizer, self.max_seq_length,
                                         self.truncate_long_sentences,
                                         self.ann_file,
                                         type(self).__name__)
            k += len(doc)
            if segments:
                out.append(segments)
        return out

    # -- pairs --------------------------------------------------------------

    def instances_from_document(self, documents: List[List[Segment]],
                                index: int,
                                rng: np.random.Generator) -> List[dict]:
        """The pairs of document ``index`` (spec section 2, steps 1-3)."""
        return instances_from_document(documents, index, rng,
                                       self.max_seq_length,
                                       self.short_seq_prob,
                                       self.single_sentence)

    def load_data_list(self) -> List[dict]:
        documents = self.tokenize_documents()
        rng = np.random.default_rng(self.seed)
        data_list = []
        for _ in range(self.dupe_factor):
            for index in range(len(documents)):
                data_list += self.instances_from_document(
                    documents, index, rng)
        if not data_list:
            raise ValueError(
                f'{type(self).__name__}: no sentence pairs could be made from '
                f'{self.ann_file!r} ({len(documents)} documents); give a '
                'corpus with documents of two or more sentences')
        swapped = sum(d['sop_label'] for d in data_list)
        print_log(
            f'{type(self).__name__}: {len(data_list)} pairs from '
            f'{len(documents)} documents of {self.ann_file} '
            f'({swapped / len(data_list):.1%} swapped, max length '
            f'{self.max_seq_length})',
            logger='current')
        return data_list
