# Copyright (c) mmssl contributors. All rights reserved.
"""The embedded text data, made on first use: the standard-library
docstring corpus (:func:`make_embedded_corpus`), a SentencePiece model
trained on its training split and the next-sentence pair task
(:func:`make_embedded_pair_task`), all under one folder::

    data/embedded_text/
        train.txt, val.txt, manifest.json    # the corpus
        spm_unigram_<V>.model / .vocab       # the tokenizer, V pieces
        next_sentence/train.tsv, dev.tsv     # the sentence-pair task

Configs name only the folder and the vocabulary size
(``mmssl.EmbeddedTextPretrainDataset``, ``mmssl.EmbeddedPairTaskDataset``),
so ``tools/train.py`` runs on a fresh clone without a separate data step;
processes that start together (``dist_train.sh``, parallel seeds) wait for
one another on a lock instead of writing the same files twice.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict

from mmssl.registry import DATASETS
from mmssl.utils.validation import check_choice, check_int
from .albert_pretrain import AlbertPretrainDataset
from .embedded import _file_lock
from .glue import GLUEDataset, make_embedded_pair_task
from .text_corpus import make_embedded_corpus
from .tokenizer import train_sentencepiece

__all__ = [
    'EmbeddedPairTaskDataset', 'EmbeddedTextPretrainDataset',
    'embedded_corpus_args', 'ensure_embedded_text'
]

PAIR_TASK_FOLDER = 'next_sentence'


def ensure_embedded_text(root: str = 'data/embedded_text',
                         vocab_size: int = 2000) -> Dict[str, str]:
    """Make (or reuse) the embedded corpus, its tokenizer and the pair task.

    Args:
        root (str): the folder. Defaults to ``'data/embedded_text'``.
        vocab_size (int): pieces of the SentencePiece (unigram, lower-cased)
            model trained on ``train.txt``; one model per size.

    Returns:
        dict: paths ``train`` / ``val`` (corpus), ``tokenizer`` (``.model``),
        ``pair_train`` / ``pair_dev`` (TSV).
    """
    vocab_size = check_int(
        vocab_size, 'vocab_size', 'ensure_embedded_text', minimum=16)
    root = osp.abspath(osp.expanduser(root))
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    prefix = osp.join(root, f'spm_unigram_{vocab_size}')
    paths = dict(
        train=osp.join(root, 'train.txt'),
        val=osp.join(root, 'val.txt'),
        tokenizer=prefix + '.model',
        pair_train=osp.join(root, PAIR_TASK_FOLDER, 'train.tsv'),
        pair_dev=osp.join(root, PAIR_TASK_FOLDER, 'dev.tsv'))
    # the lock sits beside the folder: a rebuilt corpus replaces the folder
    with _file_lock(parent):
        corpus = make_embedded_corpus(root)
        make_embedded_pair_task(root, osp.join(root, PAIR_TASK_FOLDER))
        if corpus['generated'] or not osp.isfile(paths['tokenizer']):
            tmp = tempfile.mkdtemp(prefix='.tmp-spm-', dir=root)
            try:
                model = train_sentencepiece(paths['train'],
                                            osp.join(tmp, 'spm'), vocab_size)
                os.replace(model[:-len('.model')] + '.vocab',
                           prefix + '.vocab')
                os.replace(model, paths['tokenizer'])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return paths


def embedded_corpus_args(owner: str, data_root: str, split: str,
                         vocab_size: int, kwargs: dict,
                         general: str) -> Dict[str, str]:
    """``ann_file`` and ``tokenizer`` of a dataset on the embedded corpus.

    Makes (or reuses) the corpus and its tokenizer
    (:func:`ensure_embedded_text`) for a dataset class that reads a corpus
    split; the class passes the two paths on to its general parent.

    Args:
        owner (str): The dataset class, for the messages.
        data_root (str): The embedded text folder.
        split (str): ``'train'`` or ``'val'``.
        vocab_size (int): Pieces of the tokenizer.
        kwargs (dict): The other arguments given to the dataset.
        general (str): The registered parent that takes any corpus, named
            in the error.

    Returns:
        dict: ``ann_file`` (the split's text file) and ``tokenizer`` (the
        SentencePiece model).

    Raises:
        ValueError: ``split`` is not ``'train'`` or ``'val'``.
        TypeError: ``kwargs`` sets ``ann_file`` or ``tokenizer``.
    """
    split = check_choice(split, 'split', owner, ('train', 'val'))
    for key in ('ann_file', 'tokenizer'):
        if key in kwargs:
            raise TypeError(f'{owner}: {key} comes from data_root and '
                            f'vocab_size; use {general} for another corpus')
    paths = ensure_embedded_text(data_root, vocab_size)
    return dict(ann_file=paths[split], tokenizer=paths['tokenizer'])


@DATASETS.register_module()
class EmbeddedTextPretrainDataset(AlbertPretrainDataset):
    """:class:`AlbertPretrainDataset` on the embedded corpus, with the
    tokenizer trained on its training split (both made on first use).

    Args:
        data_root (str): the embedded text folder.
            Defaults to ``'data/embedded_text'``.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        vocab_size (int): pieces of the tokenizer. Defaults to 2000.
        **kwargs: the other arguments of :class:`AlbertPretrainDataset`
            (``max_seq_length``, ``short_seq_prob``, ``seed``, ``pipeline``,
            ...); not ``ann_file`` or ``tokenizer``.
    """

    def __init__(self,
                 data_root: str = 'data/embedded_text',
                 split: str = 'train',
                 vocab_size: int = 2000,
                 **kwargs) -> None:
        super().__init__(
            **embedded_corpus_args(
                type(self).__name__, data_root, split, vocab_size, kwargs,
                'mmssl.AlbertPretrainDataset'), **kwargs)


@DATASETS.register_module()
class EmbeddedPairTaskDataset(GLUEDataset):
    """The embedded next-sentence pair task (is ``sentence2`` the sentence
    after ``sentence1`` in the same document? balanced, 50 % majority
    class) as a :class:`GLUEDataset` with ``task='pair'``, tokenised with
    the embedded tokenizer (both made on first use).

    Args:
        data_root (str): the embedded text folder.
            Defaults to ``'data/embedded_text'``.
        split (str): ``'train'`` or ``'dev'``. Defaults to ``'train'``.
        vocab_size (int): pieces of the tokenizer; the same as the
            pretraining's. Defaults to 2000.
        **kwargs: the other arguments of :class:`GLUEDataset`
            (``max_length``, ``pipeline``, ...).
    """

    def __init__(self,
                 data_root: str = 'data/embedded_text',
                 split: str = 'train',
                 vocab_size: int = 2000,
                 **kwargs) -> None:
        owner = type(self).__name__
        split = check_choice(split, 'split', owner, ('train', 'dev'))
        for key in ('ann_file', 'tokenizer', 'task'):
            if key in kwargs:
                raise TypeError(f'{owner}: {key} is fixed by the embedded '
                                'pair task; use mmssl.GLUEDataset for other '
                                'data')
        paths = ensure_embedded_text(data_root, vocab_size)
        super().__init__(
            ann_file=paths[f'pair_{split}'],
            tokenizer=paths['tokenizer'],
            task='pair',
            **kwargs)
