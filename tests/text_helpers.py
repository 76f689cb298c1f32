# Copyright (c) mmssl contributors. All rights reserved.
"""A small docstring corpus and tokenizer shared by the text tests."""
import os.path as osp

from mmssl.datasets import make_embedded_corpus, train_sentencepiece

#: A few standard-library modules: ~90 KB of prose, built in a second.
SMALL_MODULES = ('argparse', 'csv', 'json', 'logging', 'shlex', 'string',
                 'textwrap', 'unittest')
SMALL_VOCAB = 600


def small_corpus(root) -> dict:
    """The manifest of the small corpus under ``root``."""
    return make_embedded_corpus(str(root), modules=SMALL_MODULES)


def small_tokenizer(folder, vocab_size: int = SMALL_VOCAB) -> str:
    """Train (once per folder) a tokenizer on the small corpus; its path."""
    corpus = small_corpus(osp.join(str(folder), 'corpus'))
    prefix = osp.join(str(folder), f'spm_{vocab_size}')
    if not osp.isfile(prefix + '.model'):
        train_sentencepiece(corpus['files']['train'], prefix, vocab_size)
    return prefix + '.model'
